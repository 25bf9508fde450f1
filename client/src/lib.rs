//! The tdsync sync client library: it keeps an unmodified td database in step with a tdsync
//! (or td-sync) server.
//!
//! [`tddb`] is the library's narrow interface to the td database — read pending actions, mark
//! them pushed, apply pulled events, keep the cursor — and the only code here that touches
//! `.todos/issues.db`. It never does network I/O.

pub mod agent;
pub mod engine;
#[cfg(feature = "http")]
pub mod events;
pub mod tddb;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod transport;

pub use agent::{AgentEvent, AgentOptions, AgentStats, SyncAgent};
pub use engine::{Identity, SyncClient, SyncError, SyncOptions};
pub use transport::{Advice, Cancel, Transport, TransportError};
