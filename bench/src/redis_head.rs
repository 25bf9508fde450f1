//! `--redis URL`: pull at the head on a second in-process tdsync whose live state is shared
//! through Redis, next to the same pull on the in-process one, rounds alternating between them
//! in the same run (the target: within 0.8× of the in-process figure).

use std::sync::Arc;

use anyhow::{Context, bail};
use tdsync_live_redis::{RedisConfig, RedisUrl};

use super::{
    Ctx,
    http::Endpoint,
    pull::poll,
    report::{Figure, Series, Target, num},
    target::{Api, InProcess},
    workload::Batches,
};

/// The Redis side's figure over the in-process side's.
const TARGET_RATIO: f64 = 0.8;

/// Measures against a Redis-backed server started here; `local_project` is the in-process
/// server's project at its head.
pub async fn run(ctx: &Ctx, redis: &RedisUrl, local_project: &str) -> anyhow::Result<Figure> {
    let mut config = RedisConfig::new(redis.clone());
    // This run's keys only: a shared Redis keeps no trace of other runs in them.
    config.prefix = format!("tdsync-bench-{}:", ctx.nonce);
    eprintln!("pull-head-redis: starting a second tdsync in-process, live state in {redis}");
    // The server has a runtime of its own: started and stopped off this one.
    let server = tokio::task::spawn_blocking(move || InProcess::start_with(Some(config)))
        .await
        .context("starting the Redis-backed server")??;
    let outcome = measure(ctx, &server, local_project).await;
    tokio::task::spawn_blocking(move || {
        let mut server = server;
        server.stop()
    })
    .await
    .context("stopping the Redis-backed server")??;
    outcome
}

async fn measure(ctx: &Ctx, server: &InProcess, local_project: &str) -> anyhow::Result<Figure> {
    let remote = Endpoint::new(&server.url, &server.token).await?;
    let mut setup = remote.connect().await?;
    let health = setup
        .get("/healthz", false)
        .await?
        .ok("GET /healthz")?
        .json()?;
    if health["live"] != "redis: up" {
        bail!("the Redis-backed server does not reach Redis: /healthz says {health}");
    }
    let project = Api(&mut setup)
        .create_project(&format!("bench-head-redis-{}", ctx.nonce))
        .await?;
    let batch = Batches::new("bench-head", &format!("r{}_", ctx.nonce), 500)?;
    Api(&mut setup)
        .push(&project, batch.body(0, &format!("ses_redis_{}", ctx.nonce)))
        .await?;
    let path = |project: &str, head: i64| -> Arc<[Arc<str>]> {
        Arc::new([format!(
            "/v1/projects/{project}/sync/pull?after_server_seq={head}&limit=1000&exclude_client=bench-poller"
        )
        .into()])
    };
    let redis_pull = path(
        &project,
        Api(&mut setup).status(&project).await?.last_server_seq,
    );
    let local_pull = path(
        local_project,
        ctx.status(local_project).await?.last_server_seq,
    );
    let pollers = ctx.pollers;
    let mut on_redis = remote.connect_many(pollers).await?;
    let mut on_local = ctx.endpoint.connect_many(pollers).await?;
    let warm = ctx.duration.min(std::time::Duration::from_secs(1)) / 2;
    on_redis = poll(on_redis, &redis_pull, true, warm).await?.2;
    on_local = poll(on_local, &local_pull, true, warm).await?.2;
    let mut measured = Series::new(format!(
        "GET …/sync/pull?after_server_seq=<head> on a tdsync with --redis, {pollers} pollers"
    ));
    let mut baseline = Series::new(format!(
        "the same on the in-process tdsync (no Redis), same {pollers} pollers"
    ));
    for round in 0..ctx.rounds {
        // Alternating which goes first, so a drift in the machine's load hits both alike.
        for redis_first in [round % 2 == 0, round % 2 != 0] {
            let (series, conns, paths) = if redis_first {
                (&mut measured, &mut on_redis, &redis_pull)
            } else {
                (&mut baseline, &mut on_local, &local_pull)
            };
            let (rate, hist, back) = poll(std::mem::take(conns), paths, true, ctx.duration).await?;
            *conns = back;
            series.rounds.push(rate);
            series.p50_ms.push(hist.quantile_ms(0.5));
            series.p99_ms.push(hist.quantile_ms(0.99));
        }
        eprintln!(
            "pull-head-redis: round {}/{}: with Redis {} req/s (p99 {} ms), in-process {} req/s (p99 {} ms)",
            round + 1,
            ctx.rounds,
            num(measured.rounds[round]),
            num(measured.p99_ms[round]),
            num(baseline.rounds[round]),
            num(baseline.p99_ms[round])
        );
    }
    let ratio = measured.median() / baseline.median();
    Ok(Figure {
        key: "pull_head_redis",
        title: format!(
            "pull at the head with live state in Redis: {pollers} concurrent pollers, next to in-process"
        ),
        unit: "req/s",
        measured,
        baseline: Some(baseline),
        target: Some(Target {
            text: format!("≥ {TARGET_RATIO}× the in-process figure"),
            met: ratio >= TARGET_RATIO,
        }),
        notes: vec![],
    })
}
