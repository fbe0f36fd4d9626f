//! The ClickHouse sink: reads the table's columns at start, then writes a
//! group as one `INSERT ... FORMAT JSONEachRow` per `max_rows` outputs,
//! retrying transient errors. An INSERT of one block is all or nothing, so
//! when the server refuses it for its data the outputs are sent one by one
//! and only those at fault are dead-lettered, with the server's message.
//!
//! Replays converge on a `ReplacingMergeTree` keyed like the mapping: a
//! repeated row is another version of the same key, collapsed by merges
//! and by `FINAL`. On a plain `MergeTree` a replay writes the rows again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::client::{ClientError, ErrorClass, HttpClient, RequestError};
use super::config::{ClickhouseSinkConfig, RetryConfig};
use super::mapping::{ColumnType, Mapping};
use crate::connector_error::ConnectorError;
use crate::event::Output;
use crate::sink::{BuildSink, Rejection, Sink, SinkContext, SinkError};

/// A connected ClickHouse sink.
pub struct ClickhouseSink {
    name: String,
    client: HttpClient,
    mapping: Mapping,
    insert_sql: String,
    max_rows: usize,
    retry: RetryConfig,
}

impl std::fmt::Debug for ClickhouseSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickhouseSink")
            .field("name", &self.name)
            .field("table", &self.mapping.qualified_table)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl BuildSink for ClickhouseSinkConfig {
    async fn build(&self, ctx: &SinkContext) -> Result<Arc<dyn Sink>, SinkError> {
        Ok(Arc::new(ClickhouseSink::connect(self, ctx).await?))
    }
}

/// A string literal of ClickHouse SQL.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[derive(serde::Deserialize)]
struct SystemColumn {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    is_in_sorting_key: u8,
}

impl ClickhouseSink {
    /// Read the table's columns and check the mapping against them. An
    /// unreachable server is transient; bad credentials, a missing table
    /// or a mapping that does not fit it are fatal.
    pub async fn connect(cfg: &ClickhouseSinkConfig, ctx: &SinkContext) -> Result<Self, SinkError> {
        let cfg = &cfg.raw;
        let name = ctx.name.clone();
        let fatal = ClickhouseSinkError::Setup;
        let client = HttpClient::new(cfg, ctx).map_err(ClickhouseSinkError::Client)?;
        let query = format!(
            "SELECT name, type, is_in_sorting_key FROM system.columns WHERE database = {} AND table = {} FORMAT JSONEachRow",
            literal(&cfg.database),
            literal(&cfg.table)
        );
        let body = client
            .query(&query, String::new())
            .await
            .map_err(|e| classified("read the table's columns", e))?;
        let mut columns = BTreeMap::new();
        for line in body.lines().filter(|l| !l.trim().is_empty()) {
            let c: SystemColumn =
                serde_json::from_str(line).map_err(|source| ClickhouseSinkError::Columns {
                    line: line.to_owned(),
                    source,
                })?;
            columns.insert(c.name, (ColumnType::parse(&c.ty), c.is_in_sorting_key != 0));
        }
        if columns.is_empty() {
            return Err(fatal(format!(
                "table `{}`.`{}` does not exist (no columns in system.columns)",
                cfg.database, cfg.table
            ))
            .into());
        }
        let mapping = Mapping::new(
            &cfg.database,
            &cfg.table,
            &cfg.mapping,
            &columns,
            cfg.delete_column.as_deref(),
        )
        .map_err(fatal)?;
        let insert_sql = mapping.insert_sql(cfg.delete_column.as_deref());
        tracing::info!(sink = %name, table = %mapping.qualified_table, "clickhouse sink ready");
        Ok(ClickhouseSink {
            name,
            client,
            mapping,
            insert_sql,
            max_rows: cfg.max_rows,
            retry: cfg.retry,
        })
    }

    /// Send one INSERT body, retrying transient errors; `Ok(Err(e))` is an
    /// error about the rows.
    async fn insert(&self, body: &str) -> Result<Result<(), RequestError>, SinkError> {
        let mut delay = Duration::from_millis(self.retry.initial_ms);
        let max = Duration::from_millis(self.retry.max_ms);
        let mut attempt = 1;
        loop {
            let err = match self.client.query(&self.insert_sql, body.to_owned()).await {
                Ok(_) => return Ok(Ok(())),
                Err(e) => e,
            };
            match err.class() {
                ErrorClass::Reject => return Ok(Err(err)),
                ErrorClass::Fatal => return Err(classified("insert", err)),
                ErrorClass::Retry if attempt >= self.retry.attempts => {
                    return Err(ClickhouseSinkError::Retried {
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

    /// Write one chunk of rows (`(output index, JSON line)`).
    async fn write_chunk(
        &self,
        rows: &[(usize, std::ops::Range<usize>)],
        buf: &str,
    ) -> Result<Vec<Rejection>, SinkError> {
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
            return Ok(Vec::new());
        };
        let body = &buf[first.1.start..last.1.end];
        match self.insert(body).await? {
            Ok(()) => return Ok(Vec::new()),
            Err(_) if rows.len() > 1 => {}
            Err(e) => return Ok(vec![self.rejection(first.0, &e)]),
        }
        let mut rejections = Vec::new();
        for (index, range) in rows {
            if let Err(e) = self.insert(&buf[range.clone()]).await? {
                rejections.push(self.rejection(*index, &e));
            }
        }
        Ok(rejections)
    }

    fn rejection(&self, index: usize, e: &RequestError) -> Rejection {
        Rejection {
            index,
            reason: format!("{} rejected the row: {e}", self.mapping.qualified_table),
        }
    }
}

/// A request error as a sink error (a row error here is not about one
/// output, so it is fatal). The sink's name is left to the caller.
fn classified(what: &'static str, e: RequestError) -> SinkError {
    ClickhouseSinkError::Request { what, source: e }.into()
}

/// Why the ClickHouse sink failed (without the sink's name: the caller
/// adds it once).
#[derive(Debug, thiserror::Error)]
pub enum ClickhouseSinkError {
    /// The URL, TLS or HTTP client settings make no client.
    #[error(transparent)]
    Client(ClientError),
    /// The table or the mapping do not fit.
    #[error("{0}")]
    Setup(String),
    /// A row of `system.columns` is not what the sink reads.
    #[error("unexpected system.columns row `{line}`: {source}")]
    Columns {
        /// The row.
        line: String,
        /// Why it does not parse.
        #[source]
        source: serde_json::Error,
    },
    /// A request failed.
    #[error("{what}: {source}")]
    Request {
        /// `read the table's columns`, `insert` or `check`.
        what: &'static str,
        /// The request's error.
        #[source]
        source: RequestError,
    },
    /// An insert kept failing in a way worth retrying.
    #[error("insert: {source} (after {attempts} attempts)")]
    Retried {
        /// How many times it was sent.
        attempts: usize,
        /// The last error.
        #[source]
        source: RequestError,
    },
}

impl ConnectorError for ClickhouseSinkError {
    fn is_transient(&self) -> bool {
        match self {
            ClickhouseSinkError::Request { source, .. } => source.class() == ErrorClass::Retry,
            ClickhouseSinkError::Retried { .. } => true,
            _ => false,
        }
    }
}

#[async_trait]
impl Sink for ClickhouseSink {
    async fn write(&self, outputs: &[Output]) -> Result<Vec<Rejection>, SinkError> {
        let mut rejections = Vec::new();
        let mut buf = String::with_capacity(outputs.len() * 128);
        let mut rows = Vec::with_capacity(outputs.len());
        for (index, out) in outputs.iter().enumerate() {
            let start = buf.len();
            match self.mapping.bind_into(out, &mut buf) {
                Ok(()) => rows.push((index, start..buf.len())),
                Err(reason) => rejections.push(Rejection { index, reason }),
            }
        }
        for chunk in rows.chunks(self.max_rows) {
            rejections.extend(self.write_chunk(chunk, &buf).await?);
        }
        rejections.sort_by_key(|r| r.index);
        Ok(rejections)
    }

    async fn check(&self) -> Result<(), SinkError> {
        self.client
            .query("SELECT 1", String::new())
            .await
            .map(drop)
            .map_err(|e| classified("check", e))
    }
}
