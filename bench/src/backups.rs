//! `--only backup`: what backups cost. Two more in-process servers — one shipping to a
//! directory every second (`normal`), one acknowledging pushes only once they are in a segment
//! (`--durability replicated`) — take the same pushes as the bench's own server without
//! backups, rounds rotating the order. Then how long an acknowledged push waits to be in the
//! backup on the `normal` server (the recovery point), and the time to restore a 50,000-event
//! project (`--restore-events`) from segments alone and from a snapshot, next to pushing the same events into a
//! store.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use tdsync_backup::{
    Policy, Shipper, Target,
    layout::ProjectKey,
    progress::Progress,
    restore::{RestoreInto, Until, restore},
};
use tdsync_gateway::configuration::{BackupSettings, Durability};
use tdsync_tenants::{ProjectId, ShardFile};

use super::{
    Ctx,
    http::{Conn, Endpoint},
    push::http_round,
    report::{Figure, Series, num},
    target::{Api, InProcess},
    workload::Batches,
};

/// Seconds between shipments on the `normal` server.
const INTERVAL: Duration = Duration::from_secs(1);

struct Server {
    name: &'static str,
    process: InProcess,
    endpoint: Arc<Endpoint>,
    backup: tempfile::TempDir,
}

async fn start(name: &'static str, durability: Durability) -> anyhow::Result<Server> {
    let backup = tempfile::Builder::new()
        .prefix("tdsync-bench-backup-")
        .tempdir()
        .context("creating a backup directory")?;
    let settings = BackupSettings {
        url: format!("file://{}", backup.path().display()),
        interval: INTERVAL,
        max_lag: Duration::from_secs(120),
    };
    let process = tokio::task::spawn_blocking(move || {
        InProcess::start_configured(None, Some(settings), durability)
    })
    .await
    .context("starting a server with backups")??;
    let endpoint = Endpoint::new(&process.url, &process.token).await?;
    Ok(Server {
        name,
        process,
        endpoint,
        backup,
    })
}

pub async fn run(ctx: &Ctx, restore_events: usize) -> anyhow::Result<Vec<Figure>> {
    if ctx.server_dir.is_none() {
        bail!("backup measures servers the bench starts itself: leave out --url");
    }
    eprintln!("backup: starting two more tdsync in-process: shipping every 1 s, and replicated");
    let servers = [
        start("normal", Durability::Normal).await?,
        start("replicated", Durability::Replicated).await?,
    ];
    let outcome = measure(ctx, &servers, restore_events).await;
    for server in servers {
        let mut process = server.process;
        tokio::task::spawn_blocking(move || process.stop())
            .await
            .context("stopping a server with backups")??;
    }
    outcome
}

async fn measure(
    ctx: &Ctx,
    servers: &[Server; 2],
    restore_events: usize,
) -> anyhow::Result<Vec<Figure>> {
    let mut figures = push_throughput(ctx, servers).await?;
    figures.push(shipment_lag(ctx, &servers[0]).await?);
    figures.extend(restore_time(ctx, &servers[0], restore_events).await?);
    Ok(figures)
}

async fn push_throughput(ctx: &Ctx, servers: &[Server; 2]) -> anyhow::Result<Vec<Figure>> {
    let devices = ctx.devices;
    let mut batches = Vec::with_capacity(devices);
    for d in 0..devices {
        batches.push(Batches::new(
            &format!("bench-device-{d}"),
            &format!("b{d}_"),
            5_000,
        )?);
    }
    let batches = Arc::new(batches);
    // Off, normal, replicated: each with its own connections.
    let endpoints = [
        ctx.endpoint.clone(),
        servers[0].endpoint.clone(),
        servers[1].endpoint.clone(),
    ];
    let mut conns: Vec<Vec<Conn>> = Vec::new();
    for e in &endpoints {
        conns.push(e.connect_many(devices).await?);
    }
    let label = |what: &str| {
        format!(
            "POST …/sync/push, {devices} devices, 500-event batches, fresh project each round, {what}"
        )
    };
    let mut series = [
        Series::new(label("no backups")),
        Series::new(label("shipped every 1 s to a directory (normal)")),
        Series::new(label("--durability replicated to a directory")),
    ];
    for round in 0..ctx.rounds {
        for k in 0..3 {
            let which = (round + k) % 3;
            let mut setup = endpoints[which].connect().await?;
            let project = Api(&mut setup)
                .create_project(&format!("bench-backup-push-{}-{round}", ctx.nonce))
                .await?;
            let session = format!("{}-bk{round}", ctx.nonce);
            let (rate, hist, back) = http_round(
                std::mem::take(&mut conns[which]),
                &batches,
                &[project],
                &session,
                ctx.duration,
            )
            .await?;
            conns[which] = back;
            series[which].rounds.push(rate);
            series[which].p50_ms.push(hist.quantile_ms(0.5));
            series[which].p99_ms.push(hist.quantile_ms(0.99));
        }
        eprintln!(
            "backup: round {}/{}: push {} events/s without backups, {} shipped, {} replicated",
            round + 1,
            ctx.rounds,
            num(series[0].rounds[round]),
            num(series[1].rounds[round]),
            num(series[2].rounds[round])
        );
    }
    let [off, normal, replicated] = series;
    Ok(vec![
        Figure {
            key: "push_backup_normal",
            title: format!(
                "push throughput with backups shipped every second, {devices} devices, next to none"
            ),
            unit: "events/s",
            measured: normal,
            baseline: Some(off.clone()),
            target: None,
            notes: vec![],
        },
        Figure {
            key: "push_backup_replicated",
            title: format!(
                "push throughput with --durability replicated (answered once in a segment), {devices} devices, next to no backups"
            ),
            unit: "events/s",
            measured: replicated,
            baseline: Some(off),
            target: None,
            notes: vec![],
        },
    ])
}

/// A gauge or counter of a server's `/metrics`.
async fn metric(conn: &mut Conn, name: &str) -> anyhow::Result<f64> {
    let reply = conn.get("/metrics", false).await?.ok("GET /metrics")?;
    let prefix = format!("{name} ");
    String::from_utf8_lossy(&reply.body)
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).and_then(|v| v.trim().parse().ok()))
        .with_context(|| format!("the server's /metrics has no {name}"))
}

/// Fails once two minutes have passed since `started`; polled every 5 ms by its callers.
async fn tick(started: Instant, what: &str) -> anyhow::Result<()> {
    if started.elapsed() > Duration::from_secs(120) {
        bail!("{what}: not within 120 s");
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    Ok(())
}

/// The newest seq of `project` the server's backup target holds.
async fn held(target: &Target, project: &str) -> anyhow::Result<i64> {
    let catalog = tdsync_backup::Catalog::read(target).await?;
    Ok(catalog
        .projects
        .iter()
        .find(|(key, _)| key.project.as_str() == project)
        .map_or(0, |(_, p)| p.shipped_seq()))
}

async fn shipment_lag(ctx: &Ctx, server: &Server) -> anyhow::Result<Figure> {
    let mut conn = server.endpoint.connect().await?;
    let mut watcher = server.endpoint.connect().await?;
    // The push rounds' backlog first: a lag behind it would measure their shipment instead.
    let started = Instant::now();
    while metric(&mut watcher, "tdsync_backup_backlog_events").await? > 0.0 {
        tick(started, "the push rounds' backlog shipped").await?;
    }
    let target = Target::parse(&format!("file://{}", server.backup.path().display()))?;
    let project = Api(&mut conn)
        .create_project(&format!("bench-backup-lag-{}", ctx.nonce))
        .await?;
    let batches = Batches::new("bench-lag", &format!("l{}_", ctx.nonce), 5 * 500)?;
    let mut measured = Series::new(format!(
        "from a 500-event push's answer (at a random point of the cycle) until its last event \
         is in a segment in the target (interval {} s, {} server)",
        INTERVAL.as_secs(),
        server.name
    ));
    for round in 0..ctx.rounds {
        // At a random point of the shipping cycle: right after a shipment is seen, the next
        // push would always wait a whole interval.
        let phase = rand::random_range(0.0..1.0) * INTERVAL.as_secs_f64();
        tokio::time::sleep(Duration::from_secs_f64(phase)).await;
        let body = batches.body(round % 5, &format!("ses_lag_{}_{round}", ctx.nonce));
        Api(&mut conn).push(&project, body).await?;
        let answered = Instant::now();
        let head = Api(&mut conn).status(&project).await?.last_server_seq;
        while held(&target, &project).await? < head {
            tick(answered, "the push shipped").await?;
        }
        let lag = answered.elapsed().as_secs_f64() * 1000.0;
        measured.rounds.push(lag);
        eprintln!(
            "backup: lag round {}/{}: in the backup {} ms after the push was answered",
            round + 1,
            ctx.rounds,
            num(lag)
        );
    }
    Ok(Figure {
        key: "backup_lag",
        title: "shipment lag (the recovery point of the default durability)".into(),
        unit: "ms",
        measured,
        baseline: None,
        target: None,
        notes: vec![format!(
            "a change waits for the next round (every {} s, so half of it on average) plus its upload",
            INTERVAL.as_secs()
        )],
    })
}

async fn restore_time(ctx: &Ctx, server: &Server, events: usize) -> anyhow::Result<Vec<Figure>> {
    let mut conn = server.endpoint.connect().await?;
    let project = Api(&mut conn)
        .create_project(&format!("bench-backup-restore-{}", ctx.nonce))
        .await?;
    let batches = Batches::new("bench-restore", &format!("r{}_", ctx.nonce), events)?;
    eprintln!("backup: pushing {} events to restore", num(events as f64));
    let session = format!("ses_restore_{}", ctx.nonce);
    for i in 0..batches.json.len() {
        Api(&mut conn)
            .push(&project, batches.body(i, &session))
            .await?;
    }
    // The project's shard alone, shipped into targets of its own: segments only, and
    // segments with a snapshot at the head.
    let shard = {
        let root = server.process.data_dir().to_path_buf();
        let id = project.clone();
        tokio::task::spawn_blocking(move || {
            for path in tdsync_tenants::shard_files(&root)? {
                if ShardFile::open(&path)?.project().as_str() == id {
                    return Ok(path);
                }
            }
            bail!("no shard file for project {id}")
        })
        .await??
    };
    let key = {
        let file = ShardFile::open(&shard)?;
        ProjectKey {
            tenant: file.tenant().clone(),
            project: file.project().clone(),
        }
    };
    let segments_only = tempfile::tempdir()?;
    let with_snapshot = tempfile::tempdir()?;
    let target =
        |dir: &tempfile::TempDir| Target::parse(&format!("file://{}", dir.path().display()));
    Shipper::open(target(&segments_only)?, Policy::default())
        .await?
        .ship(&key, &shard)
        .await?;
    let snapshot_policy = Policy {
        snapshot_every_segments: 0,
        ..Policy::default()
    };
    Shipper::open(target(&with_snapshot)?, snapshot_policy)
        .await?
        .ship(&key, &shard)
        .await?;
    let wanted = events as i64;
    let events = events as f64;
    let label = |what: &str| format!("tdsync restore of a {}-event project {what}", num(events));
    let mut from_segments = Series::new(label("from segments (every event replayed)"));
    let mut from_snapshot = Series::new(label("from a snapshot at its head"));
    let mut baseline = Series::new(format!(
        "the same {} events pushed into a fresh store (Tenants::push, no HTTP)",
        num(events)
    ));
    for round in 0..ctx.rounds {
        for (series, source) in [
            (&mut from_segments, &segments_only),
            (&mut from_snapshot, &with_snapshot),
        ] {
            let into = tempfile::tempdir()?;
            let started = Instant::now();
            let report = restore(
                &target(source)?,
                &RestoreInto {
                    data_dir: into.path(),
                    control_plane: None,
                },
                &Until::Latest,
                false,
                &Progress::hidden(),
            )
            .await?;
            series.rounds.push(started.elapsed().as_secs_f64() * 1000.0);
            if !report.ok() || report.projects[0].seq < wanted {
                bail!("the restore is incomplete: {report:?}");
            }
        }
        let reference = ctx.reference.clone();
        let mut requests: Vec<_> = batches
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for r in &mut requests {
            r.session_id = session.clone();
        }
        let pushed = tokio::task::spawn_blocking(move || {
            let p = ProjectId::parse(&format!("restore-baseline-{round}"))?;
            let started = Instant::now();
            for r in &requests {
                reference.push(&p, r)?;
            }
            anyhow::Ok(started.elapsed().as_secs_f64() * 1000.0)
        })
        .await??;
        baseline.rounds.push(pushed);
        eprintln!(
            "backup: restore round {}/{}: {} ms from segments, {} ms from a snapshot, {} ms to push them",
            round + 1,
            ctx.rounds,
            num(from_segments.rounds[round]),
            num(from_snapshot.rounds[round]),
            num(pushed)
        );
    }
    Ok(vec![
        Figure {
            key: "restore_segments",
            title: format!(
                "time to restore a {}-event project from segments",
                num(events)
            ),
            unit: "ms",
            measured: from_segments,
            baseline: Some(baseline.clone()),
            target: None,
            notes: vec![],
        },
        Figure {
            key: "restore_snapshot",
            title: format!(
                "time to restore a {}-event project from a snapshot",
                num(events)
            ),
            unit: "ms",
            measured: from_snapshot,
            baseline: Some(baseline),
            target: None,
            notes: vec![],
        },
    ])
}
