//! The time source of the control plane. Every timestamp the stores keep comes from here, cut to
//! whole microseconds (Postgres' `timestamptz` precision) so both backends hold the same values;
//! tests swap in a `ManualClock` (`testing`) to make tokens expire without waiting.

use chrono::{DateTime, SubsecRound, Utc};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now().trunc_subsecs(6)
    }
}

/// RFC 3339 with exactly six fractional digits and `Z`: sortable as text (the SQLite backend
/// stores times so) and what the CLI's `--json` prints.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}
