//! `tdsync bench`: a load generator for td's v1 sync API, against a server it starts itself or
//! any td-compatible server (`--url`, so td's own `td-sync` can be measured by the same command).
//!
//! Every figure is the median over rounds, next to a baseline measured in the same command
//! (BENCHMARKS.md's house style): push throughput (baseline: the same batches straight into
//! tdsync's store), pull at the head (baseline: `GET /healthz` on the same server), a 1000-event
//! page (baseline: the same page from the store) and the snapshot of a 10,000-issue project
//! (baseline: the store building and reading it); the live layer — idle SSE streams, the fan-out
//! of a push to SSE subscribers, long-polled pulls (`sse`, `long_poll`). Progress goes to
//! stderr, figures to stdout.

mod backups;
mod histogram;
mod http;
mod long_poll;
mod many;
mod pull;
mod push;
mod redis_head;
mod report;
mod snapshot;
mod sse;
mod subprocess;
mod target;
mod workload;

use std::{process::ExitCode, sync::Arc, time::Duration};

use anyhow::{Context, bail};
use axum::body::Bytes;
use clap::{Args, ValueEnum};
use rand::RngCore;
use tdsync_tenants::ProjectId;

pub use histogram::Histogram;
use http::{Conn, Endpoint};
use report::{Figure, Header, load_average, num};
use target::{Api, InProcess, Status};
use workload::{Batches, Reference, SEED_EVENTS};

const ABOUT: &str = "\
Measure a sync server under load: push throughput (500-event batches of td-shaped events from N \
concurrent devices), pull at the head (N concurrent pollers; req/s, p50/p99), one 1000-event pull \
page (latency), the snapshot of a 10,000-issue project (first build, cached download), and many \
small projects (--projects of them, --project-events events each: the creation rate, then polling \
them at random next to polling one; in-process also disk per project, memory and open files), \
idle SSE streams (--sse-connections of them: the server's memory per stream), the fan-out of a \
push to --subscribers SSE streams (until the last has it, p50/p99), and long-polled pulls \
(--long-polls of them: from a push to their answers, p50/p99; and how close to its deadline an \
unanswered one returns).

Every figure is the median of --rounds rounds, printed next to a baseline measured by the same \
command: the same batches pushed straight into tdsync's store; GET /healthz on the same server; \
the same page from the store; the store building and reading the snapshot; the same polling of one \
project; idle keep-alive connections; the same push heard by one subscriber; a plain pull sent \
right after the push is answered; a plain pull at the head; for --only backup (not in the \
default set), the same pushes to a server without backups, and the same events pushed into a \
store. Compare ratios across \
runs, not raw numbers: the baselines move with the machine's load as much as the figures do.

Without --url, tdsync bench starts its own tdsync in-process (own worker threads) on a free \
loopback port, with a fresh temporary data directory and SQLite control plane, a tenant and a \
write token, and removes it all at the end; the server's memory per idle SSE stream is read \
from `tdsync serve` run from this binary as a process of its own (a fresh one per round). With \
--url it measures any td-compatible server (td's v1 API: tdsync, or td's own td-sync), creating \
the projects it needs with POST /v1/projects unless --project names one (then every measurement \
uses that project, and events are added to it). The bench makes every request with one token \
from one address, far more than a server's rate limits allow: raise them on the server it \
measures (tdsync serve --rate-limit-push and the others, as infra/bench-vs-td-sync.sh does for \
both servers); in-process, and in the servers it starts itself, they are out of reach.

Examples:
  tdsync bench
  tdsync bench --only pull-head --pollers 64 --duration 5
  tdsync bench --only pull-head --redis redis://127.0.0.1:6379
  tdsync bench --only many-projects --projects 10000 --pollers 16
  tdsync bench --only sse,long-poll
  tdsync bench --only sse,long-poll --sse-connections 500 --subscribers 100 --live-pushes 5
  tdsync bench --only backup
  tdsync bench --url http://127.0.0.1:8080 --token tds_… --json";

/// What `tdsync bench` can measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Measurement {
    /// Push throughput (events/s).
    Push,
    /// Pull at the head: req/s and p50/p99 latency.
    PullHead,
    /// One 1000-event pull page from a populated project: latency.
    PullPage,
    /// Snapshot of a 10,000-issue project: first build and cached download.
    Snapshot,
    /// Many small projects: creation rate, then polling (pull at the head and status) across
    /// them next to the same polling of one project; disk, memory and open files in-process.
    ManyProjects,
    /// The live layer's SSE stream: the server's memory per idle stream, and the fan-out of a
    /// push to many subscribers (until the last has it, p50/p99).
    Sse,
    /// Long-polled pulls (`wait=`): from a push to their answers (p50/p99), and how close to
    /// its deadline an unanswered one returns.
    LongPoll,
    /// Backups (in-process only): push throughput with backups shipped and with `--durability
    /// replicated` next to none, how long a push waits to be in the backup, and the time to
    /// restore a 50,000-event project (from segments, from a snapshot).
    Backup,
}

#[derive(Debug, Clone, Args)]
#[command(long_about = ABOUT)]
pub struct BenchArgs {
    /// Base URL of a running td-compatible server (td's TD_SYNC_URL). Without it, a tdsync is
    /// started in-process on a free loopback port with a temporary data directory.
    #[arg(long, value_name = "URL", requires = "token")]
    pub url: Option<String>,
    /// Bearer token for --url (td's TD_AUTH_KEY): a tdsync token with write scope (tenant-wide
    /// unless --project is given), or a td-sync API key.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "TDSYNC_BENCH_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Project to measure (with --url); events are pushed into it. Without it, the bench creates
    /// its projects with POST /v1/projects.
    #[arg(long, value_name = "ID", requires = "url")]
    pub project: Option<String>,
    /// Concurrent pushing devices, each on its own connection.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub devices: usize,
    /// Projects the pushing devices are spread over (device d pushes into project d mod N):
    /// 1 measures one project's shard, more measure a server with several busy projects.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub push_projects: usize,
    /// Concurrent pollers for the pull at the head, each on its own connection.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub pollers: usize,
    /// Projects for many-projects.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub projects: usize,
    /// Events pushed into each of the many projects (one push each).
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub project_events: usize,
    /// Idle SSE streams held open on one project for the server's memory per stream (sse).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub sse_connections: usize,
    /// SSE subscribers of one project that a push is fanned out to (sse).
    #[arg(long, value_name = "N", default_value_t = 1_000)]
    pub subscribers: usize,
    /// Concurrent long-polled pulls waiting at the head of one project (long-poll).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub long_polls: usize,
    /// Pushes per round for the SSE fan-out and the long polls, and for each of their baselines.
    #[arg(long, value_name = "N", default_value_t = 40)]
    pub live_pushes: usize,
    /// Events in the project whose restore --only backup times.
    #[arg(long, value_name = "N", default_value_t = SEED_EVENTS)]
    pub restore_events: usize,
    /// Seconds each timed round lasts (push, pull at the head, pull page; and each baseline).
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    pub duration: f64,
    /// Rounds per measurement; figures are their medians.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub rounds: usize,
    /// Measure only these (comma-separated or repeated); all by default.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "WHAT")]
    pub only: Vec<Measurement>,
    /// Print the figures as one JSON document on stdout (progress still goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// With pull-head: also measure it on a second in-process tdsync whose live state is in
    /// this Redis, next to the in-process figure in the same run (keys under a prefix of the
    /// run's own).
    #[arg(long, value_name = "URL", conflicts_with = "url")]
    pub redis: Option<tdsync_live_redis::RedisUrl>,
}

/// What every measurement uses.
pub(crate) struct Ctx {
    endpoint: Arc<Endpoint>,
    /// A connection for setup calls (projects, status, single pushes).
    setup: tokio::sync::Mutex<Conn>,
    reference: Arc<Reference>,
    project: Option<String>,
    /// Makes this run's project names and session ids unique.
    nonce: String,
    rounds: usize,
    duration: Duration,
    devices: usize,
    push_projects: usize,
    pollers: usize,
    /// The in-process server's data directory (None with --url).
    server_dir: Option<std::path::PathBuf>,
}

impl Ctx {
    async fn create_project(&self, name: &str) -> anyhow::Result<String> {
        Api(&mut *self.setup.lock().await)
            .create_project(name)
            .await
    }

    async fn status(&self, project: &str) -> anyhow::Result<Status> {
        Api(&mut *self.setup.lock().await).status(project).await
    }

    async fn push(&self, project: &str, body: Bytes) -> anyhow::Result<i64> {
        Api(&mut *self.setup.lock().await).push(project, body).await
    }
}

/// The populated project (10,000 issues, 50k events), on the server and in the baseline store.
pub(crate) struct Seeded {
    project: String,
    /// Issue ids are `td-<prefix>NNNNNN`.
    prefix: String,
    issues: usize,
    reference: ProjectId,
}

/// `tdsync bench`.
pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if args.devices == 0
        || args.pollers == 0
        || args.rounds == 0
        || args.push_projects == 0
        || args.projects == 0
        || args.project_events == 0
        || args.sse_connections == 0
        || args.subscribers == 0
        || args.long_polls == 0
        || args.live_pushes == 0
        || args.restore_events == 0
    {
        bail!(
            "--devices, --push-projects, --pollers, --rounds, --projects, --project-events, \
             --sse-connections, --subscribers, --long-polls, --live-pushes and --restore-events \
             must be at least 1"
        );
    }
    if args.project_events > tdsync_protocol::wire::MAX_PUSH_EVENTS {
        bail!(
            "--project-events is pushed in one request: at most {}",
            tdsync_protocol::wire::MAX_PUSH_EVENTS
        );
    }
    if args.push_projects > 1 && args.project.is_some() {
        bail!("--push-projects needs projects of its own: leave out --project");
    }
    if !(args.duration.is_finite() && args.duration > 0.0 && args.duration <= 3600.0) {
        bail!("--duration must be between 0 and 3600 seconds");
    }
    let mut server = match &args.url {
        Some(_) => None,
        None => {
            eprintln!(
                "bench: starting tdsync in-process (temporary data directory, SQLite control plane)"
            );
            Some(InProcess::start()?)
        }
    };
    let (url, token) = match (&server, &args.url, &args.token) {
        (Some(s), _, _) => (s.url.clone(), s.token.clone()),
        (None, Some(url), Some(token)) => (url.clone(), token.clone()),
        (None, _, _) => bail!("--url needs --token"),
    };
    let client = tokio::runtime::Builder::new_multi_thread()
        .thread_name("tdsync-bench")
        .enable_all()
        .build()
        .context("starting the bench runtime")?;
    let server_dir = server.as_ref().map(|s| s.data_dir().to_path_buf());
    let outcome = client.block_on(measure(&args, &url, &token, server_dir));
    // Connections close with the client runtime, then the server drains and stops.
    client.shutdown_timeout(Duration::from_secs(2));
    if let Some(server) = &mut server {
        server.stop()?;
    }
    let (header, mut figures) = outcome?;
    if let Some(server) = &server
        && figures.iter().any(|f| f.key == "many_projects_poll")
    {
        figures.push(many::disk(
            "at rest (after the server stopped)",
            server.data_dir(),
            args.projects,
            args.project_events,
        )?);
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report::json(&header, &figures))?
        );
    } else {
        print!("{}", report::text(&header, &figures));
    }
    Ok(ExitCode::SUCCESS)
}

async fn measure(
    args: &BenchArgs,
    url: &str,
    token: &str,
    server_dir: Option<std::path::PathBuf>,
) -> anyhow::Result<(Header, Vec<Figure>)> {
    let in_process = server_dir.is_some();
    let endpoint = Endpoint::new(url, token).await?;
    let mut setup = endpoint.connect().await?;
    setup.get("/healthz", false).await?.ok("GET /healthz")?;
    let reference = Arc::new(
        tokio::task::spawn_blocking(Reference::open)
            .await
            .context("opening the baseline store")??,
    );
    let mut nonce = [0u8; 4];
    rand::rng().fill_bytes(&mut nonce);
    let ctx = Ctx {
        endpoint,
        setup: tokio::sync::Mutex::new(setup),
        reference,
        project: args.project.clone(),
        nonce: nonce.iter().map(|b| format!("{b:02x}")).collect(),
        rounds: args.rounds,
        duration: Duration::from_secs_f64(args.duration),
        devices: args.devices,
        push_projects: args.push_projects.min(args.devices),
        pollers: args.pollers,
        server_dir,
    };
    let want = |m: Measurement| args.only.is_empty() || args.only.contains(&m);
    let load_before = load_average();
    let mut figures = Vec::new();
    if want(Measurement::Push) {
        figures.push(push::run(&ctx).await?);
    }
    let seeded = if want(Measurement::PullPage) || want(Measurement::Snapshot) {
        Some(seed(&ctx).await?)
    } else {
        None
    };
    if want(Measurement::PullHead) {
        let project = match (&seeded, &ctx.project) {
            (Some(s), _) => s.project.clone(),
            (None, Some(p)) => p.clone(),
            (None, None) => {
                let p = ctx
                    .create_project(&format!("bench-head-{}", ctx.nonce))
                    .await?;
                let batch = Batches::new("bench-head", &format!("h{}_", ctx.nonce), 500)?;
                ctx.push(&p, batch.body(0, &format!("ses_head_{}", ctx.nonce)))
                    .await?;
                p
            }
        };
        figures.push(pull::head(&ctx, &project).await?);
        if let Some(redis) = &args.redis {
            figures.push(redis_head::run(&ctx, redis, &project).await?);
        }
    }
    if let Some(seeded) = &seeded {
        if want(Measurement::PullPage) {
            figures.push(pull::page(&ctx, seeded).await?);
        }
        if want(Measurement::Snapshot) {
            figures.extend(snapshot::run(&ctx, seeded).await?);
        }
    }
    if want(Measurement::ManyProjects) {
        if ctx.project.is_some() {
            bail!("many-projects makes projects of its own: leave out --project");
        }
        figures.extend(many::run(&ctx, args.projects, args.project_events).await?);
    }
    // Long polls first: each is answered before the next push, so none is left waiting when the
    // SSE fan-out counts its subscribers.
    if want(Measurement::LongPoll) {
        figures.extend(long_poll::run(&ctx, args.long_polls, args.live_pushes).await?);
    }
    if want(Measurement::Sse) {
        figures.extend(sse::fanout(&ctx, args.subscribers, args.live_pushes).await?);
        figures.extend(sse::idle(&ctx, args.sse_connections).await?);
    }
    // Not part of the default set: it starts two more servers and restores 50,000 events a
    // round. Asked for by name.
    if args.only.contains(&Measurement::Backup) {
        figures.extend(backups::run(&ctx, args.restore_events).await?);
    }
    let header = Header {
        target: url.to_string(),
        in_process,
        rounds: args.rounds,
        duration_secs: args.duration,
        devices: args.devices,
        pollers: args.pollers,
        load_before,
        load_after: load_average(),
    };
    Ok((header, figures))
}

/// Fills a project with 10,000 issues (50,000 td-shaped events in 500-event batches from one
/// device), on the server (unless the --project given already holds as many events) and in the
/// baseline store.
async fn seed(ctx: &Ctx) -> anyhow::Result<Seeded> {
    let prefix = format!("s{}_", ctx.nonce);
    let batches = Arc::new(Batches::new("bench-seed", &prefix, SEED_EVENTS)?);
    let session = format!("ses_seed_{}", ctx.nonce);
    let project = match &ctx.project {
        Some(p) => p.clone(),
        None => {
            ctx.create_project(&format!("bench-populated-{}", ctx.nonce))
                .await?
        }
    };
    let have = ctx.status(&project).await?.event_count;
    if have < SEED_EVENTS as i64 {
        eprintln!(
            "seed: pushing {} events (10,000 issues) into project {project}",
            num(SEED_EVENTS as f64)
        );
        let started = std::time::Instant::now();
        for i in 0..batches.json.len() {
            let n = ctx.push(&project, batches.body(i, &session)).await?;
            if n != batches.events_in(i) {
                bail!(
                    "a seed batch of {} events accepted {n}",
                    batches.events_in(i)
                );
            }
        }
        eprintln!(
            "seed: {} events/s from one device",
            num(SEED_EVENTS as f64 / started.elapsed().as_secs_f64())
        );
    } else {
        eprintln!("seed: project {project} already holds {have} events; not adding more");
    }
    let reference = ctx.reference.clone();
    let b = batches.clone();
    let p = tokio::task::spawn_blocking(move || {
        let p = ProjectId::parse("populated")?;
        let mut requests = b.requests.lock().unwrap_or_else(|e| e.into_inner());
        for r in requests.iter_mut() {
            r.session_id = session.clone();
            reference.push(&p, r)?;
        }
        anyhow::Ok(p)
    })
    .await??;
    Ok(Seeded {
        project,
        prefix,
        issues: SEED_EVENTS / 5,
        reference: p,
    })
}
