//! `tdsync`: one binary for the server, its admin commands and the test harness. Each command
//! family lives in the crate that owns its concept; this file only composes them.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "tdsync", version, about = "A multi-tenant sync service for td", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run sync scenarios against a tdsync server and check that every replica converges.
    Harness(tdsync_harness::cli::HarnessArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Harness(args) => tdsync_harness::cli::run(args),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tdsync: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
