# MongoDB: SecantusDB (the MongoDB wire protocol over WiredTiger) from PyPI,
# in the project's virtualenv. Data lives in a storage directory, so a
# stop/start (the outage tests) keeps what was written.
MONGODB_PORT=${WEIR_MONGODB_PORT:-17017}
MONGODB_VERSION=0.7.0b3

mongodb_bin() { echo "$VENV/bin/secantusd-py"; }

mongodb_install() {
  [ -x "$(mongodb_bin)" ] && return 0
  ensure_venv
  log "installing SecantusDB $MONGODB_VERSION into $VENV"
  "$VENV/bin/pip" install --quiet "secantusdb==$MONGODB_VERSION"
}

mongodb_start() {
  local dir="$SERVICES_DIR/mongodb"
  mkdir -p "$dir/data"
  nohup "$(mongodb_bin)" --host 127.0.0.1 --port "$MONGODB_PORT" \
    --storage-path "$dir/data" >>"$dir/mongodb.log" 2>&1 &
  echo $! >"$dir/mongodb.pid"
}

mongodb_ready() {
  pid_alive "$SERVICES_DIR/mongodb/mongodb.pid" && port_open "$MONGODB_PORT"
}

mongodb_env() { echo "WEIR_TEST_MONGODB=mongodb://127.0.0.1:$MONGODB_PORT/"; }
