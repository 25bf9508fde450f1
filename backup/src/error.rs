//! Errors of backups, restores and verification. Each names the target or object involved so
//! an operator knows what to fix.

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The backup URL cannot be used (unknown scheme, missing bucket, bad option).
    #[error("backup target {url:?}: {reason}")]
    BadTarget { url: String, reason: String },
    /// The object store refused or could not be reached.
    #[error("backup target {target}: {source}")]
    Store {
        target: String,
        #[source]
        source: object_store::Error,
    },
    /// An object in the target is not what its name says (checksum, owner, seqs).
    #[error("backup object {key}: {reason}")]
    Damaged { key: String, reason: String },
    #[error(transparent)]
    Shard(#[from] tdsync_tenants::StoreError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// What the caller asked for cannot be done as asked (a non-empty data dir, …).
    #[error("{0}")]
    Refused(String),
}

impl BackupError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
        let context = context.into();
        move |source| BackupError::Io { context, source }
    }

    pub(crate) fn damaged(key: impl ToString, reason: impl Into<String>) -> BackupError {
        BackupError::Damaged {
            key: key.to_string(),
            reason: reason.into(),
        }
    }
}
