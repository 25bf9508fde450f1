//! Many small projects, as a hosted service has them: N projects created over HTTP (the rate),
//! a handful of td-shaped events pushed into each, then pollers asking random projects for a
//! pull at the head and a status — next to the same pollers asking one project, in the same
//! run. With an in-process server: its disk use per project, resident memory and open files.

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::bail;
use rand::{SeedableRng, seq::SliceRandom};

use super::{
    Ctx,
    http::Conn,
    pull::{Side, compare, poll},
    report::{Figure, Series, Target, count, num},
    target::{Api, accepted},
    workload::push_body,
};

const TARGET_POLL_RATIO: f64 = 0.8;
const TARGET_CREATED_PER_SEC: f64 = 1_000.0;
const TARGET_DISK_PER_PROJECT: f64 = 64.0 * 1024.0;
const TARGET_RSS_MB: f64 = 300.0;
/// Connections that create projects and push their events.
const SETUP_CONNECTIONS: usize = 16;

/// The projects made for the measurement.
struct ManyProjects {
    ids: Vec<String>,
    /// Events pushed into each: a fresh project's first push of k events ends at seq k.
    head: i64,
}

pub async fn run(ctx: &Ctx, n: usize, events: usize) -> anyhow::Result<Vec<Figure>> {
    if n == 0 || events == 0 {
        bail!("--projects and --project-events must be at least 1");
    }
    let mut figures = Vec::new();
    let (mut projects, created) = create(ctx, n).await?;
    figures.push(created);
    fill(ctx, &mut projects, events).await?;
    figures.push(poll_across(ctx, &projects).await?);
    if let Some(dir) = &ctx.server_dir {
        figures.push(disk("on disk while serving", dir, n, events)?);
        figures.push(resources(n)?);
    }
    Ok(figures)
}

/// `POST /v1/projects` for `n` projects over [`SETUP_CONNECTIONS`] connections.
async fn create(ctx: &Ctx, n: usize) -> anyhow::Result<(ManyProjects, Figure)> {
    eprintln!("many-projects: creating {} projects", count(n));
    let conns = ctx.endpoint.connect_many(SETUP_CONNECTIONS.min(n)).await?;
    let started = Instant::now();
    let ids = each(conns, n, {
        let nonce = ctx.nonce.clone();
        move |mut conn, i| {
            let name = format!("bench-many-{nonce}-{i}");
            async move {
                let id = Api(&mut conn).create_project(&name).await?;
                Ok((conn, id))
            }
        }
    })
    .await?;
    let rate = n as f64 / started.elapsed().as_secs_f64();
    eprintln!("many-projects: {} projects/s", num(rate));
    let mut measured = Series::new(format!(
        "POST /v1/projects, {} projects over {SETUP_CONNECTIONS} keep-alive connections (one pass)",
        count(n)
    ));
    measured.rounds.push(rate);
    let figure = Figure {
        key: "project_create",
        title: "creating projects".into(),
        unit: "projects/s",
        measured,
        baseline: None,
        target: Some(Target {
            text: format!("≥ {} projects/s", num(TARGET_CREATED_PER_SEC)),
            met: rate >= TARGET_CREATED_PER_SEC,
        }),
        notes: vec![],
    };
    Ok((ManyProjects { ids, head: 0 }, figure))
}

/// One push of `events` td-shaped events into every project; records each head.
async fn fill(ctx: &Ctx, projects: &mut ManyProjects, events: usize) -> anyhow::Result<()> {
    let n = projects.ids.len();
    eprintln!(
        "many-projects: pushing {events} events into each of {} projects",
        count(n)
    );
    let batch = tdsync_harness::workload::issue_events(events, &format!("m{}_", ctx.nonce));
    let body = push_body(
        "bench-many",
        &format!("ses_many_{}", ctx.nonce),
        &serde_json::to_vec(&batch)?,
    );
    let conns = ctx.endpoint.connect_many(SETUP_CONNECTIONS.min(n)).await?;
    let ids: Arc<Vec<String>> = Arc::new(projects.ids.clone());
    let started = Instant::now();
    let accepted_counts = each(conns, n, move |mut conn, i| {
        let (ids, body) = (ids.clone(), body.clone());
        async move {
            let reply = conn
                .post_json(&format!("/v1/projects/{}/sync/push", ids[i]), body)
                .await?
                .ok("POST …/sync/push")?;
            let accepted = accepted(&reply.body)?;
            Ok((conn, accepted))
        }
    })
    .await?;
    if let Some(short) = accepted_counts.iter().find(|a| **a != events as i64) {
        bail!("a push of {events} events into a fresh project accepted {short}");
    }
    eprintln!(
        "many-projects: {} pushes/s",
        num(n as f64 / started.elapsed().as_secs_f64())
    );
    projects.head = events as i64;
    Ok(())
}

/// Pull at the head and status of random projects, against the same of one project.
async fn poll_across(ctx: &Ctx, projects: &ManyProjects) -> anyhow::Result<Figure> {
    let n = projects.ids.len();
    let pollers = ctx.pollers;
    let paths_of = |i: usize| -> [Arc<str>; 2] {
        let p = &projects.ids[i];
        [
            format!(
                "/v1/projects/{p}/sync/pull?after_server_seq={}&limit=1000",
                projects.head
            )
            .into(),
            format!("/v1/projects/{p}/sync/status").into(),
        ]
    };
    let mut many: Vec<Arc<str>> = (0..n).flat_map(paths_of).collect();
    many.shuffle(&mut rand::rngs::StdRng::seed_from_u64(8));
    let many: Arc<[Arc<str>]> = many.into();
    let one: Arc<[Arc<str>]> = paths_of(0).into();
    check_at_head(&mut *ctx.setup.lock().await, &one[0]).await?;
    eprintln!(
        "many-projects: {pollers} pollers over {} projects vs one project",
        count(n)
    );
    let mut conns = ctx.endpoint.connect_many(pollers).await?;
    // Warm-up (not recorded): every project asked once, connections and caches.
    conns = poll(conns, &many, true, warm_up(ctx.duration, n)).await?.2;
    conns = poll(
        conns,
        &one,
        true,
        ctx.duration.min(Duration::from_secs(1)) / 2,
    )
    .await?
    .2;
    let measured = Series::new(format!(
        "GET …/sync/pull at the head and GET …/sync/status of random projects among {}, {pollers} pollers on keep-alive connections",
        count(n)
    ));
    let baseline = Series::new(format!(
        "the same requests for one project, same {pollers} pollers"
    ));
    let (measured, baseline) = compare(
        ctx,
        conns,
        "many-projects",
        Side {
            paths: &many,
            auth: true,
            series: measured,
            name: "across ",
        },
        Side {
            paths: &one,
            auth: true,
            series: baseline,
            name: "one project ",
        },
    )
    .await?;
    let ratio = measured.median() / baseline.median();
    Ok(Figure {
        key: "many_projects_poll",
        title: format!(
            "polling {} projects: pull at the head and status (latency: per request, client side)",
            count(n)
        ),
        unit: "req/s",
        measured,
        baseline: Some(baseline),
        target: Some(Target {
            text: format!("≥ {TARGET_POLL_RATIO}× the single-project figure"),
            met: ratio >= TARGET_POLL_RATIO,
        }),
        notes: vec![],
    })
}

/// Long enough for the pollers to ask every project about once.
fn warm_up(duration: Duration, projects: usize) -> Duration {
    duration
        .max(Duration::from_millis(projects as u64 / 5))
        .min(Duration::from_secs(10))
}

async fn check_at_head(conn: &mut Conn, pull: &str) -> anyhow::Result<()> {
    let v = conn.get(pull, true).await?.ok("GET …/sync/pull")?.json()?;
    if v["events"].as_array().is_none_or(|e| !e.is_empty()) || v["has_more"] != false {
        bail!("a pull at the head returned events: {v}");
    }
    Ok(())
}

/// Bytes under the data directory (shards, their WAL and shared-memory files, the control plane,
/// snapshots) per project.
pub(crate) fn disk(when: &str, dir: &Path, n: usize, events: usize) -> anyhow::Result<Figure> {
    let (bytes, files) = du(dir)?;
    let per_project = bytes as f64 / n as f64;
    let mut measured = Series::new(format!(
        "{} bytes in {} files under the data directory ÷ {} projects",
        num(bytes as f64),
        count(files as usize),
        count(n)
    ));
    measured.rounds.push(per_project);
    Ok(Figure {
        key: if when.contains("serving") {
            "disk_per_project_serving"
        } else {
            "disk_per_project_at_rest"
        },
        title: format!("disk per project with {events} events, {when}"),
        unit: "bytes",
        measured,
        baseline: None,
        target: Some(Target {
            text: format!("≤ {} bytes", num(TARGET_DISK_PER_PROJECT)),
            met: per_project <= TARGET_DISK_PER_PROJECT,
        }),
        notes: vec![],
    })
}

/// Resident memory and open files of this process, which runs the in-process server (and the
/// load generator, a small part of it).
fn resources(n: usize) -> anyhow::Result<Figure> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let rss_kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN);
    let open_files = std::fs::read_dir("/proc/self/fd")?.count();
    let rss_mb = rss_kb / 1024.0;
    let mut measured = Series::new(format!(
        "VmRSS of the bench process (in-process server + load generator) with {} projects",
        count(n)
    ));
    measured.rounds.push(rss_mb);
    Ok(Figure {
        key: "many_projects_rss",
        title: "server memory with many projects".into(),
        unit: "MB",
        measured,
        baseline: None,
        target: Some(Target {
            text: format!("≤ {TARGET_RSS_MB} MB"),
            met: rss_mb <= TARGET_RSS_MB,
        }),
        notes: vec![format!("{open_files} open file descriptors")],
    })
}

/// Total bytes and files under `dir`.
fn du(dir: &Path) -> anyhow::Result<(u64, u64)> {
    let (mut bytes, mut files) = (0, 0);
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            let (b, f) = du(&entry.path())?;
            bytes += b;
            files += f;
        } else {
            bytes += meta.len();
            files += 1;
        }
    }
    Ok((bytes, files))
}

/// Runs `op(conn, i)` for every `i < n`, connection `k` taking `i ≡ k (mod conns)` and getting
/// its connection back from each call; the results in order of `i`.
async fn each<T, F, Fut>(conns: Vec<Conn>, n: usize, op: F) -> anyhow::Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(Conn, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<(Conn, T)>> + Send + 'static,
{
    let k = conns.len().max(1);
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(first, mut conn)| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut out = Vec::new();
                for i in (first..n).step_by(k) {
                    let (back, t) = op(conn, i).await?;
                    conn = back;
                    out.push((i, t));
                }
                anyhow::Ok(out)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(n);
    for t in tasks {
        all.extend(t.await??);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, t)| t).collect())
}
