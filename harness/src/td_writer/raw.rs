//! Action_log rows with no row change: what td's own bugs leave behind (a `delete` of an entity
//! that has no `deleted_at`, a review of an issue that never existed, …). Scenarios write them
//! on purpose to check that every replica steps over such an event the same way.

use super::{TdWriter, action_log::Event, error::WriterError};

impl TdWriter<'_> {
    /// Appends one action_log row as td's logging code would (id, session, time, pending),
    /// without touching any other table. Returns the row's id.
    pub fn log_raw(
        &mut self,
        action: &str,
        entity: &str,
        id: &str,
        previous: &str,
        new: &str,
    ) -> Result<String, WriterError> {
        self.write(|ctx| {
            ctx.log_own_now(Event {
                action,
                entity,
                id,
                previous,
                new,
            })
        })
    }
}
