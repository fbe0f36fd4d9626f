//! The column mapping of the PostgreSQL sink: the table's column types
//! (from the catalog), the upsert and delete statements, and binding an
//! output to the text of its values.
//!
//! Every value travels as text in one `text[]` parameter per column and is
//! cast to the column's type by the server (`unnest($1::text[])`), so one
//! prepared statement serves any group size and any column type; values
//! are checked here first (ranges, formats), so a bad one is rejected with
//! a message naming its column before it reaches the server.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::config::NullValues;
use crate::event::{Op, Output};
use crate::sink::field::{Doc, FieldPath};
use crate::sink::typed::{Kind, Scalar, convert};

/// A column of the table as the catalog describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnType {
    /// `format_type` of the type without modifier (`character varying`,
    /// `timestamp with time zone`): what values are cast to. Assigning it
    /// to the column then applies the modifier the way an INSERT does
    /// (a too-long `varchar(5)` is an error, not truncated).
    pub cast: String,
    /// How values are checked before sending.
    pub kind: Kind,
}

impl ColumnType {
    /// From the catalog's internal type name (`pg_type.typname`) and the
    /// formatted type name.
    pub fn from_catalog(typname: &str, formatted: &str) -> ColumnType {
        let kind = match typname {
            "int2" => Kind::int("smallint", 16, true),
            "int4" => Kind::int("integer", 32, true),
            "int8" => Kind::int("bigint", 64, true),
            "float4" => Kind::Float32,
            "float8" => Kind::Float64,
            "numeric" => Kind::Decimal,
            "bool" => Kind::Bool,
            "text" | "varchar" | "bpchar" | "name" | "citext" => Kind::Text,
            "timestamptz" | "timestamp" => Kind::Timestamp,
            "date" => Kind::Date,
            "uuid" => Kind::Uuid,
            "json" | "jsonb" => Kind::Json,
            "bytea" => Kind::Bytes,
            _ => Kind::Other(formatted.to_owned()),
        };
        ColumnType {
            cast: formatted.to_owned(),
            kind,
        }
    }
}

/// A mapped column.
#[derive(Debug, Clone)]
pub struct MappedColumn {
    /// Column name.
    pub name: String,
    /// Its type.
    pub ty: ColumnType,
    /// Where its value comes from.
    pub source: FieldPath,
}

/// The mapping checked against the table.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// `"schema"."table"`.
    pub qualified_table: String,
    /// Mapped columns, key columns first (in key order).
    pub columns: Vec<MappedColumn>,
    /// How many of `columns` are the key.
    pub key_len: usize,
    /// What null or missing does to a non-key column.
    pub null_values: NullValues,
    /// Whether any source reads a header.
    uses_headers: bool,
}

/// One output bound to the text of its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundRow {
    /// Upsert or delete.
    pub delete: bool,
    /// Values in column order (only the key for a delete); `None` is NULL.
    pub values: Vec<Option<String>>,
}

impl BoundRow {
    /// The key values, the identity of the row.
    pub fn key(&self, key_len: usize) -> &[Option<String>] {
        &self.values[..key_len]
    }
}

/// A quoted identifier (`"a""b"`): names are used exactly as written.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Mapping {
    /// Check the mapping against the table's columns and order it.
    pub fn new(
        schema: &str,
        table: &str,
        key: &[String],
        mapping: &BTreeMap<String, FieldPath>,
        table_columns: &BTreeMap<String, ColumnType>,
        null_values: NullValues,
    ) -> Result<Mapping, String> {
        let qualified_table = format!("{}.{}", ident(schema), ident(table));
        let rest = mapping.keys().filter(|c| !key.contains(c));
        let mut columns = Vec::with_capacity(mapping.len());
        for name in key.iter().chain(rest) {
            let Some(ty) = table_columns.get(name) else {
                return Err(format!(
                    "column `{name}` is mapped but {qualified_table} has no such column (it has: {})",
                    table_columns.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            };
            let source = mapping
                .get(name)
                .ok_or_else(|| format!("key column `{name}` is not in `mapping`"))?
                .clone();
            columns.push(MappedColumn {
                name: name.clone(),
                ty: ty.clone(),
                source,
            });
        }
        let uses_headers = columns.iter().any(|c| c.source.reads_header());
        Ok(Mapping {
            qualified_table,
            columns,
            key_len: key.len(),
            null_values,
            uses_headers,
        })
    }

    fn unnest(&self, columns: &[MappedColumn]) -> String {
        let params: Vec<String> = (1..=columns.len())
            .map(|i| format!("${i}::text[]"))
            .collect();
        let names: Vec<String> = columns.iter().map(|c| ident(&c.name)).collect();
        format!("unnest({}) AS u({})", params.join(", "), names.join(", "))
    }

    /// `INSERT ... SELECT ... FROM unnest(...) ON CONFLICT (key) DO UPDATE`.
    pub fn upsert_sql(&self) -> String {
        let names: Vec<String> = self.columns.iter().map(|c| ident(&c.name)).collect();
        let casts: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("u.{}::{}", ident(&c.name), c.ty.cast))
            .collect();
        let mut sql = format!(
            "INSERT INTO {} AS cur ({}) SELECT {} FROM {} ON CONFLICT ({}) ",
            self.qualified_table,
            names.join(", "),
            casts.join(", "),
            self.unnest(&self.columns),
            names[..self.key_len].join(", ")
        );
        let updates: Vec<String> = self.columns[self.key_len..]
            .iter()
            .map(|c| {
                let n = ident(&c.name);
                match self.null_values {
                    NullValues::Null => format!("{n} = EXCLUDED.{n}"),
                    NullValues::Keep => format!("{n} = COALESCE(EXCLUDED.{n}, cur.{n})"),
                }
            })
            .collect();
        if updates.is_empty() {
            sql.push_str("DO NOTHING");
        } else {
            let _ = write!(sql, "DO UPDATE SET {}", updates.join(", "));
        }
        sql
    }

    /// `DELETE ... USING unnest(...) WHERE <key matches>`.
    pub fn delete_sql(&self) -> String {
        let key = &self.columns[..self.key_len];
        let conds: Vec<String> = key
            .iter()
            .map(|c| {
                let n = ident(&c.name);
                format!("cur.{n} = u.{n}::{}", c.ty.cast)
            })
            .collect();
        format!(
            "DELETE FROM {} AS cur USING {} WHERE {}",
            self.qualified_table,
            self.unnest(key),
            conds.join(" AND ")
        )
    }

    /// Bind one output, or say why it cannot be written (naming the column).
    pub fn bind(&self, out: &Output) -> Result<BoundRow, String> {
        let delete = out.op == Op::Delete;
        if !delete && out.value.is_none() {
            return Err(format!("{} output has no value to write", out.op.as_str()));
        }
        let doc = Doc::new(out, self.uses_headers)?;
        let n = if delete {
            self.key_len
        } else {
            self.columns.len()
        };
        let mut values = Vec::with_capacity(n);
        for (i, col) in self.columns[..n].iter().enumerate() {
            let value = match doc.get(&col.source) {
                None | Some(Value::Null) if i < self.key_len => {
                    return Err(format!(
                        "key column `{}` ({}): no value at `{}`",
                        col.name, col.ty.cast, col.source.text
                    ));
                }
                None | Some(Value::Null) => None,
                Some(v) => Some(
                    convert(&col.ty.kind, v)
                        .map(|s| render(&s))
                        .map_err(|e| format!("column `{}` ({}): {e}", col.name, col.ty.cast))?,
                ),
            };
            values.push(value);
        }
        Ok(BoundRow { delete, values })
    }
}

/// The text PostgreSQL's input function of the column type reads.
fn render(s: &Scalar) -> String {
    match s {
        Scalar::Bool(b) => b.to_string(),
        Scalar::Int(n) => n.to_string(),
        Scalar::Float(f) if f.is_nan() => "NaN".to_owned(),
        Scalar::Float(f) if f.is_infinite() => {
            (if *f > 0.0 { "Infinity" } else { "-Infinity" }).to_owned()
        }
        Scalar::Float(f) => f.to_string(),
        Scalar::Decimal(t) | Scalar::Text(t) => t.clone(),
        // With an explicit UTC offset: `timestamptz` reads the instant,
        // `timestamp` (without time zone) ignores the offset and keeps the
        // UTC wall-clock time.
        Scalar::Timestamp(t) => t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string(),
        Scalar::Date(d) => d.format("%Y-%m-%d").to_string(),
        Scalar::Uuid(u) => u.hyphenated().to_string(),
        Scalar::Json(v) => v.to_string(),
        Scalar::Bytes(b) => format!("\\x{}", hex::encode(b)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn mapping(null_values: NullValues) -> Mapping {
        let mut cols = BTreeMap::new();
        cols.insert("id".to_owned(), ColumnType::from_catalog("int8", "bigint"));
        cols.insert(
            "at".to_owned(),
            ColumnType::from_catalog("timestamptz", "timestamp with time zone"),
        );
        cols.insert(
            "note".to_owned(),
            ColumnType::from_catalog("varchar", "character varying"),
        );
        let mut map = BTreeMap::new();
        map.insert("id".to_owned(), FieldPath::parse("value.id").unwrap());
        map.insert("at".to_owned(), FieldPath::parse("value.at").unwrap());
        map.insert("note".to_owned(), FieldPath::parse("value.note").unwrap());
        Mapping::new("public", "t", &["id".to_owned()], &map, &cols, null_values).unwrap()
    }

    #[test]
    fn statements_cast_text_arrays_to_the_column_types() {
        let m = mapping(NullValues::Keep);
        assert_eq!(
            m.upsert_sql(),
            "INSERT INTO \"public\".\"t\" AS cur (\"id\", \"at\", \"note\") SELECT u.\"id\"::bigint, u.\"at\"::timestamp with time zone, u.\"note\"::character varying FROM unnest($1::text[], $2::text[], $3::text[]) AS u(\"id\", \"at\", \"note\") ON CONFLICT (\"id\") DO UPDATE SET \"at\" = COALESCE(EXCLUDED.\"at\", cur.\"at\"), \"note\" = COALESCE(EXCLUDED.\"note\", cur.\"note\")"
        );
        assert_eq!(
            m.delete_sql(),
            "DELETE FROM \"public\".\"t\" AS cur USING unnest($1::text[]) AS u(\"id\") WHERE cur.\"id\" = u.\"id\"::bigint"
        );
    }

    #[test]
    fn binding_checks_values_and_names_the_column() {
        let m = mapping(NullValues::Null);
        let out = |v: Value| Output {
            value: Some(v.to_string().into()),
            ..Output::default()
        };
        assert_eq!(
            m.bind(&out(json!({"id": 7, "at": 0, "note": null})))
                .unwrap(),
            BoundRow {
                delete: false,
                values: vec![
                    Some("7".into()),
                    Some("1970-01-01 00:00:00.000000+00".into()),
                    None
                ],
            }
        );
        assert_eq!(
            m.bind(&out(json!({"id": "x"}))).unwrap_err(),
            "column `id` (bigint): expected bigint, got \"x\": not an integer"
        );
        assert_eq!(
            m.bind(&out(json!({"at": 1}))).unwrap_err(),
            "key column `id` (bigint): no value at `value.id`"
        );
        let del = Output {
            op: Op::Delete,
            ..out(json!({"id": 9}))
        };
        assert_eq!(
            m.bind(&del).unwrap(),
            BoundRow {
                delete: true,
                values: vec![Some("9".into())]
            }
        );
    }
}
