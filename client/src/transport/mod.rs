//! How a client reaches a server: td's three sync calls for one project, plus what tdsync adds
//! for waiting on changes (a long-polled pull, and the server's advice on how to wait). The
//! engine only sees this trait, so the same sync code runs in-process (tests, harness) and over
//! HTTP.

#[cfg(feature = "faults")]
pub mod faulty;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "in-process")]
pub mod in_process;

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use tdsync_protocol::wire::{PullQuery, PullResponse, PushRequest, PushResponse, SyncStatus};

/// td's v1 sync calls for one project, with the caller's credentials already bound.
pub trait Transport: Send {
    fn push(&self, request: &PushRequest) -> Result<PushResponse, TransportError>;
    fn pull(&self, query: &PullQuery) -> Result<PullResponse, TransportError>;
    fn status(&self) -> Result<SyncStatus, TransportError>;

    /// A pull that, when the cursor is at the head, may wait up to `wait` for new events before
    /// answering (a long poll: tdsync's `wait=`, used when [`Advice::long_poll`] offers it). It
    /// ends early with [`TransportError::Cancelled`] once `cancel` is cancelled. A transport
    /// without long polls answers at once, like [`Transport::pull`] (the default).
    fn pull_wait(
        &self,
        query: &PullQuery,
        wait: Duration,
        cancel: &Cancel,
    ) -> Result<PullResponse, TransportError> {
        let _ = wait;
        if cancel.is_cancelled() {
            return Err(TransportError::Cancelled);
        }
        self.pull(query)
    }

    /// What the server said, in its last answers, about how to wait for its changes (nothing,
    /// by default).
    fn advice(&self) -> Advice {
        Advice::default()
    }
}

/// How a server wants to be waited on, as its answers said.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Advice {
    /// The longest wait it holds a pull at the head for (tdsync's `X-Tdsync-Long-Poll`, on every
    /// pull answer); `None` when the last pull answer offered none (td-sync, an older tdsync, an
    /// in-process server that was not asked to).
    pub long_poll: Option<Duration>,
    /// How long to wait before asking again (`X-Poll-Interval`, on pulls and status at the
    /// head); `None` when the last pull or status answer gave none.
    pub poll_interval: Option<Duration>,
}

type Hook = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct CancelState {
    cancelled: bool,
    hooks: Vec<Hook>,
}

/// Ends a waiting call (a long poll) early, from another thread: a sync agent cancels its long
/// poll when it is stopped, paused or nudged. Clones share the same state.
#[derive(Clone, Default)]
pub struct Cancel(Arc<Mutex<CancelState>>);

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }

    fn lock(&self) -> MutexGuard<'_, CancelState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Cancels, and runs every hook registered with [`Cancel::on_cancel`] (once).
    pub fn cancel(&self) {
        let hooks = {
            let mut st = self.lock();
            st.cancelled = true;
            std::mem::take(&mut st.hooks)
        };
        for hook in hooks {
            hook();
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.lock().cancelled
    }

    /// Runs `hook` when this is cancelled — at once if it already is. A transport wakes its
    /// waiting call with it.
    pub fn on_cancel(&self, hook: impl FnOnce() + Send + 'static) {
        let mut st = self.lock();
        if st.cancelled {
            drop(st);
            hook();
        } else {
            st.hooks.push(Box::new(hook));
        }
    }
}

impl std::fmt::Debug for Cancel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cancel")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
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
    /// The caller cancelled a waiting call ([`Cancel`]); its answer, if any comes, is dropped.
    #[error("cancelled")]
    Cancelled,
}

impl TransportError {
    /// Whether trying the same call again later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, TransportError::Server(_) | TransportError::Network(_))
    }
}

/// Shared references transport like the transport itself (the agent and tests share one).
impl<T: Transport + Sync> Transport for Arc<T> {
    fn push(&self, request: &PushRequest) -> Result<PushResponse, TransportError> {
        (**self).push(request)
    }
    fn pull(&self, query: &PullQuery) -> Result<PullResponse, TransportError> {
        (**self).pull(query)
    }
    fn status(&self) -> Result<SyncStatus, TransportError> {
        (**self).status()
    }
    fn pull_wait(
        &self,
        query: &PullQuery,
        wait: Duration,
        cancel: &Cancel,
    ) -> Result<PullResponse, TransportError> {
        (**self).pull_wait(query, wait, cancel)
    }
    fn advice(&self) -> Advice {
        (**self).advice()
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
    fn pull_wait(
        &self,
        query: &PullQuery,
        wait: Duration,
        cancel: &Cancel,
    ) -> Result<PullResponse, TransportError> {
        (**self).pull_wait(query, wait, cancel)
    }
    fn advice(&self) -> Advice {
        (**self).advice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_runs_its_hooks_once_and_at_once_when_late() {
        let cancel = Cancel::new();
        let (tx, rx) = std::sync::mpsc::channel();
        let early = tx.clone();
        cancel.on_cancel(move || early.send("early").unwrap());
        assert!(!cancel.is_cancelled());
        assert!(rx.try_recv().is_err(), "not before the cancel");
        cancel.clone().cancel();
        assert!(cancel.is_cancelled());
        assert_eq!(rx.try_recv(), Ok("early"));
        cancel.cancel();
        assert!(rx.try_recv().is_err(), "a hook runs once");
        cancel.on_cancel(move || tx.send("late").unwrap());
        assert_eq!(rx.try_recv(), Ok("late"));
    }
}
