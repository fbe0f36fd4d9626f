//! `[sinks.NAME] type = "postgres"`: the typed settings of the PostgreSQL
//! / TimescaleDB sink, checked offline (`weir validate`) as far as that is
//! possible without the server.
//!
//! ```toml
//! [sinks.readings]
//! type = "postgres"
//! url = "postgresql://weir@127.0.0.1:5432/telemetry?sslmode=require"
//! password = "${PG_PASSWORD}"
//! table = "readings"
//! key = ["device_id", "ts"]
//! tls = { ca_file = "certs/ca.pem" }
//!
//! [sinks.readings.mapping]
//! device_id = "value.deviceId"
//! ts = "value.timestamp"
//! temperature = "value.temp"
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::sink::field::FieldPath;
use crate::tls::TlsConfig;

/// Settings of one PostgreSQL sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawPostgresSinkConfig")]
pub struct PostgresSinkConfig {
    /// The settings as written, checked.
    pub raw: RawPostgresSinkConfig,
}

/// The settings as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPostgresSinkConfig {
    /// Connection string: a URL (`postgresql://user@host:5432/db?sslmode=require`)
    /// or `key=value` pairs (`host=... dbname=...`), as libpq reads them.
    pub url: String,
    /// User name; overrides the one in `url`.
    #[serde(default)]
    pub user: Option<String>,
    /// Password; overrides the one in `url`. Use `${VAR}` to keep it out of
    /// the file.
    #[serde(default)]
    pub password: Option<String>,
    /// Schema of the table.
    #[serde(default = "default_schema")]
    pub schema: String,
    /// Table written to (a plain, partitioned or TimescaleDB hypertable).
    pub table: String,
    /// The columns of a primary key or unique index of the table: the
    /// `ON CONFLICT` target of upserts and what deletes match on. Each must
    /// be mapped.
    pub key: Vec<String>,
    /// Column ← field, `column = "value.path"`. Sources: `value`,
    /// `value.a.b`, `value.items.0`, `key`, `key.path`, `header.NAME`.
    pub mapping: BTreeMap<String, FieldPath>,
    /// What a JSON `null` or a missing field does to a non-key column:
    /// `null` (the default: set it to NULL) or `keep` (an existing row keeps
    /// its value; a new row gets NULL).
    #[serde(default)]
    pub null_values: NullValues,
    /// Most outputs in one statement; a larger group is written in several.
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// Timeout of opening a connection, in milliseconds.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// TLS to the server (rustls). When set, the connection requires TLS
    /// and verifies the server's certificate and host name; unset, the
    /// connection is plain (an `sslmode=require` in `url` then fails).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

fn default_schema() -> String {
    "public".to_owned()
}
fn default_max_rows() -> usize {
    1000
}
fn default_connect_timeout_ms() -> u64 {
    5_000
}

/// What a JSON `null` (or a missing field) does to a non-key column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NullValues {
    /// The column is set to NULL.
    #[default]
    Null,
    /// An existing row keeps the column's value.
    Keep,
}

impl TryFrom<RawPostgresSinkConfig> for PostgresSinkConfig {
    type Error = String;

    fn try_from(raw: RawPostgresSinkConfig) -> Result<Self, String> {
        if raw.table.is_empty() {
            return Err("`table` is empty".to_owned());
        }
        if raw.mapping.is_empty() {
            return Err("`mapping` names no column".to_owned());
        }
        if raw.key.is_empty() {
            return Err(
                "`key` is empty: name the columns of a primary key or unique index".to_owned(),
            );
        }
        for (i, k) in raw.key.iter().enumerate() {
            if !raw.mapping.contains_key(k) {
                return Err(format!("key column `{k}` is not in `mapping`"));
            }
            if raw.key[..i].contains(k) {
                return Err(format!("key column `{k}` is listed twice"));
            }
        }
        if let Some(empty) = raw.mapping.keys().find(|c| c.is_empty()) {
            return Err(format!("mapping has an empty column name `{empty}`"));
        }
        if raw.max_rows == 0 {
            return Err("`max_rows` must be at least 1".to_owned());
        }
        if raw.connect_timeout_ms == 0 {
            return Err("`connect_timeout_ms` must be at least 1".to_owned());
        }
        Ok(PostgresSinkConfig { raw })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PostgresSinkConfig, String> {
        toml::from_str(text).map_err(|e| e.message().to_owned())
    }

    const BASE: &str = "url = \"postgresql://127.0.0.1/db\"\ntable = \"t\"\n";

    #[test]
    fn a_full_config_parses() {
        let c = parse(&format!(
            "{BASE}key = [\"id\"]\nnull_values = \"keep\"\ntls = {{ ca_file = \"ca.pem\" }}\n[mapping]\nid = \"value.id\"\nname = \"header.who\"\n"
        ))
        .unwrap();
        assert_eq!(c.raw.schema, "public");
        assert_eq!(c.raw.null_values, NullValues::Keep);
        assert_eq!(c.raw.mapping.len(), 2);
        assert!(c.raw.tls.is_some());
    }

    #[test]
    fn mistakes_are_named() {
        assert_eq!(
            parse(&format!(
                "{BASE}key = [\"id\"]\n[mapping]\nname = \"value.n\"\n"
            ))
            .unwrap_err(),
            "key column `id` is not in `mapping`"
        );
        assert!(
            parse(&format!(
                "{BASE}key = [\"id\"]\n[mapping]\nid = \"body.id\"\n"
            ))
            .unwrap_err()
            .contains("a field path starts with `value`, `key` or `header.NAME`")
        );
        assert!(
            parse(&format!(
                "{BASE}key = [\"id\"]\nbatch = 5\n[mapping]\nid = \"value.id\"\n"
            ))
            .unwrap_err()
            .contains("unknown field `batch`")
        );
        assert_eq!(
            parse(&format!("{BASE}key = []\n[mapping]\nid = \"value.id\"\n")).unwrap_err(),
            "`key` is empty: name the columns of a primary key or unique index"
        );
    }
}
