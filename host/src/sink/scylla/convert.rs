//! JSON → CQL value conversion, one function per target type, with range
//! checks. Every error says what was expected and what was found; the
//! mapping adds the column name.

use std::net::IpAddr;

use base64::Engine as _;
use scylla::value::{CqlDate, CqlDecimal, CqlTime, CqlTimestamp, CqlTimeuuid, CqlValue, CqlVarint};
use serde_json::Value;

use super::cql_type::CqlType;

/// Why a JSON value cannot become a value of a CQL type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected}, got {value}: {reason}")]
pub struct ConvertError {
    /// The CQL type that was wanted.
    pub expected: String,
    /// The offending JSON value (shortened when long).
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

fn fail(ty: &CqlType, v: &Value, reason: impl Into<String>) -> ConvertError {
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
        expected: ty.to_string(),
        value,
        reason: reason.into(),
    }
}

/// Convert a non-null JSON value to a CQL value of type `ty`.
///
/// Callers handle JSON `null` themselves (unset or null, per config);
/// here `null` is an error (a collection cannot hold nulls).
pub fn json_to_cql(ty: &CqlType, v: &Value) -> Result<CqlValue, ConvertError> {
    if v.is_null() {
        return Err(fail(ty, v, "null is not allowed here"));
    }
    Ok(match ty {
        CqlType::Text => CqlValue::Text(match v {
            Value::String(s) => s.clone(),
            Value::Number(_) | Value::Bool(_) | Value::Array(_) | Value::Object(_) => v.to_string(),
            Value::Null => String::new(),
        }),
        CqlType::Ascii => {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Number(_) | Value::Bool(_) => v.to_string(),
                _ => return Err(fail(ty, v, "not a string")),
            };
            if let Some(c) = s.chars().find(|c| !c.is_ascii()) {
                return Err(fail(ty, v, format!("non-ASCII character {c:?}")));
            }
            CqlValue::Ascii(s)
        }
        CqlType::TinyInt => {
            let n = integer(ty, v)?;
            CqlValue::TinyInt(i8::try_from(n).map_err(|_| out_of_range(ty, v, "-128..=127"))?)
        }
        CqlType::SmallInt => {
            let n = integer(ty, v)?;
            CqlValue::SmallInt(i16::try_from(n).map_err(|_| out_of_range(ty, v, "-32768..=32767"))?)
        }
        CqlType::Int => {
            let n = integer(ty, v)?;
            CqlValue::Int(
                i32::try_from(n).map_err(|_| out_of_range(ty, v, "-2147483648..=2147483647"))?,
            )
        }
        CqlType::BigInt => {
            let n = integer(ty, v)?;
            CqlValue::BigInt(
                i64::try_from(n).map_err(|_| {
                    out_of_range(ty, v, "-9223372036854775808..=9223372036854775807")
                })?,
            )
        }
        CqlType::Varint => {
            let digits = match v {
                Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
                Value::String(s) => s.trim().to_string(),
                Value::Number(_) => return Err(fail(ty, v, "not an integer")),
                _ => return Err(fail(ty, v, "not an integer")),
            };
            let (neg, mag) = split_sign(&digits);
            if mag.is_empty() || !mag.bytes().all(|b| b.is_ascii_digit()) {
                return Err(fail(ty, v, "not an integer"));
            }
            if mag.len() > MAX_DIGITS {
                return Err(fail(ty, v, too_many_digits(mag.len())));
            }
            CqlValue::Varint(CqlVarint::from_signed_bytes_be(twos_complement(neg, mag)))
        }
        CqlType::Float => {
            let d = float(ty, v)?;
            if d.is_finite() && d.abs() > f64::from(f32::MAX) {
                return Err(out_of_range(ty, v, "±3.4028235e38"));
            }
            CqlValue::Float(d as f32)
        }
        CqlType::Double => CqlValue::Double(float(ty, v)?),
        CqlType::Decimal => {
            let text = match v {
                Value::Number(n) => n.to_string(),
                Value::String(s) => s.trim().to_string(),
                _ => return Err(fail(ty, v, "not a number")),
            };
            if text.len() > MAX_DIGITS + 32 {
                return Err(fail(ty, v, too_many_digits(text.len())));
            }
            let (unscaled, scale) =
                parse_decimal(&text).ok_or_else(|| fail(ty, v, "not a decimal number"))?;
            CqlValue::Decimal(CqlDecimal::from_signed_be_bytes_and_exponent(
                unscaled, scale,
            ))
        }
        CqlType::Boolean => CqlValue::Boolean(match v {
            Value::Bool(b) => *b,
            Value::String(s) if s.eq_ignore_ascii_case("true") => true,
            Value::String(s) if s.eq_ignore_ascii_case("false") => false,
            _ => return Err(fail(ty, v, "not a boolean")),
        }),
        CqlType::Timestamp => CqlValue::Timestamp(CqlTimestamp(timestamp_ms(ty, v)?)),
        CqlType::Date => {
            let days = match v {
                Value::String(s) if s.trim().len() == 10 => {
                    parse_date(s.trim()).ok_or_else(|| fail(ty, v, "not a date (YYYY-MM-DD)"))?
                }
                _ => timestamp_ms(ty, v)?.div_euclid(86_400_000),
            };
            let shifted = days + (1_i64 << 31);
            let raw = u32::try_from(shifted).map_err(|_| out_of_range(ty, v, "a CQL date"))?;
            CqlValue::Date(CqlDate(raw))
        }
        CqlType::Time => {
            let nanos = match v {
                Value::Number(_) => integer(ty, v)?,
                Value::String(s) => i128::from(
                    parse_time(s.trim())
                        .ok_or_else(|| fail(ty, v, "not a time (HH:MM:SS[.fffffffff])"))?,
                ),
                _ => return Err(fail(ty, v, "not a time")),
            };
            if !(0..86_400_000_000_000).contains(&nanos) {
                return Err(out_of_range(
                    ty,
                    v,
                    "0..86400000000000 nanoseconds since midnight",
                ));
            }
            CqlValue::Time(CqlTime(nanos as i64))
        }
        CqlType::Uuid => {
            let bytes = uuid_bytes(ty, v)?;
            CqlValue::Uuid(CqlTimeuuid::from_bytes(bytes).into())
        }
        CqlType::Timeuuid => {
            let bytes = uuid_bytes(ty, v)?;
            if bytes[6] >> 4 != 1 {
                return Err(fail(ty, v, "not a version-1 (time-based) UUID"));
            }
            CqlValue::Timeuuid(CqlTimeuuid::from_bytes(bytes))
        }
        CqlType::Inet => {
            let Value::String(s) = v else {
                return Err(fail(ty, v, "not a string"));
            };
            CqlValue::Inet(
                s.trim()
                    .parse::<IpAddr>()
                    .map_err(|_| fail(ty, v, "not an IPv4 or IPv6 address"))?,
            )
        }
        CqlType::Blob => {
            let Value::String(s) = v else {
                return Err(fail(ty, v, "not a base64 string"));
            };
            let engine = base64::engine::general_purpose::STANDARD;
            let url = base64::engine::general_purpose::URL_SAFE;
            CqlValue::Blob(
                engine
                    .decode(s.trim())
                    .or_else(|_| url.decode(s.trim()))
                    .map_err(|e| fail(ty, v, format!("not base64: {e}")))?,
            )
        }
        CqlType::List(inner) | CqlType::Set(inner) => {
            let Value::Array(items) = v else {
                return Err(fail(ty, v, "not a JSON array"));
            };
            let items = items
                .iter()
                .map(|item| json_to_cql(inner, item).map_err(|e| nest(ty, v, e)))
                .collect::<Result<Vec<_>, _>>()?;
            if matches!(ty, CqlType::List(_)) {
                CqlValue::List(items)
            } else {
                CqlValue::Set(items)
            }
        }
        CqlType::Map(kt, vt) => {
            let Value::Object(entries) = v else {
                return Err(fail(ty, v, "not a JSON object"));
            };
            let mut out = Vec::with_capacity(entries.len());
            for (k, val) in entries {
                let key = json_to_cql(kt, &Value::String(k.clone())).map_err(|e| nest(ty, v, e))?;
                let value = json_to_cql(vt, val).map_err(|e| nest(ty, v, e))?;
                out.push((key, value));
            }
            CqlValue::Map(out)
        }
    })
}

fn nest(ty: &CqlType, v: &Value, inner: ConvertError) -> ConvertError {
    fail(ty, v, format!("element: {inner}"))
}

fn out_of_range(ty: &CqlType, v: &Value, range: &str) -> ConvertError {
    fail(ty, v, format!("out of range ({range})"))
}

/// An integer as [`number::integer`](crate::sink::number::integer) reads it.
fn integer(ty: &CqlType, v: &Value) -> Result<i128, ConvertError> {
    crate::sink::number::integer(v).ok_or_else(|| fail(ty, v, "not an integer"))
}

/// A float as [`number::float`](crate::sink::number::float) reads it.
fn float(ty: &CqlType, v: &Value) -> Result<f64, ConvertError> {
    crate::sink::number::float(v).ok_or_else(|| fail(ty, v, "not a number"))
}

/// Milliseconds since the epoch from an integer (epoch ms) or an ISO-8601 string.
pub fn timestamp_ms(ty: &CqlType, v: &Value) -> Result<i64, ConvertError> {
    match v {
        Value::Number(_) => {
            let n = integer(ty, v)?;
            i64::try_from(n).map_err(|_| out_of_range(ty, v, "64-bit milliseconds"))
        }
        Value::String(s) => {
            let t = s.trim();
            if !t.is_empty()
                && t.bytes().all(|b| b.is_ascii_digit() || b == b'-')
                && let Ok(n) = t.parse::<i64>()
            {
                return Ok(n);
            }
            parse_iso8601_ms(t).ok_or_else(|| {
                fail(
                    ty,
                    v,
                    "not epoch milliseconds or an ISO-8601 date-time (2024-05-01T12:00:00Z)",
                )
            })
        }
        _ => Err(fail(ty, v, "not epoch milliseconds or an ISO-8601 string")),
    }
}

fn split_sign(s: &str) -> (bool, &str) {
    if let Some(rest) = s.strip_prefix('-') {
        (true, rest)
    } else if let Some(rest) = s.strip_prefix('+') {
        (false, rest)
    } else {
        (false, s)
    }
}

/// Most decimal digits of a `varint` or `decimal` written. The conversion
/// to binary is quadratic in the digit count: without a cap a plugin's
/// output of a few megabytes of digits would hold the sink for hours.
/// 4096 digits (a 1.7 KB integer) is far past any real value.
const MAX_DIGITS: usize = 4096;

fn too_many_digits(n: usize) -> String {
    format!("{n} digits, more than the {MAX_DIGITS} written")
}

/// Big-endian two's complement bytes of a signed decimal integer, minimal length.
fn twos_complement(negative: bool, digits: &str) -> Vec<u8> {
    // Magnitude as big-endian bytes (schoolbook base-256 accumulation).
    let mut mag: Vec<u8> = vec![0];
    for d in digits.bytes() {
        let mut carry = u32::from(d - b'0');
        for byte in mag.iter_mut().rev() {
            let x = u32::from(*byte) * 10 + carry;
            *byte = (x & 0xff) as u8;
            carry = x >> 8;
        }
        while carry > 0 {
            mag.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    let is_zero = mag.iter().all(|&b| b == 0);
    if negative && !is_zero {
        // Two's complement: invert and add one.
        for b in mag.iter_mut() {
            *b = !*b;
        }
        for b in mag.iter_mut().rev() {
            let (v, overflow) = b.overflowing_add(1);
            *b = v;
            if !overflow {
                break;
            }
        }
        if mag[0] & 0x80 == 0 {
            mag.insert(0, 0xff);
        }
    } else if mag[0] & 0x80 != 0 {
        mag.insert(0, 0);
    }
    // Strip redundant sign bytes.
    while mag.len() > 1
        && ((mag[0] == 0 && mag[1] & 0x80 == 0) || (mag[0] == 0xff && mag[1] & 0x80 != 0))
    {
        mag.remove(0);
    }
    mag
}

/// `-12.340e2` → (unscaled two's complement bytes of -1234, scale 0).
fn parse_decimal(text: &str) -> Option<(Vec<u8>, i32)> {
    let (neg, rest) = split_sign(text);
    let (mantissa, exp) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i32>().ok()?),
        None => (rest, 0),
    };
    let (int_part, frac_part) = match mantissa.find('.') {
        Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
        None => (mantissa, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part
        .bytes()
        .chain(frac_part.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let digits = format!("{int_part}{frac_part}");
    let scale = i32::try_from(frac_part.len()).ok()?.checked_sub(exp)?;
    Some((twos_complement(neg, &digits), scale))
}

fn num<T: std::str::FromStr>(s: &str, len: usize) -> Option<T> {
    if s.len() == len && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

/// `YYYY-MM-DD` → days since the epoch.
fn parse_date(s: &str) -> Option<i64> {
    let y: i32 = num(s.get(0..4)?, 4)?;
    let m: u32 = num(s.get(5..7)?, 2)?;
    let d: u32 = num(s.get(8..10)?, 2)?;
    if s.len() != 10 || &s[4..5] != "-" || &s[7..8] != "-" {
        return None;
    }
    crate::calendar::days_since_epoch(y, m, d)
}

/// `HH:MM[:SS[.fffffffff]]` → nanoseconds since midnight.
fn parse_time(s: &str) -> Option<i64> {
    let h: i64 = num(s.get(0..2)?, 2)?;
    if s.get(2..3)? != ":" {
        return None;
    }
    let m: i64 = num(s.get(3..5)?, 2)?;
    let (sec, nanos) = if s.len() == 5 {
        (0, 0)
    } else {
        if s.get(5..6)? != ":" {
            return None;
        }
        let sec: i64 = num(s.get(6..8)?, 2)?;
        let nanos = match s.get(8..) {
            None | Some("") => 0,
            Some(frac) => {
                let digits = frac.strip_prefix('.')?;
                if digits.is_empty() || digits.len() > 9 {
                    return None;
                }
                let n: i64 = num(digits, digits.len())?;
                n * 10_i64.pow(9 - digits.len() as u32)
            }
        };
        (sec, nanos)
    };
    if h > 23 || m > 59 || sec > 59 {
        return None;
    }
    Some(((h * 60 + m) * 60 + sec) * 1_000_000_000 + nanos)
}

/// ISO-8601 `YYYY-MM-DD[(T| )HH:MM[:SS[.fff]]][Z|±HH[:]MM]` → epoch ms.
/// A date-time without zone is taken as UTC.
pub fn parse_iso8601_ms(s: &str) -> Option<i64> {
    let days = parse_date(s.get(0..10)?)?;
    let rest = &s[10..];
    if rest.is_empty() {
        return Some(days * 86_400_000);
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    // Split the zone off.
    let (clock, offset_min) = if let Some(c) = rest.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else if let Some(i) = rest.rfind(['+', '-']) {
        let (c, zone) = rest.split_at(i);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let z = zone[1..].replace(':', "");
        let hh: i64 = num(z.get(0..2)?, 2)?;
        let mm: i64 = if z.len() == 2 {
            0
        } else {
            num(z.get(2..)?, 2)?
        };
        if hh > 23 || mm > 59 {
            return None;
        }
        (c, sign * (hh * 60 + mm))
    } else {
        (rest, 0)
    };
    let nanos = parse_time(clock)?;
    Some(days * 86_400_000 + nanos / 1_000_000 - offset_min * 60_000)
}

fn uuid_bytes(ty: &CqlType, v: &Value) -> Result<[u8; 16], ConvertError> {
    let Value::String(s) = v else {
        return Err(fail(ty, v, "not a string"));
    };
    let t = s.trim();
    let hex: String = if t.len() == 36 {
        let b = t.as_bytes();
        if b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
            return Err(fail(ty, v, "not a UUID (8-4-4-4-12 hex digits)"));
        }
        t.chars().filter(|&c| c != '-').collect()
    } else {
        t.to_string()
    };
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(fail(ty, v, "not a UUID (8-4-4-4-12 hex digits)"));
    }
    let mut out = [0_u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| fail(ty, v, "not a UUID"))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn conv(ty: &str, v: Value) -> Result<CqlValue, ConvertError> {
        json_to_cql(&CqlType::parse(ty).unwrap(), &v)
    }

    #[test]
    fn integers_are_range_checked() {
        assert_eq!(
            conv("tinyint", json!(-128)).unwrap(),
            CqlValue::TinyInt(-128)
        );
        assert_eq!(
            conv("smallint", json!("300")).unwrap(),
            CqlValue::SmallInt(300)
        );
        assert_eq!(conv("int", json!(7.0)).unwrap(), CqlValue::Int(7));
        let e = conv("tinyint", json!(128)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "expected tinyint, got 128: out of range (-128..=127)"
        );
        let e = conv("int", json!(1.5)).unwrap_err();
        assert_eq!(e.to_string(), "expected int, got 1.5: not an integer");
        assert!(conv("bigint", json!(u64::MAX)).is_err());
    }

    #[test]
    fn huge_varints_and_decimals_are_refused_not_converted_for_hours() {
        let huge = "7".repeat(1_000_000);
        for (ty, v) in [
            ("varint", json!(huge.clone())),
            ("varint", json!(format!("-{huge}"))),
            ("decimal", json!(format!("{huge}.5"))),
        ] {
            let err = conv(ty, v).unwrap_err();
            assert!(
                err.reason.contains("digits, more than the 4096 written"),
                "{err}"
            );
            assert!(err.value.len() < 200, "the value is shortened: {err}");
        }
        let most = "9".repeat(MAX_DIGITS);
        assert!(conv("varint", json!(most.clone())).is_ok());
        assert!(conv("decimal", json!(format!("{most}e-3"))).is_ok());
    }

    #[test]
    fn varint_and_decimal_encode_twos_complement() {
        assert_eq!(twos_complement(false, "0"), vec![0]);
        assert_eq!(twos_complement(false, "128"), vec![0, 128]);
        assert_eq!(twos_complement(true, "1"), vec![0xff]);
        assert_eq!(twos_complement(true, "128"), vec![0x80]);
        assert_eq!(twos_complement(true, "129"), vec![0xff, 0x7f]);
        assert_eq!(
            twos_complement(false, "18446744073709551616"),
            vec![1, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            parse_decimal("-12.340e2"),
            Some((twos_complement(true, "12340"), 1))
        );
        assert_eq!(parse_decimal("0.001"), Some((vec![1], 3)));
        assert_eq!(parse_decimal("abc"), None);
    }

    #[test]
    fn dates_times_and_timestamps() {
        assert_eq!(parse_iso8601_ms("1970-01-02"), Some(86_400_000));
        assert_eq!(
            parse_iso8601_ms("2024-05-01T12:00:00.250Z"),
            Some(1_714_564_800_250)
        );
        assert_eq!(
            parse_iso8601_ms("2024-05-01T14:00:00+02:00"),
            Some(1_714_564_800_000)
        );
        assert_eq!(parse_iso8601_ms("2024-02-30"), None);
        assert_eq!(
            conv("date", json!("1970-01-01")).unwrap(),
            CqlValue::Date(CqlDate(1 << 31))
        );
        // Epoch milliseconds truncate to their UTC day.
        assert_eq!(
            conv("date", json!(86_400_000 + 5)).unwrap(),
            CqlValue::Date(CqlDate((1 << 31) + 1))
        );
        assert_eq!(
            conv("time", json!("01:02:03.5")).unwrap(),
            CqlValue::Time(CqlTime(3_723_500_000_000))
        );
        assert!(conv("time", json!("24:00:00")).is_err());
    }

    #[test]
    fn uuids_inets_blobs_and_collections() {
        assert!(conv("timeuuid", json!("123e4567-e89b-42d3-a456-426614174000")).is_err());
        assert!(conv("timeuuid", json!("123e4567-e89b-12d3-a456-426614174000")).is_ok());
        assert!(conv("uuid", json!("not-a-uuid")).is_err());
        assert_eq!(
            conv("inet", json!("::1")).unwrap(),
            CqlValue::Inet("::1".parse().unwrap())
        );
        assert_eq!(
            conv("blob", json!("AAEC")).unwrap(),
            CqlValue::Blob(vec![0, 1, 2])
        );
        assert_eq!(
            conv("map<int, boolean>", json!({"1": true})).unwrap(),
            CqlValue::Map(vec![(CqlValue::Int(1), CqlValue::Boolean(true))])
        );
        let e = conv("list<int>", json!([1, "x"])).unwrap_err();
        assert!(e.reason.contains("expected int, got \"x\""), "{e}");
        assert!(conv("set<text>", json!([null])).is_err());
    }
}
