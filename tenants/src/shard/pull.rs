//! `pull` and `status` with td's exact semantics (td-wire-protocol.md §1.8, §1.9).

use serde_json::value::RawValue;
use tdsync_protocol::{
    EntityType,
    payload::scrub_outgoing,
    timestamp,
    wire::{DEFAULT_PULL_LIMIT, MAX_PULL_LIMIT, PullEvent, PullQuery, PullResponse},
};

use super::Shard;
use crate::error::StoreError;

/// The page size a pull asks for: default 1000, capped at 10000; less than 1 is refused.
pub(crate) fn page_limit(q: &PullQuery) -> Result<i64, StoreError> {
    match q.limit {
        None => Ok(DEFAULT_PULL_LIMIT),
        Some(l) if l < 1 => Err(StoreError::BadRequest(format!(
            "limit must be at least 1, got {l}"
        ))),
        Some(l) => Ok(l.min(MAX_PULL_LIMIT)),
    }
}

impl Shard {
    /// Events after `after_server_seq` in seq order, at most `limit` (see [`page_limit`]).
    /// `last_server_seq` is the last returned seq (or the cursor when none); `has_more` means
    /// the page is full. (Pulls at the head are answered from memory before a shard is reached:
    /// `Project::pull`.)
    ///
    /// `exclude_client` is accepted and ignored: every pull gets the caller's own events too.
    /// td's autosync asks without its own events, so a td that pushed an edit of a field after
    /// another device's edit of it would apply the other device's (earlier) value last and keep
    /// it, while every other replica ends with its own (later) one. Given its own events back,
    /// td re-applies them in server order, as its manual `td sync` always does, and records no
    /// conflict for them (td v0.62 `internal/sync/client.go` `ApplyRemoteEvents` skips events
    /// of its own device id), so every replica ends equal.
    pub(crate) fn pull(&self, q: &PullQuery) -> Result<PullResponse, StoreError> {
        let limit = page_limit(q)?;
        let after = q.after_server_seq;
        let events = self.read(|conn| {
            let sql = "SELECT server_seq, device_id, session_id, client_action_id, action_type, \
                       entity_type, entity_id, payload, client_timestamp FROM events \
                       WHERE server_seq > ?1 ORDER BY server_seq LIMIT ?2";
            let mut stmt = conn.prepare_cached(sql).map_err(|e| self.sql_err(e))?;
            let rows = stmt
                .query_map(rusqlite::params![after, limit], |r| {
                    let entity_type: String = r.get(5)?;
                    let payload: String = r.get(7)?;
                    let client_timestamp: String = r.get(8)?;
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, String>(4)?,
                        entity_type,
                        r.get::<_, String>(6)?,
                        payload,
                        client_timestamp,
                    ))
                })
                .map_err(|e| self.sql_err(e))?;
            let mut out = Vec::new();
            for row in rows {
                let (seq, device, session, caid, action, entity_type, id, payload, ts) =
                    row.map_err(|e| self.sql_err(e))?;
                let entity = EntityType::parse(&entity_type);
                let payload = scrub_outgoing(entity, &payload).into_owned();
                let payload = RawValue::from_string(payload).map_err(|e| StoreError::Corrupt {
                    path: self.path().to_path_buf(),
                    reason: format!("event {seq} has an unreadable payload: {e}"),
                })?;
                out.push(PullEvent {
                    server_seq: seq,
                    device_id: device,
                    session_id: session,
                    client_action_id: caid,
                    action_type: action,
                    entity_type,
                    entity_id: id,
                    payload,
                    client_timestamp: timestamp::parse(&ts)
                        .map(|t| timestamp::format_rfc3339_nano(&t))
                        .unwrap_or(ts),
                });
            }
            Ok(out)
        })?;
        let has_more = events.len() as i64 == limit;
        let last_server_seq = events.last().map_or(after, |e| e.server_seq);
        Ok(PullResponse {
            events,
            last_server_seq,
            has_more,
        })
    }
}
