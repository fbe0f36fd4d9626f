//! A store driver's own I/O runtime: the async MongoDB and DynamoDB drivers
//! answer a plugin's synchronous lookup call through it.
//!
//! A lookup runs on a plugin thread, inside the plugin's call, and must
//! finish (or time out) before the plugin gets its answer. The driver's
//! future runs on a one-thread Tokio runtime the store owns, and the
//! calling thread waits on a channel: that works from any thread — a
//! plugin worker, the CLI's main task, a test — where `block_on` would
//! panic inside another runtime.

use std::future::Future;
use std::time::Duration;

/// The runtime of one store.
pub struct StoreIo {
    /// Always `Some` until dropped.
    runtime: Option<tokio::runtime::Runtime>,
}

impl StoreIo {
    /// A runtime with one I/O thread named after the store.
    pub fn new(store: &str) -> Result<StoreIo, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("weir-lookup-{store}"))
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start its I/O thread: {e}"))?;
        Ok(StoreIo {
            runtime: Some(runtime),
        })
    }

    /// The runtime's handle (a client built outside it spawns its
    /// background tasks here).
    pub fn handle(&self) -> Option<&tokio::runtime::Handle> {
        self.runtime.as_ref().map(tokio::runtime::Runtime::handle)
    }

    /// Run `work` on the store's thread and wait for it at most `timeout`;
    /// `None` when it did not finish in time (it is then cancelled).
    pub fn run<T, F>(&self, timeout: Duration, work: F) -> Option<T>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let handle = self.handle()?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        handle.spawn(async move {
            if let Ok(done) = tokio::time::timeout(timeout, work).await {
                // The caller may have given up already: nothing to do.
                let _ = tx.send(done);
            }
        });
        // The spawned task times out on its own; waiting a little longer
        // here only covers its scheduling.
        rx.recv_timeout(timeout + Duration::from_millis(100)).ok()
    }
}

impl Drop for StoreIo {
    fn drop(&mut self) {
        // Dropping a runtime waits for its tasks, which panics inside an
        // async context (a reload drops the old stores there).
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_that_finishes_answers_and_work_that_does_not_times_out() {
        let io = StoreIo::new("t").unwrap();
        assert_eq!(io.run(Duration::from_secs(5), async { 7 }), Some(7));
        let slow = io.run(Duration::from_millis(50), async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            7
        });
        assert_eq!(slow, None);
    }

    #[tokio::test]
    async fn it_answers_and_drops_inside_another_runtime() {
        let io = StoreIo::new("t").unwrap();
        assert_eq!(io.run(Duration::from_secs(5), async { 1 }), Some(1));
        drop(io);
    }
}
