//! The action_log row every synced mutation writes with it (td's sync events).

use super::{
    Ctx,
    clock::{Instant, action_log_text},
    error::{Sql, WriterError},
};

/// One action_log row's content: td's (often legacy) action and entity names, the entity id,
/// and the before/after JSON text ('' for none).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Event<'e> {
    pub action: &'e str,
    pub entity: &'e str,
    pub id: &'e str,
    pub previous: &'e str,
    pub new: &'e str,
}

impl Ctx<'_> {
    /// Appends one action_log row as td writes it: `al-` id, RFC3339Nano UTC timestamp,
    /// undone 0, synced_at NULL. Returns the row's id.
    pub fn log_action(
        &mut self,
        session: &str,
        ev: Event<'_>,
        at: &Instant,
    ) -> Result<String, WriterError> {
        let id = self.ids.action();
        self.conn
            .execute(
                "INSERT INTO action_log (id, session_id, action_type, entity_type, entity_id, \
                 previous_data, new_data, timestamp, undone) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0)",
                rusqlite::params![
                    id,
                    session,
                    ev.action,
                    ev.entity,
                    ev.id,
                    ev.previous,
                    ev.new,
                    action_log_text(at)
                ],
            )
            .op("insert action_log")?;
        Ok(id)
    }

    /// A row under this writer's session, stamped `at` (td reuses the mutation's own time).
    pub fn log_own(&mut self, ev: Event<'_>, at: &Instant) -> Result<String, WriterError> {
        let session = self.session.to_string();
        self.log_action(&session, ev, at)
    }

    /// A row under this writer's session, stamped with a fresh `time.Now()` as td does.
    pub fn log_own_now(&mut self, ev: Event<'_>) -> Result<String, WriterError> {
        let now = self.clock.now();
        self.log_own(ev, &now)
    }

    /// td's undo bookkeeping: the undone row stays, marked, and is never pushed.
    pub fn mark_undone(&mut self, action_id: &str) -> Result<bool, WriterError> {
        let n = self
            .conn
            .execute(
                "UPDATE action_log SET undone = 1 WHERE id = ?1 AND undone = 0",
                [action_id],
            )
            .op("mark action undone")?;
        Ok(n == 1)
    }
}
