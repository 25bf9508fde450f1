//! Placement: which shard node owns each project of a cluster, and the nodes there are.
//!
//! A project has at most one owner at a time, held by a **lease** with an **epoch** in
//! Postgres. A lease is claimed, renewed and released by single conditional statements, so
//! two nodes can never both hold one: a claim succeeds only on a project nobody holds or whose
//! lease has run out, and a takeover raises the epoch. Every time is Postgres's own `now()`:
//! one clock for the whole cluster, whatever the nodes' clocks say. A node that cannot renew
//! must stop writing at once, and everything it writes carries its epoch, so a stale owner is
//! fenced (the backup layer refuses a segment of an older epoch).
//!
//! Nodes register with the URL gateways reach them on and send heartbeats; a new project goes
//! to the live, not draining node holding the fewest leases.

pub mod cli;
mod error;
mod holder;
mod model;
mod store;

pub use error::PlacementError;
pub use holder::{Acquired, Holder, OnLost};
pub use model::{Claim, Lease, NodeId, NodeInfo, Owner, least_loaded};
pub use store::Placement;
