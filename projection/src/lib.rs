//! td's database schema and td's apply rules, shared by every replica tdsync runs.
//!
//! A tdsync shard keeps a projection of the twelve synced tables; a tdsync client applies pulled
//! events to a real td database. Both go through [`Applier`], so "the server projection equals
//! every client" is a property of one piece of code, not of two implementations kept in step.

pub mod apply;
pub mod compare;
pub mod cycles;
pub mod failure;
pub mod schema;
pub mod table;
pub mod value;

#[cfg(feature = "fault-injection")]
pub use apply::ApplyFault;
pub use apply::{Applied, Applier, Effect, Event, Orphan};
pub use compare::{Divergence, Dump, Tolerances};
pub use cycles::LongCycle;
pub use failure::ApplyError;
pub use value::Row;
