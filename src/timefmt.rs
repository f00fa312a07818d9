//! RFC 3339 timestamps, clock offsets and `--since` values, in UTC, without a date library.

/// `2026-11-22T10:04:05.123Z`
pub fn rfc3339(unix_nano: u64) -> String {
    let secs = unix_nano / 1_000_000_000;
    let millis = (unix_nano / 1_000_000) % 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// `mm:ss.mmm` (or `h:mm:ss.mmm`) since the start of a session.
pub fn offset(from_unix_nano: u64, at_unix_nano: u64) -> String {
    let ms = at_unix_nano.saturating_sub(from_unix_nano) / 1_000_000;
    let (h, m, s, milli) = (
        ms / 3_600_000,
        (ms / 60_000) % 60,
        (ms / 1000) % 60,
        ms % 1000,
    );
    if h > 0 {
        format!("{h}:{m:02}:{s:02}.{milli:03}")
    } else {
        format!("{m:02}:{s:02}.{milli:03}")
    }
}

/// A point in time given as a duration ago (`90s`, `30m`, `24h`, `7d`) or a UTC date
/// (`2026-11-01`, `2026-11-01T08:00:00Z`), as Unix seconds.
pub fn parse_since(text: &str, now_unix_seconds: u64) -> Result<u64, String> {
    let text = text.trim();
    let units = [('s', 1u64), ('m', 60), ('h', 3600), ('d', 86_400)];
    if let Some((unit, scale)) = units.iter().find(|(u, _)| text.ends_with(*u)) {
        if let Ok(n) = text.trim_end_matches(*unit).parse::<u64>() {
            return Ok(now_unix_seconds.saturating_sub(n.saturating_mul(*scale)));
        }
    }
    let bad = || {
        format!("{text:?} is neither a duration like 24h / 7d nor a date like 2026-11-01 or 2026-11-01T08:00:00Z")
    };
    let (date, time) = text
        .trim_end_matches('Z')
        .split_once('T')
        .unwrap_or((text, "00:00:00"));
    // Fractions of a second are accepted and dropped.
    let time = time.split_once('.').map_or(time, |(whole, _)| whole);
    let numbers = |s: &str, sep: char| -> Option<Vec<u64>> {
        s.split(sep).map(|p| p.parse::<u64>().ok()).collect()
    };
    let d = numbers(date, '-')
        .filter(|d| d.len() == 3)
        .ok_or_else(bad)?;
    let t = numbers(time, ':')
        .filter(|t| t.len() == 3)
        .ok_or_else(bad)?;
    if !(1..=12).contains(&d[1]) || !(1..=31).contains(&d[2]) || t[0] > 23 || t[1] > 59 || t[2] > 60
    {
        return Err(bad());
    }
    let days = days_from_civil(d[0] as i64, d[1] as u32, d[2] as u32);
    u64::try_from(days * 86_400)
        .map(|s| s + t[0] * 3600 + t[1] * 60 + t[2])
        .map_err(|_| bad())
}

/// (year, month, day) to days since 1970-01-01 (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from(if month > 2 { month - 3 } else { month + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(1_700_000_000_123_000_000),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(rfc3339(951_782_400_000_000_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(offset(0, 61_500_000_000), "01:01.500");
        assert_eq!(offset(0, 3_661_000_000_000), "1:01:01.000");
    }

    #[test]
    fn parses_since() {
        assert_eq!(parse_since("24h", 100_000), Ok(100_000 - 86_400));
        assert_eq!(parse_since("2023-11-14T22:13:20Z", 0), Ok(1_700_000_000));
        assert_eq!(parse_since("2000-02-29", 0), Ok(951_782_400));
        assert_eq!(
            parse_since("2023-11-14T22:13:20.999Z", 0),
            Ok(1_700_000_000)
        );
        assert!(parse_since("yesterday", 0).is_err());
        assert!(parse_since("2026-13-01", 0).is_err());
    }
}
