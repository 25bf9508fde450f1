//! `tdsync harness replay --db FILE... | --series DIR [--clients N] [--report DIR] [--json]`.
//! Exit status: 0 if and only if every replay converged; 1 when one failed its checks; 2 when
//! a file could not be replayed at all (not a td database, unreadable, schema out of range,
//! damaged where sync reads or writes). Damage where sync never looks is a `WARNING` line before
//! the database's line (`replay.integrity_warnings` in JSON), and the replay goes on.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{ArgGroup, Args};

use super::{InputError, ReplayOptions, ReplayReport, replay_dbs, replay_series};

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("input").required(true).args(["db", "series"])))]
pub struct ReplayArgs {
    /// td databases to replay (`.todos/issues.db`, schema 27 to 38); each is copied, never
    /// written.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub db: Vec<PathBuf>,
    /// A directory of successive versions of one project's database (its `*.db` files in name
    /// order), replayed incrementally.
    #[arg(long, value_name = "DIR", conflicts_with = "db")]
    pub series: Option<PathBuf>,
    /// Fresh clients that onboard from the server.
    #[arg(long, default_value_t = 1, value_parser = clients_count)]
    pub clients: usize,
    /// Write a `<run>.json` report per database (or series step) into this directory.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// One JSON object per line instead of a text line.
    #[arg(long)]
    pub json: bool,
}

fn clients_count(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "{s:?}: expected a number of fresh clients, at least 1"
        )),
    }
}

pub fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let progress = |line: &str| eprintln!("{line}");
    let opts = ReplayOptions {
        clients: args.clients,
        progress: &progress,
        ..ReplayOptions::default()
    };
    let mut tally = Tally::default();
    match &args.series {
        Some(dir) => match replay_series(dir, &opts) {
            Ok(series) => {
                for step in series {
                    tally.show(step, &args)?;
                }
            }
            Err(e) => tally.show(Err(e), &args)?,
        },
        None => {
            for replay in replay_dbs(&args.db, &opts) {
                tally.show(replay, &args)?;
            }
        }
    }
    Ok(tally.exit_code())
}

#[derive(Default)]
struct Tally {
    failed: usize,
    unreadable: usize,
}

impl Tally {
    fn show(
        &mut self,
        outcome: Result<ReplayReport, InputError>,
        args: &ReplayArgs,
    ) -> anyhow::Result<()> {
        match outcome {
            Ok(report) => {
                self.failed += usize::from(!report.run.passed);
                if args.json {
                    println!("{}", serde_json::to_string(&report)?);
                } else {
                    for w in &report.replay.integrity_warnings {
                        println!("WARNING {}", w.message);
                    }
                    println!("{}", report.summary_line());
                    if !report.run.passed {
                        print!("{}", report.run.failure_text());
                    }
                }
                if let Some(dir) = &args.report {
                    write_report(&report, dir)
                        .with_context(|| format!("writing the report into {}", dir.display()))?;
                }
            }
            Err(e) => {
                self.unreadable += 1;
                if args.json {
                    let line = serde_json::json!({
                        "file": e.path.display().to_string(),
                        "error": e.message,
                    });
                    println!("{line}");
                } else {
                    println!("ERROR {e}");
                }
            }
        }
        Ok(())
    }

    fn exit_code(&self) -> ExitCode {
        if self.unreadable > 0 {
            ExitCode::from(2)
        } else if self.failed > 0 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    }
}

/// `<dir>/<scenario>-<seed>.json`, named as `run --report` names its reports.
fn write_report(report: &ReplayReport, dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let text = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    std::fs::write(dir.join(report.run.file_name()), text)
}
