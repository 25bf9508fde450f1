//! `tdsync`: one binary for the server, its admin commands, the test harness and the load
//! generator. Each command family lives in the crate that owns its concept; this file only
//! composes them.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "tdsync", version, about = "A multi-tenant sync service for td", long_about = None)]
struct Cli {
    /// Directory holding tdsync's data (shards, and the default SQLite control plane).
    #[arg(
        long,
        global = true,
        env = "TDSYNC_DATA_DIR",
        default_value = "./tdsync-data",
        value_name = "DIR"
    )]
    data_dir: PathBuf,
    /// Control-plane store (tenants, projects, tokens): sqlite://PATH or
    /// postgres://USER@HOST:PORT/DATABASE [default: sqlite://<DIR>/control-plane.db]. For
    /// `harness run --transport cluster`: the Postgres database the run's cluster shares.
    #[arg(long, global = true, env = "TDSYNC_CONTROL_PLANE", value_name = "URL")]
    control_plane: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the sync server: td's v1 sync API (TD_SYNC_URL) with tokens (TD_AUTH_KEY).
    // Boxed: serve's many options would make every command as large as it.
    Serve(Box<tdsync_gateway::configuration::ServeArgs>),
    /// Get a token from a tdsync server without an admin (`login github`: for a project linked
    /// to a GitHub repository you can read).
    #[command(subcommand)]
    Login(tdsync_gateway::people::login_cli::LoginCommand),
    #[command(flatten)]
    Admin(tdsync_acl::cli::AdminCommand),
    #[command(flatten)]
    Backup(tdsync_backup::cli::BackupCommand),
    /// A cluster's shard nodes and projects: status, drain a node, move a project.
    #[command(subcommand)]
    Cluster(tdsync_placement::cli::ClusterCommand),
    /// Run sync scenarios against a tdsync server and check that every replica converges.
    Harness(tdsync_harness::cli::HarnessArgs),
    /// Install, upgrade or roll back a tdsync server on this host, interactively: every step
    /// reported, answers saved, a rerun resuming after a failure.
    Deploy(tdsync_deploy::cli::DeployArgs),
    /// Load-test a sync server (this one in-process, or any td-compatible one with --url):
    /// push, pull at the head, a pull page and snapshots, each next to a same-command baseline.
    Bench(tdsync_bench::BenchArgs),
}

fn main() -> std::process::ExitCode {
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    let control_plane = tdsync_acl::cli::Location {
        data_dir: cli.data_dir,
        control_plane: cli.control_plane,
    };
    let outcome = match cli.command {
        Command::Serve(args) => serve(*args, control_plane),
        Command::Login(command) => tdsync_gateway::people::login_cli::run(command),
        Command::Admin(command) => tdsync_acl::cli::run(command, &control_plane),
        Command::Backup(command) => backup(command, &control_plane),
        Command::Cluster(command) => cluster(command, &control_plane),
        Command::Harness(args) => tdsync_harness::cli::run(args, control_plane.control_plane),
        Command::Deploy(args) => tdsync_deploy::cli::run(args),
        Command::Bench(args) => tdsync_bench::run(args),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tdsync: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// `tdsync serve`: opens the stores, listens, and serves until SIGINT or SIGTERM.
fn serve(
    args: tdsync_gateway::configuration::ServeArgs,
    location: tdsync_acl::cli::Location,
) -> anyhow::Result<std::process::ExitCode> {
    use anyhow::Context;
    use tdsync_gateway::{configuration::Settings, startup, telemetry};
    telemetry::init(args.log_format, &args.log).with_context(|| {
        format!(
            "--log {:?} is not a tracing filter (try info or tdsync_gateway=debug)",
            args.log
        )
    })?;
    let settings = Settings {
        listen: args.listen,
        data_dir: location.data_dir,
        control_plane: location.control_plane,
        max_open_shards: args.max_open_shards,
        durability: args.durability,
        redis: args.redis_config(),
        limits: args.rate_limits.limits(),
        backup: args.backup(),
        shard: args.cluster.shard(),
        gateway: args.cluster.role == tdsync_gateway::configuration::Role::Gateway,
        people: args.people.settings(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let state = startup::open(&settings).await?;
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("listening on {}", settings.listen))?;
        // The bound address, not the asked one: `--listen 127.0.0.1:0` picks a free port.
        let listen = listener.local_addr().context("reading the bound address")?;
        tracing::info!(%listen, data_dir = %settings.data_dir.display(), "tdsync serving");
        tracing::info!(limits = %settings.limits, "rate limits");
        eprintln!(
            "tdsync: serving on http://{listen} (data in {})",
            settings.data_dir.display()
        );
        startup::serve(listener, state, startup::shutdown_signal()).await
    })?;
    Ok(std::process::ExitCode::SUCCESS)
}

/// `tdsync backup|restore|verify`: the control plane is backed up with the shards when it is
/// the SQLite file.
fn backup(
    command: tdsync_backup::cli::BackupCommand,
    location: &tdsync_acl::cli::Location,
) -> anyhow::Result<std::process::ExitCode> {
    let sqlite = match location.url()? {
        tdsync_acl::ControlPlaneUrl::Sqlite(path) => Some(path),
        tdsync_acl::ControlPlaneUrl::Postgres(_) => None,
    };
    tdsync_backup::cli::run(command, &location.data_dir, sqlite.as_deref())
}

/// `tdsync cluster …`: placement lives in the Postgres control plane.
fn cluster(
    command: tdsync_placement::cli::ClusterCommand,
    location: &tdsync_acl::cli::Location,
) -> anyhow::Result<std::process::ExitCode> {
    match location.url()? {
        tdsync_acl::ControlPlaneUrl::Postgres(url) => tdsync_placement::cli::run(command, &url),
        tdsync_acl::ControlPlaneUrl::Sqlite(_) => anyhow::bail!(
            "a cluster keeps its placement in a Postgres control plane: give --control-plane \
             postgres://… (TDSYNC_CONTROL_PLANE)"
        ),
    }
}

/// `tdsync … | head` closes stdout early; Rust's `println!` then panics. A command-line tool
/// should end quietly instead, as Unix tools do — every command family prints with
/// `println!`, so this is decided once, here.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}
