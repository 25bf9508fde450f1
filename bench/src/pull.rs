//! Pulls: at the head (many pollers, as td clients polling a quiet project; baseline `GET
//! /healthz` on the same server, the floor of its HTTP stack) and one 1000-event page from a
//! populated project (baseline: the same page from tdsync's store directly).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail};
use tdsync_protocol::wire::PullQuery;

use super::{
    Ctx, Seeded,
    histogram::Histogram,
    http::Conn,
    report::{Figure, Series, Target, num},
};

const TARGET_REQ_PER_SEC: f64 = 20_000.0;
const TARGET_P99_MS: f64 = 5.0;
const PAGE: i64 = 1000;

/// Pull at the head with `ctx.pollers` concurrent pollers, each on its own connection.
pub async fn head(ctx: &Ctx, project: &str) -> anyhow::Result<Figure> {
    let head = ctx.status(project).await?.last_server_seq;
    let pull: Arc<[Arc<str>]> = Arc::new([format!(
        "/v1/projects/{project}/sync/pull?after_server_seq={head}&limit={PAGE}&exclude_client=bench-poller"
    )
    .into()]);
    let health: Arc<[Arc<str>]> = Arc::new(["/healthz".into()]);
    {
        let mut conn = ctx.setup.lock().await;
        let v = conn
            .get(&pull[0], true)
            .await?
            .ok("GET …/sync/pull")?
            .json()?;
        let empty = v["events"].as_array().is_none_or(|e| e.is_empty());
        if !empty || v["has_more"] != false {
            bail!("a pull at the head ({head}) returned events: {v}");
        }
    }
    let pollers = ctx.pollers;
    eprintln!("pull-head: {pollers} pollers at seq {head}");
    let mut conns = ctx.endpoint.connect_many(pollers).await?;
    // Warm-up (not recorded): connections, caches, the allocator.
    let warm = ctx.duration.min(Duration::from_secs(1)) / 2;
    conns = poll(conns, &pull, true, warm).await?.2;
    conns = poll(conns, &health, false, warm).await?.2;
    let measured = Series::new(format!(
        "GET …/sync/pull?after_server_seq=<head> (authenticated, answered from the cached head), {pollers} pollers on keep-alive connections"
    ));
    let baseline = Series::new(format!(
        "GET /healthz on the same server, same {pollers} pollers (no auth, no project)"
    ));
    let (measured, baseline) = compare(
        ctx,
        conns,
        "pull-head",
        Side {
            paths: &pull,
            auth: true,
            series: measured,
            name: "",
        },
        Side {
            paths: &health,
            auth: false,
            series: baseline,
            name: "/healthz ",
        },
    )
    .await?;
    let rate = measured.median();
    let p99 = super::report::median(&measured.p99_ms);
    Ok(Figure {
        key: "pull_head",
        title: format!(
            "pull at the head: {pollers} concurrent pollers (latency: per request, client side)"
        ),
        unit: "req/s",
        measured,
        baseline: Some(baseline),
        target: Some(Target {
            text: format!(
                "≥ {} req/s with p99 ≤ {TARGET_P99_MS} ms",
                num(TARGET_REQ_PER_SEC)
            ),
            met: rate >= TARGET_REQ_PER_SEC && p99 <= TARGET_P99_MS,
        }),
        notes: vec![],
    })
}

/// One side of a polling comparison: what is asked (with the token or not), into which series.
pub(crate) struct Side<'a> {
    pub paths: &'a Arc<[Arc<str>]>,
    pub auth: bool,
    pub series: Series,
    /// How the progress line names it.
    pub name: &'static str,
}

/// `ctx.rounds` rounds of both sides on the same connections, alternating which goes first so
/// a drift in the machine's load hits both alike; the two series, filled.
pub(crate) async fn compare(
    ctx: &Ctx,
    mut conns: Vec<Conn>,
    label: &str,
    mut measured: Side<'_>,
    mut baseline: Side<'_>,
) -> anyhow::Result<(Series, Series)> {
    for round in 0..ctx.rounds {
        for measured_first in [round % 2 == 0, round % 2 != 0] {
            let side = if measured_first {
                &mut measured
            } else {
                &mut baseline
            };
            let (rate, hist, back) = poll(conns, side.paths, side.auth, ctx.duration).await?;
            conns = back;
            side.series.rounds.push(rate);
            side.series.p50_ms.push(hist.quantile_ms(0.5));
            side.series.p99_ms.push(hist.quantile_ms(0.99));
        }
        let (m, b) = (&measured.series, &baseline.series);
        eprintln!(
            "{label}: round {}/{}: {}{} req/s (p99 {} ms), {}{} req/s (p99 {} ms)",
            round + 1,
            ctx.rounds,
            measured.name,
            num(m.rounds[round]),
            num(m.p99_ms[round]),
            baseline.name,
            num(b.rounds[round]),
            num(b.p99_ms[round])
        );
    }
    Ok((measured.series, baseline.series))
}

/// Every connection sends GETs back to back until `duration` is over, walking `paths` in order
/// from its own starting point (spread evenly, so with many paths the connections ask for
/// different ones); completed requests per second, and the latency of each.
pub(crate) async fn poll(
    conns: Vec<Conn>,
    paths: &Arc<[Arc<str>]>,
    auth: bool,
    duration: Duration,
) -> anyhow::Result<(f64, Histogram, Vec<Conn>)> {
    let start = Instant::now();
    let deadline = start + duration;
    let stride = (paths.len() / conns.len().max(1)).max(1);
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, mut conn)| {
            let paths = paths.clone();
            tokio::spawn(async move {
                let mut hist = Histogram::default();
                let mut next = i * stride;
                loop {
                    let sent = Instant::now();
                    if sent >= deadline {
                        break;
                    }
                    let path = &paths[next % paths.len()];
                    next += 1;
                    let reply = conn.get(path, auth).await?;
                    hist.record(sent.elapsed());
                    if !reply.status.is_success() {
                        reply.ok(&format!("GET {path}"))?;
                    }
                }
                anyhow::Ok((conn, hist))
            })
        })
        .collect();
    let mut conns = Vec::with_capacity(tasks.len());
    let mut hist = Histogram::default();
    for t in tasks {
        let (conn, h) = t.await??;
        conns.push(conn);
        hist.merge(&h);
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok((hist.count() as f64 / elapsed, hist, conns))
}

/// The cursor of the `i`-th page request: spread over the log, the same sequence for both.
fn cursor(i: usize, head: i64) -> i64 {
    let span = (head - PAGE).max(1) as usize;
    ((i * 9973) % span) as i64
}

/// One 1000-event page from the populated project, requests one after another on one
/// connection; the same cursors through the store directly as the baseline.
pub async fn page(ctx: &Ctx, seeded: &Seeded) -> anyhow::Result<Figure> {
    let project = &seeded.project;
    let head = ctx.status(project).await?.last_server_seq;
    if head < 2 * PAGE {
        bail!("project {project} has only {head} events; a page needs more");
    }
    let mut conn = ctx.endpoint.connect().await?;
    let path = |after: i64| {
        format!(
            "/v1/projects/{project}/sync/pull?after_server_seq={after}&limit={PAGE}&exclude_client=bench-reader"
        )
    };
    for i in 0..3 {
        conn.get(&path(cursor(i, head)), true)
            .await?
            .ok("GET …/sync/pull")?;
    }
    let mut measured = Series::new(
        "GET …/sync/pull?limit=1000 at spread-out cursors, one request at a time on one keep-alive connection (until the whole body is read)",
    );
    let mut baseline = Series::new(
        "the same pages from tdsync's shard store directly (Tenants::pull, no HTTP, no JSON)",
    );
    let mut next = 0usize;
    let mut bytes = 0usize;
    for round in 0..ctx.rounds {
        let start = Instant::now();
        let mut hist = Histogram::default();
        let first = next;
        while next == first || (start.elapsed() < ctx.duration && next - first < 5000) {
            let sent = Instant::now();
            let reply = conn
                .get(&path(cursor(next, head)), true)
                .await?
                .ok("GET …/sync/pull")?;
            hist.record(sent.elapsed());
            if next == first {
                let v = reply.json()?;
                let n = v["events"].as_array().map_or(0, Vec::len);
                if n != PAGE as usize {
                    bail!("a page of {PAGE} came back with {n} events");
                }
                bytes = reply.body.len();
            }
            next += 1;
        }
        measured.rounds.push(hist.quantile_ms(0.5));
        measured.p50_ms.push(hist.quantile_ms(0.5));
        measured.p99_ms.push(hist.quantile_ms(0.99));
        let reference = ctx.reference.clone();
        let p = seeded.reference.clone();
        let base = tokio::task::spawn_blocking(move || {
            let head = reference.project(&p).status()?.last_server_seq;
            let mut hist = Histogram::default();
            for i in first..next {
                let query = PullQuery {
                    after_server_seq: cursor(i, head),
                    limit: Some(PAGE),
                    exclude_client: Some("bench-reader".into()),
                };
                let sent = Instant::now();
                let page = reference.project(&p).pull(&query)?;
                hist.record(sent.elapsed());
                if page.events.len() != PAGE as usize {
                    return Err(anyhow!(
                        "the baseline's page has {} events",
                        page.events.len()
                    ));
                }
            }
            anyhow::Ok(hist)
        })
        .await??;
        baseline.rounds.push(base.quantile_ms(0.5));
        baseline.p50_ms.push(base.quantile_ms(0.5));
        baseline.p99_ms.push(base.quantile_ms(0.99));
        eprintln!(
            "pull-page: round {}/{}: {} pages, p50 {} ms over HTTP, {} ms from the store",
            round + 1,
            ctx.rounds,
            next - first,
            num(hist.quantile_ms(0.5)),
            num(base.quantile_ms(0.5))
        );
    }
    Ok(Figure {
        key: "pull_page",
        title: format!(
            "one {PAGE}-event pull page from a populated project ({head} events; latency per page, median of each round's p50)"
        ),
        unit: "ms",
        measured,
        baseline: Some(baseline),
        target: None,
        notes: vec![format!("a page is {} of JSON", mb(bytes))],
    })
}

pub fn mb(bytes: usize) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}
