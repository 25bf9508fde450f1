//! Errors of the placement store.

#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    #[error("node id {0:?} is not 1 to 64 of A-Z, a-z, 0-9, '_' and '-'")]
    BadNodeId(String),
    #[error("placement store: {0}")]
    Postgres(#[from] sqlx::Error),
}
