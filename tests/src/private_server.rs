//! Redis and MongoDB servers of a test's own, for outage tests: a test
//! stops only a server it started on a port of its own, never a shared one
//! (which may even belong to another checkout).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::stores::repo_root;

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
    /// [`crate::stores::mongo_uri`].
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
