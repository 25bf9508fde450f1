//! `push`: td's validation, then one transaction that logs the new events, applies them to the
//! projection, records conflicts and clock samples, and moves the head.

use chrono::{DateTime, Utc};
use tdsync_protocol::{
    ActionType, EntityType, timestamp,
    wire::{Ack, MAX_PUSH_EVENTS, PushRequest, PushResponse, Rejection, reject_reason},
};

use super::{
    Head, Shard, clock, cycles,
    log::{Appended, Conflicts, LogError, NewEvent, append, project},
};
use crate::error::StoreError;

/// An event that passed validation, with canonical names.
struct Checked<'a> {
    action: ActionType,
    entity: EntityType,
    client_time: DateTime<chrono::FixedOffset>,
    raw: &'a tdsync_protocol::wire::PushEvent,
}

/// td's server rules: the whole request is refused (and nothing changes) for an empty
/// device or session, no events, more than 1000, an unknown entity type or an unreadable
/// client timestamp.
fn validate(req: &PushRequest) -> Result<Vec<Checked<'_>>, StoreError> {
    let bad = |m: String| Err(StoreError::BadRequest(m));
    if req.device_id.trim().is_empty() {
        return bad("device_id is empty".into());
    }
    if req.session_id.trim().is_empty() {
        return bad("session_id is empty".into());
    }
    if req.events.is_empty() {
        return bad("events is empty: a push carries 1 to 1000 events".into());
    }
    if req.events.len() > MAX_PUSH_EVENTS {
        return bad(format!(
            "too many events: {} in one push, the limit is {MAX_PUSH_EVENTS}",
            req.events.len()
        ));
    }
    req.events
        .iter()
        .enumerate()
        .map(|(i, ev)| {
            let entity = EntityType::parse(&ev.entity_type).ok_or_else(|| {
                StoreError::BadRequest(format!(
                    "event {i} (client_action_id {}): unknown entity_type {:?}",
                    ev.client_action_id, ev.entity_type
                ))
            })?;
            let client_time =
                chrono::DateTime::parse_from_rfc3339(&ev.client_timestamp).map_err(|_| {
                    StoreError::BadRequest(format!(
                        "event {i} (client_action_id {}): invalid client_timestamp {:?}, \
                         expected RFC 3339",
                        ev.client_action_id, ev.client_timestamp
                    ))
                })?;
            Ok(Checked {
                action: ActionType::normalize_wire(&ev.action_type),
                entity,
                client_time,
                raw: ev,
            })
        })
        .collect()
}

impl Shard {
    pub(crate) fn push(
        &self,
        req: &PushRequest,
        now: DateTime<Utc>,
    ) -> Result<PushResponse, StoreError> {
        let checked = validate(req)?;
        let server_ts = timestamp::format_server(&now);
        let repair_ts = timestamp::format_rfc3339_nano(&now.fixed_offset());
        let newest_client_time = checked.iter().map(|c| c.client_time).max();
        self.write(checked.len(), |tx, applier| {
            let mut resp = PushResponse::default();
            // Every event logged by this push: the pushed ones and the server's cycle repairs.
            let (mut logged, mut last_seq) = (0i64, None);
            for c in &checked {
                let caid = c.raw.client_action_id;
                if c.raw.entity_id.is_empty() {
                    resp.rejected.push(Rejection {
                        client_action_id: caid,
                        reason: reject_reason::EMPTY_ENTITY_ID.into(),
                        server_seq: None,
                    });
                    continue;
                }
                let ev = NewEvent {
                    device_id: &req.device_id,
                    session_id: &req.session_id,
                    client_action_id: caid,
                    action_type: c.action.as_str(),
                    entity_type: c.entity.as_str(),
                    entity_id: &c.raw.entity_id,
                    payload: c.raw.payload.get(),
                    client_timestamp: &c.raw.client_timestamp,
                };
                match append(tx, &ev, &server_ts).map_err(|e| self.sql_err(e))? {
                    Appended::New(seq) => {
                        // A long cycle is found on the graph before the closing edge applies.
                        let cycle = if c.entity == EntityType::IssueDependencies
                            && c.action == ActionType::Create
                        {
                            applier.long_cycle(tx, &ev.at(seq)).map_err(|source| {
                                self.log_err(LogError::Transient { seq, source })
                            })?
                        } else {
                            None
                        };
                        project(tx, applier, seq, &ev, &server_ts, Conflicts::Record)
                            .map_err(|e| self.log_err(e))?;
                        resp.accepted += 1;
                        resp.acks.push(Ack {
                            client_action_id: caid,
                            server_seq: seq,
                        });
                        logged += 1;
                        last_seq = Some(seq);
                        if let Some(cycle) = cycle {
                            let seqs = cycles::repair(
                                tx,
                                applier,
                                ev.entity_id,
                                &cycle,
                                &server_ts,
                                &repair_ts,
                            )
                            .map_err(|e| self.log_err(e))?;
                            tracing::info!(
                                path = %self.path().display(),
                                closing_seq = seq,
                                repair_seqs = ?seqs,
                                "dependency cycle of three or more issues: closing edge removed"
                            );
                            logged += seqs.len() as i64;
                            last_seq = seqs.last().copied().or(last_seq);
                        }
                    }
                    Appended::Duplicate(seq) => resp.rejected.push(Rejection {
                        client_action_id: caid,
                        reason: reject_reason::DUPLICATE.into(),
                        server_seq: Some(seq),
                    }),
                }
            }
            if let Some(newest) = newest_client_time {
                clock::sample(tx, &req.device_id, newest, now).map_err(|e| self.sql_err(e))?;
            }
            // The writer lock is held, so the cached head is current; extend it.
            let head = last_seq.map(|last_seq| {
                let old = self.head();
                Head {
                    last_seq,
                    event_count: old.event_count + logged,
                    last_event_time: Some(server_ts.clone()),
                }
            });
            Ok((resp, head))
        })
    }

    pub(crate) fn log_err(&self, e: LogError) -> StoreError {
        match e {
            LogError::Sql(e) => self.sql_err(e),
            LogError::Transient { seq, source } => StoreError::ApplyFailed {
                path: self.path().to_path_buf(),
                seq,
                source,
            },
        }
    }
}
