//! Helpers of the hot-reload and admin API tests (and the reload-pause
//! benchmark): an in-memory source fed through a channel, a sink that keeps
//! what it is given, a native transform that tags each batch's outputs with
//! the batch's number, and a minimal HTTP/1.1 client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use weir::engine::{PluginError, Transform};
use weir::event::{Event, Header, Op, Outcome, Output};
use weir::sink::{Rejection, Sink, SinkError};
use weir::source::{Source, SourceBatch, SourceError};

/// Header [`BatchTag`] puts on every output: the number of the batch.
pub const BATCH_HEADER: &str = "weir-test-batch";
/// Header name the tests configure for the plugin version.
pub const VERSION_HEADER: &str = "weir-plugin-version";

/// A JSON event `{"id": id}` with the id as key too.
pub fn event(id: u64) -> Event {
    Event {
        key: Some(Bytes::from(id.to_string())),
        value: Some(Bytes::from(format!("{{\"id\":{id}}}"))),
        old_value: None,
        op: Op::Insert,
        headers: Vec::new(),
        timestamp_ms: 0,
        origin: format!("mem/0/{id}"),
    }
}

/// A source whose events are pushed through a channel; runs until the
/// sender is dropped and everything was handed out.
pub struct ChannelSource {
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Event>>,
}

impl ChannelSource {
    /// The source and the sender that feeds it.
    pub fn new() -> (Arc<ChannelSource>, mpsc::UnboundedSender<Event>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Arc::new(ChannelSource {
                rx: tokio::sync::Mutex::new(rx),
            }),
            tx,
        )
    }
}

#[async_trait]
impl Source for ChannelSource {
    type Checkpoint = ();

    async fn next_batch(&self, max: usize, wait: Duration) -> Result<SourceBatch<()>, SourceError> {
        let mut rx = self.rx.lock().await;
        let mut events = Vec::new();
        let mut exhausted = false;
        match tokio::time::timeout(wait, rx.recv()).await {
            Ok(Some(e)) => events.push(e),
            Ok(None) => exhausted = true,
            Err(_) => {}
        }
        while !exhausted && events.len() < max {
            match rx.try_recv() {
                Ok(e) => events.push(e),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => exhausted = true,
            }
        }
        Ok(SourceBatch {
            events,
            checkpoint: (),
            partitions: Vec::new(),
            exhausted,
            unreadable: Vec::new(),
        })
    }

    async fn commit(&self, _checkpoint: ()) -> Result<(), SourceError> {
        Ok(())
    }
}

/// Keeps every output it is given, in order.
#[derive(Default)]
pub struct MemSink {
    pub written: Mutex<Vec<Output>>,
}

impl MemSink {
    pub fn outputs(&self) -> Vec<Output> {
        self.written.lock().unwrap().clone()
    }

    /// How many outputs were written.
    pub fn len(&self) -> usize {
        self.written.lock().unwrap().len()
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.written.lock().unwrap().is_empty()
    }
}

#[async_trait]
impl Sink for MemSink {
    async fn write(&self, outputs: &[Output]) -> Result<Vec<Rejection>, SinkError> {
        self.written.lock().unwrap().extend_from_slice(outputs);
        Ok(Vec::new())
    }
}

/// Passes every event on as an output and tags it with the number of the
/// batch (`BATCH_HEADER`), so a test can tell which outputs were processed
/// together.
#[derive(Default)]
pub struct BatchTag {
    batches: Arc<AtomicU64>,
}

impl BatchTag {
    /// A tag whose batch numbers start at `first` (one tag per worker, each
    /// with its own range, tells the workers' batches apart).
    pub fn starting_at(first: u64) -> Self {
        BatchTag {
            batches: Arc::new(AtomicU64::new(first)),
        }
    }

    pub fn counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.batches)
    }
}

impl Transform for BatchTag {
    fn name(&self) -> &str {
        "batch-tag"
    }

    fn process_batch(&mut self, events: &[Event]) -> Result<Vec<Outcome>, PluginError> {
        let batch = self.batches.fetch_add(1, Ordering::SeqCst);
        Ok(events
            .iter()
            .map(|e| {
                let mut headers = e.headers.clone();
                headers.push(Header {
                    key: BATCH_HEADER.into(),
                    value: Bytes::from(batch.to_string()),
                });
                Outcome::Emit(vec![Output {
                    route: None,
                    key: e.key.clone(),
                    value: e.value.clone(),
                    op: e.op,
                    headers,
                    ttl_seconds: None,
                }])
            })
            .collect())
    }
}

/// A header's value as text.
pub fn header(output: &Output, name: &str) -> Option<String> {
    output
        .headers
        .iter()
        .find(|h| h.key == name)
        .map(|h| String::from_utf8_lossy(&h.value).into_owned())
}

/// The output's value as JSON.
pub fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(output.value.as_deref().unwrap_or_default())
        .unwrap_or_else(|e| panic!("output value is not JSON ({e}): {output:?}"))
}

/// Wait until `done()` holds, polling; panics with `what` after `limit`.
pub async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request (`Connection: close`) and its answer.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("receive");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    Answer {
        status,
        headers,
        body: String::from_utf8(body).expect("UTF-8 body"),
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&data[..end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = end + 2;
        out.extend_from_slice(&data[start..start + size]);
        data = &data[start + size + 2..];
    }
}
