//! The test harness: simulated td clients, the scenarios that drive them against a tdsync
//! server, fault injection and the convergence oracle.
//!
//! [`td_writer`] is the simulated td CLI: it writes to a real td database exactly what td v0.62
//! writes (the row change and its `action_log` row), so tdsync's sync client can push it.

pub mod cli;
pub mod dashboard;
pub mod faults;
pub mod fixtures;
pub mod generator;
pub mod oracle;
pub mod plan;
pub mod remote;
pub mod replay;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod shrink;
pub mod td_writer;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod text;
pub mod workload;
pub mod world;
mod writes;
