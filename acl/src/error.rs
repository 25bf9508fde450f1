//! The service's errors. Each says what is wrong in words an operator or an agent can act on,
//! and none carries a secret. The gateway decides the HTTP status of each.

use chrono::{DateTime, Utc};

use crate::{
    clock::format_time, decision::Denied, ids::TokenId, mint::MintError, onboarding::LoginError,
    secret::HashFailed, store::StoreError,
};

/// Why a presented token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("not a tdsync token: expected tds_<id>_<secret>")]
    Malformed,
    /// Unknown id or wrong secret (not told apart, so ids cannot be probed).
    #[error("unknown or invalid token")]
    Invalid,
    #[error("token {id} expired at {}", format_time(*.at))]
    Expired { id: TokenId, at: DateTime<Utc> },
    #[error("token {id} was revoked at {}", format_time(*.at))]
    Revoked { id: TokenId, at: DateTime<Utc> },
    /// The control plane could not be read; nothing was decided.
    #[error("cannot verify tokens right now: {0}")]
    Unavailable(String),
}

#[derive(Debug, thiserror::Error)]
pub enum AclError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    Mint(#[from] MintError),
    #[error(transparent)]
    Login(#[from] LoginError),
    /// Bad input; nothing was changed.
    #[error("{0}")]
    Invalid(String),
    /// What is missing, as a whole sentence ("tenant t_x not found").
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// An invitation past its expiry.
    #[error("{0}")]
    Expired(String),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Hash(#[from] HashFailed),
}

impl From<StoreError> for AclError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => AclError::NotFound(format!("{what} not found")),
            StoreError::Conflict(what) => AclError::Conflict(what),
            StoreError::ParentInactive(id) => AclError::Mint(MintError::ParentRevoked(id)),
            StoreError::Expired(what) => AclError::Expired(format!("{what} has expired")),
            other => AclError::Store(other),
        }
    }
}
