//! The embedded Kafka cluster: librdkafka's in-process mock cluster, started
//! once per process on first use, so a config can run with no broker at all
//! (the quickstart) through exactly the code that talks to a real broker.
//!
//! The cluster lives on its own thread for the life of the process; topics
//! are created and seeded through it before a source subscribes.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use serde::Deserialize;

/// `embedded = { ... }` on a Kafka source.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// Partitions of each topic the source names (regex subscriptions
    /// excepted). Default 3.
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    /// A file of JSON lines, relative to the config file; each line becomes
    /// one message (the value) of the source's first topic, produced before
    /// the source subscribes. Seeded once per process.
    pub seed_file: Option<PathBuf>,
    /// Top-level field of each seed line whose value becomes the message key
    /// (so events of one key stay in one partition). Default: no key.
    pub key_field: Option<String>,
}

fn default_partitions() -> i32 {
    3
}

enum Request {
    CreateTopic {
        name: String,
        partitions: i32,
        reply: mpsc::Sender<Result<(), String>>,
    },
}

struct Handle {
    bootstrap: String,
    requests: Mutex<mpsc::Sender<Request>>,
}

static CLUSTER: OnceLock<Result<Handle, String>> = OnceLock::new();
static SEEDED: Mutex<Option<HashSet<String>>> = Mutex::new(None);

fn cluster() -> Result<&'static Handle, String> {
    CLUSTER
        .get_or_init(start_cluster)
        .as_ref()
        .map_err(Clone::clone)
}

fn start_cluster() -> Result<Handle, String> {
    let (ready_tx, ready_rx) = mpsc::channel::<Result<String, String>>();
    let (req_tx, req_rx) = mpsc::channel::<Request>();
    std::thread::Builder::new()
        .name("weir-embedded-kafka".into())
        .spawn(move || {
            let cluster = match MockCluster::new(1) {
                Ok(cluster) => cluster,
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("cannot start the embedded cluster: {e}")));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
            // Serve requests until the process ends; the cluster stays up
            // as long as this thread runs.
            while let Ok(request) = req_rx.recv() {
                match request {
                    Request::CreateTopic {
                        name,
                        partitions,
                        reply,
                    } => {
                        let result = cluster
                            .create_topic(&name, partitions, 1)
                            .map_err(|e| format!("cannot create embedded topic {name}: {e}"));
                        let _ = reply.send(result);
                    }
                }
            }
        })
        .map_err(|e| format!("cannot start the embedded cluster thread: {e}"))?;
    let bootstrap = ready_rx
        .recv()
        .map_err(|_| "the embedded cluster thread ended".to_string())??;
    tracing::info!(bootstrap = %bootstrap, "embedded Kafka cluster started");
    Ok(Handle {
        bootstrap,
        requests: Mutex::new(req_tx),
    })
}

/// Start the embedded cluster if needed, create `topics` with the configured
/// partitions, seed the first topic from the seed file (once per process),
/// and return the cluster's bootstrap servers. Blocking: call it off the
/// async runtime.
pub(crate) fn prepare(
    config: &EmbeddedConfig,
    topics: &[String],
    config_dir: &Path,
) -> Result<String, String> {
    if config.partitions < 1 {
        return Err(format!(
            "embedded.partitions must be at least 1, not {}",
            config.partitions
        ));
    }
    let handle = cluster()?;
    for topic in topics.iter().filter(|t| !t.starts_with('^')) {
        let (reply_tx, reply_rx) = mpsc::channel();
        handle
            .requests
            .lock()
            .map_err(|_| "embedded cluster lock poisoned".to_string())?
            .send(Request::CreateTopic {
                name: topic.clone(),
                partitions: config.partitions,
                reply: reply_tx,
            })
            .map_err(|_| "the embedded cluster thread ended".to_string())?;
        reply_rx
            .recv()
            .map_err(|_| "the embedded cluster thread ended".to_string())??;
    }
    if let Some(seed_file) = &config.seed_file {
        let Some(topic) = topics.iter().find(|t| !t.starts_with('^')) else {
            return Err("embedded.seed_file needs a topic that is not a regex".into());
        };
        let mut seeded = SEEDED
            .lock()
            .map_err(|_| "embedded seed lock poisoned".to_string())?;
        if seeded
            .get_or_insert_with(HashSet::new)
            .insert(topic.clone())
        {
            let path = crate::paths::resolve(config_dir, seed_file);
            let count = seed(&handle.bootstrap, topic, &path, config.key_field.as_deref())?;
            tracing::info!(topic = %topic, count, file = %path.display(), "embedded topic seeded");
        }
    }
    Ok(handle.bootstrap.clone())
}

/// Produce every non-empty line of `path` to `topic`; returns how many.
fn seed(
    bootstrap: &str,
    topic: &str,
    path: &Path,
    key_field: Option<&str>,
) -> Result<usize, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read embedded.seed_file {}: {e}", path.display()))?;
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()
        .map_err(|e| format!("cannot create the seed producer: {e}"))?;
    let mut count = 0;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let key = match key_field {
            Some(field) => {
                let value: serde_json::Value = serde_json::from_str(line)
                    .map_err(|e| format!("{}:{}: not a JSON line: {e}", path.display(), n + 1))?;
                match value.get(field) {
                    Some(serde_json::Value::String(s)) => Some(s.clone()),
                    Some(other) => Some(other.to_string()),
                    None => None,
                }
            }
            None => None,
        };
        let mut record = BaseRecord::<String, str>::to(topic).payload(line);
        if let Some(key) = &key {
            record = record.key(key);
        }
        let mut record = record;
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => return Err(format!("cannot seed {topic}: {e}")),
            }
        }
        count += 1;
    }
    producer
        .flush(Duration::from_secs(30))
        .map_err(|e| format!("cannot seed {topic}: {e}"))?;
    Ok(count)
}
