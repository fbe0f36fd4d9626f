//! The PostgreSQL sink: one connection (re-opened after it is lost), the
//! upsert and delete statements prepared on it, and writing a group as at
//! most one upsert and one delete per `max_rows` outputs.
//!
//! Within a group only the last output of each key is sent (an upsert
//! cannot touch a row twice in one statement, and the last output is what
//! sequential writes would leave). When the server rejects a statement for
//! its data (SQLSTATE classes 22 and 23: a too-long string, a violated
//! check), the outputs are written one by one, in order, so only the ones
//! at fault are dead-lettered, each with the server's message.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Mutex;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Statement};

use super::config::PostgresSinkConfig;
use super::mapping::{BoundRow, ColumnType, Mapping, ident};
use crate::connector_error::ConnectorError;
use crate::event::Output;
use crate::sink::{BuildSink, Rejection, Sink, SinkContext, SinkError};

/// What to do about a failed statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorClass {
    /// Connection lost, server shutting down, overloaded, a deadlock or
    /// serialization failure: retry the group.
    Retry,
    /// The values of a row are refused: dead-letter the output.
    Reject,
    /// Credentials, permissions, a missing table or column: stop.
    Fatal,
}

fn classify(e: &tokio_postgres::Error) -> ErrorClass {
    let Some(db) = e.as_db_error() else {
        // No server error: I/O, a closed connection, a timeout.
        return ErrorClass::Retry;
    };
    let code = db.code();
    if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED {
        return ErrorClass::Retry;
    }
    match &code.code()[..2] {
        "22" | "23" => ErrorClass::Reject,
        // Connection exceptions, insufficient resources, operator
        // intervention (shutdown, cannot connect now), system errors,
        // transaction rollbacks, object in use / lock not available.
        "08" | "53" | "57" | "58" | "40" | "55" => ErrorClass::Retry,
        _ => ErrorClass::Fatal,
    }
}

/// The server's message: `ERROR 22001: value too long for type character
/// varying(5) (detail ...)`.
fn server_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut m = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
            if let Some(detail) = db.detail() {
                m.push_str(&format!(" ({detail})"));
            }
            m
        }
        None => {
            // The client's own errors hide their cause ("error performing
            // TLS handshake"); the cause is what the operator needs
            // ("invalid peer certificate: UnknownIssuer").
            let mut m = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                m.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            m
        }
    }
}

/// A live connection and its prepared statements.
struct Conn {
    client: Client,
    upsert: Statement,
    delete: Statement,
}

/// How to open a connection.
struct Connector {
    name: String,
    config: tokio_postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

impl Connector {
    /// Open a connection and drive it on its own task.
    async fn open(&self) -> Result<Client, SinkError> {
        let name = self.name.clone();
        let connected = match &self.tls {
            Some(tls) => self
                .config
                .connect(tls.clone())
                .await
                .map(|(client, conn)| {
                    tokio::spawn(drive(name, conn));
                    client
                }),
            None => self
                .config
                .connect(tokio_postgres::NoTls)
                .await
                .map(|(client, conn)| {
                    tokio::spawn(drive(name, conn));
                    client
                }),
        };
        connected.map_err(|e| error("connect", e))
    }
}

/// An error of `what`, classified (a rejection here is fatal: it is not
/// about one output). The sink's name is left to the caller, which adds it
/// once.
fn error(what: &str, e: tokio_postgres::Error) -> SinkError {
    PostgresSinkError::Call {
        what: what.to_owned(),
        message: server_message(&e),
        transient: matches!(classify(&e), ErrorClass::Retry),
        source: e,
    }
    .into()
}

/// Why the PostgreSQL sink failed (without the sink's name: the caller
/// adds it once).
#[derive(Debug, thiserror::Error)]
pub enum PostgresSinkError {
    /// The driver cannot read `url`.
    #[error("invalid `url`: {0}")]
    Url(#[source] tokio_postgres::Error),
    /// The TLS files, the table or the mapping do not fit.
    #[error("{0}")]
    Setup(String),
    /// A call to the server failed.
    #[error("{what}: {message}")]
    Call {
        /// What was being done (`connect`, `write`, `prepare ...`).
        what: String,
        /// The server's message, or the client's with its causes.
        message: String,
        /// Whether the server's code says retrying may help.
        transient: bool,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
}

impl ConnectorError for PostgresSinkError {
    fn is_transient(&self) -> bool {
        matches!(
            self,
            PostgresSinkError::Call {
                transient: true,
                ..
            }
        )
    }
}

/// A connected PostgreSQL sink.
pub struct PostgresSink {
    name: String,
    connector: Connector,
    mapping: Mapping,
    max_rows: usize,
    conn: Mutex<Option<Arc<Conn>>>,
}

impl std::fmt::Debug for PostgresSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSink")
            .field("name", &self.name)
            .field("table", &self.mapping.qualified_table)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl BuildSink for PostgresSinkConfig {
    async fn build(&self, ctx: &SinkContext) -> Result<Arc<dyn Sink>, SinkError> {
        Ok(Arc::new(PostgresSink::connect(self, ctx).await?))
    }
}

/// The table's columns from the catalog.
const COLUMNS_SQL: &str = "SELECT a.attname::text, t.typname::text, format_type(a.atttypid, NULL) \
     FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
     WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped";

impl PostgresSink {
    /// Connect, read the table's columns, check the mapping and prepare
    /// the statements. An unreachable server is transient; a bad URL,
    /// credentials, a missing table or column, or a `key` that is not a
    /// unique index of the table are fatal.
    pub async fn connect(cfg: &PostgresSinkConfig, ctx: &SinkContext) -> Result<Self, SinkError> {
        let cfg = &cfg.raw;
        let name = ctx.name.clone();
        let fatal = PostgresSinkError::Setup;
        let mut config: tokio_postgres::Config = cfg.url.parse().map_err(PostgresSinkError::Url)?;
        if let Some(user) = &cfg.user {
            config.user(user);
        }
        if let Some(password) = &cfg.password {
            config.password(password);
        }
        if config.get_application_name().is_none() {
            config.application_name(format!("weir/{name}"));
        }
        config.connect_timeout(Duration::from_millis(cfg.connect_timeout_ms));
        let tls = match &cfg.tls {
            Some(tls) => {
                let client = tls
                    .client_config(&ctx.config_dir)
                    .map_err(|e| fatal(e.to_string()))?;
                config.ssl_mode(tokio_postgres::config::SslMode::Require);
                Some(tokio_postgres_rustls::MakeRustlsConnect::new(client))
            }
            None => None,
        };
        let connector = Connector {
            name: name.clone(),
            config,
            tls,
        };
        let client = connector.open().await?;
        let qualified = format!("{}.{}", ident(&cfg.schema), ident(&cfg.table));
        let rows = client
            .query(COLUMNS_SQL, &[&qualified])
            .await
            .map_err(|e| error("read the table's columns", e))?;
        if rows.is_empty() {
            return Err(fatal(format!("table {qualified} does not exist")).into());
        }
        let columns = rows
            .iter()
            .map(|r| {
                let col: String = r.get(0);
                let typname: String = r.get(1);
                let formatted: String = r.get(2);
                (col, ColumnType::from_catalog(&typname, &formatted))
            })
            .collect();
        let mapping = Mapping::new(
            &cfg.schema,
            &cfg.table,
            &cfg.key,
            &cfg.mapping,
            &columns,
            cfg.null_values,
        )
        .map_err(fatal)?;
        let sink = PostgresSink {
            name: name.clone(),
            connector,
            mapping,
            max_rows: cfg.max_rows,
            conn: Mutex::new(None),
        };
        let conn = sink.prepare(client).await?;
        // Run both statements on no rows: the server plans them only at
        // execution, and planning is what finds that `key` matches no
        // unique index, or that the user may not insert or delete.
        sink.write_rows(&conn, &[])
            .await
            .map_err(|e| error("check the statements on the table", e))?;
        *sink.conn.lock().await = Some(Arc::new(conn));
        tracing::info!(sink = %name, table = %sink.mapping.qualified_table, "postgres sink ready");
        Ok(sink)
    }

    fn error(&self, what: &str, e: tokio_postgres::Error) -> SinkError {
        error(what, e)
    }

    async fn prepare(&self, client: Client) -> Result<Conn, SinkError> {
        let upsert_sql = self.mapping.upsert_sql();
        let upsert = client
            .prepare(&upsert_sql)
            .await
            .map_err(|e| self.error(&format!("prepare `{upsert_sql}`"), e))?;
        let delete_sql = self.mapping.delete_sql();
        let delete = client
            .prepare(&delete_sql)
            .await
            .map_err(|e| self.error(&format!("prepare `{delete_sql}`"), e))?;
        Ok(Conn {
            client,
            upsert,
            delete,
        })
    }

    /// The live connection, re-opened if it was lost.
    async fn conn(&self) -> Result<Arc<Conn>, SinkError> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref()
            && !c.client.is_closed()
        {
            return Ok(c.clone());
        }
        *slot = None;
        let client = self.connector.open().await?;
        let conn = Arc::new(self.prepare(client).await?);
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Run `stmt` over `rows` (one `text[]` per column).
    async fn run(
        &self,
        conn: &Conn,
        stmt: &Statement,
        rows: &[&BoundRow],
        width: usize,
    ) -> Result<(), tokio_postgres::Error> {
        let mut columns: Vec<Vec<Option<&str>>> = vec![Vec::with_capacity(rows.len()); width];
        for row in rows {
            for (col, v) in columns.iter_mut().zip(&row.values) {
                col.push(v.as_deref());
            }
        }
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = columns
            .iter()
            .map(|c| c as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        conn.client.execute(stmt, &params).await.map(drop)
    }

    /// Write `rows` (of distinct keys) as one upsert and one delete.
    async fn write_rows(
        &self,
        conn: &Conn,
        rows: &[&BoundRow],
    ) -> Result<(), tokio_postgres::Error> {
        let (deletes, upserts): (Vec<&BoundRow>, Vec<&BoundRow>) =
            rows.iter().copied().partition(|r| r.delete);
        // No rows at all: both run (the check at start).
        if !upserts.is_empty() || rows.is_empty() {
            self.run(conn, &conn.upsert, &upserts, self.mapping.columns.len())
                .await?;
        }
        if !deletes.is_empty() || rows.is_empty() {
            self.run(conn, &conn.delete, &deletes, self.mapping.key_len)
                .await?;
        }
        Ok(())
    }

    /// Write one chunk of bound outputs; on a data error, one by one.
    async fn write_chunk(&self, chunk: &[(usize, BoundRow)]) -> Result<Vec<Rejection>, SinkError> {
        let conn = self.conn().await?;
        // The last output of each key, in the order of first appearance.
        let mut last: HashMap<&[Option<String>], usize> = HashMap::with_capacity(chunk.len());
        let mut order = Vec::with_capacity(chunk.len());
        for (i, (_, row)) in chunk.iter().enumerate() {
            if last.insert(row.key(self.mapping.key_len), i).is_none() {
                order.push(row.key(self.mapping.key_len));
            }
        }
        let rows: Vec<&BoundRow> = order.iter().map(|k| &chunk[last[k]].1).collect();
        let err = match self.write_rows(&conn, &rows).await {
            Ok(()) => return Ok(Vec::new()),
            Err(e) => e,
        };
        match classify(&err) {
            ErrorClass::Retry => return Err(self.lost(&conn, "write", err)),
            ErrorClass::Fatal => return Err(self.error("write", err)),
            ErrorClass::Reject => {}
        }
        let mut rejections = Vec::new();
        for (index, row) in chunk {
            match self.write_rows(&conn, &[row]).await {
                Ok(()) => {}
                Err(e) => match classify(&e) {
                    ErrorClass::Reject => rejections.push(Rejection {
                        index: *index,
                        reason: format!(
                            "{} rejected the row: {}",
                            self.mapping.qualified_table,
                            server_message(&e)
                        ),
                    }),
                    ErrorClass::Retry => return Err(self.lost(&conn, "write", e)),
                    ErrorClass::Fatal => return Err(self.error("write", e)),
                },
            }
        }
        Ok(rejections)
    }

    /// A transient error; drops the connection if it is gone.
    fn lost(&self, conn: &Conn, what: &str, e: tokio_postgres::Error) -> SinkError {
        if conn.client.is_closed() {
            tracing::debug!(sink = %self.name, "connection lost; reconnecting on the next write");
        }
        self.error(what, e)
    }
}

/// Run a connection until it closes.
async fn drive<T>(name: String, conn: T)
where
    T: std::future::Future<Output = Result<(), tokio_postgres::Error>>,
{
    if let Err(e) = conn.await {
        tracing::warn!(sink = %name, error = %e, "postgres connection closed");
    }
}

#[async_trait]
impl Sink for PostgresSink {
    async fn write(&self, outputs: &[Output]) -> Result<Vec<Rejection>, SinkError> {
        let mut rejections = Vec::new();
        let mut bound = Vec::with_capacity(outputs.len());
        for (index, out) in outputs.iter().enumerate() {
            match self.mapping.bind(out) {
                Ok(row) => bound.push((index, row)),
                Err(reason) => rejections.push(Rejection { index, reason }),
            }
        }
        for chunk in bound.chunks(self.max_rows) {
            rejections.extend(self.write_chunk(chunk).await?);
        }
        rejections.sort_by_key(|r| r.index);
        Ok(rejections)
    }

    async fn check(&self) -> Result<(), SinkError> {
        let conn = self.conn().await?;
        conn.client
            .simple_query("SELECT 1")
            .await
            .map(drop)
            .map_err(|e| self.lost(&conn, "check", e))
    }
}
