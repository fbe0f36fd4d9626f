//! JSON read with every number's text kept as written, so the sink writes a
//! decimal to DynamoDB as exactly that decimal.
//!
//! `serde_json::Value` holds a number as an `f64`, `i64` or `u64`: a decimal
//! such as `1E-130` is parsed to the nearest double (serde_json's default
//! parser may even be one unit off, giving `9.999999999999999e-131`, which
//! DynamoDB refuses as "Number underflow"), and a 38-digit decimal is
//! rounded to 17 digits. serde_json's `arbitrary_precision` feature would
//! keep the text, but cargo unifies features across the whole build: every
//! other crate seeing `serde_json::Value` (the MongoDB sink's JSON -> BSON
//! conversion among them) would then meet numbers serialized as a private
//! one-key map. So this module keeps the text itself: each value is first
//! read as a `RawValue` (its exact text, validated by serde_json), and
//! objects and arrays are read again one level down.

use std::collections::HashMap;
use std::fmt;

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

/// Deepest nesting accepted: DynamoDB itself allows 32 levels, which typed
/// JSON (`{"M": {"a": {"L": [..]}}}`) writes as two JSON levels each, under
/// the item's own object. Below serde_json's own limit of 128.
pub const MAX_DEPTH: usize = 72;

/// A JSON value whose numbers keep their text.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number, as written (valid JSON number syntax).
    Number(String),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Json>),
    /// An object (a repeated name keeps its last value, as in serde_json).
    Object(HashMap<String, Json>),
}

/// Why a text is not JSON this module reads.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// Not JSON.
    #[error("{0}")]
    Syntax(#[from] serde_json::Error),
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

impl Json {
    /// Parse a JSON document.
    pub fn parse(bytes: &[u8]) -> Result<Json, JsonError> {
        let raw: &RawValue = serde_json::from_slice(bytes)?;
        from_raw(raw, 0)
    }

    /// Whether this is an object.
    pub fn is_object(&self) -> bool {
        matches!(self, Json::Object(_))
    }

    /// The text of a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }
}

fn from_raw(raw: &RawValue, depth: usize) -> Result<Json, JsonError> {
    if depth > MAX_DEPTH {
        return Err(JsonError::TooDeep);
    }
    let text = raw.get();
    Ok(match text.as_bytes().first() {
        Some(b'{') => {
            let fields: HashMap<String, &RawValue> = serde_json::from_str(text)?;
            Json::Object(
                fields
                    .into_iter()
                    .map(|(k, v)| Ok((k, from_raw(v, depth + 1)?)))
                    .collect::<Result<_, JsonError>>()?,
            )
        }
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(text)?;
            Json::Array(
                items
                    .into_iter()
                    .map(|v| from_raw(v, depth + 1))
                    .collect::<Result<_, _>>()?,
            )
        }
        Some(b'"') => Json::String(serde_json::from_str(text)?),
        Some(b't') => Json::Bool(true),
        Some(b'f') => Json::Bool(false),
        Some(b'n') => Json::Null,
        // serde_json validated the value: what is left is a number.
        _ => Json::Number(text.to_string()),
    })
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => s.serialize_unit(),
            Json::Bool(b) => s.serialize_bool(*b),
            Json::Number(n) => match RawValue::from_string(n.clone()) {
                Ok(raw) => raw.serialize(s),
                Err(_) => s.serialize_str(n),
            },
            Json::String(v) => s.serialize_str(v),
            Json::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Json::Object(fields) => {
                let mut map = s.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match serde_json::to_string(self) {
            Ok(text) => f.write_str(&text),
            Err(_) => f.write_str("<JSON>"),
        }
    }
}

/// Whether `text` is a number in JSON's syntax
/// (`-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`).
pub fn is_json_number(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if b.first() == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(c) if c.is_ascii_digit() => {
            digits(&mut i);
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_their_text() {
        let v = Json::parse(
            br#" {"a": 1E-130, "b": [-0, 12345678901234567890123456789012345678, 1.50], "c": {"d": "x\"y"}} "#,
        )
        .unwrap();
        let Json::Object(m) = &v else {
            panic!("not an object: {v:?}")
        };
        assert_eq!(m["a"], Json::Number("1E-130".into()));
        assert_eq!(
            m["b"],
            Json::Array(vec![
                Json::Number("-0".into()),
                Json::Number("12345678901234567890123456789012345678".into()),
                Json::Number("1.50".into()),
            ])
        );
        assert_eq!(
            m["c"],
            Json::Object([("d".to_string(), Json::String("x\"y".into()))].into())
        );
        // Written back, the numbers are the same text.
        let again = Json::parse(v.to_string().as_bytes()).unwrap();
        assert_eq!(again, v);
    }

    #[test]
    fn bad_or_too_deep_json_is_an_error() {
        assert!(matches!(
            Json::parse(b"{\"a\": 01}"),
            Err(JsonError::Syntax(_))
        ));
        assert!(matches!(Json::parse(b"[1,]"), Err(JsonError::Syntax(_))));
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(matches!(
            Json::parse(deep.as_bytes()),
            Err(JsonError::TooDeep)
        ));
    }

    #[test]
    fn very_deep_json_is_an_error_not_a_stack_overflow() {
        for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
            let deep = format!("{}1{}", open.repeat(1_000_000), close.repeat(1_000_000));
            let err = Json::parse(deep.as_bytes()).unwrap_err();
            assert!(
                err.to_string().contains("recursion limit") || matches!(err, JsonError::TooDeep),
                "{err}"
            );
        }
    }

    #[test]
    fn json_number_syntax() {
        for ok in ["0", "-0", "1E-130", "9.9E+125", "1.50", "12e3", "-1.0e-2"] {
            assert!(is_json_number(ok), "{ok}");
        }
        for bad in [
            "", "-", "+1", ".5", "5.", "01", "1e", "1e+", "0x1", "1 ", "NaN",
        ] {
            assert!(!is_json_number(bad), "{bad}");
        }
    }
}
