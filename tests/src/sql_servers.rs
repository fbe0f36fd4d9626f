//! Helpers of the PostgreSQL and ClickHouse sink tests: clients of the
//! servers `scripts/services` started (failing loudly with how to start
//! them), and private server instances a test starts on a port of its own,
//! so that it can stop them for an outage without touching the shared ones.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The PostgreSQL connection string of the test server
/// (`WEIR_TEST_POSTGRES` overrides).
pub fn postgres_url() -> String {
    std::env::var("WEIR_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:15432/postgres".to_owned())
}

/// The ClickHouse HTTP URL of the test server (`WEIR_TEST_CLICKHOUSE` overrides).
pub fn clickhouse_url() -> String {
    std::env::var("WEIR_TEST_CLICKHOUSE").unwrap_or_else(|_| "http://127.0.0.1:18123/".to_owned())
}

/// A client of the PostgreSQL at `url`, or a panic saying how to start it.
pub async fn postgres_at(url: &str) -> tokio_postgres::Client {
    match tokio_postgres::connect(url, tokio_postgres::NoTls).await {
        Ok((client, conn)) => {
            tokio::spawn(async move {
                let _ = conn.await;
            });
            client
        }
        Err(e) => panic!(
            "PostgreSQL is not reachable at {url}: {e}\nstart it with: scripts/services start postgres"
        ),
    }
}

/// A client of the test PostgreSQL.
pub async fn postgres() -> tokio_postgres::Client {
    postgres_at(&postgres_url()).await
}

/// Run one ClickHouse query over HTTP at `url`; panics with the server's
/// message (or how to start it) on failure.
pub async fn clickhouse_query_at(url: &str, query: &str) -> String {
    let resp = reqwest::Client::new()
        .post(url)
        .body(query.to_owned())
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "ClickHouse is not reachable at {url}: {e}\nstart it with: scripts/services start clickhouse"
            )
        });
    let status = resp.status();
    let body = resp.text().await.expect("clickhouse response body");
    assert!(
        status.is_success(),
        "ClickHouse `{query}` failed: {status} {body}"
    );
    body
}

/// Run one query on the test ClickHouse.
pub async fn clickhouse_query(query: &str) -> String {
    clickhouse_query_at(&clickhouse_url(), query).await
}

/// A TCP port nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// Poll `done` every 100 ms until it holds, failing after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "{what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether `GET path` on 127.0.0.1:`port` answers 200 (a plain HTTP/1.0
/// request, so that readiness checks need no async runtime).
fn http_get_ok(port: u16, path: &str) -> bool {
    use std::io::{Read as _, Write as _};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .is_err()
    {
        return false;
    }
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply.starts_with("HTTP/1.0 200") || reply.starts_with("HTTP/1.1 200")
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A PostgreSQL server of the test's own, in a temporary directory owned
/// by the `postgres` user (the server refuses to run as root).
pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

/// Whether this process runs as root (then PostgreSQL runs as `postgres`).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `program args` as the `postgres` user when we are root, else as we are.
fn as_postgres(program: &str, args: &[&str]) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", program]).args(args);
        c
    } else {
        let mut c = Command::new(program);
        c.args(args);
        c
    }
}

impl PrivatePostgres {
    /// Initialise a data directory and start the server on a free port.
    pub fn start() -> PrivatePostgres {
        assert!(
            Path::new(PG_BIN).join("postgres").exists(),
            "PostgreSQL 15 is not installed; run: scripts/services start postgres"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        if is_root() {
            let status = Command::new("chown")
                .args(["postgres:postgres", &dir.path().display().to_string()])
                .status()
                .expect("chown");
            assert!(status.success(), "chown of {}", dir.path().display());
        }
        let data = dir.path().join("data").display().to_string();
        let out = as_postgres(
            &format!("{PG_BIN}/initdb"),
            &["-D", &data, "-A", "trust", "-U", "postgres"],
        )
        .stdout(Stdio::null())
        .output()
        .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pg = PrivatePostgres {
            port: free_port(),
            dir,
        };
        pg.start_again();
        pg
    }

    /// Require TLS with `cert`/`key` (PEM files) from the next start on:
    /// plain connections over TCP are refused (`hostssl` only), the unix
    /// socket stays open for the test's own checks.
    pub fn require_tls(&self, cert: &Path, key: &Path) {
        let data = self.dir.path().join("data");
        std::fs::copy(cert, data.join("server.crt")).expect("copy server.crt");
        std::fs::copy(key, data.join("server.key")).expect("copy server.key");
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(
                data.join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .expect("chmod server.key");
        }
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .expect("postgresql.conf");
        std::io::Write::write_all(
            &mut conf,
            b"\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
        )
        .expect("write postgresql.conf");
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )
        .expect("write pg_hba.conf");
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres", &data.display().to_string()])
                .status()
                .expect("chown");
            assert!(status.success(), "chown of {}", data.display());
        }
    }

    /// A connection string over the unix socket (no TLS needed there).
    pub fn socket_url(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname=postgres",
            self.dir.path().display(),
            self.port
        )
    }

    /// The connection string.
    pub fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn pg_ctl(&self, args: &[&str]) -> std::process::Output {
        let data = self.dir.path().join("data").display().to_string();
        let mut all = vec!["-D", data.as_str()];
        all.extend_from_slice(args);
        as_postgres(&format!("{PG_BIN}/pg_ctl"), &all)
            .stdout(Stdio::null())
            .output()
            .expect("run pg_ctl")
    }

    /// Start the (stopped) server; returns once it accepts connections.
    pub fn start_again(&self) {
        let log = self.dir.path().join("log").display().to_string();
        let sock = self.dir.path().display().to_string();
        let opts = format!(
            "-p {} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port
        );
        let out = self.pg_ctl(&["-w", "-l", &log, "-o", &opts, "start"]);
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        wait_until(
            "private PostgreSQL accepts connections",
            Duration::from_secs(30),
            || port_open(self.port),
        );
    }

    /// Stop the server and check that it is really down.
    pub fn stop(&self) {
        let out = self.pg_ctl(&["-m", "fast", "-w", "stop"]);
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !port_open(self.port),
            "private PostgreSQL still listens after stop"
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if port_open(self.port) {
            let _ = self.pg_ctl(&["-m", "immediate", "-w", "stop"]);
        }
    }
}

/// A ClickHouse server of the test's own: its own config, data directory
/// and ports.
pub struct PrivateClickhouse {
    dir: tempfile::TempDir,
    /// Its HTTP port on 127.0.0.1.
    pub port: u16,
    child: Option<Child>,
}

impl PrivateClickhouse {
    /// Write a minimal config and start the server on free ports.
    pub fn start() -> PrivateClickhouse {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path().display().to_string();
        let port = free_port();
        let tcp = free_port();
        std::fs::write(
            dir.path().join("config.xml"),
            format!(
                "<?xml version=\"1.0\"?>\n<yandex>\n<logger><level>warning</level><log>{d}/ch.log</log><errorlog>{d}/ch.err.log</errorlog></logger>\n<http_port>{port}</http_port>\n<tcp_port>{tcp}</tcp_port>\n<listen_host>127.0.0.1</listen_host>\n<path>{d}/data/</path>\n<tmp_path>{d}/tmp/</tmp_path>\n<users_config>users.xml</users_config>\n<default_profile>default</default_profile>\n<default_database>default</default_database>\n<mark_cache_size>5368709</mark_cache_size>\n</yandex>\n"
            ),
        )
        .expect("config.xml");
        std::fs::write(
            dir.path().join("users.xml"),
            "<?xml version=\"1.0\"?>\n<yandex><profiles><default/></profiles><users><default><password></password><networks><ip>::/0</ip></networks><profile>default</profile><quota>default</quota></default></users><quotas><default/></quotas></yandex>\n",
        )
        .expect("users.xml");
        let mut ch = PrivateClickhouse {
            dir,
            port,
            child: None,
        };
        ch.start_again();
        ch
    }

    /// The HTTP URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// Start the (stopped) server; returns once it answers a query.
    pub fn start_again(&mut self) {
        let config = self.dir.path().join("config.xml");
        let child = Command::new("clickhouse-server")
            .arg(format!("--config-file={}", config.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("clickhouse-server is not installed; run: scripts/services start clickhouse");
        self.child = Some(child);
        let port = self.port;
        wait_until(
            "private ClickHouse answers",
            Duration::from_secs(60),
            || http_get_ok(port, "/?query=SELECT%201"),
        );
    }

    /// Stop the server (SIGTERM to its PID, then wait) and check that it
    /// is really down.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
        assert!(
            !port_open(self.port),
            "private ClickHouse still listens after stop"
        );
    }
}

impl Drop for PrivateClickhouse {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
