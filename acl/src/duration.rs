//! Durations as people type them: `30m`, `12h`, `7d`, `1h30m`.

use chrono::TimeDelta;

/// The longest accepted duration, in seconds: tokens meant to outlive a decade should have no expiry.
pub const MAX_SECONDS: i64 = 10 * 366 * 24 * 3600;

/// A duration that does not parse, with what a good one looks like.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {raw:?}: {why}; use a number and a unit (s, m, h, d or w) such as 30m, 12h or 7d"
)]
pub struct BadDuration {
    pub raw: String,
    pub why: &'static str,
}

/// Parses one or more `<number><unit>` parts (units s, m, h, d, w), summed.
pub fn parse_duration(raw: &str) -> Result<TimeDelta, BadDuration> {
    let bad = |why| BadDuration {
        raw: raw.to_string(),
        why,
    };
    let text = raw.trim();
    if text.is_empty() {
        return Err(bad("it is empty"));
    }
    let mut total: i64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(bad("unknown unit")),
        };
        if digits.is_empty() {
            return Err(bad("a unit has no number before it"));
        }
        let n: i64 = digits.parse().map_err(|_| bad("the number is too large"))?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .filter(|s| *s <= MAX_SECONDS)
            .ok_or_else(|| bad("it is longer than ten years"))?;
    }
    if !digits.is_empty() {
        return Err(bad("the last number has no unit"));
    }
    if total == 0 {
        return Err(bad("it is zero"));
    }
    Ok(TimeDelta::seconds(total))
}

/// The shortest text that [`parse_duration`] reads back as `d` (whole seconds).
pub fn format_duration(d: TimeDelta) -> String {
    let mut s = d.num_seconds();
    let mut out = String::new();
    for (unit, len) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if s >= len {
            out.push_str(&format!("{}{unit}", s / len));
            s %= len;
        }
    }
    if out.is_empty() { "0s".into() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        assert_eq!(parse_duration("30m").unwrap(), TimeDelta::minutes(30));
        assert_eq!(parse_duration("12h").unwrap(), TimeDelta::hours(12));
        assert_eq!(parse_duration("7d").unwrap(), TimeDelta::days(7));
        assert_eq!(parse_duration("1h30m").unwrap(), TimeDelta::minutes(90));
        assert_eq!(parse_duration("2w").unwrap(), TimeDelta::days(14));
        assert_eq!(parse_duration("45s").unwrap(), TimeDelta::seconds(45));
    }

    #[test]
    fn refuses_with_a_reason() {
        for bad in [
            "",
            "30",
            "m",
            "30x",
            "0m",
            "-5m",
            "1.5h",
            "99999999999999999999d",
            "4000d",
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.to_string().contains("such as 30m"), "{bad}: {e}");
        }
    }

    #[test]
    fn format_round_trips() {
        for s in ["30m", "12h", "7d", "1d1h1m1s"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
    }
}
