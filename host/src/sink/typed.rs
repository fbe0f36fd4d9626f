//! JSON → typed column values for the SQL-table sinks (PostgreSQL,
//! ClickHouse), with range checks. Each sink maps its server's column types
//! to a [`Kind`] and renders the checked [`Scalar`] in its own wire format;
//! every error says what was expected and what was found (the sink adds
//! the column).

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use serde_json::Value;

/// What a column holds, as far as conversion is concerned.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// An integer within `min..=max` (the column type's range).
    Int {
        /// The type's name, for messages (`bigint`, `UInt16`).
        name: String,
        /// Smallest value.
        min: i128,
        /// Largest value.
        max: i128,
    },
    /// A 32-bit float (range-checked).
    Float32,
    /// A 64-bit float.
    Float64,
    /// An exact decimal number, kept as its text.
    Decimal,
    /// `true` / `false`.
    Bool,
    /// Text: strings as they are, other JSON as its JSON text.
    Text,
    /// A point in time: epoch milliseconds or an ISO-8601 / RFC 3339 date-time.
    Timestamp,
    /// A calendar date: `YYYY-MM-DD`, or a timestamp (its UTC date).
    Date,
    /// A UUID in its textual form.
    Uuid,
    /// Any JSON, stored as JSON.
    Json,
    /// Bytes, given as base64 text.
    Bytes,
    /// A type this module does not check: strings pass as they are, other
    /// JSON as its JSON text, and the server parses them.
    Other(String),
}

impl Kind {
    /// An integer kind of `bits` bits, signed or not.
    pub fn int(name: &str, bits: u32, signed: bool) -> Kind {
        let (min, max) = if bits >= 128 {
            (if signed { i128::MIN } else { 0 }, i128::MAX)
        } else if signed {
            (-(1_i128 << (bits - 1)), (1_i128 << (bits - 1)) - 1)
        } else {
            (0, (1_i128 << bits) - 1)
        };
        Kind::Int {
            name: name.to_owned(),
            min,
            max,
        }
    }

    fn name(&self) -> String {
        match self {
            Kind::Int { name, .. } => name.clone(),
            Kind::Float32 => "32-bit float".to_owned(),
            Kind::Float64 => "64-bit float".to_owned(),
            Kind::Decimal => "decimal".to_owned(),
            Kind::Bool => "boolean".to_owned(),
            Kind::Text => "text".to_owned(),
            Kind::Timestamp => "timestamp".to_owned(),
            Kind::Date => "date".to_owned(),
            Kind::Uuid => "uuid".to_owned(),
            Kind::Json => "json".to_owned(),
            Kind::Bytes => "bytes".to_owned(),
            Kind::Other(t) => t.clone(),
        }
    }
}

/// A checked value, ready for a sink to render.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// A boolean.
    Bool(bool),
    /// An integer within the column's range.
    Int(i128),
    /// A float (finite unless the JSON said `NaN`/`Infinity` as text).
    Float(f64),
    /// Decimal digits as text (`-12.50`, `1e3`).
    Decimal(String),
    /// Text.
    Text(String),
    /// A point in time, UTC.
    Timestamp(DateTime<Utc>),
    /// A date.
    Date(NaiveDate),
    /// A UUID.
    Uuid(uuid::Uuid),
    /// JSON.
    Json(Value),
    /// Bytes.
    Bytes(Vec<u8>),
}

/// Why a JSON value cannot become a value of a column's type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected}, got {value}: {reason}")]
pub struct ConvertError {
    /// The type that was wanted.
    pub expected: String,
    /// The offending JSON value (shortened when long).
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

fn fail(kind: &Kind, v: &Value, reason: impl Into<String>) -> ConvertError {
    let mut value = v.to_string();
    if value.len() > 120 {
        let mut cut = 117;
        while !value.is_char_boundary(cut) {
            cut -= 1;
        }
        value.truncate(cut);
        value.push_str("...");
    }
    ConvertError {
        expected: kind.name(),
        value,
        reason: reason.into(),
    }
}

/// JSON text of anything but a string, the string itself otherwise.
fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Convert a non-null JSON value to a value of `kind` (callers decide
/// what `null` means).
pub fn convert(kind: &Kind, v: &Value) -> Result<Scalar, ConvertError> {
    if v.is_null() {
        return Err(fail(kind, v, "null is not allowed here"));
    }
    Ok(match kind {
        Kind::Int { min, max, .. } => {
            let n = integer(kind, v)?;
            if n < *min || n > *max {
                return Err(fail(kind, v, format!("out of range ({min}..={max})")));
            }
            Scalar::Int(n)
        }
        Kind::Float32 => {
            let d = float(kind, v)?;
            if d.is_finite() && d.abs() > f64::from(f32::MAX) {
                return Err(fail(kind, v, "out of range (±3.4028235e38)"));
            }
            Scalar::Float(d)
        }
        Kind::Float64 => Scalar::Float(float(kind, v)?),
        Kind::Decimal => {
            let text = match v {
                Value::Number(n) => n.to_string(),
                Value::String(s) => s.trim().to_owned(),
                _ => return Err(fail(kind, v, "not a number")),
            };
            if !is_decimal(&text) {
                return Err(fail(kind, v, "not a decimal number"));
            }
            Scalar::Decimal(text)
        }
        Kind::Bool => Scalar::Bool(match v {
            Value::Bool(b) => *b,
            Value::String(s) if s.eq_ignore_ascii_case("true") => true,
            Value::String(s) if s.eq_ignore_ascii_case("false") => false,
            Value::Number(n) if n.as_u64() == Some(1) => true,
            Value::Number(n) if n.as_u64() == Some(0) => false,
            _ => return Err(fail(kind, v, "not a boolean")),
        }),
        Kind::Text => Scalar::Text(as_text(v)),
        Kind::Timestamp => Scalar::Timestamp(timestamp(kind, v)?),
        Kind::Date => match v {
            Value::String(s) if s.trim().len() == 10 => Scalar::Date(
                NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
                    .map_err(|e| fail(kind, v, format!("not a date (YYYY-MM-DD): {e}")))?,
            ),
            _ => Scalar::Date(timestamp(kind, v)?.date_naive()),
        },
        Kind::Uuid => {
            let Value::String(s) = v else {
                return Err(fail(kind, v, "not a string"));
            };
            Scalar::Uuid(
                uuid::Uuid::parse_str(s.trim())
                    .map_err(|e| fail(kind, v, format!("not a UUID: {e}")))?,
            )
        }
        Kind::Json => Scalar::Json(v.clone()),
        Kind::Bytes => {
            let Value::String(s) = v else {
                return Err(fail(kind, v, "not a base64 string"));
            };
            let standard = base64::engine::general_purpose::STANDARD;
            let url = base64::engine::general_purpose::URL_SAFE;
            Scalar::Bytes(
                standard
                    .decode(s.trim())
                    .or_else(|_| url.decode(s.trim()))
                    .map_err(|e| fail(kind, v, format!("not base64: {e}")))?,
            )
        }
        Kind::Other(_) => Scalar::Text(as_text(v)),
    })
}

/// An integer as [`number::integer`](super::number::integer) reads it.
fn integer(kind: &Kind, v: &Value) -> Result<i128, ConvertError> {
    super::number::integer(v).ok_or_else(|| fail(kind, v, "not an integer"))
}

/// A float as [`number::float`](super::number::float) reads it.
fn float(kind: &Kind, v: &Value) -> Result<f64, ConvertError> {
    super::number::float(v).ok_or_else(|| fail(kind, v, "not a number"))
}

/// `[-+]digits[.digits][e[-+]digits]`, at least one digit in the mantissa.
fn is_decimal(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let exp_ok = exp.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    !(int.is_empty() && frac.is_empty()) && digits(int) && digits(frac) && exp_ok
}

/// A point in time from epoch milliseconds (a number or a string of
/// digits) or a date-time text: RFC 3339 (`2026-05-01T12:00:00.5Z`,
/// `+02:00`), or without an offset (`2026-05-01 12:00:00`, taken as UTC).
pub fn timestamp(kind: &Kind, v: &Value) -> Result<DateTime<Utc>, ConvertError> {
    let from_ms = |ms: i128| {
        i64::try_from(ms)
            .ok()
            .and_then(DateTime::<Utc>::from_timestamp_millis)
            .ok_or_else(|| fail(kind, v, "out of range (epoch milliseconds)"))
    };
    match v {
        Value::Number(_) => from_ms(integer(kind, v)?),
        Value::String(s) => {
            let t = s.trim();
            if let Ok(ms) = t.parse::<i128>() {
                return from_ms(ms);
            }
            if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
                return Ok(dt.with_timezone(&Utc));
            }
            for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
                if let Ok(naive) = NaiveDateTime::parse_from_str(t, format) {
                    return Ok(naive.and_utc());
                }
            }
            if let Ok(date) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
                return Ok(date.and_time(NaiveTime::MIN).and_utc());
            }
            Err(fail(
                kind,
                v,
                "not epoch milliseconds or an ISO-8601 date-time (2026-05-01T12:00:00Z)",
            ))
        }
        _ => Err(fail(
            kind,
            v,
            "not epoch milliseconds or an ISO-8601 string",
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn integers_are_range_checked() {
        let small = Kind::int("smallint", 16, true);
        assert_eq!(convert(&small, &json!(-32768)), Ok(Scalar::Int(-32768)));
        assert_eq!(convert(&small, &json!("12")), Ok(Scalar::Int(12)));
        assert_eq!(
            convert(&small, &json!(40000)).unwrap_err().to_string(),
            "expected smallint, got 40000: out of range (-32768..=32767)"
        );
        let u8k = Kind::int("UInt8", 8, false);
        assert!(convert(&u8k, &json!(-1)).is_err());
        assert!(convert(&u8k, &json!(1.5)).is_err());
        assert_eq!(
            convert(&Kind::int("UInt64", 64, false), &json!(u64::MAX)),
            Ok(Scalar::Int(i128::from(u64::MAX)))
        );
    }

    #[test]
    fn other_kinds_convert_or_say_why() {
        assert!(convert(&Kind::Float32, &json!(1e39)).is_err());
        assert_eq!(
            convert(&Kind::Float64, &json!("2.5")),
            Ok(Scalar::Float(2.5))
        );
        assert_eq!(
            convert(&Kind::Decimal, &json!("-12.50")),
            Ok(Scalar::Decimal("-12.50".into()))
        );
        assert!(convert(&Kind::Decimal, &json!("12,5")).is_err());
        assert!(convert(&Kind::Decimal, &json!(".")).is_err());
        assert_eq!(convert(&Kind::Bool, &json!("TRUE")), Ok(Scalar::Bool(true)));
        assert_eq!(
            convert(&Kind::Text, &json!({"a": 1})),
            Ok(Scalar::Text("{\"a\":1}".into()))
        );
        let ts = |v: Value| match convert(&Kind::Timestamp, &v) {
            Ok(Scalar::Timestamp(t)) => t.timestamp_millis(),
            other => panic!("{other:?}"),
        };
        assert_eq!(ts(json!(1_700_000_000_123_i64)), 1_700_000_000_123);
        assert_eq!(ts(json!("2023-11-14T22:13:20.123Z")), 1_700_000_000_123);
        assert_eq!(
            ts(json!("2023-11-15T00:13:20.123+02:00")),
            1_700_000_000_123
        );
        assert_eq!(ts(json!("2023-11-14 22:13:20.123")), 1_700_000_000_123);
        assert!(convert(&Kind::Timestamp, &json!("yesterday")).is_err());
        assert!(convert(&Kind::Timestamp, &json!(i64::MAX)).is_err());
        assert_eq!(
            convert(&Kind::Date, &json!(1_700_000_000_123_i64)),
            Ok(Scalar::Date(NaiveDate::from_ymd_opt(2023, 11, 14).unwrap()))
        );
        assert!(convert(&Kind::Date, &json!("2023-02-30")).is_err());
        assert!(convert(&Kind::Uuid, &json!("not-a-uuid")).is_err());
        assert_eq!(
            convert(&Kind::Bytes, &json!("aGk=")),
            Ok(Scalar::Bytes(b"hi".to_vec()))
        );
        assert!(
            convert(
                &Kind::Int {
                    name: "x".into(),
                    min: 0,
                    max: 1
                },
                &Value::Null
            )
            .is_err()
        );
    }
}
