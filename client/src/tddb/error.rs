//! Everything that can go wrong in the td-database adapter. Every message names the file it is
//! about, because a sync agent may juggle several projects and the user has to find the one that
//! is broken.

use std::{path::PathBuf, time::Duration};

use rusqlite::ErrorCode;
use tdsync_projection::ApplyError;

use super::integrity::{Damage, describe_fatal};

#[derive(Debug, thiserror::Error)]
pub enum TdDbError {
    #[error("{}: no td database there (file not found)", path.display())]
    NotFound { path: PathBuf },

    #[error("{}: already exists; refusing to overwrite a td database", path.display())]
    AlreadyExists { path: PathBuf },

    #[error("{}: not a td database: {detail}", path.display())]
    NotTdDatabase { path: PathBuf, detail: String },

    #[error(
        "{}: td schema version {version} is not supported (tdsync supports {min}..={max}); {hint}",
        path.display()
    )]
    UnsupportedSchema {
        path: PathBuf,
        version: i64,
        min: i64,
        max: i64,
        hint: &'static str,
    },

    /// Damage SQLite's integrity check found where sync must not proceed: a table sync reads or
    /// writes, or pages that name no table. `damage` lists every damaged table (including any
    /// sync could have worked around), each with its rows where SQLite names them and its fix.
    #[error("{}: {}", path.display(), describe_fatal(path, damage))]
    Corrupt { path: PathBuf, damage: Vec<Damage> },

    #[error("{}: {op}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        op: String,
        #[source]
        source: rusqlite::Error,
    },

    #[error("{}: {op}: {source}", path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "{}: td write lock not acquired within {timeout:?} (holder: {holder}); try again, or check whether that process is stuck",
        path.display()
    )]
    LockTimeout {
        path: PathBuf,
        timeout: Duration,
        holder: String,
    },

    #[error("{}: action_log rowid {rowid}: unreadable timestamp {value:?}", path.display())]
    BadTimestamp {
        path: PathBuf,
        rowid: i64,
        value: String,
    },

    #[error("{}: {detail}", path.display())]
    InvalidArgument { path: PathBuf, detail: String },

    #[error("{}: not linked to a sync project (sync_state is empty)", path.display())]
    NotLinked { path: PathBuf },

    #[error(
        "{}: pull page ends at server_seq {requested}, before the cursor {current}; refusing to move the cursor backwards",
        path.display()
    )]
    CursorBackwards {
        path: PathBuf,
        current: i64,
        requested: i64,
    },

    #[error(
        "{}: pulled event seq {seq} ({entity_type}/{entity_id}) hit a transient error; page rolled back, cursor kept at {cursor}: {source}",
        path.display()
    )]
    TransientApply {
        path: PathBuf,
        seq: i64,
        entity_type: String,
        entity_id: String,
        cursor: i64,
        #[source]
        source: Box<ApplyError>,
    },
}

impl TdDbError {
    /// Whether retrying the same operation later can succeed (another writer held the
    /// database, a page hit a lock); everything else needs a human or different input.
    pub fn is_transient(&self) -> bool {
        match self {
            TdDbError::LockTimeout { .. } | TdDbError::TransientApply { .. } => true,
            TdDbError::Sqlite { source, .. } => matches!(
                source.sqlite_error_code(),
                Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
            ),
            _ => false,
        }
    }

    pub(crate) fn sqlite(
        path: &std::path::Path,
        op: impl Into<String>,
        source: rusqlite::Error,
    ) -> Self {
        TdDbError::Sqlite {
            path: path.to_path_buf(),
            op: op.into(),
            source,
        }
    }
}

/// Attaches the database path and what was being done to a rusqlite result.
pub(crate) trait SqlContext<T> {
    fn ctx(self, path: &std::path::Path, op: &str) -> Result<T, TdDbError>;
}

impl<T> SqlContext<T> for rusqlite::Result<T> {
    fn ctx(self, path: &std::path::Path, op: &str) -> Result<T, TdDbError> {
        self.map_err(|e| TdDbError::sqlite(path, op, e))
    }
}
