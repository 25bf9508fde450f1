//! Timestamps in every form td has written, and the forms td expects back.
//!
//! td has stored times as RFC 3339 (with and without fractions), as SQLite-style text
//! (`2026-08-21 14:41:18.123-07:00`, or naive UTC from `CURRENT_TIMESTAMP`) and, before its
//! migration 36, as Go's `time.Time.String()` (`2026-02-03 20:53:53.519728 -0800 PST
//! m=+0.036937834`). A strict parser broke td once; this one accepts all of them.
//! Instants are what replicas agree on: compare with [`same_instant`], never as text.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Utc};

/// Parses any timestamp form td has written. Naive forms are read as UTC.
pub fn parse(text: &str) -> Option<DateTime<FixedOffset>> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t);
    }
    parse_loose(text)
}

/// Whether two texts denote the same instant (both must parse).
pub fn same_instant(a: &str, b: &str) -> bool {
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// `2026-08-21T14:41:18-07:00`: second precision, original offset, `Z` for UTC. This is how td
/// sends `client_timestamp` on push.
pub fn format_push(t: &DateTime<FixedOffset>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// RFC 3339 with as many fraction digits as needed (Go's RFC3339Nano), as td's server emits
/// `client_timestamp` on pull.
pub fn format_rfc3339_nano(t: &DateTime<FixedOffset>) -> String {
    let full = t.to_rfc3339_opts(SecondsFormat::Nanos, true);
    trim_fraction(&full)
}

/// `2006-01-02 15:04:05.999999999-07:00`: the text form td's SQLite driver writes for a time
/// value (used where the apply rules bind a time, e.g. soft_delete's `deleted_at`).
pub fn format_sqlite(t: &DateTime<FixedOffset>) -> String {
    let base = t.format("%Y-%m-%d %H:%M:%S%.9f").to_string();
    let base = trim_fraction(&base);
    format!("{base}{}", t.format("%:z"))
}

/// Server-side stamp text for a UTC instant.
pub fn format_server(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn trim_fraction(s: &str) -> String {
    // Go trims trailing zeros of the fraction and drops the dot when nothing is left.
    let Some(dot) = s.find('.') else {
        return s.to_string();
    };
    let digits_end = s[dot + 1..]
        .find(|c: char| !c.is_ascii_digit())
        .map_or(s.len(), |i| dot + 1 + i);
    let digits = s[dot + 1..digits_end].trim_end_matches('0');
    let mut out = String::with_capacity(s.len());
    out.push_str(&s[..dot]);
    if !digits.is_empty() {
        out.push('.');
        out.push_str(digits);
    }
    out.push_str(&s[digits_end..]);
    out
}

/// Date, time and zone in the looser layouts: `T` or space between date and time, optional
/// fraction, zone as `Z`, `±hh:mm`, `±hhmm`, ` ±hhmm NAME [m=…]`, or absent (UTC).
fn parse_loose(text: &str) -> Option<DateTime<FixedOffset>> {
    // Go's monotonic clock suffix carries no wall-clock information.
    let text = match text.find(" m=") {
        Some(i) => &text[..i],
        None => text,
    };
    // `get` rather than indexing: untrusted text may put a multi-byte character at byte 10.
    let date = NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d").ok()?;
    let rest = text.get(10..)?;
    if rest.is_empty() {
        let t = NaiveDateTime::new(date, NaiveTime::MIN);
        return Some(t.and_utc().fixed_offset());
    }
    let rest = rest.strip_prefix(['T', ' ', 't'])?;
    // Time is hh:mm:ss with an optional fraction.
    let time_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == ':' || c == '.'))
        .unwrap_or(rest.len());
    let time = NaiveTime::parse_from_str(&rest[..time_end], "%H:%M:%S%.f").ok()?;
    let naive = NaiveDateTime::new(date, time);
    let zone = rest[time_end..].trim();
    let offset = parse_zone(zone)?;
    naive.and_local_timezone(offset).single()
}

fn parse_zone(zone: &str) -> Option<FixedOffset> {
    if zone.is_empty() || zone.eq_ignore_ascii_case("z") || zone.eq_ignore_ascii_case("utc") {
        return FixedOffset::east_opt(0);
    }
    // ` -0800 PST`: the numeric part decides, the name is decoration.
    let numeric = zone.split_whitespace().next()?;
    let sign = match numeric.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = numeric[1..].chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let hours: i32 = digits[..2].parse().ok()?;
    let minutes: i32 = digits[2..].parse().ok()?;
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_td_form_to_the_same_instant() {
        let forms = [
            "2026-02-04T04:53:53.519728Z",
            "2026-02-03T20:53:53.519728-08:00",
            "2026-02-03 20:53:53.519728-08:00",
            "2026-02-03 20:53:53.519728 -0800 PST m=+0.036937834",
            "2026-02-03 20:53:53.519728 -0800 PST",
            "2026-02-04 04:53:53.519728",
            "2026-02-04T04:53:53.519728",
            "2026-02-04 04:53:53.519728+00:00",
        ];
        let want = parse(forms[0]).unwrap();
        for f in forms {
            assert_eq!(parse(f), Some(want), "{f}");
        }
        assert!(parse("not a time").is_none());
        assert!(parse("").is_none());
        // Untrusted text with multi-byte characters where the layout has ASCII: no panic.
        for hostile in [
            "2026-01-0é",
            "2026-01-01é12:00:00",
            "日本語のテキストです",
            "2026-01-01 12:00:00 +08é0",
        ] {
            assert!(parse(hostile).is_none(), "{hostile}");
        }
    }

    #[test]
    fn formats_like_td() {
        let t = parse("2026-08-21T14:41:18.123-07:00").unwrap();
        assert_eq!(format_push(&t), "2026-08-21T14:41:18-07:00");
        assert_eq!(format_rfc3339_nano(&t), "2026-08-21T14:41:18.123-07:00");
        assert_eq!(format_sqlite(&t), "2026-08-21 14:41:18.123-07:00");
        let utc = parse("2026-08-21T21:41:18Z").unwrap();
        assert_eq!(format_push(&utc), "2026-08-21T21:41:18Z");
        assert_eq!(format_rfc3339_nano(&utc), "2026-08-21T21:41:18Z");
        assert_eq!(format_sqlite(&utc), "2026-08-21 21:41:18+00:00");
    }

    #[test]
    fn instants_not_text() {
        assert!(same_instant(
            "2026-08-21T21:41:18Z",
            "2026-08-21 14:41:18-07:00"
        ));
        assert!(!same_instant(
            "2026-08-21T21:41:18Z",
            "2026-08-21T21:41:19Z"
        ));
    }
}
