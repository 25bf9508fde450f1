//! `tdsync harness …`: list, run, replay, dashboard.

use std::{ops::RangeInclusive, path::PathBuf, process::ExitCode};

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};

use crate::{
    faults, fixtures,
    remote::{Backend, ClusterConfig},
    runner::{self, RunOptions},
    scenario::{self, CATALOGUE, Size},
    shrink,
};

#[derive(Debug, Args)]
pub struct HarnessArgs {
    #[command(subcommand)]
    pub command: HarnessCommand,
}

#[derive(Debug, Subcommand)]
pub enum HarnessCommand {
    /// List the scenarios, one per line, name first.
    List,
    /// Run scenarios; exit 0 if and only if every run converged. Prints one line per run.
    Run(RunArgs),
    /// Write DIR/index.html: one self-contained page over the run reports in DIR.
    Dashboard(DashboardArgs),
    /// Replay real td databases through the server; exit 0 if and only if every replay
    /// converged. Prints one line per database (or series step).
    Replay(crate::replay::cli::ReplayArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    /// Clients call the server's store in this process.
    Inproc,
    /// Clients talk to a real `tdsync serve` over HTTP: this binary (or $TDSYNC_BIN) started
    /// as a subprocess on a free loopback port with the run's own data directory.
    Http,
    /// Clients sync through the two gateways of a cluster the run starts: three shard nodes and
    /// two gateways of this binary (or $TDSYNC_BIN) sharing --control-plane (Postgres), --redis
    /// and a backup directory of the run's own; a server restart restarts the project's owner.
    Cluster,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenarios to run (see `tdsync harness list`).
    pub scenarios: Vec<String>,
    /// Run every scenario of the catalogue except the big sync (run that one by name).
    #[arg(long)]
    pub all: bool,
    /// Seed of the run(s) [default: 1].
    #[arg(long, conflicts_with = "seeds")]
    pub seed: Option<u64>,
    /// A range of seeds, `A..B` (inclusive), one run per seed.
    #[arg(long, value_parser = parse_seeds)]
    pub seeds: Option<RangeInclusive<u64>>,
    /// Number of clients (overrides the scenario's own).
    #[arg(long)]
    pub clients: Option<usize>,
    /// Number of actions (overrides the scenario's own size).
    #[arg(long)]
    pub actions: Option<usize>,
    /// Where the clients sync. `cluster` also needs the global --control-plane
    /// postgres://… (the cluster's control plane and placement store: a database no other run
    /// uses at the same time) and --redis.
    #[arg(long, value_enum, default_value_t = Transport::Inproc)]
    pub transport: Transport,
    /// With --transport cluster: the Redis the cluster's nodes and gateways share
    /// (redis://HOST:PORT); each run keeps its keys under a prefix of its own.
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
    /// Faults to switch on, comma separated, or `all`: latency, jitter, lost-requests,
    /// lost-acks, duplicates, server-errors, partitions, restarts, crash-mid-pull, clock-skew,
    /// concurrent-sync, mixed-pollers.
    #[arg(long)]
    pub faults: Option<String>,
    /// Write `<scenario>-<seed>.json` for every run into this directory.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Shrink a failing run to a minimal action list (delta debugging).
    #[arg(long)]
    pub shrink: bool,
    /// One JSON object per run instead of a text line.
    #[arg(long)]
    pub json: bool,
    /// Where the real td databases are (older-schema clients start from them).
    #[arg(long, env = "TDSYNC_FIXTURES")]
    pub fixtures: Option<PathBuf>,
}

fn parse_seeds(s: &str) -> Result<RangeInclusive<u64>, String> {
    let (a, b) = s.split_once("..").ok_or("expected A..B, e.g. 1..200")?;
    let a: u64 = a
        .trim()
        .parse()
        .map_err(|_| format!("{a:?} is not a seed"))?;
    let b: u64 = b
        .trim()
        .trim_start_matches('=')
        .parse()
        .map_err(|_| format!("{b:?} is not a seed"))?;
    if a > b {
        return Err(format!("empty range {a}..{b}"));
    }
    Ok(a..=b)
}

/// Runs a harness command; `control_plane` is the global `--control-plane` (a cluster run's
/// Postgres).
pub fn run(args: HarnessArgs, control_plane: Option<String>) -> anyhow::Result<ExitCode> {
    match args.command {
        HarnessCommand::List => {
            for s in CATALOGUE {
                println!("{:<24} {}", s.name, s.about);
            }
            Ok(ExitCode::SUCCESS)
        }
        HarnessCommand::Run(r) => run_scenarios(r, control_plane),
        HarnessCommand::Dashboard(d) => dashboard(d),
        HarnessCommand::Replay(r) => crate::replay::cli::run(r),
    }
}

#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// A directory of `<run>.json` reports (from `tdsync harness run --report DIR`).
    pub dir: PathBuf,
}

/// Writes the dashboard and prints its path; a missing or report-less directory is an error.
fn dashboard(args: DashboardArgs) -> anyhow::Result<ExitCode> {
    let written = crate::dashboard::write(&args.dir)?;
    for s in &written.skipped {
        eprintln!("skipped {}: {}", s.path.display(), s.reason);
    }
    println!("{}", written.path.display());
    Ok(ExitCode::SUCCESS)
}

fn run_scenarios(args: RunArgs, control_plane: Option<String>) -> anyhow::Result<ExitCode> {
    let backend = match args.transport {
        Transport::Inproc => Backend::InProcess,
        Transport::Http => Backend::http().map_err(anyhow::Error::msg)?,
        Transport::Cluster => Backend::Cluster(ClusterConfig::new(
            crate::remote::server_binary().map_err(anyhow::Error::msg)?,
            control_plane,
            args.redis.clone(),
        )?),
    };
    let names: Vec<&'static scenario::Scenario> = if args.all {
        scenario::in_all().collect()
    } else if args.scenarios.is_empty() {
        bail!("name a scenario (see `tdsync harness list`) or pass --all");
    } else {
        args.scenarios
            .iter()
            .map(|n| {
                scenario::find(n)
                    .with_context(|| format!("no scenario {n:?}; `tdsync harness list` shows them"))
            })
            .collect::<anyhow::Result<_>>()?
    };
    let extra_faults = match &args.faults {
        Some(list) => faults::parse(list).map_err(anyhow::Error::msg)?,
        None => Vec::new(),
    };
    let seeds: Vec<u64> = match (&args.seeds, args.seed) {
        (Some(r), _) => r.clone().collect(),
        (None, Some(s)) => vec![s],
        (None, None) => vec![1],
    };
    let size = Size {
        clients: args.clients,
        actions: args.actions,
    };
    let fixtures = args.fixtures.clone().unwrap_or_else(fixtures::default_dir);
    let mut all_passed = true;
    for s in &names {
        for &seed in &seeds {
            let mut plan = scenario::plan(s, seed, size);
            faults::apply(&mut plan, &extra_faults);
            let opts = RunOptions {
                fixtures: fixtures.clone(),
                repro_base: repro_base(s.name, &args, &extra_faults, &backend),
            };
            let mut report = runner::run_plan_on(&plan, &opts, &backend);
            if !report.passed
                && args.shrink
                && let Some(first) = report.failures.first().cloned()
            {
                report.shrunk_actions = Some(shrink::shrink_on(&plan, &opts, &backend, &first));
            }
            all_passed &= report.passed;
            if args.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!("{}", report.summary_line());
                if !report.passed {
                    print!("{}", report.failure_text());
                }
            }
            if let Some(dir) = &args.report {
                report
                    .write_to(dir)
                    .with_context(|| format!("writing the report into {}", dir.display()))?;
            }
        }
    }
    Ok(if all_passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The command that re-runs one scenario with these options (the seed is added per run).
fn repro_base(name: &str, args: &RunArgs, faults: &[String], backend: &Backend) -> String {
    let mut out = format!("tdsync harness run {name}");
    if let Some(c) = args.clients {
        out.push_str(&format!(" --clients {c}"));
    }
    if let Some(a) = args.actions {
        out.push_str(&format!(" --actions {a}"));
    }
    if !faults.is_empty() {
        out.push_str(&format!(" --faults {}", faults.join(",")));
    }
    out.push_str(&backend.repro_options());
    out
}
