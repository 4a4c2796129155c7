//! Wall-clock time as ocfo writes it: Unix milliseconds, RFC 3339 UTC and
//! compact stamps, without a date library (a calendar from days since the
//! epoch is a dozen lines; the monitor stays small).

pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `20261124T140312Z`.
pub fn utc_stamp() -> String {
    let (date, h, m, s) = split(unix_ms() / 1000);
    format!("{}T{h:02}{m:02}{s:02}Z", date.replace('-', ""))
}

fn split(secs: u64) -> (String, u64, u64, u64) {
    let (days, rem) = (secs / 86400, secs % 86400);
    let (y, mo, d) = civil_from_days(days as i64);
    (
        format!("{y:04}-{mo:02}-{d:02}"),
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
    )
}

/// RFC 3339 UTC time of now, for state files and notifications.
pub fn rfc3339_now() -> String {
    rfc3339(unix_ms() / 1000)
}

/// `2026-11-24T14:03:12Z`.
pub fn rfc3339(unix_secs: u64) -> String {
    let (date, h, m, s) = split(unix_secs);
    format!("{date}T{h:02}:{m:02}:{s:02}Z")
}

/// `2026-11-24T14:03:12.345Z`.
pub fn rfc3339_ms(unix_ms: u64) -> String {
    let (date, h, m, s) = split(unix_ms / 1000);
    format!("{date}T{h:02}:{m:02}:{s:02}.{:03}Z", unix_ms % 1000)
}

/// `14:03 UTC`: a time for people, in messages.
pub fn hhmm_utc(unix_secs: u64) -> String {
    let (_, h, m, _) = split(unix_secs);
    format!("{h:02}:{m:02} UTC")
}

/// `14:03:12 UTC`: when, to the second, for a message.
pub fn hhmmss_utc(unix_secs: u64) -> String {
    let (_, h, m, sec) = split(unix_secs);
    format!("{h:02}:{m:02}:{sec:02} UTC")
}

/// Unix seconds of an RFC 3339 UTC time as ocfo writes it
/// (`2026-11-24T14:03:12Z`, fractions ignored); `None` for anything else.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || !s.ends_with('Z') {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<u64>().ok();
    let (y, mo, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (h, mi, se) = (n(11..13)?, n(14..16)?, n(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let days = days_from_civil(y as i64, mo as u32, d as u32);
    Some(days as u64 * 86400 + h * 3600 + mi * 60 + se)
}

/// A calendar date to days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = (y - era * 400) as u64;
    let mp = (m as u64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as u64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe as i64 - 719468
}

/// Days since 1970-01-01 to a calendar date (Howard Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = (z - era * 146097) as u64;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe as i64 + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20416), (2025, 11, 24));
        assert_eq!(civil_from_days(11016), (2000, 2, 29));
        assert_eq!(rfc3339(1763992992), "2025-11-24T14:03:12Z");
        assert_eq!(rfc3339_ms(1763992992345), "2025-11-24T14:03:12.345Z");
        assert_eq!(utc_stamp().len(), 16);
        assert_eq!(hhmm_utc(1763992992), "14:03 UTC");
        assert_eq!(parse_rfc3339("2025-11-24T14:03:12Z"), Some(1763992992));
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00.5Z"), Some(951782400));
        assert_eq!(parse_rfc3339(&rfc3339(4102444800)), Some(4102444800));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
