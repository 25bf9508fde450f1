//! `tdsync deploy`: the command line, and what it prints around the steps.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use console::style;

use crate::answers::Answers;
use crate::ask;
use crate::config::{Config, Service, Tls};
use crate::layout::{Layout, Reach};
use crate::plan::{self, Context, Outcome};
use crate::state::State;
use crate::steps::caddy::Caddy;
use crate::{steps, supervisor};

/// Install, upgrade or roll back a tdsync server on this Linux host.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Install, upgrade or roll back a tdsync server on this Linux host.\n\n\
    It asks its questions (each answer saved the moment it is given, and offered as the default \
    next time), then runs its steps in order. Each step checks the host first: what is already \
    done is skipped (↷), the rest is done and checked (✓); the run stops at the first failure (✗) \
    with the reason and what to do next. Fix it and run tdsync deploy again: it resumes there.\n\n\
    Running a newer binary's `tdsync deploy` upgrades: it installs itself, migrates, restarts \
    and checks health, keeping the old binary for --rollback. Guide: docs/deploy.md."
)]
pub struct DeployArgs {
    /// Install under this directory instead of / (a sandbox: config, data, binary and service
    /// files all below it; no system user, packages or systemd).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Take answers from this TOML file (the keys of deploy.toml; secrets may be in it too).
    #[arg(long, value_name = "FILE")]
    pub answers: Option<PathBuf>,
    /// Ask nothing: the given or saved answers, defaults for the rest.
    #[arg(long)]
    pub yes: bool,
    /// Print the steps and what each does; change nothing.
    #[arg(long, conflicts_with_all = ["rollback", "stop"])]
    pub dry_run: bool,
    /// Put back the binary the last upgrade replaced, restart the server and check it.
    #[arg(long, conflicts_with_all = ["answers", "stop"])]
    pub rollback: bool,
    /// Stop the server (and Caddy) this deploy runs.
    #[arg(long, conflicts_with = "answers")]
    pub stop: bool,
}

pub fn run(args: DeployArgs) -> anyhow::Result<ExitCode> {
    if !args.root.is_absolute() {
        bail!("--root {} is not an absolute path", args.root.display());
    }
    if args.root.exists() && !args.root.is_dir() {
        bail!("--root {} is a file, not a directory", args.root.display());
    }
    let layout = Layout::new(&args.root);
    let reach = Reach::of(&layout);
    let mut answers = Answers::load(&layout, reach)?;
    let saved = layout.answers().exists();

    if args.stop || args.rollback {
        if !saved {
            bail!(
                "nothing is deployed under {} (no {})",
                layout.root().display(),
                layout.answers().display()
            );
        }
        let config = Config::from_answers(&answers).map_err(anyhow::Error::msg)?;
        return if args.stop {
            stop(&layout, &config)
        } else {
            rollback(layout, config, reach)
        };
    }

    let source = args.answers.clone().unwrap_or_else(|| layout.answers());
    if let Some(file) = &args.answers {
        if !file.is_file() {
            bail!("--answers {}: no such file", file.display());
        }
        answers.merge_file(file)?;
    }
    let asked = if args.yes {
        ask::without_asking(&layout, &mut answers, &source, !args.dry_run)
    } else if std::io::stdin().is_terminal() {
        println!(
            "{} into {} — answers are saved in {} as you give them.",
            style("tdsync deploy").bold(),
            layout.root().display(),
            layout.answers().display()
        );
        ask::interactively(&layout, &mut answers, !args.dry_run)
    } else {
        bail!("no terminal to ask at: give the answers with --answers FILE --yes");
    };
    asked?;
    let config = Config::from_answers(&answers).map_err(anyhow::Error::msg)?;
    let exe = std::env::current_exe().context("finding the running binary")?;
    let state = State::load(&layout).map_err(anyhow::Error::msg)?;
    let mut cx = Context {
        layout,
        config,
        exe,
        reach,
        state,
        minted_token: None,
    };
    let steps = steps::all();
    if args.dry_run {
        println!("The plan (nothing is changed by --dry-run):");
        plan::dry_run(&steps, &cx);
        return Ok(ExitCode::SUCCESS);
    }
    println!();
    match plan::run(&steps, &mut cx) {
        Outcome::Completed => {
            summary(&cx);
            Ok(ExitCode::SUCCESS)
        }
        Outcome::Failed => {
            println!(
                "\nStopped at the failed step. Fix it and run tdsync deploy again: the steps \
                 already done are skipped."
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

fn stop(layout: &Layout, config: &Config) -> anyhow::Result<ExitCode> {
    let was = supervisor::stop(layout, config.service)?;
    println!(
        "{}",
        if was {
            "stopped the server"
        } else {
            "the server was not running"
        }
    );
    if config.service == Service::Script && supervisor::stop_pid(&layout.caddy_pid_file(), "caddy")?
    {
        println!("stopped Caddy");
    }
    Ok(ExitCode::SUCCESS)
}

fn rollback(layout: Layout, config: Config, reach: Reach) -> anyhow::Result<ExitCode> {
    let (current, previous) = (layout.binary(), layout.previous_binary());
    if !previous.is_file() {
        bail!(
            "there is no previous binary to go back to ({}): --rollback undoes an upgrade",
            previous.display()
        );
    }
    // Swapped, so that running the newer binary's deploy again (or --rollback) goes forward.
    let aside = layout.bin_dir().join(".tdsync.rollback");
    std::fs::rename(&current, &aside).context("moving the current binary aside")?;
    std::fs::rename(&previous, &current).context("putting the previous binary back")?;
    std::fs::rename(&aside, &previous).context("keeping the newer binary")?;
    println!(
        "{} rolled back: {} is the previous binary again (the newer one is {})",
        style("✓").green().bold(),
        current.display(),
        previous.display()
    );
    let state = State::load(&layout).map_err(anyhow::Error::msg)?;
    let mut cx = Context {
        exe: current,
        layout,
        config,
        reach,
        state,
        minted_token: None,
    };
    Ok(match plan::run(&steps::after_rollback(), &mut cx) {
        Outcome::Completed => ExitCode::SUCCESS,
        Outcome::Failed => ExitCode::FAILURE,
    })
}

fn summary(cx: &Context) {
    let env = cx.layout.env_file();
    let bin = cx.layout.binary();
    let admin = |command: &str| {
        format!(
            "( set -a; . {}; {} {command} )",
            env.display(),
            bin.display()
        )
    };
    let tenant = cx.state.tenant_id.as_deref().unwrap_or("TENANT");
    println!(
        "\n{} tdsync is up at {}\n",
        style("Done.").green().bold(),
        cx.config.public_url
    );
    println!("For td users:");
    println!("  export TD_SYNC_URL={}", cx.config.public_url);
    match &cx.minted_token {
        Some(token) => {
            println!("  export TD_AUTH_KEY={token}");
            println!(
                "  (the admin token of {:?}, shown this once: keep it safe)",
                cx.config.tenant
            );
        }
        None => println!(
            "  TD_AUTH_KEY: the admin token minted by the first deploy ({}), or a new one below",
            cx.state
                .admin_token_id
                .as_deref()
                .unwrap_or("none recorded")
        ),
    }
    if cx.config.tls == (Tls::Caddy { internal: true }) {
        println!(
            "  SSL_CERT_FILE={}  (Caddy's own authority: td's machines must trust it)",
            Caddy::root_certificate(cx).display()
        );
    }
    println!("\nMore tokens:");
    println!(
        "  mint one:  {}",
        admin(&format!("token mint --tenant {tenant} --scope write"))
    );
    println!(
        "  invite:    td sync-project invite EMAIL (as a project owner); they run td auth login"
    );
    println!(
        "  td auth login emails its link through TDSYNC_SMTP_URL: add it to {} (yours: the \
         deploy never rewrites it) and run tdsync deploy again; until then the link is in the \
         server's log",
        cx.layout.local_env_file().display()
    );
    println!("\nFiles:");
    for (what, path) in [
        ("answers", cx.layout.answers()),
        ("settings", env.clone()),
        ("data", cx.config.data_dir.clone()),
    ] {
        println!("  {what:<9} {}", path.display());
    }
    if cx.config.service == Service::Script {
        println!("  {:<9} {}", "log", cx.layout.log_file().display());
        let root = match cx.layout.is_host() {
            true => String::new(),
            false => format!(" --root {}", cx.layout.root().display()),
        };
        println!(
            "\nThe server runs in the background ({}); stop it with: tdsync deploy{root} --stop",
            cx.layout.run_script().display(),
        );
    }
}
