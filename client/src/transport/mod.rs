//! How a client reaches a server: td's three sync calls for one project. The engine only sees
//! this trait, so the same sync code runs in-process (tests, harness) and over HTTP.

#[cfg(feature = "faults")]
pub mod faulty;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "in-process")]
pub mod in_process;

use tdsync_protocol::wire::{PullQuery, PullResponse, PushRequest, PushResponse, SyncStatus};

/// td's v1 sync calls for one project, with the caller's credentials already bound.
pub trait Transport: Send {
    fn push(&self, request: &PushRequest) -> Result<PushResponse, TransportError>;
    fn pull(&self, query: &PullQuery) -> Result<PullResponse, TransportError>;
    fn status(&self) -> Result<SyncStatus, TransportError>;
}

/// Why a call failed, in the classes td's client reacts to differently.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// 401: the token is missing, unknown, expired or revoked. Retrying cannot help.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// 403: the token may not do this (e.g. a read-only token pushing).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// 404: no such project for this token.
    #[error("not found: {0}")]
    NotFound(String),
    /// Another 4xx: the request itself is wrong.
    #[error("rejected with HTTP {status}: {message}")]
    Rejected { status: u16, message: String },
    /// 5xx: the server failed; the request may or may not have taken effect.
    #[error("server error: {0}")]
    Server(String),
    /// No answer: unreachable, timed out, or the reply was lost after the server acted.
    #[error("network: {0}")]
    Network(String),
}

impl TransportError {
    /// Whether trying the same call again later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, TransportError::Server(_) | TransportError::Network(_))
    }
}

/// Shared references transport like the transport itself (the agent and tests share one).
impl<T: Transport + Sync> Transport for std::sync::Arc<T> {
    fn push(&self, request: &PushRequest) -> Result<PushResponse, TransportError> {
        (**self).push(request)
    }
    fn pull(&self, query: &PullQuery) -> Result<PullResponse, TransportError> {
        (**self).pull(query)
    }
    fn status(&self) -> Result<SyncStatus, TransportError> {
        (**self).status()
    }
}

/// A boxed transport (a client whose transport is chosen at run time) transports like its
/// contents.
impl<T: Transport + ?Sized> Transport for Box<T> {
    fn push(&self, request: &PushRequest) -> Result<PushResponse, TransportError> {
        (**self).push(request)
    }
    fn pull(&self, query: &PullQuery) -> Result<PullResponse, TransportError> {
        (**self).pull(query)
    }
    fn status(&self) -> Result<SyncStatus, TransportError> {
        (**self).status()
    }
}
