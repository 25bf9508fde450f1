//! State shared across processes (Redis, when configured). Everything kept there is derivable
//! from the shards or harmless to lose: heads, cursors, rate-limit counters, wake-ups. The
//! [`crate::Live`] layer keeps its in-process state too and falls back to it while a shared
//! backend fails.

use std::{future::Future, pin::Pin, sync::Arc};

use crate::{
    change::{Change, ProjectKey},
    cursors::Cursor,
};

/// A shared backend's call failed (unreachable, timed out, refused).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{backend}: {message}")]
pub struct SharedError {
    pub backend: &'static str,
    pub message: String,
}

pub type SharedFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, SharedError>> + Send + 'a>>;

/// Called with every change another process published.
pub type Deliver = Arc<dyn Fn(ProjectKey, Change) + Send + Sync>;

/// What a shared backend does. Calls are made on the request path; each should answer or fail
/// within a short timeout of its own (a slow backend must not hold up a push or a pull).
pub trait SharedState: Send + Sync + 'static {
    /// Its name in logs, metrics and `/healthz` (`redis`).
    fn name(&self) -> &'static str;
    /// Tells every other process of `change` (and records the project's new head).
    fn publish<'a>(&'a self, key: &'a ProjectKey, change: &'a Change) -> SharedFuture<'a, ()>;
    /// Records where devices are (a batch collected since the last call; a backend keeps, per
    /// device, the higher seq and the later time).
    fn record_cursors<'a>(&'a self, batch: &'a [(ProjectKey, Cursor)]) -> SharedFuture<'a, ()>;
    /// The project's devices, as every process recorded them.
    fn cursors<'a>(&'a self, key: &'a ProjectKey) -> SharedFuture<'a, Vec<Cursor>>;
    /// Adds this process's requests since the last call to each bucket's count for rate-limit
    /// window `window` (minutes since the epoch) and returns each bucket's total over every
    /// process, in the same order.
    fn add_counts<'a>(
        &'a self,
        window: u64,
        deltas: &'a [(String, u64)],
    ) -> SharedFuture<'a, Vec<u64>>;
    /// Whether the backend answers (asked when a sync has nothing else to send, so an outage
    /// and a recovery are noticed without traffic).
    fn ping(&self) -> SharedFuture<'_, ()>;
    /// Starts delivering the changes other processes publish (once, at start). Delivery resumes
    /// by itself after the backend comes back.
    fn listen(&self, deliver: Deliver);
}
