//! Helpers of the Kafka tests: the real broker's address (failing loudly
//! when it is not running), unique names, topic creation, producing,
//! reading a topic back and reading a group's committed offsets, all through
//! the project's own rdkafka client.

use std::collections::BTreeMap;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::ClientConfig;
use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

/// Address of the Kafka-compatible test broker: `WEIR_TEST_KAFKA` or
/// 127.0.0.1:19092. Panics with how to start it when nothing listens there.
pub fn brokers() -> String {
    let brokers = std::env::var("WEIR_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:19092".into());
    let reachable = brokers
        .split(',')
        .filter_map(|b| b.to_socket_addrs().ok())
        .flatten()
        .any(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok());
    assert!(
        reachable,
        "no Kafka-compatible broker at {brokers} (WEIR_TEST_KAFKA): start it with `scripts/services start kafka`"
    );
    brokers
}

/// A name no other test run uses: `prefix-pid-millis-n`.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{millis}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// librdkafka options that make group joins take seconds, not ~23 s.
pub const GROUP_OPTIONS: &[(&str, &str)] = &[
    ("session.timeout.ms", "6000"),
    ("heartbeat.interval.ms", "1000"),
];

/// The same options as a TOML inline table, for configs.
pub fn group_options_toml() -> String {
    let items: Vec<String> = GROUP_OPTIONS
        .iter()
        .map(|(k, v)| format!("\"{k}\" = {v}"))
        .collect();
    format!("{{ {} }}", items.join(", "))
}

/// Create `topic` with `partitions` partitions.
pub async fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    create_topic_with(brokers, topic, partitions, &[]).await;
}

/// Create `topic` with `partitions` partitions and topic configs.
pub async fn create_topic_with(
    brokers: &str,
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let mut new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        new_topic = new_topic.set(k, v);
    }
    let results = admin
        .create_topics(
            [&new_topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create_topics");
    for result in results {
        if let Err((name, code)) = result {
            panic!("cannot create topic {name}: {code}");
        }
    }
}

/// A message to produce or as read back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Msg {
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes; `None` = tombstone.
    pub value: Option<Vec<u8>>,
    /// Headers in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Partition it was read from (ignored when producing).
    pub partition: i32,
    /// Offset it was read at (ignored when producing).
    pub offset: i64,
}

impl Msg {
    /// The value as UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(self.value.as_deref().unwrap_or_default()).into_owned()
    }

    /// The value parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(self.value.as_deref().unwrap_or_default())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

/// A producer for test data (acks=all).
pub fn producer(brokers: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .expect("producer")
}

/// Produce `messages` to `topic` and wait until all are acknowledged. A
/// message with a key goes to the key's partition; without one, the
/// `partition` field chooses when it is non-negative.
pub async fn produce(brokers: &str, topic: &str, messages: &[Msg]) {
    let producer = producer(brokers);
    let mut futures = Vec::with_capacity(messages.len());
    for m in messages {
        let mut headers = OwnedHeaders::new();
        for (k, v) in &m.headers {
            headers = headers.insert(rdkafka::message::Header {
                key: k,
                value: Some(v),
            });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers);
        if let Some(k) = &m.key {
            record = record.key(k.as_slice());
        } else if m.partition >= 0 {
            record = record.partition(m.partition);
        }
        if let Some(v) = &m.value {
            record = record.payload(v.as_slice());
        }
        // `send_result` enqueues at once (the async `send` would enqueue
        // only when awaited, one message at a time).
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    futures.push(delivery);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => panic!("produce to {topic}: {e}"),
            }
        }
    }
    for f in futures {
        f.await
            .expect("delivery report")
            .unwrap_or_else(|(e, _)| panic!("produce to {topic}: {e}"));
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

/// Produce JSON values `values` (no key; spread over partitions round robin).
pub async fn produce_values(brokers: &str, topic: &str, partitions: i32, values: &[String]) {
    let messages: Vec<Msg> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Msg {
            value: Some(v.clone().into_bytes()),
            partition: i32::try_from(i).unwrap_or(0) % partitions,
            ..Msg::default()
        })
        .collect();
    produce(brokers, topic, &messages).await;
}

/// Read every message of `topic` from the beginning (no consumer group)
/// until `expected` messages arrived or `timeout` passed with nothing new.
pub fn read_topic(brokers: &str, topic: &str, expected: usize, timeout: Duration) -> Vec<Msg> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("reader");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut tpl = TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                .expect("tpl");
        }
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let mut last_progress = Instant::now();
    while out.len() < expected && last_progress.elapsed() < timeout {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                last_progress = Instant::now();
                out.push(Msg {
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                    headers: m
                        .headers()
                        .map(|hs| {
                            hs.iter()
                                .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                                .collect()
                        })
                        .unwrap_or_default(),
                    partition: m.partition(),
                    offset: m.offset(),
                });
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    out
}

/// The committed offset of `group` per partition of `topic` (partitions
/// without a committed offset are absent).
pub fn committed(brokers: &str, group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("offset reader");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed_offsets");
    committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}
