//! Recording what the server acknowledged: the pushed rows are marked synced with their
//! server_seq, so they are never sent again, and td's bookkeeping (sync_state, sync_history)
//! says what happened.

use rusqlite::{Connection, OptionalExtension};
use tdsync_protocol::{
    ActionType, EntityType,
    wire::{Ack, PushResponse},
};

use super::{
    TdDatabase,
    error::{SqlContext, TdDbError},
    history::{self, Direction, Entry, HISTORY_KEEP},
};

/// Every event a push response settles: its acks plus the `duplicate` rejections that carry
/// the original seq (already stored by an earlier, interrupted push). Other rejections leave
/// their rows pending, as in td.
pub fn acks_of(response: &PushResponse) -> Vec<Ack> {
    let mut acks = response.acks.clone();
    acks.extend(response.rejected.iter().filter_map(|r| r.as_ack()));
    acks
}

impl TdDatabase {
    /// Marks acknowledged rows synced (`synced_at`, `server_seq`, by rowid), moves
    /// `last_pushed_action_id` and `last_sync_at`, records push history and trims it to td's
    /// 500 rows — one short transaction under td's lock.
    pub fn mark_pushed(&self, acks: &[Ack], device_id: &str) -> Result<(), TdDbError> {
        if acks.is_empty() {
            return Ok(());
        }
        let path = &self.path;
        self.write("mark pushed", |tx| {
            let marked = mark_rows(tx, acks).ctx(path, "mark pushed")?;
            let entries: Vec<Entry<'_>> = marked
                .iter()
                .map(|m| Entry {
                    direction: Direction::Push,
                    action_type: m.action_type,
                    entity_type: &m.entity_type,
                    entity_id: &m.entity_id,
                    server_seq: m.server_seq,
                    device_id,
                })
                .collect();
            history::record(tx, &entries).ctx(path, "record push history")?;
            if let Some(max) = acks.iter().map(|a| a.client_action_id).max() {
                // Informational in td; kept monotonic here.
                tx.execute(
                    "UPDATE sync_state SET \
                     last_pushed_action_id = MAX(COALESCE(last_pushed_action_id, 0), ?1), \
                     last_sync_at = CURRENT_TIMESTAMP",
                    [max],
                )
                .ctx(path, "update sync_state")?;
            }
            history::prune(tx, HISTORY_KEEP).ctx(path, "trim sync_history")?;
            Ok(())
        })
    }
}

/// One marked row, named as it went on the wire (canonical names) for the history.
struct Marked {
    server_seq: i64,
    action_type: &'static str,
    entity_type: String,
    entity_id: String,
}

fn mark_rows(conn: &Connection, acks: &[Ack]) -> rusqlite::Result<Vec<Marked>> {
    let mut read = conn.prepare_cached(
        "SELECT action_type, entity_type, entity_id FROM action_log WHERE rowid = ?1",
    )?;
    let mut mark = conn.prepare_cached(
        "UPDATE action_log SET synced_at = CURRENT_TIMESTAMP, server_seq = ?1 WHERE rowid = ?2",
    )?;
    let mut out = Vec::with_capacity(acks.len());
    for ack in acks {
        let row = read
            .query_row([ack.client_action_id], |r| {
                let text = |i: usize| r.get::<_, Option<String>>(i).map(Option::unwrap_or_default);
                Ok((text(0)?, text(1)?, text(2)?))
            })
            .optional()?;
        // An ack for a row that is gone (a local reset) has nothing to mark.
        let Some((action, entity, entity_id)) = row else {
            continue;
        };
        mark.execute([ack.server_seq, ack.client_action_id])?;
        out.push(Marked {
            server_seq: ack.server_seq,
            action_type: ActionType::from_action_log(&action).as_str(),
            entity_type: EntityType::parse(&entity).map_or(entity, |e| e.as_str().to_string()),
            entity_id,
        });
    }
    Ok(out)
}
