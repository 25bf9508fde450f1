//! Backups of every shard to object storage. tdsync's log is append-only and its projection a
//! deterministic replay of it, so the backup is the log itself, shipped as immutable,
//! checksummed segments (`ship`), plus periodic snapshots of each shard; a restore installs a
//! snapshot and appends the segments after it through the one apply engine (`restore`);
//! `verify` checks shards and backups. `service` runs the shipping inside `tdsync serve`;
//! `cli` holds the `backup`, `restore` and `verify` commands.

mod catalog;
pub mod cli;
mod compress;
mod error;
pub mod layout;
pub mod progress;
pub mod recovery;
pub mod restore;
pub mod segment;
pub mod service;
pub mod ship;
pub mod target;
pub mod verify;

pub use catalog::{Catalog, EpochStart, Link, ProjectCatalog, SegmentRef, SnapshotRef};
pub use error::BackupError;
pub use service::{BackupConfig, BackupService, BackupStats};
pub use ship::{Policy, Shipped, Shipper};
pub use target::Target;
