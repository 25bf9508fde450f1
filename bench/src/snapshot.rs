//! Snapshot download of the populated project (10,000 issues, ~50k events): each round moves
//! the head by one event, then times the first `GET …/sync/snapshot` (which builds the snapshot
//! of the new head) and a few more (served from the cache). Baseline: the same two steps through
//! tdsync's store directly (`Tenants::snapshot`, then reading the file), no HTTP.

use std::time::Instant;

use anyhow::bail;
use axum::body::Bytes;

use super::{
    Ctx, Seeded,
    pull::mb,
    report::{Figure, Series, median, num},
    workload::{head_mover, push_body},
};

/// Cached downloads timed per round.
const CACHED: usize = 3;

pub async fn run(ctx: &Ctx, seeded: &Seeded) -> anyhow::Result<Vec<Figure>> {
    let project = &seeded.project;
    let path = format!("/v1/projects/{project}/sync/snapshot");
    let mut conn = ctx.endpoint.connect().await?;
    let mut build = Series::new(
        "first GET …/sync/snapshot after the head moved: build + download (client side, whole body)",
    );
    let mut build_base =
        Series::new("Tenants::snapshot after the same event, directly (the build alone, no HTTP)");
    let mut cached = Series::new(format!(
        "GET …/sync/snapshot of a cached snapshot (median of {CACHED} per round)"
    ));
    let mut cached_base = Series::new(
        "Tenants::snapshot of a cached snapshot + reading its file, directly (no HTTP)",
    );
    let mut size = 0usize;
    let mut events = 0i64;
    for round in 0..ctx.rounds {
        let event = head_mover(&seeded.prefix, round);
        let session = format!("ses_snapshot_{}_{round}", ctx.nonce);
        let body = push_body("bench-snapshot", &session, &serde_json::to_vec(&[&event])?);
        let accepted = ctx.push(project, body).await?;
        if accepted != 1 {
            bail!("the event moving the head was not accepted ({accepted})");
        }
        let status = ctx.status(project).await?;
        events = status.event_count;
        let sent = Instant::now();
        let reply = conn.get(&path, true).await?.ok("GET …/sync/snapshot")?;
        build.rounds.push(sent.elapsed().as_secs_f64() * 1e3);
        check(&reply.headers, &reply.body, status.last_server_seq)?;
        size = reply.body.len();
        let mut times = Vec::new();
        for _ in 0..CACHED {
            let sent = Instant::now();
            let reply = conn.get(&path, true).await?.ok("GET …/sync/snapshot")?;
            times.push(sent.elapsed().as_secs_f64() * 1e3);
            check(&reply.headers, &reply.body, status.last_server_seq)?;
        }
        cached.rounds.push(median(&times));

        let reference = ctx.reference.clone();
        let p = seeded.reference.clone();
        let (b, c) = tokio::task::spawn_blocking(move || {
            let request = tdsync_protocol::wire::PushRequest {
                device_id: "bench-snapshot".into(),
                session_id: session,
                events: vec![event],
            };
            reference.push(&p, &request)?;
            let sent = Instant::now();
            let snap = reference.project(&p).snapshot()?;
            let b = sent.elapsed().as_secs_f64() * 1e3;
            if snap.is_none() {
                bail!("the baseline has no snapshot");
            }
            let mut times = Vec::new();
            for _ in 0..CACHED {
                let sent = Instant::now();
                let snap = reference.project(&p).snapshot()?.expect("built above");
                let bytes = std::fs::read(&snap.path)?;
                times.push(sent.elapsed().as_secs_f64() * 1e3);
                std::hint::black_box(bytes);
            }
            anyhow::Ok((b, median(&times)))
        })
        .await??;
        build_base.rounds.push(b);
        cached_base.rounds.push(c);
        eprintln!(
            "snapshot: round {}/{}: first {} ms (store build {} ms), cached {} ms (store + read {} ms), {}",
            round + 1,
            ctx.rounds,
            num(build.rounds[round]),
            num(b),
            num(cached.rounds[round]),
            num(c),
            mb(size)
        );
    }
    let what = format!(
        "{} issues, {} events; the snapshot is {}",
        num(seeded.issues as f64),
        num(events as f64),
        mb(size)
    );
    let rate = size as f64 / 1e6 / (cached.median() / 1e3);
    Ok(vec![
        Figure {
            key: "snapshot_build",
            title: format!("snapshot, first download at a new head (built on request): {what}"),
            unit: "ms",
            measured: build,
            baseline: Some(build_base),
            target: None,
            notes: vec![],
        },
        Figure {
            key: "snapshot_cached",
            title: format!("snapshot, download of a cached one: {what}"),
            unit: "ms",
            measured: cached,
            baseline: Some(cached_base),
            target: None,
            notes: vec![format!("{} MB/s over HTTP", num(rate))],
        },
    ])
}

/// A td database of the head: SQLite's magic, and `X-Snapshot-Seq` naming the head.
fn check(headers: &axum::http::HeaderMap, body: &Bytes, head: i64) -> anyhow::Result<()> {
    if !body.starts_with(b"SQLite format 3\0") {
        bail!(
            "the snapshot is not a SQLite database ({} bytes)",
            body.len()
        );
    }
    let seq = headers
        .get("x-snapshot-seq")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok());
    if seq != Some(head) {
        bail!("X-Snapshot-Seq is {seq:?}, the head is {head}");
    }
    Ok(())
}
