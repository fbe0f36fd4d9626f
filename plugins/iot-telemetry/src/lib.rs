//! IoT telemetry transform (the `examples/iot-telemetry` pipeline).
//!
//! Reads sensor readings such as
//! `{"deviceId": "sensor-042", "timestamp": "2024-05-01T12:00:00Z",
//!   "temperature": 98.6, "unit": "F", "humidity": 41.2, "battery": 3.71}`
//! and
//! - validates them (device id, time, temperature and humidity ranges):
//!   a bad reading fails with the reason and goes to the dead-letter sink;
//! - converts the temperature to degrees Celsius (from `C`, `F` or `K`);
//! - normalises the time to epoch milliseconds and derives `reading_date`
//!   (`YYYY-MM-DD`, UTC), the second part of the table's partition key;
//! - emits one reading for the default route (the ScyllaDB table) and, when
//!   the temperature is above `alert_threshold_c`, an alert routed to
//!   `alert_route` (the Redis sink) with a TTL.
//!
//! Config (all optional):
//! - `default_unit` = `C` | `F` | `K`: unit of readings without `unit` (`C`).
//! - `alert_threshold_c`: alert above this temperature in °C (`40`).
//! - `alert_route`: route of alerts (`alerts`); `alerts = false` turns them off.
//! - `alert_ttl_seconds`: how long an alert lives at the sink (`3600`).
//! - `max_temperature_c` / `min_temperature_c`: plausible sensor range
//!   (`150` / `-90`); readings outside it fail.

use weir_sdk::serde_json::{Map, Value, json};
use weir_sdk::{Config, Event, Outcome, Output, Transform};

/// Temperature unit of a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Degrees Celsius.
    Celsius,
    /// Degrees Fahrenheit.
    Fahrenheit,
    /// Kelvin.
    Kelvin,
}

impl Unit {
    /// Parse `C`, `F`, `K` (or the full names), case-insensitively.
    pub fn parse(text: &str) -> Option<Unit> {
        match text.trim().to_ascii_lowercase().as_str() {
            "c" | "celsius" | "°c" => Some(Unit::Celsius),
            "f" | "fahrenheit" | "°f" => Some(Unit::Fahrenheit),
            "k" | "kelvin" => Some(Unit::Kelvin),
            _ => None,
        }
    }

    /// Convert a temperature in this unit to °C.
    pub fn to_celsius(self, t: f64) -> f64 {
        match self {
            Unit::Celsius => t,
            Unit::Fahrenheit => (t - 32.0) * 5.0 / 9.0,
            Unit::Kelvin => t - 273.15,
        }
    }
}

/// The transform.
#[derive(Debug)]
pub struct IotTelemetry {
    default_unit: Unit,
    alert_threshold_c: f64,
    alert_route: Option<String>,
    alert_ttl_seconds: u32,
    min_c: f64,
    max_c: f64,
}

impl Transform for IotTelemetry {
    fn init(config: &Config) -> Result<Self, String> {
        config.deny_unknown(
            &[
                "default_unit",
                "alert_threshold_c",
                "alert_route",
                "alerts",
                "alert_ttl_seconds",
                "min_temperature_c",
                "max_temperature_c",
            ],
            &[],
        )?;
        let unit_text = config.get_or("default_unit", String::from("C"))?;
        let default_unit = Unit::parse(&unit_text).ok_or_else(|| {
            format!("config `default_unit`: expected C, F or K, got {unit_text:?}")
        })?;
        let alerts = config.bool("alerts", true)?;
        let plugin = IotTelemetry {
            default_unit,
            alert_threshold_c: config.get_or("alert_threshold_c", 40.0)?,
            alert_route: alerts
                .then(|| config.get_or("alert_route", String::from("alerts")))
                .transpose()?,
            alert_ttl_seconds: config.get_or("alert_ttl_seconds", 3600)?,
            min_c: config.get_or("min_temperature_c", -90.0)?,
            max_c: config.get_or("max_temperature_c", 150.0)?,
        };
        if plugin.min_c >= plugin.max_c {
            return Err("config: `min_temperature_c` must be below `max_temperature_c`".into());
        }
        Ok(plugin)
    }

    fn process(&mut self, event: &Event<'_>) -> Outcome {
        match self.reading(event) {
            Ok(outputs) => Outcome::emit_all(outputs),
            Err(reason) => Outcome::fail(reason),
        }
    }
}

weir_sdk::export!(IotTelemetry);

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl IotTelemetry {
    /// Validate and convert one reading into its outputs.
    pub fn reading(&self, event: &Event<'_>) -> Result<Vec<Output>, String> {
        let value = event.json().map_err(|e| e.to_string())?;
        let Value::Object(obj) = value else {
            return Err("reading is not a JSON object".into());
        };
        let device = match obj.get("deviceId") {
            Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 128 => {
                s.trim().to_string()
            }
            Some(other) => {
                return Err(format!(
                    "deviceId must be a non-empty string of at most 128 characters, got {other}"
                ));
            }
            None => return Err("deviceId is missing".into()),
        };
        let ts = match obj.get("timestamp") {
            Some(Value::Number(n)) => n
                .as_i64()
                .filter(|ms| *ms >= 0)
                .ok_or_else(|| format!("timestamp must be epoch milliseconds, got {n}"))?,
            Some(Value::String(s)) => parse_iso8601_ms(s.trim())
                .ok_or_else(|| format!("timestamp {s:?} is not an ISO-8601 date-time"))?,
            Some(other) => {
                return Err(format!(
                    "timestamp must be epoch ms or ISO-8601, got {other}"
                ));
            }
            None => return Err("timestamp is missing".into()),
        };
        let unit = match obj.get("unit") {
            None | Some(Value::Null) => self.default_unit,
            Some(Value::String(u)) => {
                Unit::parse(u).ok_or_else(|| format!("unit must be C, F or K, got {u:?}"))?
            }
            Some(other) => return Err(format!("unit must be C, F or K, got {other}")),
        };
        let raw = match obj.get("temperature") {
            Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
            Some(other) => return Err(format!("temperature must be a number, got {other}")),
            None => return Err("temperature is missing".into()),
        };
        let celsius = unit.to_celsius(raw);
        if !(self.min_c..=self.max_c).contains(&celsius) {
            return Err(format!(
                "temperature {raw} {} = {:.2} °C is outside the plausible range {}..{} °C",
                match unit {
                    Unit::Celsius => "°C",
                    Unit::Fahrenheit => "°F",
                    Unit::Kelvin => "K",
                },
                celsius,
                self.min_c,
                self.max_c
            ));
        }
        let celsius = round2(celsius);
        let mut reading = Map::new();
        reading.insert("deviceId".into(), json!(device));
        reading.insert("reading_date".into(), json!(date_of(ts)));
        reading.insert("timestamp".into(), json!(ts));
        reading.insert("temperature_c".into(), json!(celsius));
        match obj.get("humidity") {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) if (0.0..=100.0).contains(&n.as_f64().unwrap_or(-1.0)) => {
                reading.insert("humidity".into(), Value::Number(n.clone()));
            }
            Some(other) => {
                return Err(format!("humidity must be a number in 0..=100, got {other}"));
            }
        }
        match obj.get("battery") {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) => {
                reading.insert("battery_v".into(), Value::Number(n.clone()));
            }
            Some(other) => return Err(format!("battery must be a number (volts), got {other}")),
        }
        let reading = Value::Object(reading);
        let mut outputs = vec![Output::json(&reading).key(device.as_bytes())];
        if let Some(route) = &self.alert_route
            && celsius > self.alert_threshold_c
        {
            let alert = json!({
                "deviceId": device,
                "timestamp": ts,
                "temperature_c": celsius,
                "threshold_c": self.alert_threshold_c,
            });
            outputs.push(
                Output::json(&alert)
                    .key(device.as_bytes())
                    .route(route.clone())
                    .ttl(self.alert_ttl_seconds),
            );
        }
        Ok(outputs)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD` of an epoch-millisecond instant, in UTC.
pub fn date_of(ms: i64) -> String {
    let z = ms.div_euclid(86_400_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn digits(s: &str) -> Option<i64> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fff][Z|±HH:MM]` (no zone = UTC) → epoch ms.
pub fn parse_iso8601_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (digits(&s[0..4])?, digits(&s[5..7])?, digits(&s[8..10])?);
    let (h, mi, sec) = (
        digits(&s[11..13])?,
        digits(&s[14..16])?,
        digits(&s[17..19])?,
    );
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo) || d < 1 || d > month_days[(mo - 1) as usize] {
        return None;
    }
    if h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let mut rest = &s[19..];
    let mut millis = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        let ms_digits = &frac[..n.min(3)];
        millis = digits(ms_digits)? * 10_i64.pow(3 - ms_digits.len() as u32);
        rest = &frac[n..];
    }
    let offset_min = match rest {
        "" | "Z" | "z" => 0,
        zone => {
            let sign = match zone.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let z = zone[1..].replace(':', "");
            if z.len() != 4 {
                return None;
            }
            let (zh, zm) = (digits(&z[0..2])?, digits(&z[2..4])?);
            if zh > 23 || zm > 59 {
                return None;
            }
            sign * (zh * 60 + zm)
        }
    };
    let days = days_from_civil(y, mo, d);
    Some(((days * 24 + h) * 60 + mi) * 60_000 + sec * 1000 + millis - offset_min * 60_000)
}

#[cfg(test)]
mod tests {
    use weir_sdk::serde_json::json;
    use weir_sdk::testing::{self, Harness, OwnedOutcome};

    use super::*;

    fn harness() -> Harness<IotTelemetry> {
        Harness::new([("alert_threshold_c", "40")]).unwrap()
    }

    #[test]
    fn a_reading_is_converted_and_dated() {
        let mut h = harness();
        let out = h.run_json([json!({
            "deviceId": "sensor-042", "timestamp": "2024-05-01T23:30:00-02:00",
            "temperature": 98.6, "unit": "F", "humidity": 41.2, "battery": 3.71
        })]);
        assert_eq!(
            testing::emitted_json(&out[0]),
            json!({
                "deviceId": "sensor-042",
                // 23:30 at UTC-2 is 01:30 UTC the next day.
                "reading_date": "2024-05-02",
                "timestamp": 1_714_613_400_000_i64,
                "temperature_c": 37.0,
                "humidity": 41.2,
                "battery_v": 3.71
            })
        );
        let outputs = testing::outputs(&out[0]);
        assert_eq!(outputs[0].key.as_deref(), Some(&b"sensor-042"[..]));
        assert_eq!(outputs[0].route, None, "readings take the default route");
    }

    #[test]
    fn epoch_milliseconds_and_kelvin_are_accepted() {
        let mut h = harness();
        let out = h.run_json([json!({
            "deviceId": "k1", "timestamp": 1_714_564_800_000_i64, "temperature": 295.15, "unit": "K"
        })]);
        let v = testing::emitted_json(&out[0]);
        assert_eq!(v["reading_date"], json!("2024-05-01"));
        assert_eq!(v["temperature_c"], json!(22.0));
        assert_eq!(v.get("humidity"), None);
    }

    #[test]
    fn a_hot_reading_also_raises_an_alert_with_a_ttl() {
        let mut h = harness();
        let out = h.run_json([json!({
            "deviceId": "boiler-1", "timestamp": 1_714_564_800_000_i64, "temperature": 45.5
        })]);
        assert_eq!(testing::routes(&out[0]), [None, Some("alerts")]);
        let alert = &testing::outputs(&out[0])[1];
        assert_eq!(alert.ttl_seconds, Some(3600));
        assert_eq!(
            testing::json_of(alert),
            json!({"deviceId": "boiler-1", "timestamp": 1_714_564_800_000_i64,
                   "temperature_c": 45.5, "threshold_c": 40.0})
        );

        let mut quiet = Harness::<IotTelemetry>::new([("alerts", "false")]).unwrap();
        let out = quiet.run_json([json!({
            "deviceId": "boiler-1", "timestamp": 1_714_564_800_000_i64, "temperature": 45.5
        })]);
        assert_eq!(testing::routes(&out[0]), [None]);
    }

    #[test]
    fn invalid_readings_fail_with_the_reason() {
        let mut h = harness();
        let cases = [
            (
                json!({"timestamp": 1, "temperature": 1}),
                "deviceId is missing",
            ),
            (
                json!({"deviceId": "", "timestamp": 1, "temperature": 1}),
                "deviceId must be a non-empty string of at most 128 characters, got \"\"",
            ),
            (
                json!({"deviceId": "a", "temperature": 1}),
                "timestamp is missing",
            ),
            (
                json!({"deviceId": "a", "timestamp": "yesterday", "temperature": 1}),
                "timestamp \"yesterday\" is not an ISO-8601 date-time",
            ),
            (
                json!({"deviceId": "a", "timestamp": 1, "temperature": "hot"}),
                "temperature must be a number, got \"hot\"",
            ),
            (
                json!({"deviceId": "a", "timestamp": 1, "temperature": 1, "unit": "R"}),
                "unit must be C, F or K, got \"R\"",
            ),
            (
                json!({"deviceId": "a", "timestamp": 1, "temperature": 500, "unit": "F"}),
                "temperature 500 °F = 260.00 °C is outside the plausible range -90..150 °C",
            ),
            (
                json!({"deviceId": "a", "timestamp": 1, "temperature": 1, "humidity": 120}),
                "humidity must be a number in 0..=100, got 120",
            ),
            (json!([1, 2]), "reading is not a JSON object"),
        ];
        for (input, reason) in cases {
            let out = h.run_one(testing::event(input.clone()));
            assert_eq!(out, OwnedOutcome::Fail(reason.to_string()), "{input}");
        }
        let out = h.run_one(testing::raw_event(b"{not json"));
        assert!(matches!(out, OwnedOutcome::Fail(_)), "{out:?}");
    }

    #[test]
    fn config_is_checked() {
        assert_eq!(
            Harness::<IotTelemetry>::new([("default_unit", "X")]).unwrap_err(),
            "config `default_unit`: expected C, F or K, got \"X\""
        );
        assert!(Harness::<IotTelemetry>::new([("alert_treshold_c", "1")]).is_err());
        assert!(Harness::<IotTelemetry>::new([("alert_threshold_c", "hot")]).is_err());
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(date_of(0), "1970-01-01");
        assert_eq!(date_of(951_782_400_000), "2000-02-29");
        assert_eq!(date_of(-1), "1969-12-31");
        assert_eq!(parse_iso8601_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_iso8601_ms("1970-01-01T00:00:01.5"), Some(1_500));
        assert_eq!(
            parse_iso8601_ms("2024-05-01T14:00:00+02:00"),
            Some(1_714_564_800_000)
        );
        assert_eq!(parse_iso8601_ms("2023-02-29T00:00:00Z"), None);
        assert_eq!(parse_iso8601_ms("2024-05-01"), None);
    }
}
