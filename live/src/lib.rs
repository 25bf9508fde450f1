//! The live layer of tdsync: what makes a change on one project reach everyone watching it, and
//! what keeps a busy or runaway client from starving the others.
//!
//! - [`Change`]s are published after a push or a restore commits, fanned out to every
//!   subscriber of the project in this process (SSE streams, long-polls: [`hub`]) and, with a
//!   shared backend, to every other process ([`shared`]), with the project's [`Head`] — so a
//!   process that holds no shard (a cluster's gateway) can answer a status or a pull at the
//!   head, and is told when a project moves to another node.
//! - [`poll::advice`] turns a project's recent activity into the poll interval clients are told.
//! - [`cursors`]: each device's last pulled (or pushed) seq and when it was seen.
//! - [`limits`]: rate-limit counters per token or client address.
//!
//! Everything works in-process with nothing installed. A shared backend (Redis) holds only what
//! can be derived again from the shards or lost without harm — heads, cursors, counters,
//! wake-ups — so when it is unreachable the layer falls back to its in-process state, says so
//! once, and picks the shared state up again when it returns.
//!
//! This crate knows nothing of HTTP, shards or tokens: the gateway composes it.

pub mod change;
pub mod cursors;
pub mod hub;
pub mod limits;
pub mod poll;
pub mod shared;

mod live;

pub use change::{Change, ChangeKind, Head, ProjectKey, Touched};
pub use cursors::Cursor;
pub use limits::{Admission, Rate};
pub use live::{HeadSource, Live, LiveHealth, MAX_WAIT};
pub use shared::{Inbox, Notice, SharedError, SharedFuture, SharedState};
