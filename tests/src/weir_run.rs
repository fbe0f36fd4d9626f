//! A `weir run` child process of a test: started on a config file with its
//! own compiled-plugin cache, its log (stderr, `RUST_LOG=info`) in a file,
//! and killed and reaped when dropped, so a failing assertion never leaves
//! a pipeline running behind the test.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::weir_bin;

/// A running `weir run`.
pub struct WeirRun {
    child: Child,
    log: PathBuf,
}

impl WeirRun {
    /// `weir run CONFIG --progress 0`, with `cache` as its compiled-plugin
    /// cache and its stderr in `log`.
    pub fn start(config: &Path, cache: &Path, log: &Path) -> WeirRun {
        let child = Command::new(weir_bin())
            .args([
                "run",
                config.to_str().expect("a UTF-8 config path"),
                "--progress",
                "0",
            ])
            .env("WEIR_CACHE_DIR", cache)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("create the log file"))
            .spawn()
            .expect("start weir run");
        WeirRun {
            child,
            log: log.to_path_buf(),
        }
    }

    /// Write `config` to `dir/weir.toml` and start it, with the cache in
    /// `dir/cache` and the log in `dir/weir.log`.
    pub fn start_in(dir: &Path, config: &str) -> WeirRun {
        let path = dir.join("weir.toml");
        std::fs::write(&path, config).expect("write the config");
        WeirRun::start(&path, &dir.join("cache"), &dir.join("weir.log"))
    }

    /// What it logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait on weir run")
    }

    /// Wait until it exits by itself; past `timeout` it is killed and the
    /// test fails with its log.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "weir run did not exit within {timeout:?}:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait until it exits by itself and fail, with its log, unless it
    /// exited successfully.
    pub fn wait_success(&mut self, timeout: Duration) {
        let status = self.wait(timeout);
        assert!(
            status.success(),
            "weir run failed: {status}\n{}",
            self.log_text()
        );
    }

    /// SIGKILL, and reap it.
    pub fn kill(&mut self) {
        self.child.kill().expect("kill -9 weir run");
        let _ = self.child.wait();
    }

    /// SIGTERM (drain, commit, leave the group), then wait for it to exit
    /// within `timeout`.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success(), "kill -TERM {} failed", self.id());
        self.wait(timeout)
    }

    /// The admin API's address, from the log's "admin API on http://..."
    /// line; fails with the log if it exits first or none comes in
    /// `timeout`.
    pub fn admin_addr(&mut self, timeout: Duration) -> SocketAddr {
        const MARK: &str = "admin API on http://";
        let start = Instant::now();
        loop {
            let text = self.log_text();
            if let Some(at) = text.find(MARK) {
                let addr: String = text[at + MARK.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                    .collect();
                return addr.parse().unwrap_or_else(|e| panic!("{addr:?}: {e}"));
            }
            if let Some(status) = self.try_wait() {
                panic!("weir exited ({status}) before serving its admin API:\n{text}");
            }
            assert!(
                start.elapsed() < timeout,
                "no admin API after {timeout:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for WeirRun {
    fn drop(&mut self) {
        // Already exited is fine: kill then only reports an error.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
