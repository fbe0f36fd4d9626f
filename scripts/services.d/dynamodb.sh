# DynamoDB and DynamoDB Streams: moto's server mode (Python, in the shared
# virtualenv). In-memory: a restart starts empty.
DYNAMODB_PORT=${WEIR_DYNAMODB_PORT:-15000}
DYNAMODB_MOTO_VERSION=5.2.5

dynamodb_install() {
  ensure_venv
  [ -x "$VENV/bin/moto_server" ] && return 0
  log "installing moto[server]==$DYNAMODB_MOTO_VERSION into $VENV"
  "$VENV/bin/pip" install --quiet "moto[server]==$DYNAMODB_MOTO_VERSION"
}

dynamodb_start() {
  local dir="$SERVICES_DIR/dynamodb"
  mkdir -p "$dir"
  nohup "$VENV/bin/moto_server" -H 127.0.0.1 -p "$DYNAMODB_PORT" >"$dir/dynamodb.log" 2>&1 &
  echo $! >"$dir/dynamodb.pid"
}

dynamodb_ready() { pid_alive "$SERVICES_DIR/dynamodb/dynamodb.pid" && port_open "$DYNAMODB_PORT"; }

dynamodb_env() {
  echo "WEIR_TEST_DYNAMODB=http://127.0.0.1:$DYNAMODB_PORT"
  echo "AWS_ACCESS_KEY_ID=test"
  echo "AWS_SECRET_ACCESS_KEY=test"
  echo "AWS_REGION=us-east-1"
}
