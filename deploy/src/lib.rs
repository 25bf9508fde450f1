//! `tdsync deploy`: installs, upgrades and rolls back a tdsync server on a Linux host, asking
//! its questions once (answers saved as they are given), then running ordered, idempotent steps
//! that each check the host before acting and after. Everything lives under one root (`/`, or
//! `--root DIR` for a sandbox), and every check of the server's stores goes through the
//! installed binary with the server's own environment.

mod answers;
mod ask;
pub mod cli;
mod config;
mod files;
mod layout;
mod plan;
mod state;
mod steps;
mod supervisor;
