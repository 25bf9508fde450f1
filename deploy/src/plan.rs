//! A deploy is an ordered list of steps. Each looks at the host first (`check`): what is already
//! as it should be is skipped (↷); otherwise it acts (`apply`) and is checked again (✓), or the
//! run stops at it (✗) with the reason and the one thing to do next. Re-running after a fix
//! therefore resumes at the step that failed.

use std::path::PathBuf;
use std::process::Command;

use console::style;

use crate::config::Config;
use crate::layout::{Layout, Reach};
use crate::state::State;

/// What a step found.
pub enum Check {
    /// Nothing to do; what is in place.
    Done(String),
    /// What the step will do.
    Todo(String),
}

/// Why a step failed, and what to do about it.
#[derive(Debug)]
pub struct Failure {
    pub reason: String,
    pub next: String,
}

impl Failure {
    pub fn new(reason: impl Into<String>, next: impl Into<String>) -> Failure {
        Failure {
            reason: reason.into(),
            next: next.into(),
        }
    }
}

pub trait Step {
    fn title(&self) -> String;
    /// What the step does, for `--dry-run` (without looking at the host).
    fn plan(&self, cx: &Context) -> String;
    fn check(&self, cx: &mut Context) -> Result<Check, Failure>;
    /// Acts on what `check` found to do. Steps that only check (their check is never `Todo`)
    /// keep this default.
    fn apply(&self, _cx: &mut Context) -> Result<(), Failure> {
        Err(Failure::new(
            format!(
                "{} only checks, yet its check found something to do",
                self.title()
            ),
            "report this as a tdsync bug, with the output above",
        ))
    }
}

/// What every step may use.
pub struct Context {
    pub layout: Layout,
    pub config: Config,
    /// The binary running this deploy: the one to install.
    pub exe: PathBuf,
    /// What the deploy may touch beyond its root.
    pub reach: Reach,
    pub state: State,
    /// The admin token minted by this run, shown once in the summary.
    pub minted_token: Option<String>,
}

impl Context {
    /// The installed `tdsync` with the server's environment (and none of the deploy's own
    /// `TDSYNC_*` or `AWS_*` variables), so every check sees what the server will.
    pub fn tdsync(&self) -> Command {
        let mut command = Command::new(self.layout.binary());
        for (key, _) in std::env::vars_os() {
            let name = key.to_string_lossy();
            if name.starts_with("TDSYNC_") || name.starts_with("AWS_") {
                command.env_remove(&key);
            }
        }
        command.envs(self.config.environment());
        command
    }

    /// Runs the installed `tdsync` with `args`; its stdout, or its error as a failure.
    pub fn run_tdsync(&self, args: &[&str], next: &str) -> Result<String, Failure> {
        let output = self.tdsync().args(args).output().map_err(|e| {
            Failure::new(
                format!("cannot run {}: {e}", self.layout.binary().display()),
                "run tdsync deploy again to reinstall it",
            )
        })?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let reason = stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("it failed without saying why")
                .trim_start_matches("tdsync: ");
            Err(Failure::new(
                format!("`tdsync {}`: {reason}", args.join(" ")),
                next,
            ))
        }
    }
}

/// How the run went.
pub enum Outcome {
    Completed,
    /// Stopped at a failed step (it was reported).
    Failed,
}

/// Runs the steps in order, printing one line per step; stops at the first failure.
pub fn run(steps: &[Box<dyn Step>], cx: &mut Context) -> Outcome {
    for step in steps {
        match check_then_apply(step.as_ref(), cx) {
            Ok(Reported::Skipped(what)) => {
                println!(
                    "{} {} — {}",
                    style("↷").cyan(),
                    step.title(),
                    style(what).dim()
                )
            }
            Ok(Reported::Done(what)) => {
                println!("{} {} — {what}", style("✓").green().bold(), step.title())
            }
            Err(failure) => {
                println!(
                    "{} {}: {}",
                    style("✗").red().bold(),
                    step.title(),
                    failure.reason
                );
                println!("  {} {}", style("next:").bold(), failure.next);
                return Outcome::Failed;
            }
        }
    }
    Outcome::Completed
}

/// The plan without acting (`--dry-run`): each step and what it does.
pub fn dry_run(steps: &[Box<dyn Step>], cx: &Context) {
    for (n, step) in steps.iter().enumerate() {
        println!("{:>2}. {} — {}", n + 1, step.title(), step.plan(cx));
    }
}

enum Reported {
    Skipped(String),
    Done(String),
}

fn check_then_apply(step: &dyn Step, cx: &mut Context) -> Result<Reported, Failure> {
    let todo = match step.check(cx)? {
        Check::Done(what) => return Ok(Reported::Skipped(format!("already done: {what}"))),
        Check::Todo(todo) => todo,
    };
    println!("  {} {}", style("…").dim(), style(&todo).dim());
    step.apply(cx)?;
    match step.check(cx)? {
        Check::Done(what) => Ok(Reported::Done(what)),
        Check::Todo(still) => Err(Failure::new(
            format!("done, but the check after it still finds: {still}"),
            "read the messages above, fix the cause and run tdsync deploy again",
        )),
    }
}
