# Redis: Debian's redis-server. Append-only file in the service directory, so
# a stop/start (the outage tests) keeps what was written; no RDB snapshots.
# --daemonize writes the server's own PID to the pidfile.
REDIS_PORT=${WEIR_REDIS_PORT:-16379}

redis_install() {
  command -v redis-server >/dev/null 2>&1 && return 0
  ensure_apt redis-server
}

redis_start() {
  local dir="$SERVICES_DIR/redis"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly yes --appendfsync everysec \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --dir "$dir"
}

redis_ready() {
  pid_alive "$SERVICES_DIR/redis/redis.pid" && port_open "$REDIS_PORT"
}

redis_env() { echo "WEIR_TEST_REDIS=redis://127.0.0.1:$REDIS_PORT/"; }
