//! Why an event could not be applied, and whether retrying could ever help.
//!
//! td v0.62's rule, kept here so the shard and every client reach the same verdict: a failure
//! that is a pure function of the event (bad payload, unknown type, schema constraint) is
//! **permanent** and the event is quarantined; a failure of the environment (locked, I/O, full
//! disk) is **transient** and the page is retried; anything unrecognised is transient.

use tdsync_protocol::payload::PayloadError;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("invalid entity type: {0:?}")]
    InvalidEntityType(String),
    #[error("unknown action type: {0:?}")]
    UnknownActionType(String),
    #[error("empty entity id for {0:?} event")]
    EmptyEntityId(String),
    #[error("no such table: {0} (this database's schema lacks it)")]
    MissingTable(&'static str),
    #[error(transparent)]
    Payload(#[from] PayloadError),
    #[error("upsert {table}/{id}: payload has no fields")]
    NoFields { table: &'static str, id: String },
    /// td classifies this one as transient (its text matches no marker) and so wedges on it; it
    /// is a pure function of the event, so tdsync quarantines it.
    #[error("upsert {table}/{id}: no known fields in payload (permanent)")]
    NoKnownFields { table: &'static str, id: String },
    #[error("{context}: {source}")]
    Sql {
        context: String,
        #[source]
        source: rusqlite::Error,
    },
}

impl ApplyError {
    pub(crate) fn sql(context: impl Into<String>, source: rusqlite::Error) -> ApplyError {
        ApplyError::Sql {
            context: context.into(),
            source,
        }
    }

    /// Permanent failures recur on every replay and are quarantined; transient ones abort the
    /// page with the cursor kept.
    pub fn is_permanent(&self) -> bool {
        match self {
            ApplyError::Sql { .. } => is_permanent_message(&self.to_string()),
            _ => true,
        }
    }
}

const TRANSIENT_MARKERS: &[&str] = &[
    "database is locked",
    "database table is locked",
    "sqlite_busy",
    "sqlite_locked",
    "disk i/o error",
    "database or disk is full",
    "unable to open database",
    "no such file or directory",
    "connection is already closed",
    "bad connection",
    "deadline exceeded",
    "canceled",
    "i/o timeout",
    "interrupted",
];

const PERMANENT_MARKERS: &[&str] = &[
    "constraint failed",
    "constraint violation",
    "invalid entity type",
    "unknown action type",
    "empty entity id",
    "payload has no fields",
    "no known fields",
    "unmarshal payload",
    "nil payload",
    "invalid table name",
    "no such table",
    "no such column",
    "datatype mismatch",
];

/// td's text rule: transient markers win, then permanent markers; unknown means transient.
pub fn is_permanent_message(message: &str) -> bool {
    let msg = message.to_ascii_lowercase();
    if TRANSIENT_MARKERS.iter().any(|m| msg.contains(m)) {
        return false;
    }
    PERMANENT_MARKERS.iter().any(|m| msg.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_td() {
        assert!(is_permanent_message("FOREIGN KEY constraint failed"));
        assert!(is_permanent_message(
            "table x has no column named y: no such column"
        ));
        assert!(!is_permanent_message("database is locked"));
        // A constraint check aborted by a lock is retried.
        assert!(!is_permanent_message(
            "constraint failed: database is locked"
        ));
        assert!(!is_permanent_message("something nobody has seen"));
        assert!(ApplyError::InvalidEntityType("x".into()).is_permanent());
    }
}
