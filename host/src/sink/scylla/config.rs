//! `[sinks.NAME] type = "scylla"`: the typed settings of the ScyllaDB /
//! Apache Cassandra sink.
//!
//! ```toml
//! [sinks.readings]
//! type = "scylla"
//! contact_points = ["127.0.0.1:9042"]
//! local_datacenter = "datacenter1"
//! keyspace = "iot_telemetry"
//! table = "iot_readings"
//! consistency = "local_quorum"
//! ttl_seconds = 2592000
//! write_timestamp = { field = "value.timestamp", unit = "milliseconds" }
//!
//! [sinks.readings.mapping]
//! device_id = "value.deviceId"
//! reading_date = "value.timestamp"
//! timestamp = "value.timestamp"
//! temperature = "value.temp"
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// Settings of one ScyllaDB / Cassandra sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScyllaSinkConfig {
    /// Nodes to bootstrap from, `host:port` (port 9042 when omitted). The
    /// driver discovers the rest of the cluster from them.
    pub contact_points: Vec<String>,
    /// Datacenter whose nodes are preferred as coordinators (the `LOCAL_*`
    /// consistency levels refer to it). Unset: all nodes are treated alike.
    #[serde(default)]
    pub local_datacenter: Option<String>,
    /// Keyspace of the table.
    pub keyspace: String,
    /// Table written to.
    pub table: String,
    /// User name for password authentication (`PasswordAuthenticator`).
    #[serde(default)]
    pub username: Option<String>,
    /// Password for password authentication; use `${VAR}` to keep it out of the file.
    #[serde(default)]
    pub password: Option<String>,
    /// TLS to the nodes. Needs the `scylla-tls` cargo feature.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Consistency level of every write.
    #[serde(default)]
    pub consistency: ConsistencyLevel,
    /// Serial consistency (only used by lightweight transactions).
    #[serde(default)]
    pub serial_consistency: Option<SerialConsistencyLevel>,
    /// Client-side timeout of one request, in milliseconds.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Timeout of opening a connection, in milliseconds.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Most requests (single writes or batches) in flight at once, over all
    /// partitions and all `write` calls of this sink.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Column ← field mapping, `column = "value.path"`. Sources: `value`,
    /// `value.a.b`, `value.items.0`, `key`, `key.path`, `header.NAME`.
    pub mapping: BTreeMap<String, String>,
    /// Column types, `column = "cql type"`. When set, the table schema is
    /// not read from `system_schema.columns` and `partition_key` (and
    /// `clustering_key`) must be given too.
    #[serde(default)]
    pub columns: Option<BTreeMap<String, String>>,
    /// Partition key columns in order; required with `columns`.
    #[serde(default)]
    pub partition_key: Vec<String>,
    /// Clustering columns in order; used with `columns`.
    #[serde(default)]
    pub clustering_key: Vec<String>,
    /// Time to live of written rows, in seconds, for outputs that carry no
    /// `ttl_seconds` of their own. Unset: the table's default TTL applies.
    #[serde(default)]
    pub ttl_seconds: Option<u32>,
    /// `USING TIMESTAMP` taken from a field of each output, so replays and
    /// out-of-order events resolve by event time.
    #[serde(default)]
    pub write_timestamp: Option<WriteTimestampConfig>,
    /// What a JSON `null` or a missing field does to its column.
    #[serde(default)]
    pub null_values: NullValues,
    /// Bounds of one UNLOGGED batch (all of one partition).
    #[serde(default)]
    pub batch: ScyllaBatchConfig,
    /// Retries inside the sink for timeouts, unavailable and overloaded
    /// errors, before the pipeline's own backoff takes over.
    #[serde(default)]
    pub retry: ScyllaRetryConfig,
    /// Driver cluster-metadata settings (advanced).
    #[serde(default)]
    pub driver: DriverConfig,
}

fn default_request_timeout_ms() -> u64 {
    12_000
}
fn default_connect_timeout_ms() -> u64 {
    5_000
}
fn default_concurrency() -> usize {
    16
}

/// TLS settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of the certificate authorities trusted for the nodes'
    /// certificates (relative to the config file).
    pub ca_file: PathBuf,
    /// PEM client certificate chain for mutual TLS (with `key_file`).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

/// A consistency level for writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsistencyLevel {
    /// `ANY`.
    Any,
    /// `ONE`.
    One,
    /// `TWO`.
    Two,
    /// `THREE`.
    Three,
    /// `QUORUM`.
    Quorum,
    /// `ALL`.
    All,
    /// `LOCAL_QUORUM` (the default).
    #[default]
    LocalQuorum,
    /// `EACH_QUORUM`.
    EachQuorum,
    /// `LOCAL_ONE`.
    LocalOne,
}

/// A serial consistency level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SerialConsistencyLevel {
    /// `SERIAL`.
    Serial,
    /// `LOCAL_SERIAL`.
    LocalSerial,
}

/// Where `USING TIMESTAMP` comes from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteTimestampConfig {
    /// Field path (same syntax as the mapping) holding the event time as an
    /// integer in `unit` or an ISO-8601 string. An output without it is
    /// rejected (dead-lettered): writing it at server time would defeat the
    /// point.
    pub field: String,
    /// Unit of a numeric field.
    #[serde(default)]
    pub unit: TimeUnit,
}

/// Unit of a numeric event time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeUnit {
    /// Seconds since the epoch.
    Seconds,
    /// Milliseconds since the epoch (the default).
    #[default]
    Milliseconds,
    /// Microseconds since the epoch (CQL's own write-time unit).
    Microseconds,
}

/// What JSON `null` (or a missing field) becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NullValues {
    /// The column is left unset: an existing value stays and no tombstone is written.
    #[default]
    Unset,
    /// The column is set to null (a tombstone).
    Null,
}

/// Bounds of one UNLOGGED batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScyllaBatchConfig {
    /// Most statements in one batch.
    pub max_statements: usize,
    /// Most payload bytes (sum of the outputs' key and value sizes) in one
    /// batch; keep it under the cluster's `batch_size_fail_threshold_in_kb`.
    pub max_bytes: usize,
}

impl Default for ScyllaBatchConfig {
    fn default() -> Self {
        ScyllaBatchConfig {
            max_statements: 64,
            max_bytes: 40 * 1024,
        }
    }
}

/// Retries of one request inside the sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScyllaRetryConfig {
    /// Attempts per request, the first included; then the whole write
    /// fails as transient and the pipeline retries it with its own backoff.
    pub attempts: usize,
    /// First backoff delay, in milliseconds (doubles, with jitter).
    pub initial_ms: u64,
    /// Longest backoff delay, in milliseconds.
    pub max_ms: u64,
}

impl Default for ScyllaRetryConfig {
    fn default() -> Self {
        ScyllaRetryConfig {
            attempts: 4,
            initial_ms: 50,
            max_ms: 2_000,
        }
    }
}

/// Driver cluster-metadata settings. The sink itself needs none of this
/// metadata, so it is off by default, which also lets the sink talk to
/// minimal CQL endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DriverConfig {
    /// Let the driver fetch keyspace/table metadata (`fetch_schema_metadata`).
    pub fetch_schema_metadata: bool,
    /// Let the driver wait for schema agreement after schema changes.
    pub auto_await_schema_agreement: bool,
}
