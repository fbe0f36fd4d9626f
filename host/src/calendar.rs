//! Calendar and epoch time: milliseconds since the Unix epoch, RFC 3339
//! timestamps and UTC calendar dates, all through `chrono` so no module
//! carries its own date arithmetic.

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

/// Milliseconds since the Unix epoch of `t`: 0 before the epoch, saturating
/// at `i64::MAX` (a clock set before 1970 must not make ages negative or
/// wrap around).
pub fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Milliseconds since the Unix epoch, now.
pub fn now_unix_ms() -> i64 {
    unix_ms(SystemTime::now())
}

/// `t` as RFC 3339 in UTC with milliseconds (`2026-11-21T06:38:16.123Z`);
/// a time before the epoch (or beyond year 262143) prints as the epoch.
pub fn rfc3339_ms(t: SystemTime) -> String {
    DateTime::<Utc>::from_timestamp_millis(unix_ms(t))
        .unwrap_or(DateTime::UNIX_EPOCH)
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The UTC calendar date (`YYYY-MM-DD`) of `ms` milliseconds since the
/// epoch; `None` outside the range `chrono` represents (±262143 years).
pub fn utc_date_of_ms(ms: i64) -> Option<String> {
    DateTime::<Utc>::from_timestamp_millis(ms).map(|t| t.format("%Y-%m-%d").to_string())
}

/// Days since 1970-01-01 of the proleptic Gregorian date `y-m-d`; `None`
/// for a date that does not exist (month 13, February 30).
pub fn days_since_epoch(y: i32, m: u32, d: u32) -> Option<i64> {
    let date = NaiveDate::from_ymd_opt(y, m, d)?;
    Some((date - DateTime::UNIX_EPOCH.date_naive()).num_days())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn epoch_milliseconds_clamp_before_1970() {
        assert_eq!(unix_ms(UNIX_EPOCH + Duration::from_millis(1_234)), 1_234);
        assert_eq!(unix_ms(UNIX_EPOCH - Duration::from_secs(5)), 0);
        assert!(now_unix_ms() > 1_700_000_000_000);
    }

    #[test]
    fn rfc3339_is_utc_with_milliseconds() {
        assert_eq!(rfc3339_ms(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_070_296_123);
        assert_eq!(rfc3339_ms(t), "2026-11-19T06:38:16.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339_ms(leap), "2000-02-29T00:00:00.000Z");
        assert_eq!(
            rfc3339_ms(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn dates_and_day_numbers_round_trip_through_the_calendar() {
        assert_eq!(utc_date_of_ms(0).as_deref(), Some("1970-01-01"));
        assert_eq!(utc_date_of_ms(-1).as_deref(), Some("1969-12-31"));
        assert_eq!(
            utc_date_of_ms(951_782_400_000).as_deref(),
            Some("2000-02-29")
        );
        assert_eq!(utc_date_of_ms(i64::MAX), None);
        assert_eq!(days_since_epoch(1970, 1, 1), Some(0));
        assert_eq!(days_since_epoch(1969, 12, 31), Some(-1));
        assert_eq!(days_since_epoch(2000, 3, 1), Some(11_017));
        assert_eq!(days_since_epoch(2023, 2, 29), None);
        assert_eq!(days_since_epoch(2024, 13, 1), None);
    }
}
