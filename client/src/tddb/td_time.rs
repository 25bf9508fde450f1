//! How td itself reads a timestamp that reaches its Go code as text.
//!
//! td's own parser knows only four layouts (naive `2006-01-02 15:04:05`, RFC 3339 with or
//! without fraction, and Go's `time.String()`), while its SQLite driver reads the columns
//! declared DATE/DATETIME/TIMESTAMP with a wider set. Where td's decisions depend on whether a
//! value parses (backfill's staleness test, the conflict gate), the adapter must reach the same
//! verdict, so it uses the same split: [`parse_stored`] for column values, [`parse_td`] for text
//! that bypasses the driver.

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeDelta};
use tdsync_protocol::timestamp;

/// A stored cell's text: a time-typed column is read by the driver's (wide) reader first; text
/// it rejects, and any other column, reaches td's own parser.
pub fn parse_stored(time_typed_column: bool, text: &str) -> Option<DateTime<FixedOffset>> {
    if time_typed_column && let Some(t) = timestamp::parse(text) {
        return Some(t);
    }
    parse_td(text)
}

/// td's own parser: naive `YYYY-MM-DD HH:MM:SS[.f]` (UTC), RFC 3339 `YYYY-MM-DDTHH:MM:SS[.f]`
/// with `Z` or `±hh:mm`, and `YYYY-MM-DD HH:MM:SS[.f] ±hhmm ZONE` (Go's `time.String()`,
/// monotonic `m=` suffix removed). Nothing else.
pub fn parse_td(text: &str) -> Option<DateTime<FixedOffset>> {
    if !text.is_ascii() {
        return None;
    }
    let s = match text.find(" m=") {
        Some(i) if i > 0 => &text[..i],
        _ => text,
    };
    if s.len() < 19 || !s.is_char_boundary(19) {
        return None;
    }
    let sep = s.as_bytes()[10];
    if sep != b' ' && sep != b'T' {
        return None;
    }
    let base = NaiveDateTime::parse_from_str(&s[..19], "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(&s[..19], "%Y-%m-%d %H:%M:%S"))
        .ok()?;
    let (nanos, tail) = fraction(&s[19..])?;
    let naive = base.checked_add_signed(TimeDelta::nanoseconds(nanos))?;
    let offset = match (sep, tail) {
        (b' ', "") => FixedOffset::east_opt(0)?,
        (b' ', zone) => go_string_zone(zone)?,
        (b'T', "Z") => FixedOffset::east_opt(0)?,
        (b'T', zone) => colon_offset(zone)?,
        _ => return None,
    };
    naive.and_local_timezone(offset).single()
}

/// An optional `.digits` (or `,digits`) fraction: its nanoseconds and what follows it.
fn fraction(s: &str) -> Option<(i64, &str)> {
    let Some(rest) = s.strip_prefix(['.', ',']) else {
        return Some((0, s));
    };
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    if digits == 0 {
        return None;
    }
    let mut nanos: i64 = 0;
    for (i, c) in rest[..digits].bytes().enumerate() {
        if i < 9 {
            nanos = nanos * 10 + i64::from(c - b'0');
        }
    }
    for _ in digits..9 {
        nanos *= 10;
    }
    Some((nanos, &rest[digits..]))
}

/// `±hh:mm`.
fn colon_offset(zone: &str) -> Option<FixedOffset> {
    let b = zone.as_bytes();
    if b.len() != 6 || b[3] != b':' {
        return None;
    }
    signed_offset(b[0], &zone[1..3], &zone[4..6])
}

/// ` ±hhmm NAME` as `time.String()` writes it.
fn go_string_zone(zone: &str) -> Option<FixedOffset> {
    let mut parts = zone.strip_prefix(' ')?.split(' ');
    let numeric = parts.next()?;
    let name = parts.next()?;
    if parts.next().is_some() || name.is_empty() || numeric.len() != 5 {
        return None;
    }
    let b = numeric.as_bytes();
    signed_offset(b[0], &numeric[1..3], &numeric[3..5])
}

fn signed_offset(sign: u8, hours: &str, minutes: &str) -> Option<FixedOffset> {
    let sign = match sign {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    if !(hours.bytes().all(|c| c.is_ascii_digit()) && minutes.bytes().all(|c| c.is_ascii_digit())) {
        return None;
    }
    let h: i32 = hours.parse().ok()?;
    let m: i32 = minutes.parse().ok()?;
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_exactly_tds_layouts() {
        let want = timestamp::parse("2026-02-04T04:53:53.519728Z").unwrap();
        for ok in [
            "2026-02-04T04:53:53.519728Z",
            "2026-02-03T20:53:53.519728-08:00",
            "2026-02-03 20:53:53.519728 -0800 PST m=+0.036937834",
            "2026-02-03 20:53:53.519728 -0800 PST",
            "2026-02-04 04:53:53.519728",
        ] {
            assert_eq!(parse_td(ok), Some(want), "{ok}");
        }
        assert_eq!(
            parse_td("2026-02-04 04:53:53"),
            timestamp::parse("2026-02-04T04:53:53Z")
        );
        // The driver's SQLite form with an offset is not one of td's own layouts.
        for rejected in [
            "2026-02-03 20:53:53.519728-08:00",
            "2026-02-04T04:53:53.519728",
            "2026-02-04",
            "yesterday",
            "2026-02-04T04:53:53+0800",
        ] {
            assert_eq!(parse_td(rejected), None, "{rejected}");
        }
    }

    #[test]
    fn non_ascii_text_is_no_time_and_no_panic() {
        for text in [
            "2026-02-0\u{e9}T10:00:00Z",
            "2026-02-03 20:5\u{e9}:53 -0800 PST",
            "\u{e9}",
        ] {
            assert_eq!(tdsync_protocol::timestamp::parse(text), None);
            assert_eq!(parse_td(text), None);
            assert_eq!(parse_stored(true, text), None);
        }
    }

    #[test]
    fn stored_time_columns_use_the_wider_reader() {
        let text = "2026-02-03 20:53:53.519728-08:00";
        assert!(parse_stored(true, text).is_some());
        assert!(parse_stored(false, text).is_none());
        assert!(parse_stored(false, "2026-02-04T04:43:11.571977Z").is_some());
    }
}
