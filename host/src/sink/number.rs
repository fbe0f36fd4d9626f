//! JSON numbers read leniently for typed columns, shared by the
//! SQL-table sinks' [`typed`](super) conversion and the ScyllaDB converter:
//! plugins often emit `42.0` for an integer or numbers as strings, and both
//! converters must accept exactly the same spellings.

use serde_json::Value;

/// An integer from a JSON integer, an integral float (`42.0`) or a string
/// of digits; `None` for anything else. Floats beyond ±1.8e19 are refused
/// rather than rounded into a wrong integer.
pub fn integer(v: &Value) -> Option<i128> {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(i128::from(i))
            } else if let Some(u) = n.as_u64() {
                Some(i128::from(u))
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                (f.fract() == 0.0 && f.abs() < 1.8e19).then_some(f as i128)
            }
        }
        Value::String(s) => s.trim().parse::<i128>().ok(),
        _ => None,
    }
}

/// A float from a JSON number or a string: a finite number, or `NaN`,
/// `Infinity`, `-Infinity` spelled out (JSON has no literal for them).
pub fn float(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.trim() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            t => t.parse::<f64>().ok().filter(|f| f.is_finite()),
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integers_accept_integral_floats_and_digit_strings_only() {
        assert_eq!(integer(&json!(-7)), Some(-7));
        assert_eq!(integer(&json!(u64::MAX)), Some(i128::from(u64::MAX)));
        assert_eq!(integer(&json!(42.0)), Some(42));
        assert_eq!(integer(&json!(" 12 ")), Some(12));
        assert_eq!(integer(&json!(1.5)), None);
        assert_eq!(integer(&json!(1e20)), None);
        assert_eq!(integer(&json!("12a")), None);
        assert_eq!(integer(&json!(true)), None);
    }

    #[test]
    fn floats_accept_numbers_and_spelled_out_specials() {
        assert_eq!(float(&json!(1.5)), Some(1.5));
        assert_eq!(float(&json!("2.25")), Some(2.25));
        assert_eq!(float(&json!("Infinity")), Some(f64::INFINITY));
        assert!(float(&json!("NaN")).is_some_and(f64::is_nan));
        assert_eq!(float(&json!("inf")), None);
        assert_eq!(float(&json!("1e999")), None);
        assert_eq!(float(&json!(null)), None);
    }
}
