//! Helpers of the MongoDB and Redis tests: the real servers' addresses
//! (failing loudly with how to start them), unique names, outputs, building
//! a sink, and private Redis/MongoDB servers an outage test starts on a
//! port of its own, so that it stops only what it started.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use weir::event::{Header, Op, Output};
use weir::sink::{Sink, SinkConfig, SinkContext, SinkError};

/// The repository root (the directory of the sinks' relative paths).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Redis URL of the test server (`WEIR_TEST_REDIS` overrides).
pub fn redis_url() -> String {
    std::env::var("WEIR_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:16379/".to_owned())
}

/// The MongoDB URI of the test server (`WEIR_TEST_MONGODB` overrides),
/// with short timeouts so an outage shows up as an error within seconds.
pub fn mongo_uri() -> String {
    let base = std::env::var("WEIR_TEST_MONGODB")
        .unwrap_or_else(|_| "mongodb://127.0.0.1:17017/".to_owned());
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}serverSelectionTimeoutMS=2000&connectTimeoutMS=2000")
}

/// A connection to the test Redis, or a panic saying how to start it.
pub async fn redis() -> redis::aio::MultiplexedConnection {
    redis_at(&redis_url()).await
}

/// A connection to the Redis at `url` once it answers PING.
pub async fn redis_at(url: &str) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(url).expect("valid redis url");
    let mut conn = match client.get_multiplexed_async_connection().await {
        Ok(c) => c,
        Err(e) => panic!(
            "Redis is not reachable at {url}: {e}\nstart it with: scripts/services start redis"
        ),
    };
    // Wait while a restarted server loads its append-only file.
    for _ in 0..100 {
        match redis::cmd("PING").query_async::<String>(&mut conn).await {
            Ok(_) => return conn,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("Redis at {url} does not answer PING; start it with: scripts/services start redis")
}

/// A client of the test MongoDB, or a panic saying how to start it.
pub async fn mongo() -> mongodb::Client {
    mongo_at(&mongo_uri()).await
}

/// A client of the MongoDB at `uri` once it answers a ping.
pub async fn mongo_at(uri: &str) -> mongodb::Client {
    let client = mongodb::Client::with_uri_str(uri)
        .await
        .expect("valid mongodb uri");
    if let Err(e) = client
        .database("admin")
        .run_command(mongodb::bson::doc! { "ping": 1 })
        .await
    {
        panic!(
            "MongoDB is not reachable at {uri}: {e}\nstart it with: scripts/services start mongodb"
        );
    }
    client
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
        % 100_000_000;
    format!(
        "{prefix}_{t}_{}_{}",
        std::process::id() % 10_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// An upsert output with a JSON value.
pub fn out(value: serde_json::Value) -> Output {
    Output {
        value: Some(value.to_string().into()),
        ..Output::default()
    }
}

/// An output with a key and a JSON value.
pub fn keyed(key: &str, value: serde_json::Value) -> Output {
    Output {
        key: Some(key.to_owned().into()),
        ..out(value)
    }
}

/// A delete output.
pub fn delete(key: Option<&str>, value: Option<serde_json::Value>) -> Output {
    Output {
        key: key.map(|k| k.to_owned().into()),
        value: value.map(|v| v.to_string().into()),
        op: Op::Delete,
        ..Output::default()
    }
}

/// Add a header.
pub fn with_header(mut o: Output, name: &str, value: &str) -> Output {
    o.headers.push(Header::new(name, value.to_owned()));
    o
}

/// Build a sink from a `[sinks.NAME]` TOML table body (with its `type`).
pub async fn build_sink(name: &str, table: &str) -> Arc<dyn Sink> {
    let config: SinkConfig =
        toml::from_str(table).unwrap_or_else(|e| panic!("bad sink config: {e}\n{table}"));
    let ctx = SinkContext {
        name: name.to_owned(),
        config_dir: repo_root(),
    };
    match config.build(&ctx).await {
        Ok(s) => s,
        Err(e) => panic!("sink `{name}` did not build: {e}"),
    }
}

/// Write every batch the way the pipeline does: retry a batch on a
/// transient error until it is written, wait `pause` between batches (so
/// that the writes span an outage); return how many transient errors were
/// seen. A fatal error, or a rejected output, fails the test.
pub async fn write_through(
    sink: Arc<dyn Sink>,
    batches: Vec<Vec<Output>>,
    pause: Duration,
) -> usize {
    let mut transient = 0;
    for batch in &batches {
        loop {
            match sink.write(batch).await {
                Ok(rejected) => {
                    assert!(rejected.is_empty(), "{rejected:?}");
                    break;
                }
                Err(SinkError::Transient(_)) => {
                    transient += 1;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Err(e) => panic!("a server outage must be a transient error, got: {e}"),
            }
        }
        tokio::time::sleep(pause).await;
    }
    transient
}

/// A Redis or MongoDB server of the test's own: a child process on a free
/// port with its data in a temporary directory. An outage test stops this
/// one and never a shared server, and [`PrivateServer::stop`] checks that
/// the process it stops is the one serving the port and that the port is
/// really closed afterwards, failing with that reason otherwise.
pub struct PrivateServer {
    /// `redis` or `mongodb`, for messages.
    name: &'static str,
    program: PathBuf,
    args: Vec<String>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Option<Child>,
    // Held for the data to outlive a stop/start; removed on drop.
    _dir: tempfile::TempDir,
}

impl PrivateServer {
    /// Start a private `redis-server` (append-only file, so a stop/start
    /// keeps what was written, as with the shared one).
    pub fn redis() -> PrivateServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = crate::sql_servers::free_port();
        let args = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--dir",
            &dir.path().display().to_string(),
        ]
        .map(str::to_owned)
        .to_vec();
        PrivateServer::start("redis", PathBuf::from("redis-server"), args, port, dir)
    }

    /// Start a private SecantusDB (the MongoDB-compatible server
    /// `scripts/services` installs into `.services/venv`; `WEIR_SERVICES_DIR`
    /// points at another services directory, as for the script).
    pub fn mongodb() -> PrivateServer {
        let services = std::env::var_os("WEIR_SERVICES_DIR")
            .map_or_else(|| repo_root().join(".services"), PathBuf::from);
        let program = services.join("venv/bin/secantusd-py");
        assert!(
            program.exists(),
            "SecantusDB is not installed at {}; run: scripts/services start mongodb \
             (or set WEIR_SERVICES_DIR to the services directory that has it)",
            program.display()
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let port = crate::sql_servers::free_port();
        let args = [
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--storage-path",
            &dir.path().display().to_string(),
        ]
        .map(str::to_owned)
        .to_vec();
        PrivateServer::start("mongodb", program, args, port, dir)
    }

    fn start(
        name: &'static str,
        program: PathBuf,
        args: Vec<String>,
        port: u16,
        dir: tempfile::TempDir,
    ) -> PrivateServer {
        let mut server = PrivateServer {
            name,
            program,
            args,
            port,
            child: None,
            _dir: dir,
        };
        server.start_again();
        server
    }

    /// The Redis URL of this server.
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The MongoDB URI of this server, with the short timeouts of
    /// [`mongo_uri`].
    pub fn mongo_uri(&self) -> String {
        format!(
            "mongodb://127.0.0.1:{}/?serverSelectionTimeoutMS=2000&connectTimeoutMS=2000",
            self.port
        )
    }

    /// Start the (stopped) server; returns once its port accepts
    /// connections. Fails if another process already holds the port, since
    /// the test would then not control the server it talks to.
    pub fn start_again(&mut self) {
        let (name, port) = (self.name, self.port);
        assert!(self.child.is_none(), "private {name} is already running");
        assert!(
            !crate::sql_servers::port_open(port),
            "port {port} of the private {name} is served by another process: the test does not control that server"
        );
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e}; run: scripts/services start {name}",
                    self.program.display()
                )
            });
        let child = self.child.insert(child);
        crate::sql_servers::wait_until(
            &format!("private {name} accepts connections on port {port}"),
            Duration::from_secs(60),
            || {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("private {name} exited at start ({status})");
                }
                crate::sql_servers::port_open(port)
            },
        );
    }

    /// Stop the server (SIGTERM to the process the test started, then wait
    /// for it) and check that the port is really closed. Fails, saying why,
    /// if the process is not running or not the one serving the port.
    pub fn stop(&mut self) {
        let (name, port) = (self.name, self.port);
        let Some(mut child) = self.child.take() else {
            panic!("private {name} on port {port} is not running: nothing of the test's to stop");
        };
        let pid = child.id();
        if let Ok(Some(status)) = child.try_wait() {
            panic!("private {name} (pid {pid}) had already exited ({status}) before the outage");
        }
        assert!(
            crate::sql_servers::port_open(port),
            "private {name} (pid {pid}) runs but nothing listens on its port {port}"
        );
        let status = Command::new("kill")
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {pid} (private {name}) failed");
        let _ = child.wait();
        crate::sql_servers::wait_until(
            &format!(
                "port {port} closed once private {name} (pid {pid}) exited; if it stays open another process serves it"
            ),
            Duration::from_secs(10),
            || !crate::sql_servers::port_open(port),
        );
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
