//! The column mapping of the ClickHouse sink: the table's column types
//! (from `system.columns`), and binding an output to one JSONEachRow line.
//!
//! ClickHouse parses JSON input leniently (an out-of-range number wraps
//! around, a missing date becomes `0000-00-00`), so values are checked here
//! against the column's type before they are sent: integer ranges,
//! `DateTime` seconds within `UInt32`, `Date` within its 1970–2149 range.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::event::{Op, Output};
use crate::sink::field::{Doc, FieldPath};
use crate::sink::typed::{ConvertError, Kind, Scalar, convert};

/// How a column's value is written.
#[derive(Debug, Clone, PartialEq)]
pub enum ChType {
    /// Checked with `kind` and written as a JSON number/string/bool.
    Checked(Kind),
    /// `DateTime`: whole seconds since the epoch.
    DateTime,
    /// `DateTime64(p)`: seconds with `p` decimals.
    DateTime64(u32),
    /// `Date`: `YYYY-MM-DD` within 1970-01-01..=2149-06-06.
    Date,
    /// Anything else (arrays, enums, maps, tuples): the JSON value as it
    /// is; the server parses it and rejects what does not fit.
    Raw,
}

/// A column of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnType {
    /// The type as the server names it (`Nullable(Int32)`).
    pub name: String,
    /// The type inside `Nullable(...)` / `LowCardinality(...)`.
    pub ty: ChType,
    /// Whether it is `Nullable`: a JSON `null` writes NULL; otherwise a
    /// null or missing value leaves the column at its default.
    pub nullable: bool,
}

fn strip<'a>(s: &'a str, wrapper: &str) -> Option<&'a str> {
    s.strip_prefix(wrapper)?
        .strip_prefix('(')?
        .strip_suffix(')')
}

impl ColumnType {
    /// From the type name in `system.columns`.
    pub fn parse(name: &str) -> ColumnType {
        let mut inner = name.trim();
        let mut nullable = false;
        loop {
            if let Some(i) = strip(inner, "LowCardinality") {
                inner = i.trim();
            } else if let Some(i) = strip(inner, "Nullable") {
                inner = i.trim();
                nullable = true;
            } else {
                break;
            }
        }
        let int = |bits, signed| ChType::Checked(Kind::int(inner, bits, signed));
        let ty = match inner {
            "Int8" => int(8, true),
            "Int16" => int(16, true),
            "Int32" => int(32, true),
            "Int64" => int(64, true),
            "Int128" => int(128, true),
            "UInt8" => int(8, false),
            "UInt16" => int(16, false),
            "UInt32" => int(32, false),
            "UInt64" => int(64, false),
            "Float32" => ChType::Checked(Kind::Float32),
            "Float64" => ChType::Checked(Kind::Float64),
            "Bool" => ChType::Checked(Kind::Bool),
            "String" => ChType::Checked(Kind::Text),
            "UUID" => ChType::Checked(Kind::Uuid),
            "Date" => ChType::Date,
            t if t == "DateTime" || t.starts_with("DateTime(") => ChType::DateTime,
            t if t.starts_with("DateTime64(") => {
                let p = t["DateTime64(".len()..]
                    .split([',', ')'])
                    .next()
                    .and_then(|p| p.trim().parse::<u32>().ok())
                    .unwrap_or(3);
                ChType::DateTime64(p.min(9))
            }
            t if t.starts_with("Decimal") => ChType::Checked(Kind::Decimal),
            t if t.starts_with("FixedString(") => ChType::Checked(Kind::Text),
            _ => ChType::Raw,
        };
        ColumnType {
            name: name.to_owned(),
            ty,
            nullable,
        }
    }
}

/// A mapped column.
#[derive(Debug, Clone)]
pub struct MappedColumn {
    /// Column name.
    pub name: String,
    /// Its name as a JSON string (the row's key), with the `:`.
    json_key: String,
    /// Its type.
    pub ty: ColumnType,
    /// Where its value comes from.
    pub source: FieldPath,
    /// Whether it is part of the table's sorting key.
    pub in_key: bool,
}

/// The mapping checked against the table.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// `` `db`.`table` ``.
    pub qualified_table: String,
    /// Mapped columns by name.
    pub columns: Vec<MappedColumn>,
    /// The delete column's JSON key, if configured.
    delete_key: Option<String>,
    uses_headers: bool,
}

/// A quoted identifier (`` `a``b` ``).
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('\\', "\\\\").replace('`', "\\`"))
}

impl Mapping {
    /// Check the mapping against the table's columns (name → type and
    /// whether it is in the sorting key).
    pub fn new(
        database: &str,
        table: &str,
        mapping: &BTreeMap<String, FieldPath>,
        table_columns: &BTreeMap<String, (ColumnType, bool)>,
        delete_column: Option<&str>,
    ) -> Result<Mapping, String> {
        let qualified_table = format!("{}.{}", ident(database), ident(table));
        let known = || table_columns.keys().cloned().collect::<Vec<_>>().join(", ");
        let mut columns = Vec::with_capacity(mapping.len());
        for (name, source) in mapping {
            let Some((ty, in_key)) = table_columns.get(name) else {
                return Err(format!(
                    "column `{name}` is mapped but {qualified_table} has no such column (it has: {})",
                    known()
                ));
            };
            columns.push(MappedColumn {
                name: name.clone(),
                json_key: format!("{}:", Value::from(name.as_str())),
                ty: ty.clone(),
                source: source.clone(),
                in_key: *in_key,
            });
        }
        for (name, (_, in_key)) in table_columns {
            if *in_key && !mapping.contains_key(name) {
                return Err(format!(
                    "sorting-key column `{name}` of {qualified_table} is not mapped"
                ));
            }
        }
        let delete_key = match delete_column {
            None => None,
            Some(d) => match table_columns.get(d) {
                Some((t, _)) if t.ty == ChType::Checked(Kind::int("UInt8", 8, false)) => {
                    Some(format!("{}:", Value::from(d)))
                }
                Some((t, _)) => {
                    return Err(format!(
                        "`delete_column` `{d}` is {} (expected UInt8)",
                        t.name
                    ));
                }
                None => {
                    return Err(format!(
                        "`delete_column` `{d}`: {qualified_table} has no such column (it has: {})",
                        known()
                    ));
                }
            },
        };
        let uses_headers = columns.iter().any(|c| c.source.reads_header());
        Ok(Mapping {
            qualified_table,
            columns,
            delete_key,
            uses_headers,
        })
    }

    /// The column list of the INSERT (every mapped column, then the delete column).
    pub fn insert_sql(&self, delete_column: Option<&str>) -> String {
        let mut names: Vec<String> = self.columns.iter().map(|c| ident(&c.name)).collect();
        if let Some(d) = delete_column {
            names.push(ident(d));
        }
        format!(
            "INSERT INTO {} ({}) FORMAT JSONEachRow",
            self.qualified_table,
            names.join(", ")
        )
    }

    /// Append the output's JSONEachRow line (with its newline) to `buf`,
    /// or say why it cannot be written (naming the column). On error `buf`
    /// is left as it was.
    pub fn bind_into(&self, out: &Output, buf: &mut String) -> Result<(), String> {
        let start = buf.len();
        let r = self.bind_inner(out, buf);
        if r.is_err() {
            buf.truncate(start);
        }
        r
    }

    fn bind_inner(&self, out: &Output, buf: &mut String) -> Result<(), String> {
        let delete = out.op == Op::Delete;
        if delete && self.delete_key.is_none() {
            return Err(
                "delete output, but no `delete_column` is configured: an INSERT cannot delete (see docs/sinks/clickhouse.md)"
                    .to_owned(),
            );
        }
        if !delete && out.value.is_none() {
            return Err(format!("{} output has no value to write", out.op.as_str()));
        }
        let doc = Doc::new(out, self.uses_headers)?;
        buf.push('{');
        let mut first = true;
        for col in &self.columns {
            let value = match doc.get(&col.source) {
                None | Some(Value::Null) if col.in_key => {
                    return Err(format!(
                        "sorting-key column `{}` ({}): no value at `{}`",
                        col.name, col.ty.name, col.source.text
                    ));
                }
                // Missing: the column's default. A null is NULL where the
                // column is Nullable, the default otherwise.
                None => continue,
                Some(Value::Null) if !col.ty.nullable => continue,
                Some(v) => v,
            };
            if !first {
                buf.push(',');
            }
            first = false;
            buf.push_str(&col.json_key);
            if value.is_null() {
                buf.push_str("null");
            } else {
                render(&col.ty.ty, value, buf)
                    .map_err(|e| format!("column `{}` ({}): {e}", col.name, col.ty.name))?;
            }
        }
        if let Some(key) = &self.delete_key {
            if !first {
                buf.push(',');
            }
            buf.push_str(key);
            buf.push(if delete { '1' } else { '0' });
        }
        buf.push_str("}\n");
        Ok(())
    }
}

/// Write the JSON token of `v` for a column of type `ty`.
fn render(ty: &ChType, v: &Value, buf: &mut String) -> Result<(), ConvertError> {
    let fail = |expected: &str, reason: &str| ConvertError {
        expected: expected.to_owned(),
        value: v.to_string(),
        reason: reason.to_owned(),
    };
    match ty {
        ChType::Raw => {
            let _ = write!(buf, "{v}");
        }
        ChType::Checked(kind) => match convert(kind, v)? {
            Scalar::Int(n) => {
                let _ = write!(buf, "{n}");
            }
            Scalar::Float(f) if !f.is_finite() => {
                return Err(fail("a finite number", "JSON has no NaN or infinity"));
            }
            Scalar::Float(f) => {
                let _ = write!(buf, "{}", Value::from(f));
            }
            Scalar::Bool(b) => buf.push_str(if b { "true" } else { "false" }),
            // A bare number: ClickHouse does not read quoted decimals.
            Scalar::Decimal(text) => buf.push_str(&json_number(&text)),
            Scalar::Text(s) => {
                let _ = write!(buf, "{}", Value::String(s));
            }
            Scalar::Uuid(u) => {
                let _ = write!(buf, "\"{}\"", u.hyphenated());
            }
            // Kinds no ClickHouse type maps to (see `ColumnType::parse`).
            Scalar::Timestamp(_) | Scalar::Date(_) | Scalar::Json(_) | Scalar::Bytes(_) => {
                return Err(fail("a supported type", "no JSON form for this column"));
            }
        },
        ChType::DateTime => {
            let t = crate::sink::typed::timestamp(&Kind::Timestamp, v)?;
            let secs = t.timestamp();
            if !(0..=i64::from(u32::MAX)).contains(&secs) {
                return Err(fail(
                    "DateTime",
                    "out of range (1970-01-01 00:00:00 ..= 2106-02-07 06:28:15 UTC)",
                ));
            }
            let _ = write!(buf, "{secs}");
        }
        ChType::DateTime64(p) => {
            let t = crate::sink::typed::timestamp(&Kind::Timestamp, v)?;
            write_datetime64(t, *p, buf);
        }
        ChType::Date => {
            let d = match convert(&Kind::Date, v)? {
                Scalar::Date(d) => d,
                _ => return Err(fail("Date", "not a date")),
            };
            // A `Date` is a UInt16 count of days since 1970-01-01.
            let days = (d - DateTime::UNIX_EPOCH.date_naive()).num_days();
            if !(0..=i64::from(u16::MAX)).contains(&days) {
                return Err(fail("Date", "out of range (1970-01-01 ..= 2149-06-06)"));
            }
            let _ = write!(buf, "\"{}\"", d.format("%Y-%m-%d"));
        }
    }
    Ok(())
}

/// Seconds since the epoch with `p` decimals, as a JSON number.
fn write_datetime64(t: DateTime<Utc>, p: u32, buf: &mut String) {
    let secs = t.timestamp();
    let nanos = t.timestamp_subsec_nanos();
    if p == 0 {
        let _ = write!(buf, "{secs}");
        return;
    }
    let frac = nanos / 10_u32.pow(9 - p);
    let (secs, frac) = if secs < 0 && frac > 0 {
        // -1.5 s is -2 s + 0.5 s in `t`; the decimal text is -1.5.
        (secs + 1, 10_u32.pow(p) - frac)
    } else {
        (secs, frac)
    };
    let sign = if secs == 0 && t.timestamp() < 0 {
        "-"
    } else {
        ""
    };
    let _ = write!(buf, "{sign}{secs}.{frac:0width$}", width = p as usize);
}

/// A decimal text (`+.5`, `5.`, `1e3`) as a valid JSON number.
fn json_number(text: &str) -> String {
    let (sign, rest) = match text.strip_prefix('-') {
        Some(r) => ("-", r),
        None => ("", text.strip_prefix('+').unwrap_or(text)),
    };
    let (mantissa, exp) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let exp = exp.replacen("e+", "e", 1).replacen("E+", "E", 1);
    if frac.is_empty() {
        format!("{sign}{int}{exp}")
    } else {
        format!("{sign}{int}.{frac}{exp}")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn columns() -> BTreeMap<String, (ColumnType, bool)> {
        [
            ("id", "UInt64", true),
            ("n", "Nullable(Int32)", false),
            ("ts", "DateTime", false),
            ("d", "Date", false),
            ("amount", "Decimal(10, 2)", false),
            ("tags", "Array(String)", false),
            ("city", "LowCardinality(String)", false),
            ("deleted", "UInt8", false),
        ]
        .into_iter()
        .map(|(n, t, k)| (n.to_owned(), (ColumnType::parse(t), k)))
        .collect()
    }

    fn mapping() -> Mapping {
        let map = ["id", "n", "ts", "d", "amount", "tags", "city"]
            .into_iter()
            .map(|c| {
                (
                    c.to_owned(),
                    FieldPath::parse(&format!("value.{c}")).unwrap(),
                )
            })
            .collect();
        Mapping::new("db", "t", &map, &columns(), Some("deleted")).unwrap()
    }

    fn bind(m: &Mapping, out: &Output) -> Result<String, String> {
        let mut buf = String::new();
        m.bind_into(out, &mut buf).map(|()| buf)
    }

    fn out(v: Value) -> Output {
        Output {
            value: Some(v.to_string().into()),
            ..Output::default()
        }
    }

    #[test]
    fn rows_are_checked_json_lines() {
        let m = mapping();
        assert_eq!(
            bind(
                &m,
                &out(
                    json!({"id": 1, "n": null, "ts": "2023-11-14T22:13:20Z", "d": 0,
                    "amount": "+.5", "tags": ["a"], "city": "Oslo"})
                )
            )
            .unwrap(),
            "{\"amount\":0.5,\"city\":\"Oslo\",\"d\":\"1970-01-01\",\"id\":1,\"n\":null,\"tags\":[\"a\"],\"ts\":1700000000,\"deleted\":0}\n"
        );
        assert_eq!(
            bind(&m, &out(json!({"id": 1, "n": 3_000_000_000_i64}))).unwrap_err(),
            "column `n` (Nullable(Int32)): expected Int32, got 3000000000: out of range (-2147483648..=2147483647)"
        );
        assert_eq!(
            bind(&m, &out(json!({"id": 1, "d": "2200-01-01"}))).unwrap_err(),
            "column `d` (Date): expected Date, got \"2200-01-01\": out of range (1970-01-01 ..= 2149-06-06)"
        );
        assert_eq!(
            bind(&m, &out(json!({"n": 1}))).unwrap_err(),
            "sorting-key column `id` (UInt64): no value at `value.id`"
        );
        let del = Output {
            op: Op::Delete,
            ..out(json!({"id": 4}))
        };
        assert_eq!(bind(&m, &del).unwrap(), "{\"id\":4,\"deleted\":1}\n");
    }

    #[test]
    fn schema_mistakes_are_named() {
        let mut map = BTreeMap::new();
        map.insert("n".to_owned(), FieldPath::parse("value.n").unwrap());
        assert_eq!(
            Mapping::new("db", "t", &map, &columns(), None).unwrap_err(),
            "sorting-key column `id` of `db`.`t` is not mapped"
        );
        map.insert("id".to_owned(), FieldPath::parse("value.id").unwrap());
        assert_eq!(
            Mapping::new("db", "t", &map, &columns(), Some("n")).unwrap_err(),
            "`delete_column` `n` is Nullable(Int32) (expected UInt8)"
        );
        let no_delete = Mapping::new("db", "t", &map, &columns(), None).unwrap();
        let del = Output {
            op: Op::Delete,
            ..out(json!({"id": 4}))
        };
        assert!(
            bind(&no_delete, &del)
                .unwrap_err()
                .contains("no `delete_column`")
        );
    }

    #[test]
    fn datetime64_and_decimals_are_json_numbers() {
        let mut s = String::new();
        let t = DateTime::<Utc>::from_timestamp_millis(1_700_000_000_123).unwrap();
        write_datetime64(t, 3, &mut s);
        assert_eq!(s, "1700000000.123");
        s.clear();
        write_datetime64(
            DateTime::<Utc>::from_timestamp_millis(-1_500).unwrap(),
            3,
            &mut s,
        );
        assert_eq!(s, "-1.500");
        assert_eq!(json_number("-007.50e+2"), "-7.50e2");
        assert_eq!(json_number("5."), "5");
    }
}
