//! The test harness: simulated td clients, the scenarios that drive them against a tdsync
//! server, fault injection and the convergence oracle.
//!
//! [`td_writer`] is the simulated td CLI: it writes to a real td database exactly what td v0.62
//! writes (the row change and its `action_log` row), so tdsync's sync client can push it.

pub mod cli;
pub mod td_writer;
pub mod workload;
