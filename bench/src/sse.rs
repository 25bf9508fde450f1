//! The live layer's SSE stream (`GET /v1/projects/{id}/events`) under load:
//!
//! - **idle streams**: the server's resident memory per open, idle SSE connection — its RSS
//!   before and after N streams are open and registered, divided by N, measured on `tdsync
//!   serve` in a process of its own (the load generator's own per-connection memory would
//!   pollute an in-process figure), a fresh one per round. Baseline: the same for N idle
//!   keep-alive connections that each made one `GET /healthz` (the HTTP stack's own cost).
//! - **fan-out**: S subscribers on one project; one event pushed; the time from sending the push
//!   until the last subscriber has its `change` event (and each subscriber's own latency).
//!   Baseline: the same pushes to a project with one subscriber, alternating with them.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, anyhow, bail};
use axum::body::Bytes;
use http_body_util::BodyExt;
use tokio::sync::mpsc;

use super::{
    Ctx,
    histogram::Histogram,
    http::{Endpoint, Streaming},
    report::{Figure, Series, Target, count, num},
    subprocess::{Spawned, ensure_fds},
    target::Api,
    workload::push_body,
};

const TARGET_RSS_PER_CONNECTION: f64 = 20.0 * 1024.0;
const TARGET_FANOUT_P99_MS: f64 = 50.0;
/// Streams opened at once.
const OPENING: usize = 64;
/// How long every subscriber has to hear of a push before the bench gives up.
const HEAR_WITHIN: Duration = Duration::from_secs(30);

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

/// An open event stream, read event by event.
pub struct EventStream {
    streaming: Streaming,
    buf: Vec<u8>,
}

impl EventStream {
    /// Opens `path` and checks that it is an event stream.
    pub async fn open(endpoint: &Arc<Endpoint>, path: &str) -> anyhow::Result<EventStream> {
        let streaming = endpoint.stream(path).await?;
        if !streaming.status.is_success() {
            bail!("GET {path} answered {}", streaming.status);
        }
        Ok(EventStream {
            streaming,
            buf: Vec::new(),
        })
    }

    /// The next event (comments such as `: ping` skipped); `None` when the stream ends.
    pub async fn next(&mut self) -> anyhow::Result<Option<SseEvent>> {
        loop {
            while let Some(end) = find_blank_line(&self.buf) {
                let block: Vec<u8> = self.buf.drain(..end.0 + end.1).collect();
                if let Some(event) = parse_block(&block[..end.0]) {
                    return Ok(Some(event));
                }
            }
            let Some(frame) = self.streaming.body.frame().await else {
                return Ok(None);
            };
            let frame = frame.context("reading the event stream")?;
            if let Ok(data) = frame.into_data() {
                self.buf.extend_from_slice(&data);
            }
        }
    }
}

/// Where the first blank line (an event's end) starts, and its length.
fn find_blank_line(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// One event's lines (`event:`, `id:`, `data:`; comments and other fields ignored); `None` for
/// a block of comments only.
fn parse_block(block: &[u8]) -> Option<SseEvent> {
    let text = String::from_utf8_lossy(block);
    let mut event = SseEvent {
        event: "message".into(),
        id: None,
        data: String::new(),
    };
    let mut any = false;
    for line in text.lines() {
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "" => {}
            "event" => {
                event.event = value.to_string();
                any = true;
            }
            "id" => {
                event.id = Some(value.to_string());
                any = true;
            }
            "data" => {
                if !event.data.is_empty() {
                    event.data.push('\n');
                }
                event.data.push_str(value);
                any = true;
            }
            _ => {}
        }
    }
    any.then_some(event)
}

fn events_path(project: &str) -> String {
    format!("/v1/projects/{project}/events")
}

// ---- idle streams: the server's memory per connection -------------------------------------

/// What an idle connection is in a round.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Idle {
    /// An SSE stream, registered with the live layer.
    Stream,
    /// A keep-alive connection after one `GET /healthz`.
    KeepAlive,
}

/// The server's RSS per idle SSE connection (in-process target: a separate `tdsync serve`), or
/// with `--url` what can be seen from outside: the rate at which the streams open.
pub async fn idle(ctx: &Ctx, n: usize) -> anyhow::Result<Vec<Figure>> {
    ensure_fds(n, "--sse-connections")?;
    if ctx.server_dir.is_none() {
        return idle_remote(ctx, n).await.map(|f| vec![f]);
    }
    let rounds = ctx.rounds.min(3);
    let mut measured = Series::new(format!(
        "(VmRSS with {} open SSE streams − VmRSS before) ÷ {}, of `tdsync serve` run as a process of its own, a fresh one per round",
        count(n),
        count(n)
    ));
    let mut baseline = Series::new(format!(
        "the same for {} idle keep-alive connections that each made one GET /healthz",
        count(n)
    ));
    let mut open_rate = Series::new(format!(
        "{} SSE streams opened, {OPENING} at a time, until the server holds them all",
        count(n)
    ));
    for round in 0..rounds {
        for kind in [Idle::Stream, Idle::KeepAlive] {
            let (per_connection, rate) = idle_round(n, kind).await?;
            match kind {
                Idle::Stream => {
                    measured.rounds.push(per_connection);
                    open_rate.rounds.push(rate);
                }
                Idle::KeepAlive => baseline.rounds.push(per_connection),
            }
        }
        eprintln!(
            "sse: round {}/{rounds}: {} bytes per SSE stream, {} per keep-alive connection",
            round + 1,
            num(measured.rounds[round]),
            num(baseline.rounds[round])
        );
    }
    let per_connection = measured.median();
    Ok(vec![
        Figure {
            key: "sse_idle_rss",
            title: format!(
                "server memory per idle SSE connection, {} streams on one project",
                count(n)
            ),
            unit: "bytes",
            measured,
            baseline: Some(baseline),
            target: Some(Target {
                text: format!("≤ {} bytes (20 KB)", num(TARGET_RSS_PER_CONNECTION)),
                met: per_connection <= TARGET_RSS_PER_CONNECTION,
            }),
            notes: vec![format!(
                "{rounds} round(s) (at most 3: each starts two servers); kernel socket buffers are not in RSS"
            )],
        },
        Figure {
            key: "sse_open",
            title: format!("opening {} SSE streams", count(n)),
            unit: "streams/s",
            measured: open_rate,
            baseline: None,
            target: None,
            notes: vec![],
        },
    ])
}

/// One fresh server, `n` idle connections of one kind: bytes of server RSS per connection, and
/// connections opened per second.
async fn idle_round(n: usize, kind: Idle) -> anyhow::Result<(f64, f64)> {
    let server = tokio::task::spawn_blocking(Spawned::start)
        .await
        .context("starting tdsync serve")??;
    let endpoint = Endpoint::new(&server.url, &server.token).await?;
    let mut setup = endpoint.connect().await?;
    let project = Api(&mut setup)
        .create_project("bench-sse-idle")
        .await
        .context("creating the project")?;
    let path: Arc<str> = events_path(&project).into();
    // Warm-up: a few connections of the kind opened and closed (lazy state, allocator arenas).
    let warm = hold_idle(&endpoint, &path, kind, OPENING).await?;
    drop(warm);
    wait_subscribers(&mut setup, 0).await?;
    let before = server.rss()?;
    let started = Instant::now();
    let held = hold_idle(&endpoint, &path, kind, n).await?;
    if kind == Idle::Stream {
        wait_subscribers(&mut setup, n).await?;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    let after = server.rss()?;
    drop(held);
    drop(server);
    Ok((after.saturating_sub(before) as f64 / n as f64, rate))
}

/// `n` idle connections of `kind`, held open until the result is dropped.
async fn hold_idle(
    endpoint: &Arc<Endpoint>,
    path: &Arc<str>,
    kind: Idle,
    n: usize,
) -> anyhow::Result<Box<dyn Send>> {
    Ok(match kind {
        Idle::Stream => Box::new(open_streams(endpoint, path, n).await?),
        Idle::KeepAlive => Box::new(
            open_many(n, || {
                let endpoint = endpoint.clone();
                async move {
                    let mut conn = endpoint.connect().await?;
                    conn.get("/healthz", false).await?.ok("GET /healthz")?;
                    anyhow::Ok(conn)
                }
            })
            .await?,
        ),
    })
}

/// `n` SSE streams on `path`.
async fn open_streams(
    endpoint: &Arc<Endpoint>,
    path: &Arc<str>,
    n: usize,
) -> anyhow::Result<Vec<EventStream>> {
    open_many(n, || {
        let (endpoint, path) = (endpoint.clone(), path.clone());
        async move { EventStream::open(&endpoint, &path).await }
    })
    .await
}

/// `n` connections made by `open`, [`OPENING`] at a time (a burst of thousands of connects
/// would overflow the server's accept backlog).
async fn open_many<T, F, Fut>(n: usize, open: F) -> anyhow::Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<T>> + Send + 'static,
{
    let mut held = Vec::with_capacity(n);
    let mut tasks = tokio::task::JoinSet::new();
    let mut next = 0;
    while held.len() < n {
        while next < n && tasks.len() < OPENING {
            tasks.spawn(open());
            next += 1;
        }
        let opened = tasks
            .join_next()
            .await
            .expect("tasks are running")
            .context("an opening task failed")?
            .with_context(|| format!("opening connection {} of {n}", held.len() + 1))?;
        held.push(opened);
    }
    Ok(held)
}

/// Waits until the server's `/metrics` counts exactly `n` live subscribers.
async fn wait_subscribers(setup: &mut super::http::Conn, n: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let have = subscribers(setup).await?;
        if have == Some(n) {
            return Ok(());
        }
        if have.is_none() {
            bail!("the server's /metrics has no tdsync_live_subscribers");
        }
        if Instant::now() > deadline {
            bail!("the server holds {have:?} subscribers after 60 s, not {n}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `tdsync_live_subscribers` of the server's `/metrics` (None: a server without it).
pub(crate) async fn subscribers(setup: &mut super::http::Conn) -> anyhow::Result<Option<usize>> {
    let reply = setup.get("/metrics", false).await?;
    if !reply.status.is_success() {
        return Ok(None);
    }
    Ok(String::from_utf8_lossy(&reply.body).lines().find_map(|l| {
        l.strip_prefix("tdsync_live_subscribers ")
            .and_then(|v| v.trim().parse().ok())
    }))
}

/// With `--url`: the streams are opened and held, but the server's memory is out of sight.
async fn idle_remote(ctx: &Ctx, n: usize) -> anyhow::Result<Figure> {
    let project = match &ctx.project {
        Some(p) => p.clone(),
        None => {
            ctx.create_project(&format!("bench-sse-idle-{}", ctx.nonce))
                .await?
        }
    };
    let path: Arc<str> = events_path(&project).into();
    let mut rate = Series::new(format!(
        "{} SSE streams opened on one project, {OPENING} at a time (answered 200)",
        count(n)
    ));
    for round in 0..ctx.rounds.min(3) {
        let started = Instant::now();
        let held = open_streams(&ctx.endpoint, &path, n).await?;
        rate.rounds.push(n as f64 / started.elapsed().as_secs_f64());
        drop(held);
        eprintln!(
            "sse: round {}: {} streams/s",
            round + 1,
            num(rate.rounds[round])
        );
    }
    Ok(Figure {
        key: "sse_open",
        title: format!("opening {} SSE streams", count(n)),
        unit: "streams/s",
        measured: rate,
        baseline: None,
        target: None,
        notes: vec![
            "a remote server's memory per connection cannot be read from here: run tdsync bench \
             without --url (it measures `tdsync serve` in a process of its own), or read the \
             server's RSS on its host before and after"
                .into(),
        ],
    })
}

// ---- fan-out --------------------------------------------------------------------------------

/// A subscriber heard of a change: which project (0: the many, 1: the one), the head seq, when.
struct Heard {
    project: usize,
    head: i64,
    at: Instant,
}

/// Fan-out to `subscribers` SSE streams of one project against fan-out to one, `pushes` pushes
/// of each per round, alternating.
pub async fn fanout(ctx: &Ctx, subscribers: usize, pushes: usize) -> anyhow::Result<Vec<Figure>> {
    if ctx.project.is_some() {
        bail!("the SSE fan-out makes projects of its own: leave out --project");
    }
    // In-process, the server's ends of the connections are in this process too.
    let in_process = ctx.server_dir.is_some();
    ensure_fds(
        subscribers * if in_process { 2 } else { 1 },
        "--sse-subscribers",
    )?;
    let projects = [
        ctx.create_project(&format!("bench-fanout-many-{}", ctx.nonce))
            .await?,
        ctx.create_project(&format!("bench-fanout-one-{}", ctx.nonce))
            .await?,
    ];
    eprintln!(
        "sse-fanout: opening {} streams on one project and 1 on another",
        count(subscribers)
    );
    let (tx, mut heard) = mpsc::unbounded_channel::<Heard>();
    let mut readers = tokio::task::JoinSet::new();
    for (index, want) in [(0usize, subscribers), (1, 1)] {
        let path: Arc<str> = events_path(&projects[index]).into();
        let streams = open_streams(&ctx.endpoint, &path, want).await?;
        for mut stream in streams {
            let tx = tx.clone();
            readers.spawn(async move {
                while let Some(event) = stream.next().await? {
                    let at = Instant::now();
                    if event.event != "change" {
                        continue;
                    }
                    let head = event
                        .id
                        .as_deref()
                        .and_then(|id| id.parse().ok())
                        .ok_or_else(|| anyhow!("a change event without a seq id: {event:?}"))?;
                    if tx
                        .send(Heard {
                            project: index,
                            head,
                            at,
                        })
                        .is_err()
                    {
                        break;
                    }
                }
                anyhow::Ok(())
            });
        }
    }
    drop(tx);
    let want = [subscribers, 1];
    let events = tdsync_harness::workload::issue_events(
        2 * (1 + ctx.rounds * pushes),
        &format!("f{}_", ctx.nonce),
    );
    let mut events = events.into_iter();
    let session = format!("ses_fanout_{}", ctx.nonce);
    let mut push = |project: usize| -> anyhow::Result<(String, Bytes)> {
        let event = events.next().ok_or_else(|| anyhow!("out of events"))?;
        let body = push_body(
            "bench-fanout",
            &session,
            &serde_json::to_vec(&[event]).context("an event serializes")?,
        );
        Ok((projects[project].clone(), body))
    };
    // Priming (not recorded): every stream has heard a push, so every one is registered.
    for project in [0, 1] {
        let (p, body) = push(project)?;
        one_push(ctx, project, &p, body, want[project], &mut heard).await?;
    }
    let mut last = [
        Series::new(format!(
            "POST …/sync/push of one event → the last of {} SSE subscribers of the project has its `change` event (p99 of each round's {pushes} pushes)",
            count(subscribers)
        )),
        Series::new(format!(
            "the same with 1 subscriber (pushes to another project, alternating with the {})",
            count(subscribers)
        )),
    ];
    let mut each = [
        Series::new(format!(
            "POST …/sync/push → each of {} subscribers has its `change` event (median over subscribers and pushes of each round)",
            count(subscribers)
        )),
        Series::new("the same with 1 subscriber"),
    ];
    for round in 0..ctx.rounds {
        let mut lasts = [Histogram::default(), Histogram::default()];
        let mut alls = [Histogram::default(), Histogram::default()];
        for k in 0..pushes {
            let order = if (round + k) % 2 == 0 { [0, 1] } else { [1, 0] };
            for project in order {
                let (p, body) = push(project)?;
                let latencies = one_push(ctx, project, &p, body, want[project], &mut heard).await?;
                let slowest = latencies.iter().max().copied().unwrap_or_default();
                lasts[project].record(slowest);
                for l in latencies {
                    alls[project].record(l);
                }
            }
        }
        for project in [0, 1] {
            let l = &mut last[project];
            l.rounds.push(lasts[project].quantile_ms(0.99));
            l.p50_ms.push(lasts[project].quantile_ms(0.5));
            l.p99_ms.push(lasts[project].quantile_ms(0.99));
            let e = &mut each[project];
            e.rounds.push(alls[project].quantile_ms(0.5));
            e.p50_ms.push(alls[project].quantile_ms(0.5));
            e.p99_ms.push(alls[project].quantile_ms(0.99));
        }
        eprintln!(
            "sse-fanout: round {}/{}: last of {} p50 {} ms, p99 {} ms; 1 subscriber p50 {} ms, p99 {} ms",
            round + 1,
            ctx.rounds,
            count(subscribers),
            num(last[0].p50_ms[round]),
            num(last[0].p99_ms[round]),
            num(last[1].p50_ms[round]),
            num(last[1].p99_ms[round]),
        );
    }
    readers.abort_all();
    let [last_many, last_one] = last;
    let [each_many, each_one] = each;
    let p99 = last_many.median();
    Ok(vec![
        Figure {
            key: "sse_fanout",
            title: format!(
                "fan-out of a push to {} SSE subscribers: until the last has it (latency per push)",
                count(subscribers)
            ),
            unit: "ms (p99)",
            measured: last_many,
            baseline: Some(last_one),
            target: Some(Target {
                text: format!("p99 ≤ {TARGET_FANOUT_P99_MS} ms"),
                met: p99 <= TARGET_FANOUT_P99_MS,
            }),
            notes: vec![format!(
                "the subscribers' readers run in the bench process{}",
                if in_process {
                    ", beside the in-process server, on the same cores"
                } else {
                    ""
                }
            )],
        },
        Figure {
            key: "sse_fanout_subscriber",
            title: format!(
                "fan-out of a push to {} SSE subscribers: each subscriber's latency",
                count(subscribers)
            ),
            unit: "ms (p50)",
            measured: each_many,
            baseline: Some(each_one),
            target: None,
            notes: vec![],
        },
    ])
}

/// Pushes `body` into `project` (index `index`) and waits until `want` subscribers heard of
/// it: each one's latency from just before the push was sent.
async fn one_push(
    ctx: &Ctx,
    index: usize,
    project: &str,
    body: Bytes,
    want: usize,
    heard: &mut mpsc::UnboundedReceiver<Heard>,
) -> anyhow::Result<Vec<Duration>> {
    let mut setup = ctx.setup.lock().await;
    let sent = Instant::now();
    let reply = setup
        .post_json(&format!("/v1/projects/{project}/sync/push"), body)
        .await?
        .ok("POST …/sync/push")?;
    drop(setup);
    let head = reply.json()?["acks"][0]["server_seq"]
        .as_i64()
        .ok_or_else(|| anyhow!("the push was not acknowledged with a seq"))?;
    let mut latencies = Vec::with_capacity(want);
    let deadline = tokio::time::Instant::now() + HEAR_WITHIN;
    while latencies.len() < want {
        let next = tokio::time::timeout_at(deadline, heard.recv())
            .await
            .map_err(|_| {
                anyhow!(
                    "{} of {want} subscribers heard of seq {head} within {HEAR_WITHIN:?}",
                    latencies.len()
                )
            })?
            .ok_or_else(|| anyhow!("every subscriber's stream ended"))?;
        if next.project == index && next.head >= head {
            latencies.push(next.at.saturating_duration_since(sent));
        }
    }
    Ok(latencies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_parsed_as_the_stream_sends_them() {
        let stream = b": ping\n\nevent: change\nid: 7\ndata: {\"head\":7}\n\nevent: x\r\ndata: a\r\ndata: b\r\n\r\n";
        let mut buf = stream.to_vec();
        let mut out = Vec::new();
        while let Some((at, len)) = find_blank_line(&buf) {
            let block: Vec<u8> = buf.drain(..at + len).collect();
            out.extend(parse_block(&block[..at]));
        }
        assert_eq!(
            out,
            vec![
                SseEvent {
                    event: "change".into(),
                    id: Some("7".into()),
                    data: "{\"head\":7}".into()
                },
                SseEvent {
                    event: "x".into(),
                    id: None,
                    data: "a\nb".into()
                },
            ]
        );
        assert!(buf.is_empty());
    }
}
