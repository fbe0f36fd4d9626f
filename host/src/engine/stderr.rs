//! The plugin's stderr, kept as a short tail in memory so that when a
//! plugin panics (a trap in Wasm) the failed event's reason can carry the
//! panic message instead of only "unreachable instruction executed".
//! Nothing a plugin writes here reaches the host's own stderr.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// Bytes of stderr kept.
const KEEP: usize = 2048;

/// A shared, bounded tail of what the plugin wrote to stderr.
#[derive(Debug, Clone, Default)]
pub(crate) struct StderrTail(Arc<Mutex<Vec<u8>>>);

impl StderrTail {
    fn buf(&self) -> MutexGuard<'_, Vec<u8>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn push(&self, bytes: &[u8]) {
        let mut buf = self.buf();
        buf.extend_from_slice(bytes);
        if buf.len() > KEEP {
            let cut = buf.len() - KEEP;
            buf.drain(..cut);
        }
    }

    /// The last panic message the plugin printed, on one line:
    /// `panicked at src/lib.rs:25:13: poison event at t/0/7`.
    pub(crate) fn panic_message(&self) -> Option<String> {
        let buf = self.buf();
        let text = String::from_utf8_lossy(&buf);
        let at = text.rfind("panicked at ")?;
        let message = text[at..]
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
            .collect::<Vec<_>>()
            .join(" ");
        Some(message.chars().take(1024).collect())
    }
}

impl IsTerminal for StderrTail {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for StderrTail {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

impl OutputStream for StderrTail {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for StderrTail {
    async fn ready(&mut self) {}
}

impl AsyncWrite for StderrTail {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_panic_message() {
        let tail = StderrTail::default();
        assert_eq!(tail.panic_message(), None);
        tail.push(b"some log line\n");
        tail.push(b"\nthread '<unnamed>' panicked at src/lib.rs:25:13:\npoison event at t/0/7\n");
        tail.push(
            b"note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n",
        );
        assert_eq!(
            tail.panic_message().as_deref(),
            Some("panicked at src/lib.rs:25:13: poison event at t/0/7")
        );
        tail.push(&[b'x'; 3 * KEEP]);
        assert_eq!(tail.buf().len(), KEEP);
    }
}
