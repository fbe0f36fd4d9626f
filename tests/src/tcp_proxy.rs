//! A TCP proxy in front of a real server, for the tests that need to see
//! or break the traffic: it counts the requests carrying a byte pattern
//! (a MongoDB command name, an AWS `x-amz-target`), and can cut every
//! connection (an outage) or hold them without forwarding (a server that
//! accepts and never answers).
//!
//! It runs on a thread and runtime of its own, so a test may block its own
//! thread in a synchronous call going through the proxy.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const UP: u8 = 0;
const CUT: u8 = 1;
const STALLED: u8 = 2;

struct Shared {
    upstream: SocketAddr,
    mode: AtomicU8,
    patterns: Vec<Vec<u8>>,
    counts: Vec<AtomicU64>,
    connections: Mutex<Vec<JoinHandle<()>>>,
}

/// A running proxy; dropped, it stops.
pub struct TcpProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl TcpProxy {
    /// Listen on a free port of 127.0.0.1 and forward to `upstream`,
    /// counting client bytes matching each of `patterns`.
    pub fn start(upstream: SocketAddr, patterns: &[&[u8]]) -> TcpProxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("test-proxy")
            .enable_all()
            .build()
            .expect("proxy runtime");
        // Bound here, not with `block_on`, which a caller's own runtime
        // forbids.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("proxy port");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("proxy address");
        let listener = {
            let _in_runtime = runtime.enter();
            TcpListener::from_std(listener).expect("proxy listener")
        };
        let shared = Arc::new(Shared {
            upstream,
            mode: AtomicU8::new(UP),
            patterns: patterns.iter().map(|p| p.to_vec()).collect(),
            counts: patterns.iter().map(|_| AtomicU64::new(0)).collect(),
            connections: Mutex::new(Vec::new()),
        });
        let accept = Arc::clone(&shared);
        runtime.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if accept.mode.load(Ordering::SeqCst) == CUT {
                    drop(client);
                    continue;
                }
                let conn = Arc::clone(&accept);
                let task = tokio::spawn(async move { forward(conn, client).await });
                accept.connections.lock().expect("proxy lock").push(task);
            }
        });
        TcpProxy {
            addr,
            shared,
            runtime: Some(runtime),
        }
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many times `patterns[i]` went from a client to the server.
    pub fn count(&self, i: usize) -> u64 {
        self.shared.counts[i].load(Ordering::SeqCst)
    }

    /// Close every connection and refuse new ones.
    pub fn cut(&self) {
        self.shared.mode.store(CUT, Ordering::SeqCst);
        for task in self
            .shared
            .connections
            .lock()
            .expect("proxy lock")
            .drain(..)
        {
            task.abort();
        }
    }

    /// Keep connections open but forward nothing either way.
    pub fn stall(&self) {
        self.shared.mode.store(STALLED, Ordering::SeqCst);
    }

    /// Forward again (new connections; a cut closed the old ones).
    pub fn restore(&self) {
        self.shared.mode.store(UP, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn forward(shared: Arc<Shared>, client: TcpStream) {
    let Ok(server) = TcpStream::connect(shared.upstream).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let counting = Arc::clone(&shared);
    let up = async move {
        let mut buf = vec![0u8; 64 * 1024];
        // The end of the previous chunk, so a pattern split across two
        // reads is still seen once.
        let mut tail: Vec<u8> = Vec::new();
        let longest = counting.patterns.iter().map(Vec::len).max().unwrap_or(0);
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            wait_unstalled(&counting).await;
            let mut seen = std::mem::take(&mut tail);
            let carried = seen.len();
            seen.extend_from_slice(&buf[..n]);
            for (pattern, count) in counting.patterns.iter().zip(&counting.counts) {
                let hits = seen
                    .windows(pattern.len())
                    .enumerate()
                    .filter(|(at, w)| *w == pattern.as_slice() && at + pattern.len() > carried)
                    .count();
                count.fetch_add(hits as u64, Ordering::SeqCst);
            }
            tail = seen[seen.len().saturating_sub(longest.saturating_sub(1))..].to_vec();
            if server_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let down = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            wait_unstalled(&shared).await;
            if client_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

async fn wait_unstalled(shared: &Shared) {
    while shared.mode.load(Ordering::SeqCst) == STALLED {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
