# PostgreSQL: Debian's postgresql-15. The server refuses to run as root, so
# it runs as the `postgres` user the package creates, with a data directory
# that user owns (initialised once, trust authentication on 127.0.0.1 and
# the socket in the service directory). Data survives a stop/start.
POSTGRES_PORT=${WEIR_POSTGRES_PORT:-15432}
POSTGRES_BIN=/usr/lib/postgresql/15/bin

postgres_as_user() {
  if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi
}

postgres_install() {
  [ -x "$POSTGRES_BIN/postgres" ] && return 0
  ensure_apt postgresql-15
}

postgres_start() {
  local dir="$SERVICES_DIR/postgres"
  mkdir -p "$dir"
  chown postgres:postgres "$dir" 2>/dev/null || true
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    postgres_as_user "$POSTGRES_BIN/initdb" -D "$dir/data" -A trust -U postgres >"$dir/initdb.log" 2>&1
  fi
  # -w: pg_ctl returns once the server accepts connections. The server
  # writes its own PID as the first line of data/postmaster.pid.
  postgres_as_user "$POSTGRES_BIN/pg_ctl" -D "$dir/data" -w -l "$dir/postgres.log" \
    -o "-p $POSTGRES_PORT -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
  head -n1 "$dir/data/postmaster.pid" >"$dir/postgres.pid"
}

postgres_ready() {
  pid_alive "$SERVICES_DIR/postgres/postgres.pid" && port_open "$POSTGRES_PORT"
}

postgres_stop() {
  local dir="$SERVICES_DIR/postgres"
  if pid_alive "$dir/postgres.pid"; then
    postgres_as_user "$POSTGRES_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || stop_pidfile "$dir/postgres.pid"
  fi
  rm -f "$dir/postgres.pid"
}

postgres_env() { echo "WEIR_TEST_POSTGRES=postgresql://postgres@127.0.0.1:$POSTGRES_PORT/postgres"; }
