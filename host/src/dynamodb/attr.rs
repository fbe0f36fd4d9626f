//! DynamoDB attribute values <-> JSON: the one mapping the source and the
//! sink share.
//!
//! Natural JSON (the default):
//!
//! | DynamoDB | JSON |
//! |---|---|
//! | `S` | string |
//! | `N` | number when the JSON number denotes exactly the same decimal (every integer in i64/u64, decimals whose shortest double form is the same decimal); otherwise a string (`inexact_numbers = "string"`, the default, lossless) or the nearest double (`"float"`) |
//! | `B` | base64 string (standard alphabet, padded) |
//! | `BOOL` | `true` / `false` |
//! | `NULL` | `null` |
//! | `M` | object |
//! | `L` | array |
//! | `SS` / `NS` / `BS` | array of strings / numbers (as above) / base64 strings |
//!
//! Natural JSON cannot tell a set from a list, binary from a string, or an
//! inexact number kept as a string from a string, so writing it back turns
//! those into `L` and `S`. Typed JSON (`format = "typed"`) is DynamoDB's
//! own JSON (`{"S": "x"}`, `{"N": "1.50"}`, `{"SS": [..]}` ...), lossless
//! both ways.
//!
//! An exact number is written as DynamoDB's own decimal text (`1E-130`
//! stays `1E-130`), not through a double.
//!
//! JSON -> attribute values (the sink, reading JSON with [`Json`], which
//! keeps number text): string -> `S`, number -> `N` (exactly the decimal
//! written, in plain form without exponent), `true`/`false` -> `BOOL`,
//! `null` -> `NULL`, object -> `M`, array -> `L`; or typed JSON read back
//! exactly.

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

use super::json::{Json, is_json_number};

/// How attribute values are written as JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JsonFormat {
    /// Plain JSON (`{"name": "Ada", "age": 36}`), see the module table.
    #[default]
    Natural,
    /// DynamoDB-typed JSON (`{"name": {"S": "Ada"}, "age": {"N": "36"}}`).
    Typed,
}

/// What natural JSON does with a number no JSON number can carry exactly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InexactNumbers {
    /// A JSON string holding the exact decimal (lossless).
    #[default]
    String,
    /// The nearest double (lossy).
    Float,
}

/// The mapping settings of one connector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JsonMapping {
    /// Natural or typed JSON.
    pub format: JsonFormat,
    /// Natural JSON only: numbers that are not exact as JSON numbers.
    pub inexact_numbers: InexactNumbers,
}

/// A borrowed view of an attribute value, so both SDKs' (identical but
/// distinct) `AttributeValue` types share one mapping.
#[derive(Debug)]
pub enum AttrRef<'a, A> {
    /// String.
    S(&'a str),
    /// Number (decimal text).
    N(&'a str),
    /// Binary.
    B(&'a [u8]),
    /// Boolean.
    Bool(bool),
    /// Null.
    Null,
    /// Map.
    M(&'a HashMap<String, A>),
    /// List.
    L(&'a [A]),
    /// String set.
    Ss(&'a [String]),
    /// Number set.
    Ns(&'a [String]),
    /// Binary set.
    Bs(&'a [Blob]),
    /// A type this SDK version does not know.
    Unknown,
}

/// An SDK attribute value type.
pub trait Attr: Sized {
    /// Look at it.
    fn view(&self) -> AttrRef<'_, Self>;
}

macro_rules! impl_attr {
    ($av:ty) => {
        impl Attr for $av {
            fn view(&self) -> AttrRef<'_, Self> {
                use $av as A;
                match self {
                    A::S(s) => AttrRef::S(s),
                    A::N(n) => AttrRef::N(n),
                    A::B(b) => AttrRef::B(b.as_ref()),
                    A::Bool(b) => AttrRef::Bool(*b),
                    A::Null(_) => AttrRef::Null,
                    A::M(m) => AttrRef::M(m),
                    A::L(l) => AttrRef::L(l),
                    A::Ss(s) => AttrRef::Ss(s),
                    A::Ns(n) => AttrRef::Ns(n),
                    A::Bs(b) => AttrRef::Bs(b),
                    _ => AttrRef::Unknown,
                }
            }
        }
    };
}

impl_attr!(aws_sdk_dynamodb::types::AttributeValue);
impl_attr!(aws_sdk_dynamodbstreams::types::AttributeValue);

impl JsonMapping {
    /// An item (or key) as JSON bytes.
    pub fn item_to_vec<A: Attr>(&self, item: &HashMap<String, A>) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 * item.len().max(1));
        // Serializing into a Vec with only string keys cannot fail.
        let _ = serde_json::to_writer(&mut out, &ItemJson(item, *self));
        out
    }

    /// An item (or key) as a JSON value.
    pub fn item_to_value<A: Attr>(&self, item: &HashMap<String, A>) -> Value {
        serde_json::to_value(ItemJson(item, *self)).unwrap_or(Value::Null)
    }

    /// One attribute value as a JSON value.
    pub fn attr_to_value<A: Attr>(&self, attr: &A) -> Value {
        serde_json::to_value(AttrJson(attr, *self)).unwrap_or(Value::Null)
    }

    /// A JSON object as an item; `what` names the input in errors.
    pub fn json_to_item(
        &self,
        json: &Json,
        what: &str,
    ) -> Result<HashMap<String, AttributeValue>, String> {
        let Json::Object(map) = json else {
            return Err(format!("{what} is not a JSON object"));
        };
        map.iter()
            .map(|(k, v)| {
                let path = format!("{what}.{k}");
                let av = match self.format {
                    JsonFormat::Natural => natural_to_attr(v, &path)?,
                    JsonFormat::Typed => typed_to_attr(v, &path)?,
                };
                Ok((k.clone(), av))
            })
            .collect()
    }

    /// One JSON value as an attribute value; `what` names it in errors.
    pub fn json_to_attr(&self, json: &Json, what: &str) -> Result<AttributeValue, String> {
        match self.format {
            JsonFormat::Natural => natural_to_attr(json, what),
            JsonFormat::Typed => typed_to_attr(json, what),
        }
    }
}

struct ItemJson<'a, A>(&'a HashMap<String, A>, JsonMapping);
struct AttrJson<'a, A>(&'a A, JsonMapping);
struct NumJson<'a>(&'a str, InexactNumbers);
struct Base64Json<'a>(&'a [u8]);

impl<A: Attr> Serialize for ItemJson<'_, A> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, &AttrJson(v, self.1))?;
        }
        m.end()
    }
}

impl Serialize for Base64Json<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&BASE64.encode(self.0))
    }
}

impl Serialize for NumJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = self.0;
        if let Ok(i) = text.parse::<i64>() {
            return s.serialize_i64(i);
        }
        if let Ok(u) = text.parse::<u64>() {
            return s.serialize_u64(u);
        }
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => {
                if !same_decimal(text, &f.to_string()) {
                    return match self.1 {
                        InexactNumbers::Float => s.serialize_f64(f),
                        InexactNumbers::String => s.serialize_str(text),
                    };
                }
                // Exact: write the decimal as DynamoDB gave it (`1E-130`
                // stays `1E-130`), so a reader that keeps number text (the
                // DynamoDB sink does) sees that very decimal.
                if is_json_number(text)
                    && let Ok(raw) = RawValue::from_string(text.to_string())
                {
                    return raw.serialize(s);
                }
                s.serialize_f64(f)
            }
            _ => s.serialize_str(text),
        }
    }
}

fn seq<S: Serializer, T: Serialize>(
    s: S,
    items: impl ExactSizeIterator<Item = T>,
) -> Result<S::Ok, S::Error> {
    let mut sq = s.serialize_seq(Some(items.len()))?;
    for item in items {
        sq.serialize_element(&item)?;
    }
    sq.end()
}

/// `{"TAG": value}` for typed JSON.
fn tagged<S: Serializer, T: Serialize + ?Sized>(s: S, tag: &str, v: &T) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(1))?;
    m.serialize_entry(tag, v)?;
    m.end()
}

impl<A: Attr> Serialize for AttrJson<'_, A> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mapping = self.1;
        let inexact = mapping.inexact_numbers;
        match mapping.format {
            JsonFormat::Natural => match self.0.view() {
                AttrRef::S(v) => s.serialize_str(v),
                AttrRef::N(n) => NumJson(n, inexact).serialize(s),
                AttrRef::B(b) => Base64Json(b).serialize(s),
                AttrRef::Bool(b) => s.serialize_bool(b),
                AttrRef::Null | AttrRef::Unknown => s.serialize_unit(),
                AttrRef::M(m) => ItemJson(m, mapping).serialize(s),
                AttrRef::L(l) => seq(s, l.iter().map(|a| AttrJson(a, mapping))),
                AttrRef::Ss(v) => seq(s, v.iter()),
                AttrRef::Ns(v) => seq(s, v.iter().map(|n| NumJson(n, inexact))),
                AttrRef::Bs(v) => seq(s, v.iter().map(|b| Base64Json(b.as_ref()))),
            },
            JsonFormat::Typed => match self.0.view() {
                AttrRef::S(v) => tagged(s, "S", v),
                AttrRef::N(n) => tagged(s, "N", n),
                AttrRef::B(b) => tagged(s, "B", &Base64Json(b)),
                AttrRef::Bool(b) => tagged(s, "BOOL", &b),
                AttrRef::Null | AttrRef::Unknown => tagged(s, "NULL", &true),
                AttrRef::M(m) => tagged(s, "M", &ItemJson(m, mapping)),
                AttrRef::L(l) => tagged(s, "L", &TypedList(l, mapping)),
                AttrRef::Ss(v) => tagged(s, "SS", v),
                AttrRef::Ns(v) => tagged(s, "NS", v),
                AttrRef::Bs(v) => tagged(s, "BS", &Base64List(v)),
            },
        }
    }
}

struct TypedList<'a, A>(&'a [A], JsonMapping);
impl<A: Attr> Serialize for TypedList<'_, A> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        seq(s, self.0.iter().map(|a| AttrJson(a, self.1)))
    }
}

struct Base64List<'a>(&'a [Blob]);
impl Serialize for Base64List<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        seq(s, self.0.iter().map(|b| Base64Json(b.as_ref())))
    }
}

fn natural_to_attr(v: &Json, what: &str) -> Result<AttributeValue, String> {
    Ok(match v {
        Json::Null => AttributeValue::Null(true),
        Json::Bool(b) => AttributeValue::Bool(*b),
        Json::Number(n) => AttributeValue::N(plain_number(n).ok_or_else(|| {
            format!(
                "{what}: the number {} is outside DynamoDB's range (magnitude 1E-130 to 9.9E+125)",
                preview(n)
            )
        })?),
        Json::String(s) => AttributeValue::S(s.clone()),
        Json::Array(a) => AttributeValue::L(
            a.iter()
                .enumerate()
                .map(|(i, x)| natural_to_attr(x, &format!("{what}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Json::Object(m) => AttributeValue::M(
            m.iter()
                .map(|(k, x)| Ok((k.clone(), natural_to_attr(x, &format!("{what}.{k}"))?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

/// At most the first 40 characters of a number's text, for an error.
fn preview(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}

fn typed_to_attr(v: &Json, what: &str) -> Result<AttributeValue, String> {
    let Json::Object(m) = v else {
        return Err(format!(
            "{what}: typed JSON needs an object like {{\"S\": \"x\"}}, got {v}"
        ));
    };
    let mut it = m.iter();
    let (Some((tag, inner)), None) = (it.next(), it.next()) else {
        return Err(format!(
            "{what}: typed JSON needs exactly one type key, got {v}"
        ));
    };
    let string = |x: &Json| -> Result<String, String> {
        x.as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("{what}: {tag} needs a string, got {x}"))
    };
    let number = |x: &Json| -> Result<String, String> {
        let text = match x {
            Json::String(s) | Json::Number(s) => s.clone(),
            _ => return Err(format!("{what}: {tag} needs a number string, got {x}")),
        };
        if parse_decimal(&text).is_none() {
            return Err(format!("{what}: {text:?} is not a number"));
        }
        Ok(text)
    };
    let binary = |x: &Json| -> Result<Blob, String> {
        let s = string(x)?;
        BASE64
            .decode(s.as_bytes())
            .map(Blob::new)
            .map_err(|e| format!("{what}: {tag} is not valid base64: {e}"))
    };
    let array = |x: &Json| -> Result<Vec<Json>, String> {
        match x {
            Json::Array(items) => Ok(items.clone()),
            _ => Err(format!("{what}: {tag} needs an array, got {x}")),
        }
    };
    Ok(match tag.as_str() {
        "S" => AttributeValue::S(string(inner)?),
        "N" => AttributeValue::N(number(inner)?),
        "B" => AttributeValue::B(binary(inner)?),
        "BOOL" => match inner {
            Json::Bool(b) => AttributeValue::Bool(*b),
            _ => return Err(format!("{what}: BOOL needs true or false, got {inner}")),
        },
        "NULL" => AttributeValue::Null(true),
        "M" => {
            let Json::Object(fields) = inner else {
                return Err(format!("{what}: M needs an object, got {inner}"));
            };
            AttributeValue::M(
                fields
                    .iter()
                    .map(|(k, x)| Ok((k.clone(), typed_to_attr(x, &format!("{what}.{k}"))?)))
                    .collect::<Result<_, String>>()?,
            )
        }
        "L" => AttributeValue::L(
            array(inner)?
                .iter()
                .enumerate()
                .map(|(i, x)| typed_to_attr(x, &format!("{what}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        "SS" => AttributeValue::Ss(array(inner)?.iter().map(string).collect::<Result<_, _>>()?),
        "NS" => AttributeValue::Ns(array(inner)?.iter().map(number).collect::<Result<_, _>>()?),
        "BS" => AttributeValue::Bs(array(inner)?.iter().map(binary).collect::<Result<_, _>>()?),
        other => return Err(format!("{what}: unknown DynamoDB type {other:?}")),
    })
}

/// A decimal as (negative, significant digits without leading/trailing
/// zeros, exponent of the last digit); zero is `(false, "", 0)`.
fn parse_decimal(text: &str) -> Option<(bool, String, i64)> {
    let t = text.trim();
    let (neg, t) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let (mantissa, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], t[i + 1..].parse::<i64>().ok()?),
        None => (t, 0),
    };
    let (int, frac) = match mantissa.find('.') {
        Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
        None => (mantissa, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut digits: String = int.chars().chain(frac.chars()).collect();
    // Checked: the exponent is the input's (`1e-9223372036854775808`).
    let mut exp = exp.checked_sub(i64::try_from(frac.len()).ok()?)?;
    let trimmed = digits.trim_start_matches('0').len();
    digits.drain(..digits.len() - trimmed);
    while digits.ends_with('0') {
        digits.pop();
        exp = exp.checked_add(1)?;
    }
    if digits.is_empty() {
        return Some((false, String::new(), 0));
    }
    Some((neg, digits, exp))
}

/// Whether two decimal texts denote the same number.
pub fn same_decimal(a: &str, b: &str) -> bool {
    match (parse_decimal(a), parse_decimal(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// The order of two decimal texts by value; `None` when either is not a
/// decimal.
pub fn compare_decimal(a: &str, b: &str) -> Option<std::cmp::Ordering> {
    let (an, ad, ae) = parse_decimal(a)?;
    let (bn, bd, be) = parse_decimal(b)?;
    // -1, 0 or 1: zero has no digits and no sign.
    let sign = |neg: bool, digits: &str| match (digits.is_empty(), neg) {
        (true, _) => 0i8,
        (false, true) => -1,
        (false, false) => 1,
    };
    let (sa, sb) = (sign(an, &ad), sign(bn, &bd));
    if sa != sb || sa == 0 {
        return Some(sa.cmp(&sb));
    }
    // Same sign, both non-zero: compare magnitudes, first by the position
    // of the leading digit, then digit by digit (no trailing zeros, so a
    // longer string with an equal prefix is the larger).
    // i128: an exponent near i64's ends plus a length does not overflow.
    let lead_a = ad.len() as i128 + i128::from(ae);
    let lead_b = bd.len() as i128 + i128::from(be);
    let magnitude = lead_a.cmp(&lead_b).then_with(|| ad.cmp(&bd));
    Some(if sa < 0 {
        magnitude.reverse()
    } else {
        magnitude
    })
}

/// A canonical text of a decimal (used to compare keys); the input itself
/// when it is not a decimal.
pub fn canonical_number(text: &str) -> String {
    match parse_decimal(text) {
        Some((_, digits, _)) if digits.is_empty() => "0".into(),
        Some((neg, digits, exp)) => format!("{}{}e{}", if neg { "-" } else { "" }, digits, exp),
        None => text.to_string(),
    }
}

/// Position of the leading digit of DynamoDB's largest magnitude
/// (9.9E+125 has 126 digits before the point).
const MAX_LEAD: i64 = 126;
/// Position of the leading digit of DynamoDB's smallest magnitude (1E-130).
const MIN_LEAD: i64 = -129;

/// A number's text without exponent notation (DynamoDB's form); `None` when
/// the number is outside DynamoDB's range, so that an exponent from the input
/// (`1e999999999`) never sizes the text written.
fn plain_number(text: &str) -> Option<String> {
    if !text.contains(['e', 'E']) {
        return Some(text.to_string());
    }
    // `text` has JSON's number syntax: a decimal that does not parse has an
    // exponent beyond i64 (`0.5e-9223372036854775808`).
    let (neg, digits, exp) = parse_decimal(text)?;
    if digits.is_empty() {
        return Some("0".into());
    }
    let lead = i64::try_from(digits.len()).ok()?.checked_add(exp)?;
    if !(MIN_LEAD..=MAX_LEAD).contains(&lead) {
        return None;
    }
    let sign = if neg { "-" } else { "" };
    // In range: |exp| is below 130 + the digit count, so the casts hold.
    Some(if exp >= 0 {
        format!("{sign}{digits}{}", "0".repeat(exp.unsigned_abs() as usize))
    } else {
        let frac_len = exp.unsigned_abs() as usize;
        if digits.len() > frac_len {
            let (i, f) = digits.split_at(digits.len() - frac_len);
            format!("{sign}{i}.{f}")
        } else {
            format!("{sign}0.{}{digits}", "0".repeat(frac_len - digits.len()))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A `json!` value as the sink reads it.
    fn j(v: Value) -> Json {
        Json::parse(v.to_string().as_bytes()).unwrap()
    }

    fn item() -> HashMap<String, AttributeValue> {
        use AttributeValue as A;
        HashMap::from([
            ("s".to_string(), A::S("héllo".into())),
            ("int".to_string(), A::N("-42".into())),
            ("dec".to_string(), A::N("0.1".into())),
            (
                "big".to_string(),
                A::N("123456789012345678901234567890.5".into()),
            ),
            ("tiny".to_string(), A::N("1E-130".into())),
            ("b".to_string(), A::B(Blob::new(vec![0u8, 1, 255]))),
            ("t".to_string(), A::Bool(true)),
            ("n".to_string(), A::Null(true)),
            (
                "m".to_string(),
                A::M(HashMap::from([(
                    "l".to_string(),
                    A::L(vec![A::S("x".into()), A::N("7".into())]),
                )])),
            ),
            ("ss".to_string(), A::Ss(vec!["a".into(), "b".into()])),
            ("ns".to_string(), A::Ns(vec!["1".into(), "2.5".into()])),
            (
                "bs".to_string(),
                A::Bs(vec![Blob::new(vec![1u8]), Blob::new(vec![2u8])]),
            ),
        ])
    }

    #[test]
    fn natural_json_follows_the_documented_table() {
        let mut v = JsonMapping::default().item_to_value(&item());
        // serde_json's own (fast, not always correctly rounded) float
        // parser reads the text `1E-130` one unit off the nearest double,
        // so `tiny` is compared as the text the mapping writes.
        let text = String::from_utf8(JsonMapping::default().item_to_vec(&item())).unwrap();
        assert!(text.contains(r#""tiny":1E-130"#), "{text}");
        v.as_object_mut().unwrap().remove("tiny");
        assert_eq!(
            v,
            json!({
                "s": "héllo", "int": -42, "dec": 0.1,
                "big": "123456789012345678901234567890.5",
                "b": "AAH/", "t": true, "n": null,
                "m": {"l": ["x", 7]}, "ss": ["a", "b"], "ns": [1, 2.5], "bs": ["AQ==", "Ag=="]
            })
        );
        let lossy = JsonMapping {
            inexact_numbers: InexactNumbers::Float,
            ..Default::default()
        };
        assert_eq!(
            lossy.item_to_value(&item())["big"],
            json!(1.2345678901234568e29)
        );
    }

    #[test]
    fn typed_json_round_trips_every_type() {
        let typed = JsonMapping {
            format: JsonFormat::Typed,
            ..Default::default()
        };
        let v = typed.item_to_value(&item());
        assert_eq!(v["ss"], json!({"SS": ["a", "b"]}));
        assert_eq!(v["b"], json!({"B": "AAH/"}));
        assert_eq!(typed.json_to_item(&j(v), "value").unwrap(), item());
    }

    #[test]
    fn natural_json_writes_back_plain_attributes() {
        let m = JsonMapping::default();
        let got = m
            .json_to_item(
                &Json::parse(br#"{"a": 1e-7, "b": 12e20, "c": [true, null], "d": {"e": "f"}}"#)
                    .unwrap(),
                "value",
            )
            .unwrap();
        assert_eq!(got["a"], AttributeValue::N("0.0000001".into()));
        assert_eq!(got["b"], AttributeValue::N("1200000000000000000000".into()));
        assert_eq!(
            got["c"],
            AttributeValue::L(vec![AttributeValue::Bool(true), AttributeValue::Null(true)])
        );
    }

    #[test]
    fn bad_typed_json_names_the_attribute() {
        let typed = JsonMapping {
            format: JsonFormat::Typed,
            ..Default::default()
        };
        let err = typed
            .json_to_item(&j(json!({"a": {"M": {"b": {"N": "x1"}}}})), "value")
            .unwrap_err();
        assert_eq!(err, "value.a.b: \"x1\" is not a number");
        let err = typed
            .json_to_item(&j(json!({"a": "plain"})), "value")
            .unwrap_err();
        assert!(
            err.starts_with("value.a: typed JSON needs an object"),
            "{err}"
        );
    }

    #[test]
    fn exact_numbers_keep_their_decimal_through_json_and_back() {
        use AttributeValue as A;
        let m = JsonMapping::default();
        let edges = [
            "1E-130",
            "-1E-130",
            "9.9999999999999999999999999999999999999E+125",
            "12345678901234567890123456789012345678",
            "9223372036854775808",
            "-9223372036854775808",
            "-0",
            "0.1",
        ];
        for n in edges {
            let item = HashMap::from([("n".to_string(), A::N(n.into()))]);
            let text = m.item_to_vec(&item);
            let back = m
                .json_to_item(&Json::parse(&text).unwrap(), "value")
                .unwrap();
            match &back["n"] {
                // Exact as a JSON number: the same decimal.
                A::N(got) => assert!(same_decimal(got, n), "{n} came back as {got}"),
                // Inexact: the decimal's text, as a string.
                A::S(got) => assert_eq!(got, n),
                other => panic!("{n} came back as {other:?}"),
            }
        }
        // DynamoDB's smallest magnitude is written as its own text.
        let tiny = HashMap::from([("n".to_string(), A::N("1E-130".into()))]);
        assert_eq!(m.item_to_vec(&tiny), br#"{"n":1E-130}"#);
        // A number with more digits than a double holds is written as given.
        let got = m
            .json_to_item(
                &Json::parse(br#"{"n": 12345678901234567890123456789012345678}"#).unwrap(),
                "value",
            )
            .unwrap();
        assert_eq!(
            got["n"],
            A::N("12345678901234567890123456789012345678".into())
        );
    }

    #[test]
    fn hostile_numbers_are_errors_naming_the_field_not_panics_or_huge_strings() {
        let m = JsonMapping::default();
        // An exponent from the input used to size a string of zeros (a
        // multi-gigabyte allocation or a capacity-overflow panic) or overflow
        // the exponent arithmetic.
        for n in [
            "1e9223372036854775807",
            "1e999999999",
            "1e127",
            "1e-9223372036854775808",
            "0.5e-9223372036854775808",
            "1e-131",
        ] {
            let text = format!(r#"{{"a": {{"b": [1, {n}]}}}}"#);
            let err = m
                .json_to_item(&Json::parse(text.as_bytes()).unwrap(), "value")
                .unwrap_err();
            assert!(
                err.starts_with("value.a.b[1]: the number ")
                    && err.contains("outside DynamoDB's range"),
                "{n}: {err}"
            );
            let err = m
                .json_to_attr(&Json::parse(n.as_bytes()).unwrap(), "key")
                .unwrap_err();
            assert!(err.starts_with("key: the number "), "{n}: {err}");
        }
        // The ends of the range are kept.
        let got = m
            .json_to_item(
                &Json::parse(br#"{"a": 1e125, "b": 1e-130, "z": 0e999999999999}"#).unwrap(),
                "value",
            )
            .unwrap();
        assert_eq!(got["a"], AttributeValue::N(format!("1{}", "0".repeat(125))));
        assert_eq!(
            got["b"],
            AttributeValue::N(format!("0.{}1", "0".repeat(129)))
        );
        assert_eq!(got["z"], AttributeValue::N("0".into()));
        // A long number's error shows only its start.
        let long = format!("1{}e999", "2".repeat(100));
        let err = m
            .json_to_attr(&Json::parse(long.as_bytes()).unwrap(), "v")
            .unwrap_err();
        assert!(err.len() < 200, "{err}");
        // Comparing and canonicalising exponents at i64's ends.
        assert_eq!(
            compare_decimal("1e9223372036854775807", "1"),
            Some(std::cmp::Ordering::Greater)
        );
        assert_eq!(
            compare_decimal("1e-9223372036854775808", "1"),
            Some(std::cmp::Ordering::Less)
        );
        assert_eq!(compare_decimal("1.5e-9223372036854775808", "1"), None);
        assert!(!same_decimal("1.5e-9223372036854775808", "0"));
        assert_eq!(
            canonical_number("10e9223372036854775807"),
            "10e9223372036854775807"
        );
    }

    #[test]
    fn every_attribute_type_nested_and_empty_survives_the_source_mapping() {
        use AttributeValue as A;
        // Shapes a stream record can carry: empty strings, binary and sets,
        // numbers at and past a double's range, deep nesting.
        let mut deep = A::S("bottom".into());
        // DynamoDB's deepest: 32 levels (typed JSON doubles them).
        for _ in 0..16 {
            deep = A::M(HashMap::from([("m".to_string(), A::L(vec![deep]))]));
        }
        let item = HashMap::from([
            ("s".to_string(), A::S(String::new())),
            ("b".to_string(), A::B(Blob::new(Vec::new()))),
            ("ss".to_string(), A::Ss(Vec::new())),
            (
                "ns".to_string(),
                A::Ns(vec!["1e-9223372036854775808".into(), "x".into(), "".into()]),
            ),
            ("bs".to_string(), A::Bs(vec![Blob::new(vec![0xff; 3])])),
            ("n".to_string(), A::N("1e400".into())),
            ("nan".to_string(), A::N("NaN".into())),
            ("deep".to_string(), deep),
        ]);
        for mapping in [
            JsonMapping::default(),
            JsonMapping {
                format: JsonFormat::Typed,
                ..Default::default()
            },
            JsonMapping {
                inexact_numbers: InexactNumbers::Float,
                ..Default::default()
            },
        ] {
            let text = mapping.item_to_vec(&item);
            let v: Value = serde_json::from_slice(&text).unwrap();
            assert!(v.is_object(), "{v}");
            // And back, where the sink reads it.
            let back = Json::parse(&text).unwrap();
            match mapping.json_to_item(&back, "value") {
                Ok(again) => assert_eq!(again.len(), item.len()),
                // Typed JSON keeps the text of `NaN` and of the set's `x`,
                // which no sink can write as a number.
                Err(e) => {
                    assert_eq!(mapping.format, JsonFormat::Typed, "{e}");
                    assert!(
                        e.ends_with("is not a number")
                            && (e.starts_with("value.ns: ") || e.starts_with("value.nan: ")),
                        "{e}"
                    );
                }
            }
        }
    }

    #[test]
    fn decimals_compare_by_value() {
        assert!(same_decimal("1.50", "1.5"));
        assert!(same_decimal("100", "1E2"));
        assert!(same_decimal("-0.000", "0"));
        assert!(!same_decimal("0.1", "0.10000000000000001"));
        assert_eq!(canonical_number("1.0"), canonical_number("1"));
    }

    #[test]
    fn decimals_order_by_value() {
        use std::cmp::Ordering::*;
        let cases = [
            ("10", "9", Greater),
            ("9.5", "10", Less),
            ("1E2", "100.0", Equal),
            ("-3", "-20", Greater),
            ("-0", "0", Equal),
            ("0", "-1E-130", Greater),
            ("1E-130", "0", Greater),
            ("0.11", "0.101", Greater),
            (
                "9.9999999999999999999999999999999999999E+125",
                "1E125",
                Greater,
            ),
            (
                "12345678901234567890123456789012345678",
                "12345678901234567890123456789012345679",
                Less,
            ),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare_decimal(a, b), Some(want), "{a} vs {b}");
            assert_eq!(compare_decimal(b, a), Some(want.reverse()), "{b} vs {a}");
        }
        assert_eq!(compare_decimal("x", "1"), None);
    }
}
