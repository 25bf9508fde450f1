//! State shared across processes (Redis, when configured). Everything kept there is derivable
//! from the shards or harmless to lose: heads, cursors, rate-limit counters, wake-ups. The
//! [`crate::Live`] layer keeps its in-process state too and falls back to it while a shared
//! backend fails.

use std::{future::Future, pin::Pin, sync::Arc};

use serde::{Deserialize, Serialize};

use crate::{
    change::{Change, Head, ProjectKey},
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

/// What one process tells the others about a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Notice {
    /// A committed change (for their subscribers).
    Change(Change),
    /// The project's shard node changed (a takeover, a hand-over): forget where it was.
    Moved,
}

/// What a process does with what the others publish.
pub trait Inbox: Send + Sync + 'static {
    fn deliver(&self, key: ProjectKey, notice: Notice);
    /// Delivery resumed after a break: whatever was published meanwhile was missed.
    fn resumed(&self);
}

/// What a shared backend does. Calls are made on the request path; each should answer or fail
/// within a short timeout of its own (a slow backend must not hold up a push or a pull).
pub trait SharedState: Send + Sync + 'static {
    /// Its name in logs, metrics and `/healthz` (`redis`).
    fn name(&self) -> &'static str;
    /// Records `head` as the project's (see [`Head`] for which head wins) and tells every other
    /// process of `notice`.
    fn publish<'a>(
        &'a self,
        key: &'a ProjectKey,
        head: Option<&'a Head>,
        notice: &'a Notice,
    ) -> SharedFuture<'a, ()>;
    /// Records many heads at once (a process writing back the heads of the projects it serves).
    fn record_heads<'a>(&'a self, heads: &'a [(ProjectKey, Head)]) -> SharedFuture<'a, ()>;
    /// The project's head, if one is recorded and the process that wrote it is still heard
    /// from (a head whose writer went quiet may be behind: its later writes may not have
    /// reached the backend).
    fn head<'a>(&'a self, key: &'a ProjectKey) -> SharedFuture<'a, Option<Head>>;
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
    /// Says this process is alive (made every second or so). Answers whether it was heard from
    /// without a break before: `false` the first time, after a gap, and when the backend lost
    /// its state (restarted, flushed) — then the heads this process wrote may be gone or old.
    fn heartbeat(&self) -> SharedFuture<'_, bool>;
    /// Starts handing what other processes publish to `inbox` (once, at start). Delivery
    /// resumes by itself after the backend comes back.
    fn listen(&self, inbox: Arc<dyn Inbox>);
}
