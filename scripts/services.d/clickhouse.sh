# ClickHouse: Debian's clickhouse-server (18.16, an old release; the sink
# uses only the HTTP interface, which current servers keep). It runs with a
# minimal config of its own in the service directory: HTTP on
# CLICKHOUSE_PORT, native TCP on CLICKHOUSE_TCP_PORT, one `default` user
# without password, data in the service directory (kept across stop/start).
CLICKHOUSE_PORT=${WEIR_CLICKHOUSE_PORT:-18123}
CLICKHOUSE_TCP_PORT=${WEIR_CLICKHOUSE_TCP_PORT:-19000}

clickhouse_install() {
  command -v clickhouse-server >/dev/null 2>&1 && return 0
  ensure_apt clickhouse-server
}

clickhouse_config() {
  local dir=$1
  mkdir -p "$dir/data" "$dir/tmp"
  cat >"$dir/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>$dir/clickhouse.log</log>
        <errorlog>$dir/clickhouse.err.log</errorlog>
    </logger>
    <http_port>$CLICKHOUSE_PORT</http_port>
    <tcp_port>$CLICKHOUSE_TCP_PORT</tcp_port>
    <listen_host>127.0.0.1</listen_host>
    <path>$dir/data/</path>
    <tmp_path>$dir/tmp/</tmp_path>
    <users_config>users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <mark_cache_size>5368709</mark_cache_size>
</yandex>
XML
  cat >"$dir/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <profiles><default/></profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>::/0</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas><default/></quotas>
</yandex>
XML
}

clickhouse_start() {
  local dir="$SERVICES_DIR/clickhouse"
  clickhouse_config "$dir"
  nohup clickhouse-server --config-file="$dir/config.xml" >>"$dir/clickhouse.out" 2>&1 &
  echo $! >"$dir/clickhouse.pid"
}

# Ready once the HTTP interface answers a query (the port opens before
# the server has loaded its tables).
clickhouse_ready() {
  pid_alive "$SERVICES_DIR/clickhouse/clickhouse.pid" || return 1
  port_open "$CLICKHOUSE_PORT" || return 1
  local reply
  reply=$(exec 3<>"/dev/tcp/127.0.0.1/$CLICKHOUSE_PORT" &&
    printf 'GET /?query=SELECT%%201 HTTP/1.0\r\n\r\n' >&3 && cat <&3) 2>/dev/null || return 1
  [[ "$reply" == *$'\r\n\r\n1'* ]]
}

clickhouse_env() { echo "WEIR_TEST_CLICKHOUSE=http://127.0.0.1:$CLICKHOUSE_PORT/"; }
