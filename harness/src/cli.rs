//! `tdsync harness …`: list, run, replay, dashboard.

use std::process::ExitCode;

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct HarnessArgs {
    #[command(subcommand)]
    pub command: HarnessCommand,
}

#[derive(Debug, Subcommand)]
pub enum HarnessCommand {
    /// List the scenarios, one per line, name first.
    List,
}

pub fn run(args: HarnessArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        HarnessCommand::List => anyhow::bail!("the scenario catalogue is being built"),
    }
}
