//! The ScyllaDB / Cassandra sink: connects the driver, reads or takes the
//! table schema, prepares one statement per kind, and writes groups of
//! outputs as per-partition UNLOGGED batches with retries.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt as _;
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::errors::{DbError, ExecutionError, RequestAttemptError};
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::{Consistency, SerialConsistency};
use tokio::sync::Semaphore;

use super::batching::{self, Chunk};
use super::config::{
    ConsistencyLevel, ScyllaBatchConfig, ScyllaRetryConfig, ScyllaSinkConfig,
    SerialConsistencyLevel,
};
use super::mapping::{FieldPath, Mapping, StatementKind};
use super::schema;
use crate::connector_error::ConnectorError;
use crate::event::Output;
use crate::sink::{BuildSink, Rejection, Sink, SinkContext, SinkError};

/// Why the ScyllaDB sink failed (without the sink's name: the caller adds
/// it once).
#[derive(Debug, thiserror::Error)]
pub enum ScyllaSinkError {
    /// The settings, the table's schema or the mapping do not fit.
    #[error("{0}")]
    Setup(String),
    /// No session could be opened.
    #[error("cannot connect to {contact_points}: {source}")]
    Connect {
        /// The configured contact points, comma separated.
        contact_points: String,
        /// The driver's error.
        #[source]
        source: scylla::errors::NewSessionError,
    },
    /// A statement of the mapping could not be prepared.
    #[error("cannot prepare `{cql}`: {source}")]
    Prepare {
        /// The statement.
        cql: String,
        /// The driver's error.
        #[source]
        source: scylla::errors::PrepareError,
    },
    /// A write failed in a way retrying cannot help.
    #[error("{0}")]
    Execute(#[source] ExecutionError),
    /// A write kept failing in a way worth retrying.
    #[error("{source} (after {attempts} attempts)")]
    Retried {
        /// How many times it was sent.
        attempts: usize,
        /// The driver's last error.
        #[source]
        source: ExecutionError,
    },
    /// The health check found no connected node.
    #[error("no node is connected")]
    NoNode,
}

impl ConnectorError for ScyllaSinkError {
    fn is_transient(&self) -> bool {
        matches!(
            self,
            ScyllaSinkError::Retried { .. } | ScyllaSinkError::NoNode
        )
    }
}

/// A connected ScyllaDB / Cassandra sink.
pub struct ScyllaSink {
    name: String,
    session: Session,
    mapping: Mapping,
    statements: HashMap<StatementKind, PreparedStatement>,
    batch: ScyllaBatchConfig,
    retry: ScyllaRetryConfig,
    concurrency: usize,
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for ScyllaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScyllaSink")
            .field("name", &self.name)
            .field("table", &self.mapping.qualified_table)
            .finish_non_exhaustive()
    }
}

/// What to do about a failed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorClass {
    /// Timeouts, unavailable, overloaded, lost connections: try again.
    Retry,
    /// The statement or its values are wrong: dead-letter the output.
    Reject,
    /// Credentials or configuration: stop the pipeline.
    Fatal,
}

fn classify(err: &ExecutionError) -> ErrorClass {
    match err {
        ExecutionError::LastAttemptError(attempt) => match attempt {
            RequestAttemptError::DbError(db, _) => match db {
                DbError::Invalid
                | DbError::SyntaxError
                | DbError::FunctionFailure { .. }
                | DbError::AlreadyExists { .. } => ErrorClass::Reject,
                DbError::AuthenticationError
                | DbError::Unauthorized
                | DbError::ConfigError
                | DbError::ProtocolError => ErrorClass::Fatal,
                _ => ErrorClass::Retry,
            },
            RequestAttemptError::SerializationError(_)
            | RequestAttemptError::CqlRequestSerialization(_) => ErrorClass::Reject,
            _ => ErrorClass::Retry,
        },
        ExecutionError::BadQuery(_) => ErrorClass::Reject,
        _ => ErrorClass::Retry,
    }
}

fn consistency(c: ConsistencyLevel) -> Consistency {
    match c {
        ConsistencyLevel::Any => Consistency::Any,
        ConsistencyLevel::One => Consistency::One,
        ConsistencyLevel::Two => Consistency::Two,
        ConsistencyLevel::Three => Consistency::Three,
        ConsistencyLevel::Quorum => Consistency::Quorum,
        ConsistencyLevel::All => Consistency::All,
        ConsistencyLevel::LocalQuorum => Consistency::LocalQuorum,
        ConsistencyLevel::EachQuorum => Consistency::EachQuorum,
        ConsistencyLevel::LocalOne => Consistency::LocalOne,
    }
}

fn serial_consistency(c: SerialConsistencyLevel) -> SerialConsistency {
    match c {
        SerialConsistencyLevel::Serial => SerialConsistency::Serial,
        SerialConsistencyLevel::LocalSerial => SerialConsistency::LocalSerial,
    }
}

#[async_trait]
impl BuildSink for ScyllaSinkConfig {
    async fn build(&self, ctx: &SinkContext) -> Result<Arc<dyn Sink>, SinkError> {
        Ok(Arc::new(ScyllaSink::connect(self, ctx).await?))
    }
}

/// What [`ScyllaSink::connect`] needs that is knowable without the network.
struct Preflight {
    /// The schema given in the config (`columns`), if any.
    declared: Option<super::mapping::TableSchema>,
    /// `write_timestamp`, its field path parsed.
    write_timestamp: Option<(FieldPath, super::config::TimeUnit)>,
    /// The driver's session builder, TLS configured.
    builder: SessionBuilder,
}

/// Check every setting that can be checked without connecting, and prepare
/// the session builder: `Err((key segments under [sinks.NAME], message))`.
/// With a declared schema the mapping is checked against it here too.
fn preflight(
    cfg: &ScyllaSinkConfig,
    ctx: &SinkContext,
) -> Result<Preflight, (Vec<String>, String)> {
    let at = |key: &str, msg: String| (vec![key.to_owned()], msg);
    let table = |msg: String| (Vec::new(), msg);
    if cfg.contact_points.is_empty() {
        return Err(at("contact_points", "`contact_points` is empty".into()));
    }
    if cfg.concurrency == 0 {
        return Err(at("concurrency", "`concurrency` must be at least 1".into()));
    }
    if cfg.retry.attempts == 0 {
        return Err((
            vec!["retry".to_owned(), "attempts".to_owned()],
            "`retry.attempts` must be at least 1".into(),
        ));
    }
    let declared = schema::declared(cfg).map_err(table)?;
    let write_timestamp = match &cfg.write_timestamp {
        Some(ts) => Some((
            FieldPath::parse(&ts.field)
                .map_err(|e| at("write_timestamp", format!("write_timestamp: {e}")))?,
            ts.unit,
        )),
        None => None,
    };
    if let Some(declared) = &declared {
        Mapping::new(
            &cfg.keyspace,
            &cfg.table,
            &cfg.mapping,
            declared,
            write_timestamp.clone(),
            cfg.ttl_seconds,
            cfg.null_values,
        )
        .map_err(table)?;
    }

    let profile = ExecutionProfile::builder()
        .consistency(consistency(cfg.consistency))
        .serial_consistency(cfg.serial_consistency.map(serial_consistency))
        .request_timeout(Some(Duration::from_millis(cfg.request_timeout_ms)))
        .build();
    let mut builder = SessionBuilder::new()
        .known_nodes(&cfg.contact_points)
        .connection_timeout(Duration::from_millis(cfg.connect_timeout_ms))
        .fetch_schema_metadata(cfg.driver.fetch_schema_metadata)
        .fetch_full_schema_metadata(cfg.driver.fetch_schema_metadata)
        .auto_await_schema_agreement(cfg.driver.auto_await_schema_agreement)
        .default_execution_profile_handle(profile.into_handle());
    if let Some(dc) = &cfg.local_datacenter {
        builder = builder.prefer_datacenter(dc.clone());
    }
    match (&cfg.username, &cfg.password) {
        (Some(user), Some(pass)) => builder = builder.user(user, pass),
        (None, None) => {}
        _ => {
            return Err(table("`username` and `password` go together".into()));
        }
    }
    if let Some(tls) = &cfg.tls {
        builder = super::tls::apply(builder, tls, ctx).map_err(|m| at("tls", m))?;
    }
    Ok(Preflight {
        declared,
        write_timestamp,
        builder,
    })
}

/// What `weir validate` finds wrong with `cfg` without connecting.
pub fn offline_problems(cfg: &ScyllaSinkConfig, ctx: &SinkContext) -> Vec<(Vec<String>, String)> {
    preflight(cfg, ctx).err().into_iter().collect()
}

impl ScyllaSink {
    /// Connect, resolve the schema and prepare the statements.
    pub async fn connect(cfg: &ScyllaSinkConfig, ctx: &SinkContext) -> Result<Self, SinkError> {
        let name = ctx.name.clone();
        let fatal = ScyllaSinkError::Setup;
        let Preflight {
            declared,
            write_timestamp,
            builder,
        } = preflight(cfg, ctx).map_err(|(_, msg)| fatal(msg))?;
        let session = builder
            .build()
            .await
            .map_err(|source| ScyllaSinkError::Connect {
                contact_points: cfg.contact_points.join(", "),
                source,
            })?;

        let table_schema = match declared {
            Some(s) => s,
            None => schema::fetch(&session, &cfg.keyspace, &cfg.table)
                .await
                .map_err(fatal)?,
        };
        let mapping = Mapping::new(
            &cfg.keyspace,
            &cfg.table,
            &cfg.mapping,
            &table_schema,
            write_timestamp,
            cfg.ttl_seconds,
            cfg.null_values,
        )
        .map_err(fatal)?;

        let mut statements = HashMap::new();
        for kind in mapping.statement_kinds() {
            let cql = mapping.cql(kind);
            let mut prepared =
                session
                    .prepare(cql.as_str())
                    .await
                    .map_err(|source| ScyllaSinkError::Prepare {
                        cql: cql.clone(),
                        source,
                    })?;
            // Upserts and deletes by primary key converge when repeated.
            prepared.set_is_idempotent(true);
            statements.insert(kind, prepared);
        }
        tracing::info!(
            sink = %name,
            table = %mapping.qualified_table,
            columns = mapping.columns.len(),
            "scylla sink ready"
        );
        Ok(ScyllaSink {
            name,
            session,
            mapping,
            statements,
            batch: cfg.batch,
            retry: cfg.retry,
            concurrency: cfg.concurrency,
            permits: Arc::new(Semaphore::new(cfg.concurrency)),
        })
    }

    /// The prepared statement of a kind (all kinds a mapping binds to are prepared).
    fn statement(&self, kind: StatementKind) -> Result<&PreparedStatement, SinkError> {
        self.statements.get(&kind).ok_or_else(|| {
            ScyllaSinkError::Setup(format!("statement {kind:?} was not prepared")).into()
        })
    }

    /// Send one chunk (a single statement or an UNLOGGED batch) once.
    async fn send(
        &self,
        chunk: &[(usize, super::mapping::BoundWrite)],
    ) -> Result<(), ExecutionError> {
        if let [(_, w)] = chunk {
            let stmt = self
                .statements
                .get(&w.kind)
                .ok_or(ExecutionError::EmptyPlan)?;
            self.session.execute_unpaged(stmt, &w.values).await?;
        } else {
            let mut batch = Batch::new(BatchType::Unlogged);
            batch.set_is_idempotent(true);
            let mut values = Vec::with_capacity(chunk.len());
            for (_, w) in chunk {
                let stmt = self
                    .statements
                    .get(&w.kind)
                    .ok_or(ExecutionError::EmptyPlan)?;
                batch.append_statement(stmt.clone());
                values.push(&w.values);
            }
            self.session.batch(&batch, values).await?;
        }
        Ok(())
    }

    /// Send one chunk with retries; `Ok(Err(e))` is a rejectable error.
    async fn send_with_retry(
        &self,
        chunk: &[(usize, super::mapping::BoundWrite)],
    ) -> Result<Result<(), ExecutionError>, SinkError> {
        let mut delay = Duration::from_millis(self.retry.initial_ms);
        let max = Duration::from_millis(self.retry.max_ms);
        let mut attempt = 1;
        loop {
            let result = {
                let _permit = self
                    .permits
                    .acquire()
                    .await
                    .map_err(|_| ScyllaSinkError::Setup("shut down".to_owned()))?;
                self.send(chunk).await
            };
            let err = match result {
                Ok(()) => return Ok(Ok(())),
                Err(e) => e,
            };
            match classify(&err) {
                ErrorClass::Reject => return Ok(Err(err)),
                ErrorClass::Fatal => {
                    return Err(ScyllaSinkError::Execute(err).into());
                }
                ErrorClass::Retry if attempt >= self.retry.attempts => {
                    return Err(ScyllaSinkError::Retried {
                        attempts: attempt,
                        source: err,
                    }
                    .into());
                }
                ErrorClass::Retry => {
                    tracing::debug!(sink = %self.name, attempt, error = %err, "retrying");
                    let jitter: f64 = rand::random_range(0.5..=1.0);
                    tokio::time::sleep(delay.mul_f64(jitter)).await;
                    delay = (delay * 2).min(max);
                    attempt += 1;
                }
            }
        }
    }

    /// Write one chunk; a rejected batch is retried statement by statement
    /// so that only the outputs at fault are dead-lettered.
    async fn write_chunk(&self, chunk: Chunk) -> Result<Vec<Rejection>, SinkError> {
        match self.send_with_retry(&chunk).await? {
            Ok(()) => Ok(Vec::new()),
            Err(err) if chunk.len() == 1 => Ok(vec![self.rejection(chunk[0].0, &err)]),
            Err(_) => {
                let mut rejections = Vec::new();
                for one in chunk {
                    let index = one.0;
                    if let Err(err) = self.send_with_retry(std::slice::from_ref(&one)).await? {
                        rejections.push(self.rejection(index, &err));
                    }
                }
                Ok(rejections)
            }
        }
    }

    fn rejection(&self, index: usize, err: &ExecutionError) -> Rejection {
        Rejection {
            index,
            reason: format!("{} rejected the write: {err}", self.mapping.qualified_table),
        }
    }

    /// Write the chunks of one partition in order.
    async fn write_partition(&self, chunks: Vec<Chunk>) -> Result<Vec<Rejection>, SinkError> {
        let mut rejections = Vec::new();
        for chunk in chunks {
            rejections.extend(self.write_chunk(chunk).await?);
        }
        Ok(rejections)
    }
}

#[async_trait]
impl Sink for ScyllaSink {
    async fn write(&self, outputs: &[Output]) -> Result<Vec<Rejection>, SinkError> {
        let mut rejections = Vec::new();
        let mut writes = Vec::with_capacity(outputs.len());
        for (index, out) in outputs.iter().enumerate() {
            match self.mapping.bind(out) {
                Ok(w) => {
                    self.statement(w.kind)?;
                    writes.push((index, w));
                }
                Err(reason) => rejections.push(Rejection { index, reason }),
            }
        }
        let partitions = batching::group(writes, self.batch);
        let results: Vec<Result<Vec<Rejection>, SinkError>> = futures::stream::iter(partitions)
            .map(|chunks| self.write_partition(chunks))
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let mut transient = None;
        for r in results {
            match r {
                Ok(mut rj) => rejections.append(&mut rj),
                Err(SinkError::Fatal(m)) => return Err(SinkError::Fatal(m)),
                Err(e) => transient = Some(e),
            }
        }
        if let Some(e) = transient {
            return Err(e);
        }
        rejections.sort_by_key(|r| r.index);
        Ok(rejections)
    }

    async fn check(&self) -> Result<(), SinkError> {
        let state = self.session.get_cluster_state();
        if state.get_nodes_info().iter().any(|n| n.is_connected()) {
            Ok(())
        } else {
            Err(ScyllaSinkError::NoNode.into())
        }
    }
}

#[cfg(test)]
mod offline_tests {
    use super::*;

    fn with_tls() -> ScyllaSinkConfig {
        toml::from_str(
            "contact_points = [\"127.0.0.1:9042\"]\nkeyspace = \"k\"\ntable = \"t\"\n\
             tls = { ca_file = \"missing-ca.pem\" }\n[mapping]\nid = \"value.id\"\n",
        )
        .expect("scylla sink config")
    }

    fn ctx() -> SinkContext {
        SinkContext {
            name: "readings".to_owned(),
            config_dir: std::path::PathBuf::from("/nonexistent"),
        }
    }

    /// A build without TLS says so at `tls`, before anything connects.
    #[cfg(not(feature = "scylla-tls"))]
    #[test]
    fn tls_in_a_build_without_the_feature_is_refused_offline_at_tls() {
        assert_eq!(
            offline_problems(&with_tls(), &ctx()),
            [(
                vec!["tls".to_owned()],
                "`tls` is set but this weir was built without the `scylla-tls` cargo feature \
                 (cargo build --features scylla-tls)"
                    .to_owned()
            )]
        );
    }

    /// A build with TLS reads the CA file offline.
    #[cfg(feature = "scylla-tls")]
    #[test]
    fn tls_files_are_read_offline() {
        let problems = offline_problems(&with_tls(), &ctx());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, ["tls"]);
        assert!(
            problems[0]
                .1
                .starts_with("tls.ca_file /nonexistent/missing-ca.pem: "),
            "{problems:?}"
        );
    }
}
