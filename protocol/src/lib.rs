//! The vocabulary tdsync shares with td: wire bodies, the entity/action taxonomy, payload
//! conventions, timestamp forms and deterministic ids. Everything that crosses a process boundary
//! is defined here once, so the gateway, the shard engine and the client cannot drift apart.

pub mod ids;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod payload;
pub mod taxonomy;
pub mod timestamp;
pub mod wire;

pub use payload::Envelope;
pub use taxonomy::{ActionType, EntityType};
