//! Source-side metrics: Kafka lag (records and seconds) and rebalances,
//! DynamoDB Streams iterator age, and the backlog the stall detector asks
//! about.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use super::label::{KIND, PARTITION, PIPELINE, SHARD, SOURCE, TOPIC};
use super::{
    SOURCE_DYNAMODB_ITERATOR_AGE, SOURCE_KAFKA_LAG_MESSAGES, SOURCE_KAFKA_LAG_SECONDS,
    SOURCE_KAFKA_PARTITION_STUCK, SOURCE_KAFKA_REBALANCES, counter, gauge,
};

/// Records each pipeline's source reported it has not read yet, per
/// partition. Process-wide because the source reports it from a client
/// callback that knows only its pipeline's name.
type Backlog = HashMap<String, HashMap<(String, i32), u64>>;

fn backlog() -> &'static Mutex<Backlog> {
    static BACKLOG: OnceLock<Mutex<Backlog>> = OnceLock::new();
    BACKLOG.get_or_init(Mutex::default)
}

/// Records the pipeline's source has reported as not yet read (Kafka:
/// the sum of the consumer lag over its assigned partitions); 0 when the
/// source reports none.
pub fn source_backlog(pipeline: &str) -> u64 {
    backlog()
        .lock()
        .map(|b| b.get(pipeline).map_or(0, |p| p.values().sum()))
        .unwrap_or(0)
}

/// Record a Kafka partition's consumer lag: `lag` records (None when the
/// consumer does not read the partition now), `behind` how old the last
/// record read from it is (reported as 0 when the lag is 0).
pub fn kafka_consumer_lag(
    pipeline: &str,
    source: &str,
    topic: &str,
    partition: i32,
    lag: Option<i64>,
    behind: Duration,
) {
    let lag = lag.map_or(0, |l| l.max(0).unsigned_abs());
    if let Ok(mut b) = backlog().lock() {
        let partitions = b.entry(pipeline.to_owned()).or_default();
        if lag == 0 {
            partitions.remove(&(topic.to_owned(), partition));
        } else {
            partitions.insert((topic.to_owned(), partition), lag);
        }
    }
    let labels = [
        (PIPELINE, pipeline.to_owned()),
        (SOURCE, source.to_owned()),
        (TOPIC, topic.to_owned()),
        (PARTITION, partition.to_string()),
    ];
    gauge(&SOURCE_KAFKA_LAG_MESSAGES, &labels).set(lag as f64);
    let seconds = if lag == 0 { 0.0 } else { behind.as_secs_f64() };
    gauge(&SOURCE_KAFKA_LAG_SECONDS, &labels).set(seconds);
}

/// Whether a Kafka partition is stuck at one offset (see
/// `source::kafka::stuck`).
pub fn kafka_partition_stuck(
    pipeline: &str,
    source: &str,
    topic: &str,
    partition: i32,
    stuck: bool,
) {
    let labels = [
        (PIPELINE, pipeline.to_owned()),
        (SOURCE, source.to_owned()),
        (TOPIC, topic.to_owned()),
        (PARTITION, partition.to_string()),
    ];
    gauge(&SOURCE_KAFKA_PARTITION_STUCK, &labels).set(if stuck { 1.0 } else { 0.0 });
}

/// The rebalance counters of one Kafka consumer, created once.
#[derive(Debug, Clone)]
pub struct Rebalances {
    /// Partitions assigned.
    pub assigned: metrics::Counter,
    /// Partitions revoked.
    pub revoked: metrics::Counter,
    /// A rebalance failed.
    pub error: metrics::Counter,
}

impl Rebalances {
    /// Register the three series (at zero).
    pub fn new(pipeline: &str, source: &str) -> Rebalances {
        let c = |kind: &str| {
            counter(
                &SOURCE_KAFKA_REBALANCES,
                &[
                    (PIPELINE, pipeline.to_owned()),
                    (SOURCE, source.to_owned()),
                    (KIND, kind.to_owned()),
                ],
            )
        };
        Rebalances {
            assigned: c("assigned"),
            revoked: c("revoked"),
            error: c("error"),
        }
    }
}

/// Record the iterator age of a DynamoDB Streams shard. For the DynamoDB
/// Streams source.
pub fn dynamodb_streams_iterator_age(source: &str, shard: &str, age: Duration) {
    gauge(
        &SOURCE_DYNAMODB_ITERATOR_AGE,
        &[(SOURCE, source.to_owned()), (SHARD, shard.to_owned())],
    )
    .set(age.as_secs_f64());
}
