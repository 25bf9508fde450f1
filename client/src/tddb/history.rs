//! td's `sync_history`: one row per event pushed or pulled, which `td sync tail` shows.

use rusqlite::{Connection, params};

/// How many rows td keeps (its autosync trims to this after every push).
pub const HISTORY_KEEP: i64 = 500;

/// One history row.
pub struct Entry<'a> {
    pub direction: Direction,
    pub action_type: &'a str,
    pub entity_type: &'a str,
    pub entity_id: &'a str,
    pub server_seq: i64,
    pub device_id: &'a str,
}

#[derive(Clone, Copy)]
pub enum Direction {
    Push,
    Pull,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::Push => "push",
            Direction::Pull => "pull",
        }
    }
}

/// Appends rows, all stamped with the same time (td stamps each row as it records it).
pub fn record(conn: &Connection, entries: &[Entry<'_>]) -> rusqlite::Result<()> {
    let now = super::now_sqlite_text();
    let mut stmt = conn.prepare_cached(
        "INSERT INTO sync_history \
         (direction, action_type, entity_type, entity_id, server_seq, device_id, timestamp) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for e in entries {
        stmt.execute(params![
            e.direction.as_str(),
            e.action_type,
            e.entity_type,
            e.entity_id,
            e.server_seq,
            e.device_id,
            now
        ])?;
    }
    Ok(())
}

/// Keeps only the newest `keep` rows.
pub fn prune(conn: &Connection, keep: i64) -> rusqlite::Result<usize> {
    conn.execute(
        "DELETE FROM sync_history WHERE id NOT IN \
         (SELECT id FROM sync_history ORDER BY id DESC LIMIT ?1)",
        [keep],
    )
}
