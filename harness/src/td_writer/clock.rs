//! The writer's clock: real time plus an optional skew (clock-skew scenarios), strictly
//! increasing so that td's "newest action first" ordering (undo) is never a tie.

use chrono::{DateTime, FixedOffset, SecondsFormat, TimeDelta, Utc};
use tdsync_protocol::timestamp;

pub(crate) struct Clock {
    skew: TimeDelta,
    last: Option<DateTime<Utc>>,
}

/// One instant as td holds it (a Go `time.Time`), in UTC like td on a UTC host.
pub(crate) type Instant = DateTime<FixedOffset>;

impl Clock {
    pub fn new() -> Clock {
        Clock {
            skew: TimeDelta::zero(),
            last: None,
        }
    }

    pub fn set_skew(&mut self, skew: TimeDelta) {
        self.skew = skew;
    }

    pub fn now(&mut self) -> Instant {
        let mut t = Utc::now() + self.skew;
        if let Some(last) = self.last
            && t <= last
        {
            t = last + TimeDelta::nanoseconds(1);
        }
        self.last = Some(t);
        t.fixed_offset()
    }
}

/// How td's SQLite driver stores a time value: `2006-01-02 15:04:05.999999999-07:00`.
pub(crate) fn sqlite_text(t: &Instant) -> String {
    timestamp::format_sqlite(t)
}

/// Go's `time.Time` in JSON and `time.RFC3339Nano`: trailing zeros trimmed, `Z` for UTC.
pub(crate) fn rfc3339_nano(t: &Instant) -> String {
    timestamp::format_rfc3339_nano(t)
}

/// `time.RFC3339` (seconds), as td formats some payload times and notes' stored times.
pub(crate) fn rfc3339_secs(t: &Instant) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// action_log.timestamp: RFC3339Nano in UTC.
pub(crate) fn action_log_text(t: &Instant) -> String {
    rfc3339_nano(&t.with_timezone(&Utc).fixed_offset())
}

/// A stored time as td's driver would read it back; td's zero time when unreadable.
pub(crate) fn parse_stored(text: &str) -> Option<Instant> {
    timestamp::parse(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strictly_increasing_and_skewed() {
        let mut c = Clock::new();
        let a = c.now();
        let b = c.now();
        assert!(b > a);
        let mut s = Clock::new();
        s.set_skew(TimeDelta::minutes(5));
        let skewed = s.now();
        assert!(skewed - c.now() > TimeDelta::minutes(4));
    }

    #[test]
    fn td_text_forms() {
        let t = timestamp::parse("2026-11-25T21:38:10.9964259Z").unwrap();
        assert_eq!(sqlite_text(&t), "2026-11-25 21:38:10.9964259+00:00");
        assert_eq!(rfc3339_nano(&t), "2026-11-25T21:38:10.9964259Z");
        assert_eq!(rfc3339_secs(&t), "2026-11-25T21:38:10Z");
        let local = timestamp::parse("2026-11-25T13:38:10.5-08:00").unwrap();
        assert_eq!(action_log_text(&local), "2026-11-25T21:38:10.5Z");
    }
}
