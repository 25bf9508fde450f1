//! What a simulated td command can answer besides success.

use tdsync_client::tddb::TdDbError;

#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    /// The entity does not exist (or, for issues, is soft-deleted). Nothing was written.
    #[error("{kind} not found: {id}")]
    NotFound { kind: &'static str, id: String },

    /// td would refuse (or do nothing): invalid transition, policy, cycle, duplicate, no-op.
    /// Nothing was written.
    #[error("td refuses: {0}")]
    Refused(String),

    /// The database's td schema has no room for this (e.g. reviews before schema 31).
    #[error("not supported by td schema {schema}: {what}")]
    Unsupported { schema: i64, what: String },

    /// td's lock or the database adapter failed.
    #[error(transparent)]
    Db(#[from] TdDbError),

    #[error("sqlite: {op}: {source}")]
    Sqlite {
        op: String,
        #[source]
        source: rusqlite::Error,
    },

    /// A stored row or action_log payload the writer cannot read (td would fail too).
    #[error("unreadable stored data: {0}")]
    BadData(String),
}

impl WriterError {
    pub(crate) fn refused(reason: impl Into<String>) -> Self {
        WriterError::Refused(reason.into())
    }

    pub(crate) fn issue_not_found(id: &str) -> Self {
        WriterError::NotFound {
            kind: "issue",
            id: id.to_string(),
        }
    }

    /// Whether td itself would have answered this way (refusal, missing entity, schema), as
    /// opposed to an environment failure worth surfacing.
    pub fn is_expected(&self) -> bool {
        matches!(
            self,
            WriterError::NotFound { .. }
                | WriterError::Refused(_)
                | WriterError::Unsupported { .. }
        )
    }
}

/// Attaches what was being done to a rusqlite result.
pub(crate) trait Sql<T> {
    fn op(self, op: &str) -> Result<T, WriterError>;
}

impl<T> Sql<T> for rusqlite::Result<T> {
    fn op(self, op: &str) -> Result<T, WriterError> {
        self.map_err(|source| WriterError::Sqlite {
            op: op.to_string(),
            source,
        })
    }
}
