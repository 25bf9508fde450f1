//! Long-polled pulls (`GET …/sync/pull?after_server_seq=N&wait=S`, tdsync's extension) under
//! load:
//!
//! - **wake-up**: P pulls wait at the head of one project, each on its own connection; one event
//!   is pushed; the time from sending the push until each pull has its whole answer, the event
//!   in it. Baseline: a client that learns of the push for free — a plain pull sent the moment
//!   the push is answered; the time from sending the push until that pull is answered. It is the
//!   floor of seeing a push over plain HTTP (the push's round trip, then a pull's), so the ratio
//!   says what being woken costs against being told at no cost. (Polling at td's 1 s would add
//!   half a second on average: a figure of the interval, not of the server.) The two kinds of
//!   push alternate, so a drift in the machine's load hits both alike.
//! - **deadline**: P pulls with `wait=1` at the head of a project nobody pushes to; how long after
//!   that second each is answered, measured from sending it (an answer before the second, or
//!   with events, fails the bench). Baseline: one plain pull at the head on each of the same
//!   connections, the round trip every answer costs besides the wait.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, anyhow, bail};
use axum::body::Bytes;

use super::{
    Ctx,
    histogram::Histogram,
    http::Conn,
    report::{Figure, Series, Target, count, num},
    sse::subscribers,
    subprocess::ensure_fds,
    workload::push_body,
};

/// The issue's bound on both: an answer within 50 ms of a push, and of the deadline.
const TARGET_MS: f64 = 50.0;
/// The `wait` (seconds) of the pulls measured against their deadline.
const DEADLINE_WAIT: u64 = 1;
/// How long the bench waits for the server to hold every pull before it pushes.
const HELD_WITHIN: Duration = Duration::from_secs(60);

/// Wake-up latency and deadline accuracy with `pollers` concurrent long polls, `pushes` pushes
/// of each kind per round.
pub async fn run(ctx: &Ctx, pollers: usize, pushes: usize) -> anyhow::Result<Vec<Figure>> {
    if ctx.project.is_some() {
        bail!("long-poll makes projects of its own: leave out --project");
    }
    // In-process, the server's ends of the connections are in this process too.
    let in_process = ctx.server_dir.is_some();
    ensure_fds(pollers * if in_process { 2 } else { 1 }, "--long-polls")?;
    let mut pusher = Pusher::new(ctx, 2 + 2 * pushes * (ctx.rounds + 1));
    let busy = ctx
        .create_project(&format!("bench-long-poll-{}", ctx.nonce))
        .await?;
    let quiet = ctx
        .create_project(&format!("bench-long-poll-quiet-{}", ctx.nonce))
        .await?;
    pusher.push(ctx, &quiet).await?;
    let mut head = pusher.push(ctx, &busy).await?;
    let offer = {
        let mut setup = ctx.setup.lock().await;
        let reply = setup
            .get(&pull_path(&busy, head, None), true)
            .await?
            .ok("GET …/sync/pull")?;
        reply
            .headers
            .get("x-tdsync-long-poll")
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .ok_or_else(|| {
                anyhow!(
                    "the server does not offer long polls (no X-Tdsync-Long-Poll on a pull): \
                     long-poll measures tdsync's `wait=` extension"
                )
            })?
    };
    if offer < DEADLINE_WAIT {
        bail!(
            "the server holds a pull for at most {offer} s; the deadline test needs {DEADLINE_WAIT} s"
        );
    }
    eprintln!(
        "long-poll: {} pulls waiting (wait={offer}) at the head of one project",
        count(pollers)
    );
    let mut conns = ctx.endpoint.connect_many(pollers).await?;
    // Warm-up (not recorded): connections, the project's channel, the allocator.
    for _ in 0..pushes.min(3) {
        let (_, back) = wake(ctx, conns, &busy, head, offer, &mut pusher).await?;
        conns = back;
        head += 1;
    }
    let mut woken = Series::new(format!(
        "POST …/sync/push of one event → each of {} pulls waiting at the head (wait={offer}) has its answer with the event (p99 of each round's {} answers)",
        count(pollers),
        count(pollers * pushes)
    ));
    let mut told = Series::new(format!(
        "POST …/sync/push of one event → a plain pull sent as soon as the push is answered has the event (alternating with the long-polled pushes, {pushes} per round)"
    ));
    for round in 0..ctx.rounds {
        let (mut wake_hist, mut told_hist) = (Histogram::default(), Histogram::default());
        for k in 0..pushes {
            for long_polled in if (round + k) % 2 == 0 {
                [true, false]
            } else {
                [false, true]
            } {
                if long_polled {
                    let (latencies, back) =
                        wake(ctx, conns, &busy, head, offer, &mut pusher).await?;
                    conns = back;
                    latencies.into_iter().for_each(|l| wake_hist.record(l));
                } else {
                    told_hist.record(push_then_pull(ctx, &busy, head, &mut pusher).await?);
                }
                head += 1;
            }
        }
        record(&mut woken, &wake_hist);
        record(&mut told, &told_hist);
        eprintln!(
            "long-poll: round {}/{}: woken p50 {} ms, p99 {} ms; push then pull p50 {} ms, p99 {} ms",
            round + 1,
            ctx.rounds,
            num(woken.p50_ms[round]),
            num(woken.p99_ms[round]),
            num(told.p50_ms[round]),
            num(told.p99_ms[round]),
        );
    }
    let quiet_head = ctx.status(&quiet).await?.last_server_seq;
    let mut late = Series::new(format!(
        "{} pulls with wait={DEADLINE_WAIT} at the head of a project nobody pushes to: time from sending each to its (empty) answer, less {DEADLINE_WAIT} s (p99 of each round's {})",
        count(pollers),
        count(pollers)
    ));
    let mut round_trip = Series::new(format!(
        "one plain pull at the head on each of the same {} connections at once: time to its answer",
        count(pollers)
    ));
    for round in 0..ctx.rounds {
        let (lateness, back) = deadline(conns, &quiet, quiet_head).await?;
        let (plain, back) = plain_pulls(back, &quiet, quiet_head).await?;
        conns = back;
        record(&mut late, &lateness);
        record(&mut round_trip, &plain);
        eprintln!(
            "long-poll: deadline round {}/{}: answered {} ms (p50), {} ms (p99) after the deadline; a plain pull {} ms (p99)",
            round + 1,
            ctx.rounds,
            num(late.p50_ms[round]),
            num(late.p99_ms[round]),
            num(round_trip.p99_ms[round]),
        );
    }
    let notes = vec![format!(
        "the pulls' clients run in the bench process{}",
        if in_process {
            ", beside the in-process server, on the same cores"
        } else {
            ""
        }
    )];
    let (woken_p99, late_p99) = (woken.median(), late.median());
    Ok(vec![
        Figure {
            key: "long_poll",
            title: format!(
                "long-polled pulls: from a push to the answers of {} pulls waiting at the head",
                count(pollers)
            ),
            unit: "ms (p99)",
            measured: woken,
            baseline: Some(told),
            target: Some(Target {
                text: format!("answered within {TARGET_MS} ms of a push (p99)"),
                met: woken_p99 <= TARGET_MS,
            }),
            notes: notes.clone(),
        },
        Figure {
            key: "long_poll_deadline",
            title: format!(
                "long-polled pulls with nothing pushed: how late after their {DEADLINE_WAIT} s deadline {} pulls are answered",
                count(pollers)
            ),
            unit: "ms (p99)",
            measured: late,
            baseline: Some(round_trip),
            target: Some(Target {
                text: format!(
                    "answered at the deadline: never before it (checked on every answer), p99 ≤ {TARGET_MS} ms after it"
                ),
                met: late_p99 <= TARGET_MS,
            }),
            notes,
        },
    ])
}

/// A round's p99 as its value, with its p50 and p99.
fn record(series: &mut Series, hist: &Histogram) {
    series.rounds.push(hist.quantile_ms(0.99));
    series.p50_ms.push(hist.quantile_ms(0.5));
    series.p99_ms.push(hist.quantile_ms(0.99));
}

fn pull_path(project: &str, after: i64, wait: Option<u64>) -> String {
    let wait = wait.map_or(String::new(), |w| format!("&wait={w}"));
    format!("/v1/projects/{project}/sync/pull?after_server_seq={after}&limit=100{wait}")
}

/// One-event pushes, prepared before any clock starts.
struct Pusher {
    bodies: std::vec::IntoIter<Bytes>,
}

impl Pusher {
    fn new(ctx: &Ctx, n: usize) -> Pusher {
        let session = format!("ses_long_poll_{}", ctx.nonce);
        let events = tdsync_harness::workload::issue_events(n, &format!("l{}_", ctx.nonce));
        let bodies: Vec<Bytes> = events
            .iter()
            .map(|event| {
                let one =
                    serde_json::to_vec(std::slice::from_ref(event)).expect("an event serializes");
                push_body("bench-long-poll", &session, &one)
            })
            .collect();
        Pusher {
            bodies: bodies.into_iter(),
        }
    }

    fn next(&mut self) -> anyhow::Result<Bytes> {
        self.bodies.next().ok_or_else(|| anyhow!("out of events"))
    }

    /// Pushes the next event into `project`; its seq.
    async fn push(&mut self, ctx: &Ctx, project: &str) -> anyhow::Result<i64> {
        let body = self.next()?;
        send_push(&mut *ctx.setup.lock().await, project, body).await
    }
}

/// `POST …/sync/push` of a one-event body; the event's seq.
async fn send_push(conn: &mut Conn, project: &str, body: Bytes) -> anyhow::Result<i64> {
    let reply = conn
        .post_json(&format!("/v1/projects/{project}/sync/push"), body)
        .await?
        .ok("POST …/sync/push")?;
    reply.json()?["acks"][0]["server_seq"]
        .as_i64()
        .ok_or_else(|| anyhow!("the push was not acknowledged with a seq"))
}

/// Every connection sends `path` at once: each one back with its answer, when it was sent and
/// when the answer was read.
async fn on_each(
    conns: Vec<Conn>,
    path: &Arc<str>,
) -> anyhow::Result<Vec<(Conn, super::http::Reply, Instant, Instant)>> {
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut conn| {
            let path = path.clone();
            tokio::spawn(async move {
                let sent = Instant::now();
                let reply = conn.get(&path, true).await?.ok("GET …/sync/pull")?;
                anyhow::Ok((conn, reply, sent, Instant::now()))
            })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.context("a pull task failed")??);
    }
    Ok(out)
}

/// `conns` long-poll at `head` of `project`; once the server holds them all, one event is
/// pushed. Each pull's latency from sending the push.
async fn wake(
    ctx: &Ctx,
    conns: Vec<Conn>,
    project: &str,
    head: i64,
    wait: u64,
    pusher: &mut Pusher,
) -> anyhow::Result<(Vec<Duration>, Vec<Conn>)> {
    let n = conns.len();
    let body = pusher.next()?;
    let mut setup = ctx.setup.lock().await;
    // Subscribers already there (other streams of the server's) count beside these pulls.
    let others = waiting(&mut setup).await?;
    let path: Arc<str> = pull_path(project, head, Some(wait)).into();
    let answers = tokio::spawn({
        let path = path.clone();
        async move { on_each(conns, &path).await }
    });
    let held_by = Instant::now() + HELD_WITHIN;
    while waiting(&mut setup).await? < others + n {
        if answers.is_finished() || Instant::now() > held_by {
            bail!("the server did not hold {n} long polls at the head of {project}");
        }
        // Asking /metrics back to back would take the cores the server registers the pulls on.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let sent = Instant::now();
    let seq = send_push(&mut setup, project, body).await?;
    drop(setup);
    let answers = answers.await.context("the pulls' task failed")??;
    let mut latencies = Vec::with_capacity(n);
    let mut back = Vec::with_capacity(n);
    for (conn, reply, _, at) in answers {
        let last = reply.json()?["last_server_seq"].as_i64().unwrap_or(0);
        if last < seq {
            bail!("a long poll at {head} was answered without seq {seq}: last_server_seq {last}");
        }
        latencies.push(at.saturating_duration_since(sent));
        back.push(conn);
    }
    Ok((latencies, back))
}

/// Subscribers the server holds (SSE streams and long polls).
async fn waiting(setup: &mut Conn) -> anyhow::Result<usize> {
    subscribers(setup).await?.ok_or_else(|| {
        anyhow!("the server's /metrics has no tdsync_live_subscribers: cannot tell when its long polls wait")
    })
}

/// One event pushed, then a plain pull for it as soon as the push is answered: the time from
/// sending the push to the pull's answer.
async fn push_then_pull(
    ctx: &Ctx,
    project: &str,
    head: i64,
    pusher: &mut Pusher,
) -> anyhow::Result<Duration> {
    let body = pusher.next()?;
    let mut setup = ctx.setup.lock().await;
    let sent = Instant::now();
    let seq = send_push(&mut setup, project, body).await?;
    let reply = setup
        .get(&pull_path(project, head, None), true)
        .await?
        .ok("GET …/sync/pull")?;
    let took = sent.elapsed();
    let last = reply.json()?["last_server_seq"].as_i64().unwrap_or(0);
    if last < seq {
        bail!("a pull right after the push of seq {seq} did not have it (last_server_seq {last})");
    }
    Ok(took)
}

/// Long polls of [`DEADLINE_WAIT`] at the head of a quiet project: how late each is answered.
async fn deadline(
    conns: Vec<Conn>,
    project: &str,
    head: i64,
) -> anyhow::Result<(Histogram, Vec<Conn>)> {
    let wait = Duration::from_secs(DEADLINE_WAIT);
    let path: Arc<str> = pull_path(project, head, Some(DEADLINE_WAIT)).into();
    let mut hist = Histogram::default();
    let mut back = Vec::with_capacity(conns.len());
    for (conn, reply, sent, at) in on_each(conns, &path).await? {
        let took = at.duration_since(sent);
        if took < wait {
            bail!(
                "a pull with wait={DEADLINE_WAIT} was answered after {took:?}, before its deadline"
            );
        }
        let events = reply.json()?["events"].as_array().map_or(0, Vec::len);
        if events != 0 {
            bail!("a pull at the head of a project nobody pushes to returned {events} events");
        }
        hist.record(took - wait);
        back.push(conn);
    }
    Ok((hist, back))
}

/// One plain pull at the head on each connection at once: each one's round trip.
async fn plain_pulls(
    conns: Vec<Conn>,
    project: &str,
    head: i64,
) -> anyhow::Result<(Histogram, Vec<Conn>)> {
    let path: Arc<str> = pull_path(project, head, None).into();
    let mut hist = Histogram::default();
    let mut back = Vec::with_capacity(conns.len());
    for (conn, _, sent, at) in on_each(conns, &path).await? {
        hist.record(at.duration_since(sent));
        back.push(conn);
    }
    Ok((hist, back))
}
