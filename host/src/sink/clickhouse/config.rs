//! `[sinks.NAME] type = "clickhouse"`: the typed settings of the ClickHouse
//! sink, checked offline (`weir validate`) as far as that is possible
//! without the server.
//!
//! ```toml
//! [sinks.page_views]
//! type = "clickhouse"
//! url = "http://127.0.0.1:8123/"
//! user = "weir"
//! password = "${CLICKHOUSE_PASSWORD}"
//! database = "analytics"
//! table = "page_views"
//! delete_column = "deleted"
//!
//! [sinks.page_views.mapping]
//! event_id = "value.event_id"
//! url = "value.url"
//! ts = "value.ts"
//! version = "value.ts"
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::sink::field::FieldPath;
use crate::tls::TlsConfig;

/// Settings of one ClickHouse sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawClickhouseSinkConfig")]
pub struct ClickhouseSinkConfig {
    /// The settings as written, checked.
    pub raw: RawClickhouseSinkConfig,
}

/// The settings as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClickhouseSinkConfig {
    /// Base URL of the HTTP interface: `http://host:8123/`, or
    /// `https://host:8443/` for TLS.
    pub url: String,
    /// User name (HTTP basic authentication). Default: the server's
    /// `default` user.
    #[serde(default)]
    pub user: Option<String>,
    /// Password of `user`; use `${VAR}` to keep it out of the file.
    #[serde(default)]
    pub password: Option<String>,
    /// Database of the table.
    #[serde(default = "default_database")]
    pub database: String,
    /// Table written to.
    pub table: String,
    /// Column ← field, `column = "value.path"`. Sources: `value`,
    /// `value.a.b`, `value.items.0`, `key`, `key.path`, `header.NAME`.
    pub mapping: BTreeMap<String, FieldPath>,
    /// A `UInt8` column (not in `mapping`) the sink sets to 0 for upserts
    /// and 1 for deletes; a delete then writes the row's sorting-key
    /// columns and whatever else the output carries. Unset: delete outputs
    /// are rejected (dead-lettered), since a plain insert cannot delete.
    #[serde(default)]
    pub delete_column: Option<String>,
    /// Most outputs in one INSERT; a larger group is sent as several.
    /// Keep it below the server's `max_insert_block_size` (1048576) so an
    /// INSERT stays one block, all written or none.
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// Query-level settings sent with every INSERT as URL parameters
    /// (`insert_quorum = "2"`, `async_insert = "1"` on servers that have it).
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// Timeout of one HTTP request, in milliseconds.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Timeout of opening a connection, in milliseconds.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Retries inside the sink for transient errors, before the pipeline's
    /// own backoff takes over.
    #[serde(default)]
    pub retry: RetryConfig,
    /// TLS for an `https://` URL: trusted roots and a client certificate.
    /// Unset with `https://`: the system's trusted roots.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

fn default_database() -> String {
    "default".to_owned()
}
fn default_max_rows() -> usize {
    10_000
}
fn default_request_timeout_ms() -> u64 {
    30_000
}
fn default_connect_timeout_ms() -> u64 {
    5_000
}

/// Retries of one INSERT inside the sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts per INSERT, the first included; then the write fails as
    /// transient and the pipeline retries it with its own backoff.
    pub attempts: usize,
    /// First backoff delay, in milliseconds (doubles, with jitter).
    pub initial_ms: u64,
    /// Longest backoff delay, in milliseconds.
    pub max_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            attempts: 3,
            initial_ms: 100,
            max_ms: 2_000,
        }
    }
}

impl TryFrom<RawClickhouseSinkConfig> for ClickhouseSinkConfig {
    type Error = String;

    fn try_from(raw: RawClickhouseSinkConfig) -> Result<Self, String> {
        if !(raw.url.starts_with("http://") || raw.url.starts_with("https://")) {
            return Err(format!(
                "`url` = `{}`: expected `http://host:port/` or `https://host:port/`",
                raw.url
            ));
        }
        if raw.tls.is_some() && !raw.url.starts_with("https://") {
            return Err("`tls` is set but `url` is not `https://`".to_owned());
        }
        if raw.table.is_empty() {
            return Err("`table` is empty".to_owned());
        }
        if raw.mapping.is_empty() {
            return Err("`mapping` names no column".to_owned());
        }
        if let Some(d) = &raw.delete_column
            && raw.mapping.contains_key(d)
        {
            return Err(format!(
                "`delete_column` `{d}` is also in `mapping`: the sink sets it itself"
            ));
        }
        if raw.max_rows == 0 {
            return Err("`max_rows` must be at least 1".to_owned());
        }
        if raw.retry.attempts == 0 {
            return Err("`retry.attempts` must be at least 1".to_owned());
        }
        if raw.retry.max_ms < raw.retry.initial_ms {
            return Err("`retry.max_ms` must be at least `retry.initial_ms`".to_owned());
        }
        Ok(ClickhouseSinkConfig { raw })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ClickhouseSinkConfig, String> {
        toml::from_str(text).map_err(|e| e.message().to_owned())
    }

    #[test]
    fn a_full_config_parses_and_mistakes_are_named() {
        let c = parse(
            "url = \"https://ch:8443/\"\ntable = \"t\"\ndelete_column = \"deleted\"\nsettings = { insert_quorum = \"2\" }\ntls = {}\nretry = { attempts = 5 }\n[mapping]\nid = \"value.id\"\n",
        )
        .unwrap();
        assert_eq!(c.raw.database, "default");
        assert_eq!(c.raw.retry.attempts, 5);
        assert_eq!(
            parse("url = \"ch:8123\"\ntable = \"t\"\n[mapping]\nid = \"value.id\"\n").unwrap_err(),
            "`url` = `ch:8123`: expected `http://host:port/` or `https://host:port/`"
        );
        assert_eq!(
            parse("url = \"http://ch/\"\ntable = \"t\"\ndelete_column = \"id\"\n[mapping]\nid = \"value.id\"\n")
                .unwrap_err(),
            "`delete_column` `id` is also in `mapping`: the sink sets it itself"
        );
        assert!(
            parse("url = \"http://ch/\"\ntable = \"t\"\n[mapping]\nid = \"val.id\"\n")
                .unwrap_err()
                .contains("a field path starts with")
        );
        assert!(
            parse("url = \"http://ch/\"\ntable = \"t\"\nformat = \"x\"\n[mapping]\nid = \"value.id\"\n")
                .unwrap_err()
                .contains("unknown field `format`")
        );
    }
}
