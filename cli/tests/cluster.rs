//! Shard nodes of a cluster as real `tdsync serve --role shard` processes on loopback, sharing
//! a Postgres control plane (a database per test), Redis and a backup directory: one owner per
//! project (the other node answers 421 with the owner's URL); a node killed with SIGKILL under
//! pushes loses no acknowledged event — another takes its project over from the backup once the
//! lease runs out; a node paused (SIGSTOP) past its lease and resumed acknowledges nothing, and
//! what it ships afterwards is fenced out of the backup. Gateways answer pulls at the head,
//! statuses and event streams from Redis, follow moves as they are announced, and a gateway
//! killed mid-request loses nothing.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

#[path = "interop/support.rs"]
#[allow(dead_code)]
mod support;

use serde_json::{Value, json};
use tdsync_acl::testing::PostgresTestDb;
use tdsync_harness::remote::ServeProcess;

const LEASE_SECS: &str = "2";

struct Cluster {
    _db: PostgresTestDb,
    gateways: Vec<ServeProcess>,
    pg: String,
    redis: String,
    dir: tempfile::TempDir,
    project: String,
    token: String,
    nodes: Vec<ServeProcess>,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// A push's status, `X-Tdsync-Owner` and body; None when the node did not answer.
fn push(
    url: &str,
    token: &str,
    project: &str,
    device: &str,
    from: usize,
    n: usize,
) -> Option<(u16, Option<String>, Value)> {
    let events: Vec<Value> = (from..from + n)
        .map(|i| {
            let id = format!("td-{device}-{i}");
            json!({"client_action_id": i, "action_type": "create", "entity_type": "issues",
                   "entity_id": id, "client_timestamp": "2026-12-05T09:00:00Z",
                   "payload": {"schema_version": 1, "previous_data": null, "new_data": {
                       "id": id, "title": "t", "status": "open", "type": "task",
                       "priority": "P2", "created_at": "2026-12-05T09:00:00Z",
                       "updated_at": "2026-12-05T09:00:00Z"}}})
        })
        .collect();
    let body = json!({"device_id": device, "session_id": "s", "events": events});
    let mut r = agent()
        .post(format!("{url}/v1/projects/{project}/sync/push"))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .ok()?;
    let owner = r
        .headers()
        .get("x-tdsync-owner")
        .map(|v| v.to_str().unwrap().to_string());
    let text = r.body_mut().read_to_string().ok()?;
    Some((
        r.status().as_u16(),
        owner,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// A series of a node's `/metrics`.
fn metric(url: &str, series: &str) -> Option<f64> {
    let text = agent()
        .get(format!("{url}/metrics"))
        .call()
        .ok()?
        .body_mut()
        .read_to_string()
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// A GET's status and JSON body (None when nobody answered).
fn get_json(url: &str, token: &str) -> Option<(u16, Value)> {
    let mut r = agent()
        .get(url)
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .ok()?;
    let text = r.body_mut().read_to_string().ok()?;
    Some((
        r.status().as_u16(),
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// A route's request count in a process's `/metrics`, over every status.
fn requests(url: &str, route: &str) -> f64 {
    let text = agent()
        .get(format!("{url}/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let prefix = format!("tdsync_http_requests_total{{route=\"{route}\"");
    text.lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The node of a two-node cluster that is not `node`.
fn other_of_two(node: &str) -> &'static str {
    if node == "node-0" { "node-1" } else { "node-0" }
}

fn acked(answer: &Value) -> Vec<i64> {
    answer["acks"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| x["server_seq"].as_i64().unwrap())
                .collect()
        })
        .unwrap_or_default()
}

fn seqs(path: &Path) -> BTreeSet<i64> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    conn.prepare("SELECT server_seq FROM events")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn eventually<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Cluster {
    fn start(test: &str, nodes: usize) -> Option<Cluster> {
        Cluster::with_gateways(test, nodes, 0)
    }

    /// `nodes` shard nodes and `gateways` gateways.
    fn with_gateways(test: &str, nodes: usize, gateways: usize) -> Option<Cluster> {
        let redis = tdsync_live_redis::testing::redis_url(test)?;
        Cluster::on_redis(test, nodes, gateways, redis)
    }

    /// The same, sharing the Redis at `redis`.
    fn on_redis(test: &str, nodes: usize, gateways: usize, redis: String) -> Option<Cluster> {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let db = runtime.block_on(PostgresTestDb::create(test))?;
        let dir = tempfile::tempdir().unwrap();
        let pg = db.url().to_string();
        let bin = Path::new(env!("CARGO_BIN_EXE_tdsync"));
        let backup = format!("file://{}", dir.path().join("backup").display());
        // A `tdsync serve` process named `name` in the test's directory, started.
        let serve = |name: &str, args: &[&str]| {
            let mut process = ServeProcess::new(
                bin,
                &dir.path().join(name),
                &dir.path().join(format!("{name}.log")),
            )
            .with_serve_args(args);
            process.start().unwrap_or_else(|e| panic!("{name}: {e}"));
            process
        };
        let prefix = format!("{test}:");
        let started: Vec<ServeProcess> = (0..nodes)
            .map(|n| {
                let name = format!("node-{n}");
                serve(
                    &name,
                    &[
                        "--control-plane",
                        &pg,
                        "--role",
                        "shard",
                        "--node-id",
                        &name,
                        "--redis",
                        &redis,
                        "--redis-prefix",
                        &prefix,
                        "--backup-to",
                        &backup,
                        "--backup-interval",
                        "1",
                        "--durability",
                        "replicated",
                        "--lease-secs",
                        LEASE_SECS,
                        "--rate-limits",
                        "off",
                    ],
                )
            })
            .collect();
        let fronts: Vec<ServeProcess> = (0..gateways)
            .map(|g| {
                serve(
                    &format!("gateway-{g}"),
                    &[
                        "--control-plane",
                        &pg,
                        "--role",
                        "gateway",
                        "--redis",
                        &redis,
                        "--redis-prefix",
                        &prefix,
                        "--rate-limits",
                        "off",
                    ],
                )
            })
            .collect();
        let admin = |args: &[&str]| {
            let mut full = vec!["--control-plane", pg.as_str()];
            full.extend(args);
            started[0].admin(&full).unwrap()
        };
        let tenant = admin(&["tenant", "create", "acme"]);
        let project = admin(&["project", "create", "--tenant", &tenant, "shared"]);
        let minted = admin(&[
            "token", "mint", "--tenant", &tenant, "--scope", "write", "--json",
        ]);
        let token = serde_json::from_str::<Value>(&minted).unwrap()["token"]
            .as_str()
            .unwrap()
            .to_string();
        Some(Cluster {
            _db: db,
            gateways: fronts,
            pg,
            redis,
            dir,
            project,
            token,
            nodes: started,
        })
    }

    fn url(&self, node: usize) -> String {
        self.nodes[node].base_url()
    }

    fn gateway(&self, g: usize) -> String {
        self.gateways[g].base_url()
    }

    /// The shard node holding the project's log (the one whose data dir has its shard).
    fn owner(&self) -> usize {
        (0..self.nodes.len())
            .find(|n| {
                let tenants = self.dir.path().join(format!("node-{n}")).join("tenants");
                std::fs::read_dir(&tenants).is_ok_and(|mut d| d.next().is_some())
            })
            .expect("some node holds the project")
    }

    fn push(
        &self,
        node: usize,
        device: &str,
        from: usize,
        n: usize,
    ) -> Option<(u16, Option<String>, Value)> {
        push(&self.url(node), &self.token, &self.project, device, from, n)
    }

    fn shard(&self, node: usize) -> PathBuf {
        let tenants = self.dir.path().join(format!("node-{node}")).join("tenants");
        let tenant = std::fs::read_dir(&tenants)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        tenant.join(format!("{}.db", self.project))
    }

    fn signal(&self, node: usize, signal: &str) {
        let pid = self.nodes[node].pid().unwrap().to_string();
        let status = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(status.success());
    }
}

#[test]
fn one_node_serves_a_project_and_the_other_points_to_it() {
    let Some(c) = Cluster::start("cluster_one_owner", 2) else {
        return;
    };
    let (status, _, body) = c.push(0, "d", 0, 3).unwrap();
    assert_eq!(status, 200, "{body}");
    let (status, owner, body) = c.push(1, "d", 3, 3).unwrap();
    assert_eq!(status, 421, "{body}");
    assert_eq!(owner.as_deref(), Some(c.url(0).as_str()));
    assert!(
        body["message"].as_str().unwrap().contains("node-0"),
        "{body}"
    );
    let _ = (&c.pg, &c.redis);
}

#[test]
fn a_killed_node_loses_no_acknowledged_event_and_another_takes_over() {
    let Some(mut c) = Cluster::start("cluster_failover", 2) else {
        return;
    };
    let (status, _, body) = c.push(0, "first", 0, 5).unwrap();
    assert_eq!(status, 200, "{body}");
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicUsize::new(0));
    let pushers: Vec<_> = (0..3)
        .map(|d| {
            let (url, token, project, stop, count) = (
                c.url(0),
                c.token.clone(),
                c.project.clone(),
                stop.clone(),
                count.clone(),
            );
            std::thread::spawn(move || {
                let mut acks = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    match push(&url, &token, &project, &format!("dev{d}"), n, 5) {
                        Some((200, _, body)) => {
                            let seqs = acked(&body);
                            count.fetch_add(seqs.len(), Ordering::Relaxed);
                            acks.extend(seqs);
                        }
                        _ => break,
                    }
                    n += 5;
                }
                acks
            })
        })
        .collect();
    eventually("pushes acknowledged", Duration::from_secs(30), || {
        (count.load(Ordering::Relaxed) >= 60).then_some(())
    });
    c.nodes[0].kill();
    stop.store(true, Ordering::Relaxed);
    let acked: BTreeSet<i64> = pushers
        .into_iter()
        .flat_map(|p| p.join().unwrap())
        .chain(acked(&body))
        .collect();
    assert!(acked.len() >= 60);
    // Node 1 takes the project over once the lease runs out, from the backup.
    let taken = Instant::now();
    eventually(
        "node-1 serves the project",
        Duration::from_secs(30),
        || match c.push(1, "after", 0, 1)? {
            (200, _, _) => Some(()),
            (421 | 503, _, _) => None,
            (status, _, body) => panic!("{status}: {body}"),
        },
    );
    let on_b = seqs(&c.shard(1));
    let lost: Vec<_> = acked.difference(&on_b).collect();
    assert!(
        lost.is_empty(),
        "acknowledged, not on the new owner: {lost:?}"
    );
    eprintln!(
        "failover: {} ms after the kill was noticed",
        taken.elapsed().as_millis()
    );
}

#[test]
fn a_paused_node_acknowledges_nothing_after_its_lease_and_is_fenced() {
    let Some(c) = Cluster::start("cluster_sigstop", 2) else {
        return;
    };
    let (status, _, body) = c.push(0, "first", 0, 5).unwrap();
    assert_eq!(status, 200, "{body}");
    c.signal(0, "-STOP");
    // A push sent to the paused node waits in its socket.
    let stalled = {
        let (url, token, project) = (c.url(0), c.token.clone(), c.project.clone());
        std::thread::spawn(move || push(&url, &token, &project, "paused", 0, 5))
    };
    eventually(
        "node-1 takes the project over",
        Duration::from_secs(30),
        || (c.push(1, "b", 0, 5)?.0 == 200).then_some(()),
    );
    c.signal(0, "-CONT");
    let answer = stalled.join().unwrap();
    if let Some((status, _, body)) = &answer {
        assert_ne!(
            *status, 200,
            "a paused node acknowledged after its lease: {body}"
        );
    }
    let (status, owner, body) = c.push(0, "after", 0, 1).unwrap();
    assert_eq!(status, 421, "{body}");
    assert_eq!(owner.as_deref(), Some(c.url(1).as_str()));
    // Whatever node 0 logged while fenced, it ships (its backlog drains) — and it is fenced
    // out of the backup: a restore holds node 1's log only.
    eventually(
        "node-0 shipped what it logged",
        Duration::from_secs(30),
        || (metric(&c.url(0), "tdsync_backup_backlog_events")? == 0.0).then_some(()),
    );
    let fresh = tempfile::tempdir().unwrap();
    let backup = format!("file://{}", c.dir.path().join("backup").display());
    let out = Command::new(env!("CARGO_BIN_EXE_tdsync"))
        .args(["--data-dir"])
        .arg(fresh.path())
        .args(["restore", "--from", &backup, "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let restored = fresh.path().join("tenants");
    let tenant = std::fs::read_dir(&restored)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let shard = tenant.join(format!("{}.db", c.project));
    assert_eq!(seqs(&shard), seqs(&c.shard(1)));
}

/// Two gateways in front of two shard nodes: a push through one is pulled through the other
/// (both forwarded to the project's owner); the owner killed, the gateways follow the project to
/// the node that takes it over, and every acknowledged event is there.
#[test]
fn gateways_forward_to_the_owner_and_follow_it_after_a_failover() {
    let Some(mut c) = Cluster::with_gateways("cluster_gateways", 2, 2) else {
        return;
    };
    let mut acked: BTreeSet<i64> = BTreeSet::new();
    let (status, _, body) = push(&c.gateway(0), &c.token, &c.project, "d", 0, 5).unwrap();
    assert_eq!(status, 200, "{body}");
    acked.extend(self::acked(&body));
    let (project, token) = (c.project.clone(), c.token.clone());
    let gateways = [c.gateway(0), c.gateway(1)];
    let pull = |g: usize| -> Value {
        let mut r = agent()
            .get(format!(
                "{}/v1/projects/{project}/sync/pull?after_server_seq=0",
                gateways[g]
            ))
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .unwrap();
        assert_eq!(r.status(), 200);
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
    };
    assert_eq!(pull(1)["events"].as_array().unwrap().len(), 5);
    // A token the control plane does not know is refused by the gateway itself.
    let refused = push(&c.gateway(1), "tds_nope_nope", &c.project, "d", 5, 1).unwrap();
    assert_eq!(refused.0, 401);

    let owner = c.owner();
    c.nodes[owner].kill();
    let other = 1 - owner;
    let mut n = 5;
    eventually(
        "the gateway reaches the new owner",
        Duration::from_secs(30),
        || {
            let (status, _, body) = push(&c.gateway(0), &c.token, &c.project, "d", n, 1)?;
            n += 1;
            match status {
                200 => {
                    acked.extend(self::acked(&body));
                    Some(())
                }
                503 | 421 => None,
                other => panic!("{other}: {body}"),
            }
        },
    );
    let on_new = seqs(&c.shard(other));
    assert!(acked.is_subset(&on_new), "{acked:?} not all in {on_new:?}");
    assert_eq!(pull(1)["events"].as_array().unwrap().len(), on_new.len());
}

/// The real td through the cluster: alice syncs through one gateway, bob through the other;
/// both end with the same issues as the owner's projection.
#[test]
fn td_syncs_through_one_gateway_while_another_td_uses_the_other() {
    let Some(td) = support::td() else { return };
    let Some(c) = Cluster::with_gateways("cluster_td", 2, 2) else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let alice = support::TdUser::new(&td, root.path(), "alice", &c.gateway(0), &c.token);
    let bob = support::TdUser::new(&td, root.path(), "bob", &c.gateway(1), &c.token);
    alice.ok(&["sync-project", "create", "roadmap"]);
    let project = alice.linked_project().unwrap();
    let out = bob.ok(&["sync-project", "join", "roadmap"]);
    assert!(out.contains(&project), "{out}");
    let x = alice.create("Through gateway 0", &[]);
    alice.sync();
    bob.sync();
    assert_eq!(bob.show(&x)["title"], "Through gateway 0");
    let y = bob.create("Through gateway 1", &[]);
    bob.ok(&["update", &x, "--priority", "P1"]);
    bob.sync();
    alice.sync();
    assert_eq!(alice.show(&y)["title"], "Through gateway 1");
    let owner = (0..2)
        .map(|n| c.dir.path().join(format!("node-{n}")).join("tenants"))
        .flat_map(|t| std::fs::read_dir(t).into_iter().flatten())
        .filter_map(Result::ok)
        .map(|tenant| tenant.path().join(format!("{project}.db")))
        .find(|p| p.exists())
        .expect("one node holds the project");
    support::assert_same(&[
        ("owner", &owner),
        ("alice", &alice.db()),
        ("bob", &bob.db()),
    ]);
}

impl Cluster {
    /// `tdsync cluster …` against the cluster's control plane.
    fn cluster(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_tdsync"))
            .args(["--control-plane", &self.pg, "cluster"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tdsync cluster {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The node the project is placed on, its epoch, and whether a move is under way.
    fn placed(&self) -> Option<(String, i64, bool)> {
        let status: Value = serde_json::from_str(&self.cluster(&["status", "--json"])).unwrap();
        let p = status["projects"]
            .as_array()?
            .iter()
            .find(|p| p["project"] == self.project.as_str())?
            .clone();
        Some((
            p["node"].as_str()?.to_string(),
            p["epoch"].as_i64()?,
            !p["moving_to"].is_null() || p["lease_left_secs"].as_f64()? <= 0.0,
        ))
    }
}

/// Pushes through `url` until `stop`, each batch retried until it is acknowledged (td's own
/// behaviour); the seqs acknowledged, and every other answer seen.
fn steady_pusher(
    url: String,
    token: String,
    project: String,
    device: &'static str,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(BTreeSet<i64>, Vec<u16>)> {
    std::thread::spawn(move || {
        let (mut acks, mut others) = (BTreeSet::new(), Vec::new());
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            match push(&url, &token, &project, device, n, 3) {
                Some((200, _, body)) => {
                    acks.extend(acked(&body));
                    // Retried batches come back as duplicates with their seqs.
                    for r in body["rejected"].as_array().into_iter().flatten() {
                        if let Some(seq) = r["server_seq"].as_i64() {
                            acks.insert(seq);
                        }
                    }
                    n += 3;
                }
                Some((status, _, _)) => {
                    others.push(status);
                    std::thread::sleep(Duration::from_millis(50)); // td's retry pause
                }
                None => others.push(0),
            }
        }
        (acks, others)
    })
}

/// `tdsync cluster move` and `drain` under sustained pushes through a gateway: the project goes
/// to the named node and back, the pushing client sees only retryable answers, and every
/// acknowledged event is on the final owner; `cluster status` says where everything is.
#[test]
fn move_and_drain_under_load_lose_nothing() {
    let Some(c) = Cluster::with_gateways("cluster_move_drain", 2, 1) else {
        return;
    };
    let (status, _, body) = push(&c.gateway(0), &c.token, &c.project, "first", 0, 3).unwrap();
    assert_eq!(status, 200, "{body}");
    let (first, epoch, _) = c.placed().unwrap();
    let other = other_of_two(&first);
    let stop = Arc::new(AtomicBool::new(false));
    let pusher = steady_pusher(
        c.gateway(0),
        c.token.clone(),
        c.project.clone(),
        "steady",
        stop.clone(),
    );
    c.cluster(&["move", &c.project, other]);
    eventually("the project moved", Duration::from_secs(30), || {
        c.placed()
            .filter(|(node, e, moving)| node == other && *e > epoch && !moving)
    });
    c.cluster(&["drain", other]);
    eventually(
        "the drained node's project went back",
        Duration::from_secs(30),
        || {
            c.placed()
                .filter(|(node, _, moving)| *node == first && !moving)
        },
    );
    let out = c.cluster(&["status"]);
    assert!(out.contains(other) && out.contains("yes"), "{out}");
    // Served again (its takeover done) once a push through the gateway is acknowledged.
    eventually(
        "the project served after the drain",
        Duration::from_secs(30),
        || (push(&c.gateway(0), &c.token, &c.project, "last", 0, 1)?.0 == 200).then_some(()),
    );
    stop.store(true, Ordering::Relaxed);
    let (acks, others) = pusher.join().unwrap();
    assert!(
        others.iter().all(|s| matches!(s, 503 | 421)),
        "not retryable: {others:?}"
    );
    assert!(!acks.is_empty());
    let owner: usize = first.trim_start_matches("node-").parse().unwrap();
    let on_owner = seqs(&c.shard(owner));
    let lost: Vec<_> = acks.difference(&on_owner).collect();
    assert!(lost.is_empty(), "acknowledged, not on the owner: {lost:?}");
    eventually("both hand-overs counted", Duration::from_secs(10), || {
        let handoffs: f64 = (0..2)
            .filter_map(|n| metric(&c.url(n), "tdsync_shard_handoffs_total"))
            .sum();
        (handoffs == 2.0).then_some(())
    });
    assert!(metric(&c.gateway(0), "tdsync_gateway_forwarded_total").unwrap() > 0.0);
}

/// A node killed with no traffic at all: another node takes its project over by itself once
/// the lease runs out (its beat finds the expired lease), restoring it from the backup.
#[test]
fn a_dead_nodes_projects_are_taken_over_without_traffic() {
    let Some(mut c) = Cluster::start("cluster_takeover", 2) else {
        return;
    };
    let (status, _, body) = c.push(0, "d", 0, 5).unwrap();
    assert_eq!(status, 200, "{body}");
    let (node, epoch, _) = c.placed().unwrap();
    assert_eq!(node, "node-0");
    c.nodes[0].kill();
    // Claimed, then restored: the takeover counts once the project is served.
    let (node, new_epoch, _) = eventually("node-1 took it over", Duration::from_secs(30), || {
        let taken = metric(&c.url(1), "tdsync_shard_takeovers_total")? >= 1.0;
        c.placed()
            .filter(|(node, _, moving)| taken && node == "node-1" && !moving)
    });
    assert_eq!(node, "node-1");
    assert!(new_epoch > epoch);
    assert_eq!(seqs(&c.shard(1)).len(), 5);
    assert_eq!(metric(&c.url(1), "tdsync_shard_takeovers_total"), Some(1.0));
    assert_eq!(metric(&c.url(1), "tdsync_shard_projects_held"), Some(1.0));
}

/// Redis killed and restarted under a cluster: pushes through a gateway keep being acknowledged
/// (the live layer serves from each process's state meanwhile), and every one of them is on the
/// owner afterwards.
#[test]
fn redis_restarted_mid_run_fails_no_push() {
    let Some(mut redis) = tdsync_live_redis::testing::RedisServer::start("cluster_redis") else {
        return;
    };
    let Some(c) = Cluster::on_redis("cluster_redis", 2, 1, redis.url()) else {
        return;
    };
    let mut acks = BTreeSet::new();
    let mut n = 0;
    let mut push_ok = |acks: &mut BTreeSet<i64>| {
        let (status, _, body) = push(&c.gateway(0), &c.token, &c.project, "d", n, 3).unwrap();
        n += 3;
        assert_eq!(status, 200, "{body}");
        acks.extend(acked(&body));
    };
    push_ok(&mut acks);
    redis.kill();
    for _ in 0..5 {
        push_ok(&mut acks);
    }
    redis.restart();
    for _ in 0..5 {
        push_ok(&mut acks);
    }
    let owner: usize = c
        .placed()
        .unwrap()
        .0
        .trim_start_matches("node-")
        .parse()
        .unwrap();
    assert_eq!(seqs(&c.shard(owner)), acks);
}

/// A gateway with Redis answers a status and a pull at the head from the head the owner shares
/// (the owner is not asked), refuses a bad `limit` there as the owner would, forwards a pull
/// behind the head, holds a long poll at the head until a push on the owner wakes it, and
/// serves an event stream that sees pushes and replays what a reconnecting client missed.
#[test]
fn a_gateway_answers_the_head_from_redis_and_wakes_long_polls_and_streams() {
    let Some(c) = Cluster::with_gateways("cluster_gateway_heads", 1, 1) else {
        return;
    };
    let (g, node) = (c.gateway(0), c.url(0));
    let project_url = |base: &str, rest: &str| format!("{base}/v1/projects/{}/{rest}", c.project);
    let (status, _, body) = push(&g, &c.token, &c.project, "d", 0, 5).unwrap();
    assert_eq!(status, 200, "{body}");
    let head = *acked(&body).iter().max().unwrap();
    const PULL: &str = "/v1/projects/{id}/sync/pull";
    const STATUS: &str = "/v1/projects/{id}/sync/status";

    // The owner's status, then the gateway's: the same, and the gateway asked no one (once
    // the owner's heartbeat says its head can be trusted).
    let (_, on_node) = get_json(&project_url(&node, "sync/status"), &c.token).unwrap();
    let asked = requests(&node, STATUS);
    eventually(
        "the gateway answers a status",
        Duration::from_secs(10),
        || {
            let (code, on_gateway) = get_json(&project_url(&g, "sync/status"), &c.token)?;
            assert_eq!((code, &on_gateway), (200, &on_node));
            (metric(&g, "tdsync_gateway_answered_total")? >= 1.0).then_some(())
        },
    );
    let forwarded_statuses = requests(&node, STATUS) - asked;
    let pulls = requests(&node, PULL);
    let (code, page) = get_json(
        &project_url(&g, &format!("sync/pull?after_server_seq={head}")),
        &c.token,
    )
    .unwrap();
    assert_eq!(code, 200);
    assert_eq!(
        page,
        json!({"events": [], "last_server_seq": head, "has_more": false})
    );
    let (code, refused) = get_json(
        &project_url(&g, &format!("sync/pull?after_server_seq={head}&limit=0")),
        &c.token,
    )
    .unwrap();
    assert_eq!(code, 400, "{refused}");
    assert!(refused.to_string().contains("limit"), "{refused}");
    assert_eq!(
        requests(&node, PULL),
        pulls,
        "pulls at the head stay on the gateway"
    );
    assert_eq!(
        requests(&node, STATUS) - asked,
        forwarded_statuses,
        "statuses stay on the gateway"
    );
    // Behind the head: the owner's log.
    let (_, behind) = get_json(&project_url(&g, "sync/pull?after_server_seq=0"), &c.token).unwrap();
    assert_eq!(behind["events"].as_array().unwrap().len(), 5);
    assert_eq!(requests(&node, PULL), pulls + 1.0);

    // A long poll at the head on the gateway, woken by a push straight to the owner.
    let stream = tdsync_client::events::EventStream::open(&g, &c.project, &c.token, None).unwrap();
    let waiting = {
        let url = project_url(&g, &format!("sync/pull?after_server_seq={head}&wait=20"));
        let token = c.token.clone();
        std::thread::spawn(move || (get_json(&url, &token), Instant::now()))
    };
    eventually(
        "the stream and the long poll wait on the gateway",
        Duration::from_secs(10),
        || (metric(&g, "tdsync_live_subscribers")? >= 2.0).then_some(()),
    );
    let (status, _, body) = push(&node, &c.token, &c.project, "e", 0, 2).unwrap();
    assert_eq!(status, 200, "{body}");
    let pushed = Instant::now();
    let new_head = *acked(&body).iter().max().unwrap();
    let (answer, returned) = waiting.join().unwrap();
    let (code, page) = answer.unwrap();
    assert_eq!(code, 200);
    assert_eq!(page["events"].as_array().unwrap().len(), 2, "{page}");
    let late = returned.saturating_duration_since(pushed);
    assert!(
        late < Duration::from_secs(2),
        "woken {late:?} after the push"
    );
    // The stream saw the push; a client reconnecting with the old head is sent what it missed.
    let change = std::iter::from_fn(|| stream.next(Duration::from_secs(10)))
        .find(|e| e.event == "change")
        .expect("a change event on the gateway's stream");
    assert_eq!(change.json()["head"], new_head);
    let again =
        tdsync_client::events::EventStream::open(&g, &c.project, &c.token, Some(&head.to_string()))
            .unwrap();
    let first = again.next(Duration::from_secs(10)).unwrap();
    assert_eq!(first.event, "refresh");
    let replayed = again.next(Duration::from_secs(10)).unwrap();
    assert_eq!(replayed.event, "change");
    assert_eq!(replayed.json()["head"], new_head);
    assert_eq!(replayed.json()["touched"].as_array().unwrap().len(), 2);
}

/// `tdsync cluster move`: the nodes announce the move through Redis, so a gateway that had the
/// old owner cached sends the next push straight to the new one (no 421, no second send).
#[test]
fn a_move_is_announced_so_gateways_go_straight_to_the_new_owner() {
    let Some(c) = Cluster::with_gateways("cluster_move_announced", 2, 1) else {
        return;
    };
    let g = c.gateway(0);
    let (status, _, body) = push(&g, &c.token, &c.project, "d", 0, 3).unwrap();
    assert_eq!(status, 200, "{body}");
    let (first, epoch, _) = c.placed().unwrap();
    let other = other_of_two(&first);
    c.cluster(&["move", &c.project, other]);
    eventually(
        "the project moved and is served",
        Duration::from_secs(30),
        || {
            c.placed()
                .filter(|(node, e, moving)| node == other && *e > epoch && !moving)?;
            let taken = (0..2).filter_map(|n| metric(&c.url(n), "tdsync_shard_takeovers_total"));
            (taken.sum::<f64>() >= 1.0).then_some(())
        },
    );
    // Well within the gateway's 5 s owner cache: only the announcement can have cleared it.
    let redirected = metric(&g, "tdsync_gateway_redirected_total").unwrap();
    let (status, _, body) = push(&g, &c.token, &c.project, "d", 3, 1).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        metric(&g, "tdsync_gateway_redirected_total").unwrap(),
        redirected,
        "the push went to the new owner at the first send"
    );
    let new: usize = other.trim_start_matches("node-").parse().unwrap();
    assert_eq!(seqs(&c.shard(new)).len(), 4);
}

/// Established connections to `port` on loopback with request bytes the server has not read
/// yet (from /proc/net/tcp: the kernel holds them while the server is stopped).
fn unread_requests_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(queues)) =
                (fields.get(1), fields.get(3), fields.get(4))
            else {
                return false;
            };
            let local_port = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            let unread = queues
                .split(':')
                .nth(1)
                .and_then(|q| usize::from_str_radix(q, 16).ok())
                .unwrap_or(0);
            local_port == Some(port) && *state == "01" && unread > 0
        })
        .count()
}

/// A gateway killed (SIGKILL) while a push it forwarded waits at the owner and a client's
/// event stream runs through it: the client gets a broken connection, retries the push through
/// the other gateway and is answered for every event (once: logged exactly once), and its
/// stream, reopened on the other gateway with the last id it saw, is sent what it missed.
#[test]
fn a_gateway_killed_mid_request_loses_nothing() {
    let Some(mut c) = Cluster::with_gateways("cluster_gateway_killed", 1, 2) else {
        return;
    };
    let (status, _, body) = push(&c.gateway(0), &c.token, &c.project, "d", 0, 2).unwrap();
    assert_eq!(status, 200, "{body}");
    let seen = *acked(&body).iter().max().unwrap();
    let stream =
        tdsync_client::events::EventStream::open(&c.gateway(0), &c.project, &c.token, None)
            .unwrap();
    // The owner paused: the forwarded push is held in its socket, unanswered.
    c.signal(0, "-STOP");
    let in_flight = {
        let (g, token, project) = (c.gateway(0), c.token.clone(), c.project.clone());
        std::thread::spawn(move || push(&g, &token, &project, "d", 2, 50))
    };
    let port: u16 = c.url(0).rsplit(':').next().unwrap().parse().unwrap();
    eventually(
        "the push waits at the paused owner",
        Duration::from_secs(10),
        || (unread_requests_to(port) > 0).then_some(()),
    );
    c.gateways[0].kill();
    let answer = in_flight.join().unwrap();
    assert!(
        answer.is_none(),
        "the client saw the gateway die: {answer:?}"
    );
    drop(stream);
    c.signal(0, "-CONT");
    // td's retry, through the other gateway: every event answered, whether the first send was
    // logged (duplicates with their seqs) or not (accepted now).
    let (status, _, body) = eventually("the retry is answered", Duration::from_secs(30), || {
        push(&c.gateway(1), &c.token, &c.project, "d", 2, 50).filter(|(s, _, _)| *s == 200)
    });
    let answered = acked(&body).len()
        + body["rejected"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["server_seq"].as_i64().is_some())
            .count();
    assert_eq!(answered, 50, "{status}: {body}");
    let logged = seqs(&c.shard(0));
    assert_eq!(logged.len(), 52, "every event logged once");
    // The stream reopened on the other gateway from the last id seen: refresh, then the push.
    let again = tdsync_client::events::EventStream::open(
        &c.gateway(1),
        &c.project,
        &c.token,
        Some(&seen.to_string()),
    )
    .unwrap();
    assert_eq!(
        again.next(Duration::from_secs(10)).unwrap().event,
        "refresh"
    );
    let missed = again.next(Duration::from_secs(10)).unwrap();
    assert_eq!(missed.event, "change");
    assert_eq!(missed.json()["touched"].as_array().unwrap().len(), 50);
}
