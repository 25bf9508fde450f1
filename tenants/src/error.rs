//! Errors of the shard store. Each names what is wrong so the gateway can answer with a 4xx
//! that helps, or a 5xx that an operator can act on.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The request is malformed; nothing was changed.
    #[error("{0}")]
    BadRequest(String),
    /// The tenant has no such project (or conflict, or entity).
    #[error("{0} not found")]
    NotFound(String),
    /// The project already exists.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The file is not a SQLite database, or SQLite reports damage.
    #[error("shard file {path} is damaged or not a SQLite database: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    /// The project is out of service: its shard was found damaged and is being recovered (or
    /// could not be). Nothing is read from or written to it meanwhile.
    #[error("project {project} is out of service: {reason}")]
    OutOfService { project: String, reason: String },
    /// A SQLite file that tdsync did not create (or for another project).
    #[error("shard file {path} is not a tdsync shard for this project: {reason}")]
    Foreign { path: PathBuf, reason: String },
    /// Another tdsync process owns this data directory.
    #[error("data directory {path} is in use by another tdsync process")]
    DataDirBusy { path: PathBuf },
    /// Applying a logged event failed for a reason a retry may clear; nothing was committed.
    #[error("applying event {seq} in {path} failed (nothing committed, retry): {source}")]
    ApplyFailed {
        path: PathBuf,
        seq: i64,
        #[source]
        source: tdsync_projection::ApplyError,
    },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("database error on {path}: {source}")]
    Sql {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
}

impl From<tdsync_protocol::ids::BadId> for StoreError {
    fn from(e: tdsync_protocol::ids::BadId) -> StoreError {
        StoreError::BadRequest(e.to_string())
    }
}

impl StoreError {
    /// Wraps an I/O error on `path` (for `map_err`).
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.to_path_buf();
        move |source| StoreError::Io { path, source }
    }

    pub(crate) fn sql(path: &std::path::Path, source: rusqlite::Error) -> StoreError {
        if let rusqlite::Error::SqliteFailure(e, _) = &source
            && matches!(
                e.code,
                rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt
            )
        {
            return StoreError::Corrupt {
                path: path.to_path_buf(),
                reason: source.to_string(),
            };
        }
        StoreError::Sql {
            path: path.to_path_buf(),
            source,
        }
    }
}
