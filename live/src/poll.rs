//! Poll-interval advice (`X-Poll-Interval`): a client polling a busy project should ask again
//! in about a second; one polling an idle project can wait up to [`MAX_SECS`].

use chrono::{DateTime, Utc};

pub const MIN_SECS: u64 = 1;
pub const MAX_SECS: u64 = 15;
/// The interval grows by a second for every this many seconds of quiet.
const QUIET_PER_SECOND: i64 = 4;

/// The interval, in whole seconds, for a project whose last event was at `last_event` (None:
/// it has none yet, so it is idle).
pub fn advice(last_event: Option<DateTime<Utc>>, now: DateTime<Utc>) -> u64 {
    let Some(last) = last_event else {
        return MAX_SECS;
    };
    let quiet = (now - last).num_seconds().max(0);
    ((quiet / QUIET_PER_SECOND) as u64).clamp(MIN_SECS, MAX_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    #[test]
    fn busy_projects_poll_every_second_and_idle_ones_back_off_to_fifteen() {
        let now = Utc::now();
        let ago = |s| Some(now - TimeDelta::seconds(s));
        assert_eq!(advice(ago(0), now), 1);
        assert_eq!(advice(ago(7), now), 1);
        assert_eq!(advice(ago(20), now), 5);
        assert_eq!(advice(ago(60), now), 15);
        assert_eq!(advice(ago(86_400), now), 15);
        assert_eq!(advice(None, now), 15);
        // A clock that runs ahead of the event never gives less than a second.
        assert_eq!(advice(Some(now + TimeDelta::seconds(30)), now), 1);
    }
}
