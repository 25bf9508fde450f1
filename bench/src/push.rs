//! Push throughput: N devices, each on its own connection, pushing 500-event batches of
//! td-shaped events back to back for the round's duration, into a fresh project per round.
//! Baseline: the same batches pushed by N threads straight into tdsync's store (no HTTP).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::bail;

use super::{
    Ctx,
    histogram::Histogram,
    http::Conn,
    report::{Figure, Series, Target, num},
    target::accepted,
    workload::{Batches, Reference},
};

/// Events each device prepares; a device that runs through them starts again under a new
/// session id (so nothing is a duplicate).
const EVENTS_PER_DEVICE: usize = 5_000;
const TARGET_EVENTS_PER_SEC: f64 = 30_000.0;

pub async fn run(ctx: &Ctx) -> anyhow::Result<Figure> {
    let devices = ctx.devices;
    let spread = ctx.push_projects;
    let projects_text = if spread == 1 {
        "one project".to_string()
    } else {
        format!("{spread} projects")
    };
    eprintln!(
        "push: preparing {devices} × {} td-shaped events",
        num(EVENTS_PER_DEVICE as f64)
    );
    let mut batches = Vec::with_capacity(devices);
    for d in 0..devices {
        let device = format!("bench-device-{d}");
        batches.push(Batches::new(&device, &format!("p{d}_"), EVENTS_PER_DEVICE)?);
    }
    let batches: Arc<Vec<Batches>> = Arc::new(batches);
    let mut conns = ctx.endpoint.connect_many(devices).await?;
    let mut measured = Series::new(format!(
        "POST …/sync/push over HTTP, {devices} devices on keep-alive connections into {projects_text}, fresh ones each round{}",
        if ctx.project.is_some() {
            " (here: the --project given)"
        } else {
            ""
        }
    ));
    let mut baseline = Series::new(format!(
        "the same batches into tdsync's shard store directly (Tenants::push, {devices} threads, no HTTP) into {projects_text}, fresh ones each round"
    ));
    for round in 0..ctx.rounds {
        let projects = match &ctx.project {
            Some(p) => vec![p.clone()],
            None => {
                let mut fresh = Vec::with_capacity(spread);
                for k in 0..spread {
                    fresh.push(
                        ctx.create_project(&format!("bench-push-{}-{round}-{k}", ctx.nonce))
                            .await?,
                    );
                }
                fresh
            }
        };
        let session = format!("{}-{round}", ctx.nonce);
        let (rate, hist, back) =
            http_round(conns, &batches, &projects, &session, ctx.duration).await?;
        conns = back;
        measured.rounds.push(rate);
        measured.p50_ms.push(hist.quantile_ms(0.5));
        measured.p99_ms.push(hist.quantile_ms(0.99));
        let reference = ctx.reference.clone();
        let b = batches.clone();
        let duration = ctx.duration;
        let base = tokio::task::spawn_blocking(move || {
            store_round(&reference, &b, spread, round, duration)
        })
        .await??;
        baseline.rounds.push(base);
        eprintln!(
            "push: round {}/{}: {} events/s over HTTP (batch p50 {} ms), {} events/s into the store",
            round + 1,
            ctx.rounds,
            num(rate),
            num(hist.quantile_ms(0.5)),
            num(base)
        );
    }
    let median = measured.median();
    Ok(Figure {
        key: "push",
        title: format!(
            "push throughput: {devices} devices into {projects_text}, 500-event batches of td-shaped events (latency: per batch)"
        ),
        unit: "events/s",
        measured,
        baseline: Some(baseline),
        target: Some(Target {
            text: format!("≥ {} events/s", num(TARGET_EVENTS_PER_SEC)),
            met: median >= TARGET_EVENTS_PER_SEC,
        }),
        notes: vec![],
    })
}

/// One round over HTTP: every device pushes until the deadline (at least one batch each),
/// device d into `projects[d % len]`.
pub(crate) async fn http_round(
    conns: Vec<Conn>,
    batches: &Arc<Vec<Batches>>,
    projects: &[String],
    session: &str,
    duration: Duration,
) -> anyhow::Result<(f64, Histogram, Vec<Conn>)> {
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(conns.len());
    for (d, mut conn) in conns.into_iter().enumerate() {
        let batches = batches.clone();
        let path = format!("/v1/projects/{}/sync/push", projects[d % projects.len()]);
        let session = session.to_string();
        tasks.push(tokio::spawn(async move {
            let mine = &batches[d];
            let mut hist = Histogram::default();
            let mut total = 0i64;
            let mut k = 0usize;
            while k == 0 || Instant::now() < deadline {
                let (batch, cycle) = (k % mine.json.len(), k / mine.json.len());
                let body = mine.body(batch, &format!("ses_{session}_{cycle}"));
                let sent = Instant::now();
                let reply = conn.post_json(&path, body).await?.ok("POST …/sync/push")?;
                hist.record(sent.elapsed());
                let n = accepted(&reply.body)?;
                if n != mine.events_in(batch) {
                    bail!(
                        "a push of {} new events accepted {n}: {}",
                        mine.events_in(batch),
                        String::from_utf8_lossy(&reply.body[..reply.body.len().min(300)])
                    );
                }
                total += n;
                k += 1;
            }
            anyhow::Ok((conn, total, hist))
        }));
    }
    let mut conns = Vec::with_capacity(tasks.len());
    let mut hist = Histogram::default();
    let mut total = 0;
    for t in tasks {
        let (conn, n, h) = t.await??;
        conns.push(conn);
        total += n;
        hist.merge(&h);
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok((total as f64 / elapsed, hist, conns))
}

/// One round straight into the store: a thread per device, same batches, same projects, same
/// deadline rule.
fn store_round(
    reference: &Reference,
    batches: &[Batches],
    spread: usize,
    round: usize,
    duration: Duration,
) -> anyhow::Result<f64> {
    let projects = (0..spread)
        .map(|k| tdsync_tenants::ProjectId::parse(&format!("push-{round}-{k}")))
        .collect::<Result<Vec<_>, _>>()?;
    let start = Instant::now();
    let deadline = start + duration;
    let total = std::thread::scope(|s| {
        let threads: Vec<_> = batches
            .iter()
            .enumerate()
            .map(|(d, mine)| {
                let project = &projects[d % spread];
                s.spawn(move || {
                    // Each device's requests are its thread's alone for the round; the session
                    // id is set in place, so the timed loop copies no batch.
                    let mut requests = mine.requests.lock().unwrap_or_else(|e| e.into_inner());
                    let mut total = 0i64;
                    let mut k = 0usize;
                    while k == 0 || Instant::now() < deadline {
                        let (batch, cycle) = (k % requests.len(), k / requests.len());
                        requests[batch].session_id = format!("ses_{round}_{cycle}");
                        total += reference.push(project, &requests[batch])?;
                        k += 1;
                    }
                    anyhow::Ok(total)
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("a baseline thread panicked"))
            .sum::<anyhow::Result<i64>>()
    })?;
    Ok(total as f64 / start.elapsed().as_secs_f64())
}
