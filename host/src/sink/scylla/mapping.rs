//! The column mapping: which field of an output fills which column, the
//! CQL statements that follow from it, and binding one output to the
//! values of its statement (converted with [`super::convert`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use scylla::value::{CqlValue, MaybeUnset};
use serde_json::Value;

use super::config::{NullValues, TimeUnit};
use super::convert::{json_to_cql, parse_iso8601_ms};
use super::cql_type::CqlType;
use crate::event::{Op, Output};
use crate::sink::field::Doc;
pub use crate::sink::field::{FieldPath, Root};

/// One bound value: unset (column untouched), null, or a value.
pub type BoundValue = MaybeUnset<Option<CqlValue>>;

/// Longest TTL CQL accepts (20 years).
pub const MAX_TTL_SECONDS: u32 = 630_720_000;

/// The columns of the table and its primary key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    /// Every column the sink may write, with its type.
    pub columns: BTreeMap<String, CqlType>,
    /// Partition key columns, in order.
    pub partition_key: Vec<String>,
    /// Clustering columns, in order.
    pub clustering_key: Vec<String>,
    /// Columns whose type the sink cannot write, with the reason.
    pub unsupported: BTreeMap<String, String>,
}

/// A mapped column: its name, its type and where its value comes from.
#[derive(Debug, Clone)]
pub struct MappedColumn {
    /// Column name.
    pub name: String,
    /// Its CQL type.
    pub ty: CqlType,
    /// Where its value is read from.
    pub source: FieldPath,
}

/// Everything needed to turn outputs into bound statements.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// `keyspace.table` as written in statements.
    pub qualified_table: String,
    /// Mapped columns in statement order (primary key columns first).
    pub columns: Vec<MappedColumn>,
    /// Indexes into `columns` of the partition key, in key order.
    pub partition_key: Vec<usize>,
    /// Indexes into `columns` of the clustering key, in key order.
    pub clustering_key: Vec<usize>,
    /// `USING TIMESTAMP` source, if configured.
    pub write_timestamp: Option<(FieldPath, TimeUnit)>,
    /// TTL for outputs without their own.
    pub default_ttl: Option<u32>,
    /// What null or missing becomes.
    pub null_values: NullValues,
    /// Whether any source reads a header (headers are parsed only then).
    pub uses_headers: bool,
}

/// Which statement an output binds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatementKind {
    /// `INSERT ... USING TTL ? [AND TIMESTAMP ?]`.
    InsertWithTtl,
    /// `INSERT ... [USING TIMESTAMP ?]` (the table's default TTL applies).
    Insert,
    /// `DELETE ... WHERE <primary key>`.
    Delete,
}

/// One output bound to its statement.
#[derive(Debug, Clone)]
pub struct BoundWrite {
    /// Which statement.
    pub kind: StatementKind,
    /// Values in bind-marker order.
    pub values: Vec<BoundValue>,
    /// Identity of the partition (equal for outputs of the same partition).
    pub partition: String,
    /// Identity of the row (partition + clustering key).
    pub row: String,
    /// Payload size used to bound batches.
    pub size: usize,
}

/// Quote an identifier unless it is a plain lower-case one.
pub fn ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

impl Mapping {
    /// Check the mapping against the schema and order the columns.
    pub fn new(
        keyspace: &str,
        table: &str,
        mapping: &BTreeMap<String, String>,
        schema: &TableSchema,
        write_timestamp: Option<(FieldPath, TimeUnit)>,
        default_ttl: Option<u32>,
        null_values: NullValues,
    ) -> Result<Mapping, String> {
        if mapping.is_empty() {
            return Err("`mapping` names no column".to_string());
        }
        if let Some(ttl) = default_ttl
            && ttl > MAX_TTL_SECONDS
        {
            return Err(format!(
                "ttl_seconds = {ttl} is above the CQL maximum {MAX_TTL_SECONDS}"
            ));
        }
        if schema.partition_key.is_empty() {
            return Err(format!("table {keyspace}.{table} has no partition key"));
        }
        let key_columns: Vec<&String> = schema
            .partition_key
            .iter()
            .chain(&schema.clustering_key)
            .collect();
        for k in &key_columns {
            if !mapping.contains_key(k.as_str()) {
                return Err(format!(
                    "primary key column `{k}` of {keyspace}.{table} is not mapped"
                ));
            }
        }
        let mut columns = Vec::with_capacity(mapping.len());
        // Key columns first (in key order), then the rest by name.
        let rest = mapping
            .keys()
            .filter(|c| !key_columns.contains(c))
            .collect::<Vec<_>>();
        for name in key_columns.iter().copied().chain(rest) {
            let Some(ty) = schema.columns.get(name) else {
                if let Some(why) = schema.unsupported.get(name) {
                    return Err(format!("column `{name}` cannot be written: {why}"));
                }
                return Err(format!(
                    "column `{name}` is mapped but {keyspace}.{table} has no such column (known: {})",
                    schema
                        .columns
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            };
            let source = FieldPath::parse(&mapping[name])
                .map_err(|e| format!("mapping of column `{name}`: {e}"))?;
            columns.push(MappedColumn {
                name: name.clone(),
                ty: ty.clone(),
                source,
            });
        }
        let pk = schema.partition_key.len();
        let ck = schema.clustering_key.len();
        let uses_headers = columns
            .iter()
            .map(|c| &c.source)
            .chain(write_timestamp.as_ref().map(|(p, _)| p))
            .any(|p| matches!(p.root, Root::Header(_)));
        Ok(Mapping {
            uses_headers,
            qualified_table: format!("{}.{}", ident(keyspace), ident(table)),
            columns,
            partition_key: (0..pk).collect(),
            clustering_key: (pk..pk + ck).collect(),
            write_timestamp,
            default_ttl,
            null_values,
        })
    }

    /// The CQL text of a statement.
    pub fn cql(&self, kind: StatementKind) -> String {
        let mut s = String::new();
        match kind {
            StatementKind::Insert | StatementKind::InsertWithTtl => {
                let names: Vec<String> = self.columns.iter().map(|c| ident(&c.name)).collect();
                let marks = vec!["?"; names.len()].join(", ");
                let _ = write!(
                    s,
                    "INSERT INTO {} ({}) VALUES ({marks})",
                    self.qualified_table,
                    names.join(", ")
                );
                match (
                    kind == StatementKind::InsertWithTtl,
                    self.write_timestamp.is_some(),
                ) {
                    (true, true) => s.push_str(" USING TTL ? AND TIMESTAMP ?"),
                    (true, false) => s.push_str(" USING TTL ?"),
                    (false, true) => s.push_str(" USING TIMESTAMP ?"),
                    (false, false) => {}
                }
            }
            StatementKind::Delete => {
                let _ = write!(s, "DELETE FROM {}", self.qualified_table);
                if self.write_timestamp.is_some() {
                    s.push_str(" USING TIMESTAMP ?");
                }
                let conds: Vec<String> = self
                    .partition_key
                    .iter()
                    .chain(&self.clustering_key)
                    .map(|&i| format!("{} = ?", ident(&self.columns[i].name)))
                    .collect();
                let _ = write!(s, " WHERE {}", conds.join(" AND "));
            }
        }
        s
    }

    /// The statements this mapping may use.
    pub fn statement_kinds(&self) -> Vec<StatementKind> {
        if self.default_ttl.is_some() {
            vec![StatementKind::InsertWithTtl, StatementKind::Delete]
        } else {
            vec![
                StatementKind::Insert,
                StatementKind::InsertWithTtl,
                StatementKind::Delete,
            ]
        }
    }

    /// Bind one output, or say why it cannot be written (the reason names
    /// the column, the expected type and the value).
    pub fn bind(&self, out: &Output) -> Result<BoundWrite, String> {
        let doc = Doc::new(out, self.uses_headers)?;
        let mut converted: Vec<BoundValue> = Vec::with_capacity(self.columns.len() + 2);
        let n_key = self.partition_key.len() + self.clustering_key.len();
        let delete = out.op == Op::Delete;
        if !delete && out.value.is_none() {
            return Err(format!("{} output has no value to insert", out.op.as_str()));
        }
        for (i, col) in self.columns.iter().enumerate() {
            if delete && i >= n_key {
                break;
            }
            let raw = doc.get(&col.source);
            let value = match raw {
                None | Some(Value::Null) => {
                    if i < n_key {
                        return Err(format!(
                            "column `{}` ({}): primary key value missing at `{}`",
                            col.name, col.ty, col.source.text
                        ));
                    }
                    match self.null_values {
                        NullValues::Unset => MaybeUnset::Unset,
                        NullValues::Null => MaybeUnset::Set(None),
                    }
                }
                Some(v) => MaybeUnset::Set(Some(
                    json_to_cql(&col.ty, v).map_err(|e| format!("column `{}`: {e}", col.name))?,
                )),
            };
            converted.push(value);
        }
        let identity = |idx: &[usize]| -> String {
            let mut s = String::new();
            for &i in idx {
                let _ = write!(s, "{:?}|", converted[i]);
            }
            s
        };
        let partition = identity(&self.partition_key);
        let key_idx: Vec<usize> = self
            .partition_key
            .iter()
            .chain(&self.clustering_key)
            .copied()
            .collect();
        let row = identity(&key_idx);
        let timestamp = match &self.write_timestamp {
            Some((path, unit)) => Some(write_timestamp_us(&doc, path, *unit)?),
            None => None,
        };
        let size =
            out.key.as_ref().map_or(0, |k| k.len()) + out.value.as_ref().map_or(0, |v| v.len());
        let (kind, values) = if delete {
            let mut values = Vec::with_capacity(n_key + 1);
            if let Some(ts) = timestamp {
                values.push(MaybeUnset::Set(Some(CqlValue::BigInt(ts))));
            }
            values.extend(converted);
            (StatementKind::Delete, values)
        } else {
            let ttl = out.ttl_seconds.or(self.default_ttl);
            let mut values = converted;
            let kind = match ttl {
                Some(t) if t > MAX_TTL_SECONDS => {
                    return Err(format!(
                        "ttl_seconds = {t} is above the CQL maximum {MAX_TTL_SECONDS}"
                    ));
                }
                Some(t) => {
                    let t = i32::try_from(t).map_err(|_| format!("ttl_seconds = {t} too large"))?;
                    values.push(MaybeUnset::Set(Some(CqlValue::Int(t))));
                    StatementKind::InsertWithTtl
                }
                None => StatementKind::Insert,
            };
            if let Some(ts) = timestamp {
                values.push(MaybeUnset::Set(Some(CqlValue::BigInt(ts))));
            }
            (kind, values)
        };
        Ok(BoundWrite {
            kind,
            values,
            partition,
            row,
            size,
        })
    }
}

fn write_timestamp_us(doc: &Doc<'_>, path: &FieldPath, unit: TimeUnit) -> Result<i64, String> {
    let bad = |v: &Value, why: &str| {
        format!(
            "write timestamp `{}`: expected an integer ({}) or an ISO-8601 string, got {v}: {why}",
            path.text,
            match unit {
                TimeUnit::Seconds => "seconds",
                TimeUnit::Milliseconds => "milliseconds",
                TimeUnit::Microseconds => "microseconds",
            }
        )
    };
    let v = match doc.get(path) {
        None | Some(Value::Null) => {
            return Err(format!("write timestamp `{}` is missing", path.text));
        }
        Some(v) => v,
    };
    let factor: i64 = match unit {
        TimeUnit::Seconds => 1_000_000,
        TimeUnit::Milliseconds => 1_000,
        TimeUnit::Microseconds => 1,
    };
    match v {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| bad(v, "not a 64-bit integer"))?
            .checked_mul(factor)
            .ok_or_else(|| bad(v, "out of range")),
        Value::String(s) => {
            if let Ok(n) = s.trim().parse::<i64>() {
                n.checked_mul(factor).ok_or_else(|| bad(v, "out of range"))
            } else {
                parse_iso8601_ms(s.trim())
                    .and_then(|ms| ms.checked_mul(1_000))
                    .ok_or_else(|| bad(v, "not a date-time"))
            }
        }
        _ => Err(bad(v, "wrong JSON type")),
    }
}
