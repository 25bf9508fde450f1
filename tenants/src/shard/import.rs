//! Appending events that another copy of this log already holds, under their own seqs: how a
//! restore brings a shard from a snapshot up to date with shipped segments.

use super::{
    Head, Shard,
    log::{Conflicts, LoggedEvent, append_at, project},
};
use crate::error::StoreError;

impl Shard {
    /// Logs `events` (in seq order, each after the head) and applies each with the one engine,
    /// recording conflicts as the push that first logged them did. One transaction. Returns the
    /// new head seq.
    pub(crate) fn append_logged(&self, events: &[LoggedEvent]) -> Result<i64, StoreError> {
        self.write(events.len(), |tx, applier| {
            let old = self.head();
            let mut last = old.last_seq;
            for ev in events {
                if ev.server_seq <= last {
                    return Err(StoreError::BadRequest(format!(
                        "event {} is not after seq {last}: events are appended in seq order, \
                         after the head",
                        ev.server_seq
                    )));
                }
                append_at(tx, ev).map_err(|e| self.sql_err(e))?;
                project(
                    tx,
                    applier,
                    ev.server_seq,
                    &ev.as_new(),
                    &ev.server_timestamp,
                    Conflicts::Record,
                )
                .map_err(|e| self.log_err(e))?;
                last = ev.server_seq;
            }
            let head = events.last().map(|newest| Head {
                last_seq: last,
                event_count: old.event_count + events.len() as i64,
                last_event_time: Some(newest.server_timestamp.clone()),
            });
            Ok((last, head))
        })
    }
}
