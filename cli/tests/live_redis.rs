//! `tdsync serve --redis` as processes against a real redis-server: two servers on different
//! data directories sharing one Redis wake each other's SSE streams and long-polls, and a Redis
//! killed and restarted while the real td syncs fails no sync, the servers saying degraded,
//! then recovered, in `/healthz` and `/metrics`.
//!
//! Redis comes from `tdsync_live_redis::testing` (`TDSYNC_TEST_REDIS_URL`, or a redis-server of
//! the test's own for the outage) and td from `tdsync_harness::testing::td_binary`; without
//! them the tests skip loudly, or fail under `TDSYNC_REQUIRE_SERVICES=1`.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tdsync_client::events::EventStream;
use tdsync_harness::remote::ServeProcess;
use tdsync_live_redis::testing::{RedisServer, redis_url, subscribers, unique_prefix};

const SOON: Duration = Duration::from_secs(10);

/// Polls `check` until it holds, failing after `within` with `what`.
fn eventually(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?}: {what}"
        );
        // Polling a condition under the deadline above.
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(60)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// A `tdsync serve` with `args` after `serve`, on its own data directory under `root`.
fn server(root: &Path, name: &str, args: &[&str]) -> ServeProcess {
    let mut server = ServeProcess::new(
        Path::new(env!("CARGO_BIN_EXE_tdsync")),
        &root.join(name).join("data"),
        &root.join(format!("{name}.log")),
    )
    .with_serve_args(args);
    server.start().expect("tdsync serve starts");
    server
}

fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let mut request = agent().get(url);
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let mut reply = request.call().unwrap();
    let status = reply.status().as_u16();
    (status, reply.body_mut().read_to_string().unwrap())
}

fn push(base: &str, project: &str, token: &str, first: i64, n: i64) -> Value {
    let events: Vec<Value> = (first..first + n)
        .map(|i| {
            json!({
                "client_action_id": i, "action_type": "create", "entity_type": "issues",
                "entity_id": format!("td-{i}"), "client_timestamp": "2026-03-01T10:00:00Z",
                "payload": {"schema_version": 1, "new_data": {"id": format!("td-{i}"), "title": format!("issue {i}")}}
            })
        })
        .collect();
    let body = json!({"device_id": "dev-a", "session_id": "ses_a", "events": events});
    let mut reply = agent()
        .post(format!("{base}/v1/projects/{project}/sync/push"))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .unwrap();
    assert_eq!(reply.status().as_u16(), 200);
    serde_json::from_str(&reply.body_mut().read_to_string().unwrap()).unwrap()
}

fn metric(base: &str, name: &str) -> Option<f64> {
    let (_, text) = get(&format!("{base}/metrics"), None);
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} "))?.parse().ok())
}

fn live_health(base: &str) -> String {
    let (status, body) = get(&format!("{base}/healthz"), None);
    assert_eq!(status, 200, "the service is up whatever Redis does: {body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["live"].as_str().unwrap().to_string()
}

/// The head of every `change` event `stream` gives within `within` until `last` is seen.
fn heads_until(stream: &EventStream, last: i64) -> Vec<i64> {
    let mut heads = Vec::new();
    while heads.last() != Some(&last) {
        let e = stream
            .next(SOON)
            .unwrap_or_else(|| panic!("no event within {SOON:?}; heads so far {heads:?}"));
        if e.event == "change" {
            heads.push(e.json()["head"].as_i64().unwrap());
        }
    }
    heads
}

/// A pull of `project` at `after` held up to `wait` seconds, in a thread: its status and when
/// it returned.
fn long_poll(
    base: &str,
    project: &str,
    token: &str,
    after: i64,
    wait: u64,
) -> std::thread::JoinHandle<(u16, Instant)> {
    let url = format!(
        "{base}/v1/projects/{project}/sync/pull?after_server_seq={after}&wait={wait}&device_id=dev-b"
    );
    let token = token.to_string();
    std::thread::spawn(move || {
        let (status, _) = get(&url, Some(&token));
        (status, Instant::now())
    })
}

/// Two `tdsync serve` processes of one deployment: one control plane (tenant and project ids
/// are the same on each), two data directories, one Redis, both listening on it.
struct Pair {
    a: ServeProcess,
    b: ServeProcess,
    project: String,
    token: String,
}

impl Pair {
    fn start(root: &Path, url: &str, more: &[&str]) -> Pair {
        let prefix = unique_prefix();
        let control_plane = format!("sqlite://{}", root.join("control-plane.db").display());
        let mut args = vec![
            "--redis",
            url,
            "--redis-prefix",
            prefix.as_str(),
            "--control-plane",
            control_plane.as_str(),
        ];
        args.extend(more);
        let a = server(root, "a", &args);
        let b = server(root, "b", &args);
        let admin = |args: &[&str]| {
            let mut all = vec!["--control-plane", control_plane.as_str()];
            all.extend(args);
            a.admin(&all).unwrap()
        };
        let tenant = admin(&["tenant", "create", "acme"]);
        let project = admin(&["project", "create", "--tenant", &tenant, "web"]);
        let token = admin(&["token", "mint", "--tenant", &tenant, "--scope", "admin"]);
        eventually("both servers listen on Redis", SOON, || {
            subscribers(url, &format!("{prefix}changes")) == 2
        });
        Pair {
            a,
            b,
            project,
            token,
        }
    }
}

#[test]
fn two_servers_sharing_one_redis_wake_each_others_streams_and_long_polls() {
    let Some(url) = redis_url("two_servers_sharing_one_redis") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let pair = Pair::start(root.path(), &url, &[]);
    let (project, token) = (pair.project.as_str(), pair.token.as_str());
    let (base_a, base_b) = (pair.a.base_url(), pair.b.base_url());

    // A long-poll with nothing pushed returns at its deadline.
    let started = Instant::now();
    let (status, returned) = long_poll(&base_b, project, token, 0, 1).join().unwrap();
    let held = returned - started;
    assert_eq!(status, 200);
    assert!(
        held >= Duration::from_millis(950) && held < Duration::from_secs(3),
        "held {held:?} for wait=1"
    );

    let on_a = EventStream::open(&base_a, project, token, None).unwrap();
    let on_b = EventStream::open(&base_b, project, token, None).unwrap();
    let waiting_on_b = long_poll(&base_b, project, token, 0, 20);
    eventually("b has its stream and its long-poll", SOON, || {
        metric(&base_b, "tdsync_live_subscribers") == Some(2.0)
    });
    let reply = push(&base_a, project, token, 1, 2);
    let pushed = Instant::now();
    assert_eq!(reply["accepted"], 2, "{reply}");
    let (status, returned) = waiting_on_b.join().unwrap();
    assert_eq!(status, 200);
    let late = returned.saturating_duration_since(pushed);
    eprintln!("a long-poll on b returned {late:?} after a's push answered");
    assert!(
        late < Duration::from_millis(50),
        "b's long-poll returned {late:?} after a's push"
    );
    // Every push reaches both streams, in order.
    for (first, n) in [(3, 1), (4, 3), (7, 1)] {
        push(&base_a, project, token, first, n);
    }
    assert_eq!(heads_until(&on_a, 7), vec![2, 3, 6, 7]);
    assert_eq!(heads_until(&on_b, 7), vec![2, 3, 6, 7]);
    assert_eq!(live_health(&base_b), "redis: up");
}

#[test]
fn two_servers_sharing_one_redis_count_a_tokens_requests_together() {
    let Some(url) = redis_url("two_servers_count_together") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    // 20 other requests a minute per token, all of them available at once on each server.
    let limit = ["--rate-limit-other", "20", "--rate-limit-other-burst", "20"];
    let pair = Pair::start(root.path(), &url, &limit);
    let status = |base: &str| {
        let url = format!("{base}/v1/projects/{}/sync/status", pair.project);
        let mut reply = agent()
            .get(url)
            .header("Authorization", format!("Bearer {}", pair.token))
            .call()
            .unwrap();
        let retry_after = reply.headers().get("retry-after").cloned();
        let body = reply.body_mut().read_to_string().unwrap();
        (reply.status().as_u16(), retry_after, body)
    };
    let (base_a, base_b) = (pair.a.base_url(), pair.b.base_url());
    // Shared counts are per wall-clock minute: start early enough in one that all of this fits.
    eventually(
        "a minute with time to spare",
        Duration::from_secs(20),
        || {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            now.as_secs() % 60 < 40
        },
    );
    // 14 on a and 7 on b: each server alone is well within its burst, together over the rate.
    for _ in 0..14 {
        assert_eq!(status(&base_a).0, 200);
    }
    let mut on_b = 0;
    for _ in 0..7 {
        assert_eq!(status(&base_b).0, 200);
        on_b += 1;
    }
    // b learns the shared count at its next sync with Redis (every second) and refuses while
    // its own bucket still holds requests: the refusal can only come from a's count.
    let deadline = Instant::now() + SOON;
    let refused = loop {
        let (code, retry_after, body) = status(&base_b);
        on_b += 1;
        if code == 429 {
            break (retry_after, body);
        }
        assert_eq!(code, 200, "{body}");
        assert!(
            on_b < 20 && Instant::now() < deadline,
            "b never saw a's requests: {on_b} requests on b alone were allowed"
        );
        // Polling a condition under the assertion above.
        std::thread::sleep(Duration::from_millis(100));
    };
    let (retry_after, body) = refused;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"], "rate_limited", "{body}");
    let secs: u64 = retry_after
        .expect("a 429 says when to retry")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&secs), "Retry-After: {secs}");
}

/// One td installation: its own HOME (auth.json with a stable device id) and project directory.
struct Td {
    bin: PathBuf,
    home: PathBuf,
    dir: PathBuf,
    url: String,
    token: String,
}

impl Td {
    fn new(bin: &Path, root: &Path, url: &str, token: &str) -> Td {
        let home = root.join("home");
        let dir = root.join("project");
        std::fs::create_dir_all(home.join(".config/td")).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        let auth = json!({
            "user_id": "alice", "email": "alice@example.test", "server_url": url,
            "device_id": "616c696365000000000000000000000a",
        });
        std::fs::write(home.join(".config/td/auth.json"), auth.to_string()).unwrap();
        let td = Td {
            bin: bin.to_path_buf(),
            home,
            dir,
            url: url.to_string(),
            token: token.to_string(),
        };
        td.ok(&["init"]);
        td
    }

    fn run(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(&self.bin)
            .args(args)
            .current_dir(&self.dir)
            .env_clear()
            .env("HOME", &self.home)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("NO_COLOR", "1")
            .env("TD_SYNC_URL", &self.url)
            .env("TD_AUTH_KEY", &self.token)
            .env("TD_FEATURE_SYNC_CLI", "1")
            .env("TD_SYNC_AUTO", "0")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    fn ok(&self, args: &[&str]) -> String {
        let (ok, text) = self.run(args);
        assert!(ok, "td {} failed:\n{text}", args.join(" "));
        text
    }

    /// action_log rows not yet pushed.
    fn pending(&self) -> i64 {
        let db = rusqlite::Connection::open_with_flags(
            self.dir.join(".todos/issues.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        db.query_row(
            "SELECT COUNT(*) FROM action_log WHERE synced_at IS NULL AND undone = 0",
            [],
            |r| r.get(0),
        )
        .unwrap()
    }
}

#[test]
fn redis_killed_and_restarted_mid_run_fails_no_td_sync_and_the_server_says_so() {
    let Some(td) = tdsync_harness::testing::td_binary("redis_killed_and_restarted_mid_run") else {
        return;
    };
    let Some(mut redis) = RedisServer::start("redis_killed_and_restarted_mid_run") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let redis_url = redis.url();
    let server = server(root.path(), "server", &["--redis", &redis_url]);
    let base = server.base_url();
    let tenant = server.admin(&["tenant", "create", "acme"]).unwrap();
    let project = server
        .admin(&["project", "create", "--tenant", &tenant, "web"])
        .unwrap();
    let token = server
        .admin(&["token", "mint", "--tenant", &tenant, "--scope", "write"])
        .unwrap();
    let alice = Td::new(&td, &root.path().join("alice"), &base, &token);
    alice.ok(&["sync-project", "link", &project]);
    let stream = EventStream::open(&base, &project, &token, None).unwrap();
    eventually("the server is up on Redis", SOON, || {
        live_health(&base) == "redis: up"
    });

    let mut syncs = 0;
    let mut round = |what: &str| {
        syncs += 1;
        alice.ok(&["create", &format!("{what} {syncs}")]);
        let (ok, text) = alice.run(&["sync"]);
        assert!(ok, "td sync #{syncs} ({what}) failed:\n{text}");
    };
    for _ in 0..3 {
        round("before");
    }
    redis.kill();
    // td keeps syncing while the server notices the outage (its health check runs every second).
    let deadline = Instant::now() + SOON;
    while live_health(&base) != "redis: down, serving from this process's state" {
        assert!(
            Instant::now() < deadline,
            "no degraded health within {SOON:?}"
        );
        round("during");
    }
    for _ in 0..3 {
        round("during");
    }
    assert_eq!(metric(&base, "tdsync_live_shared_up"), Some(0.0));
    let failures = metric(&base, "tdsync_live_shared_failures_total").unwrap();
    assert!(failures >= 1.0);

    redis.restart();
    let deadline = Instant::now() + SOON;
    while live_health(&base) != "redis: up" {
        assert!(Instant::now() < deadline, "no recovery within {SOON:?}");
        round("after");
    }
    for _ in 0..3 {
        round("after");
    }
    assert_eq!(metric(&base, "tdsync_live_shared_up"), Some(1.0));
    assert_eq!(alice.pending(), 0, "every change reached the server");
    // The stream saw every push, through the outage: its heads rise to the server's head.
    let (_, status) = get(
        &format!("{base}/v1/projects/{project}/sync/status"),
        Some(&token),
    );
    let head = serde_json::from_str::<Value>(&status).unwrap()["last_server_seq"]
        .as_i64()
        .unwrap();
    let heads = heads_until(&stream, head);
    assert!(
        heads.windows(2).all(|w| w[0] < w[1]) && heads.len() == syncs,
        "one rising head per sync ({syncs}): {heads:?}"
    );
    // Many calls failed during the outage; it was logged once.
    let log = std::fs::read_to_string(root.path().join("server.log")).unwrap();
    assert_eq!(
        log.matches("shared live state unreachable").count(),
        1,
        "{log}"
    );
    assert!(!log.contains("ERROR"), "{log}");
    eprintln!(
        "{syncs} td syncs through a Redis outage, none failed; {} shared-call failures",
        metric(&base, "tdsync_live_shared_failures_total").unwrap()
    );
}
