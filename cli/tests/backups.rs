//! Restore drills with real processes and real files: `tdsync serve --backup-to` killed with
//! SIGKILL under pushes from several devices, then `tdsync restore` into a fresh directory —
//! with `--durability replicated` every acknowledged event is there; with the default, what the
//! last shipment held, and `tdsync verify --compare` names exactly the seqs that are missing; a
//! fresh td onboarding from a restored server; and the S3 path against the S3-compatible server
//! `infra/services.sh` starts (wrong credentials: a clear error, nothing lost).

#[path = "interop/support.rs"]
#[allow(dead_code)]
mod support;

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use serde_json::{Value, json};
use support::{Server, TdUser, eventually};

fn tdsync(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tdsync"));
    for (var, _) in std::env::vars_os() {
        let var = var.to_string_lossy().to_string();
        if var.starts_with("TDSYNC_") || var.starts_with("AWS_") {
            cmd.env_remove(var);
        }
    }
    cmd.arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .envs(env.iter().copied());
    cmd.output().unwrap()
}

fn ok_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn event(device: &str, n: usize) -> Value {
    let id = format!("td-{device}-{n}");
    json!({
        "client_action_id": n,
        "action_type": "create",
        "entity_type": "issues",
        "entity_id": id,
        "payload": {"schema_version": 1, "previous_data": null, "new_data": {
            "id": id, "title": format!("{device} {n}"), "status": "open", "type": "task",
            "priority": "P2", "created_at": "2026-12-05T09:00:00Z",
            "updated_at": "2026-12-05T09:00:00Z"}},
        "client_timestamp": "2026-12-05T09:00:00Z",
    })
}

/// Every seq in the log of the shard file at `path`.
fn seqs(path: &Path) -> BTreeSet<i64> {
    support::query(path, "SELECT server_seq FROM events ORDER BY server_seq")
        .into_iter()
        .map(|r| r[0].as_i64().unwrap())
        .collect()
}

struct Drill {
    server: Server,
    backup: tempfile::TempDir,
    tenant: String,
    project: String,
    token: String,
}

impl Drill {
    fn start(durability: &str) -> Drill {
        let backup = tempfile::tempdir().unwrap();
        let url = format!("file://{}", backup.path().display());
        let server = Server::start_with(&[
            "--backup-to",
            &url,
            "--backup-interval",
            "1",
            "--durability",
            durability,
            "--rate-limits",
            "off",
        ]);
        let tenant = server.tenant("acme");
        let project = server.admin(&["project", "create", "--tenant", &tenant, "drill"]);
        let token = server.mint(&tenant, "write", None, "devices").token;
        Drill {
            server,
            backup,
            tenant,
            project,
            token,
        }
    }

    fn url(&self) -> String {
        format!("file://{}", self.backup.path().display())
    }

    fn data_dir(&self) -> PathBuf {
        self.server.dir.path().join("data")
    }

    /// Devices pushing batches of 5 until `stop`; returns the seqs each acknowledged.
    fn pushers(
        &self,
        devices: usize,
        stop: &Arc<AtomicBool>,
        acks: &Arc<AtomicU64>,
    ) -> Vec<std::thread::JoinHandle<Vec<i64>>> {
        (0..devices)
            .map(|d| {
                let (url, token, project, stop, acks) = (
                    self.server.url(),
                    self.token.clone(),
                    self.project.clone(),
                    stop.clone(),
                    acks.clone(),
                );
                std::thread::spawn(move || {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .timeout_global(Some(Duration::from_secs(10)))
                        .http_status_as_error(false)
                        .build()
                        .into();
                    let device = format!("dev{d}");
                    let mut acked = Vec::new();
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let events: Vec<Value> = (n..n + 5).map(|i| event(&device, i)).collect();
                        n += 5;
                        let body =
                            json!({"device_id": device, "session_id": "s1", "events": events});
                        let sent = agent
                            .post(format!("{url}/v1/projects/{project}/sync/push"))
                            .header("Authorization", format!("Bearer {token}"))
                            .header("Content-Type", "application/json")
                            .send(body.to_string());
                        let Ok(mut response) = sent else { break };
                        if response.status() != 200 {
                            break;
                        }
                        let answer: Value =
                            serde_json::from_str(&response.body_mut().read_to_string().unwrap())
                                .unwrap();
                        let seqs = answer["acks"].as_array().unwrap();
                        acks.fetch_add(seqs.len() as u64, Ordering::Relaxed);
                        acked.extend(seqs.iter().map(|a| a["server_seq"].as_i64().unwrap()));
                    }
                    acked
                })
            })
            .collect()
    }

    /// Pushes from three devices until at least `acks` events are acknowledged, then kills the
    /// server with pushes in flight. Returns every acknowledged seq.
    fn kill_under_pushes(&mut self, acks: u64) -> BTreeSet<i64> {
        let stop = Arc::new(AtomicBool::new(false));
        let counted = Arc::new(AtomicU64::new(0));
        let pushers = self.pushers(3, &stop, &counted);
        eventually(Duration::from_secs(60), "pushes acknowledged", || {
            (counted.load(Ordering::Relaxed) >= acks).then_some(())
        });
        self.server.process.kill();
        stop.store(true, Ordering::Relaxed);
        pushers
            .into_iter()
            .flat_map(|p| p.join().unwrap())
            .collect()
    }

    fn restore(&self, into: &Path) -> Value {
        ok_json(&tdsync(
            into,
            &["restore", "--from", &self.url(), "--json"],
            &[],
        ))
    }

    fn restored_shard(&self, root: &Path) -> PathBuf {
        root.join("tenants")
            .join(&self.tenant)
            .join(format!("{}.db", self.project))
    }
}

#[test]
fn replicated_a_server_killed_under_pushes_loses_no_acknowledged_event() {
    let mut drill = Drill::start("replicated");
    let acked = drill.kill_under_pushes(150);
    assert!(acked.len() >= 150, "{} acknowledged", acked.len());
    let fresh = tempfile::tempdir().unwrap();
    let report = drill.restore(fresh.path());
    assert_eq!(report["projects"][0]["rebuild_matches"], true, "{report}");
    let restored = seqs(&drill.restored_shard(fresh.path()));
    let lost: Vec<_> = acked.difference(&restored).collect();
    assert!(lost.is_empty(), "acknowledged but not restored: {lost:?}");
    // The token minted before the crash works on the restored control plane.
    let out = tdsync(
        fresh.path(),
        &["token", "list", "--tenant", &drill.tenant, "--json"],
        &[],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("devices"));
}

#[test]
fn normal_a_killed_server_restores_what_was_shipped_and_verify_names_the_rest() {
    let mut drill = Drill::start("normal");
    // A first batch, shipped (the metric counts it once it is in the target)…
    eventually(Duration::from_secs(30), "a first shipment", || {
        drill.kill_under_pushes_nonblocking_first_batch();
        (drill.server.metric("tdsync_backup_shipped_events_total") >= 20).then_some(())
    });
    // …then more, and a kill that may beat the next shipment.
    let acked = drill.kill_under_pushes(200);
    let logged = seqs(&drill.server.shard(&drill.tenant, &drill.project));
    assert!(acked.is_subset(&logged));

    let fresh = tempfile::tempdir().unwrap();
    let report = drill.restore(fresh.path());
    assert_eq!(report["projects"][0]["rebuild_matches"], true, "{report}");
    let restored = seqs(&drill.restored_shard(fresh.path()));
    assert!(restored.is_subset(&logged));
    assert!(!restored.is_empty());
    let missing: Vec<i64> = logged.difference(&restored).copied().collect();

    let out = tdsync(
        &drill.data_dir(),
        &["verify", "--backup", &drill.url(), "--compare", "--json"],
        &[],
    );
    let reports: Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = reports[1]["findings"].as_array().unwrap();
    if missing.is_empty() {
        assert!(out.status.success(), "{reports}");
        assert!(findings.is_empty(), "{reports}");
    } else {
        assert_eq!(out.status.code(), Some(1), "{reports}");
        let expected = format!(
            "the backup lacks {} logged events: seqs {}..={}",
            missing.len(),
            missing[0],
            missing[missing.len() - 1]
        );
        assert!(
            findings[0]["message"]
                .as_str()
                .unwrap()
                .starts_with(&expected),
            "expected {expected:?} in {reports}"
        );
        // What is missing is one run at the end: everything before it was restored.
        assert!(missing[0] > *restored.iter().next_back().unwrap());
    }
}

impl Drill {
    /// One push of 20 events from one device, answered before the next check.
    fn kill_under_pushes_nonblocking_first_batch(&self) {
        if self.server.metric("tdsync_events_pushed_total") >= 20 {
            return;
        }
        let events: Vec<Value> = (0..20).map(|i| event("first", i)).collect();
        let (status, _, body) = self.server.post(
            &format!("/v1/projects/{}/sync/push", self.project),
            &self.token,
            &json!({"device_id": "first", "session_id": "s0", "events": events}),
        );
        assert_eq!(status, 200, "{body}");
    }
}

/// A td user syncs through a server that ships backups; the server is stopped (its last
/// shipment goes out), restored into a fresh directory, started there — and a fresh td joins
/// the project with the same token and gets every issue.
#[test]
fn a_fresh_td_onboards_from_a_restored_server() {
    let Some(td) = support::td() else { return };
    let backup = tempfile::tempdir().unwrap();
    let url = format!("file://{}", backup.path().display());
    let mut server = Server::start_with(&["--backup-to", &url, "--backup-interval", "1"]);
    let tenant = server.tenant("acme");
    let key = server.mint(&tenant, "write", None, "team");
    let root = tempfile::tempdir().unwrap();
    let alice = TdUser::new(&td, root.path(), "alice", &server.url(), &key.token);
    alice.ok(&["sync-project", "create", "restored"]);
    let project = alice.linked_project().unwrap();
    let titles: Vec<String> = (0..5).map(|i| format!("Before the loss {i}")).collect();
    for t in &titles {
        alice.create(t, &[]);
    }
    alice.sync();
    server.process.stop();

    let fresh = tempfile::tempdir().unwrap();
    let data = fresh.path().join("data");
    let report = ok_json(&tdsync(&data, &["restore", "--from", &url, "--json"], &[]));
    assert!(report["control_plane"].is_i64(), "{report}");
    let mut restored = tdsync_harness::remote::ServeProcess::new(
        Path::new(env!("CARGO_BIN_EXE_tdsync")),
        &data,
        &fresh.path().join("server.log"),
    );
    restored.start().unwrap();
    let bob = TdUser::new(&td, root.path(), "bob", &restored.base_url(), &key.token);
    let out = bob.ok(&["sync-project", "join", "restored"]);
    assert!(out.contains(&project), "{out}");
    bob.sync();
    let mut seen: Vec<String> = bob
        .list()
        .iter()
        .map(|i| i["title"].as_str().unwrap().to_string())
        .collect();
    seen.sort();
    assert_eq!(seen, titles);
    restored.stop();
}

/// The S3 test server from `infra/services.sh`, or None (skipping loudly; failing under
/// `TDSYNC_REQUIRE_SERVICES=1`).
fn s3() -> Option<Vec<(&'static str, String)>> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (
        var("TDSYNC_TEST_S3_ENDPOINT"),
        var("TDSYNC_TEST_S3_ACCESS_KEY"),
        var("TDSYNC_TEST_S3_SECRET_KEY"),
    ) {
        (Some(endpoint), Some(key), Some(secret)) => Some(vec![
            ("AWS_ENDPOINT_URL", endpoint),
            ("AWS_ACCESS_KEY_ID", key),
            ("AWS_SECRET_ACCESS_KEY", secret),
            (
                "AWS_REGION",
                var("TDSYNC_TEST_S3_REGION").unwrap_or_else(|| "us-east-1".into()),
            ),
        ]),
        _ => {
            assert!(
                std::env::var("TDSYNC_REQUIRE_SERVICES").as_deref() != Ok("1"),
                "TDSYNC_TEST_S3_ENDPOINT is not set: run the tests with ./infra/test.sh, which \
                 starts an S3-compatible server (TDSYNC_REQUIRE_SERVICES=1 makes this fatal)"
            );
            eprintln!(
                "\n======== SKIPPED: the S3 backup test needs TDSYNC_TEST_S3_ENDPOINT (run \
                 ./infra/test.sh) ========\n"
            );
            None
        }
    }
}

#[test]
fn backup_restore_and_verify_through_s3() {
    let Some(env) = s3() else { return };
    let bucket = std::env::var("TDSYNC_TEST_S3_BUCKET").unwrap();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut drill = Drill::start("normal");
    drill.kill_under_pushes_nonblocking_first_batch();
    drill.server.process.stop();
    let data = drill.data_dir();
    let prefix = format!("drill-{}", std::process::id());
    let url = format!("s3://{bucket}/{prefix}");

    let first = ok_json(&tdsync(&data, &["backup", "--to", &url, "--json"], &env));
    let key = format!("{}/{}", drill.tenant, drill.project);
    assert_eq!(first["projects"][&key]["events"], 20, "{first}");
    // Incremental: nothing new, nothing sent.
    let again = ok_json(&tdsync(&data, &["backup", "--to", &url, "--json"], &env));
    assert_eq!(again["projects"][&key]["events"], 0, "{again}");

    let verified = ok_json(&tdsync(
        &data,
        &["verify", "--backup", &url, "--json"],
        &env,
    ));
    assert_eq!(verified[0]["projects"][0]["seq"], 20, "{verified}");

    let fresh = tempfile::tempdir().unwrap();
    let report = ok_json(&tdsync(
        fresh.path(),
        &["restore", "--from", &url, "--json"],
        &env,
    ));
    assert_eq!(report["projects"][0]["seq"], 20, "{report}");
    assert_eq!(
        seqs(&drill.restored_shard(fresh.path())),
        seqs(&drill.server.shard(&drill.tenant, &drill.project))
    );

    // Wrong credentials: a clear error, exit 2, and the data dir untouched.
    let before = seqs(&drill.server.shard(&drill.tenant, &drill.project));
    let mut wrong = env.clone();
    wrong.retain(|(k, _)| *k != "AWS_SECRET_ACCESS_KEY");
    wrong.push(("AWS_SECRET_ACCESS_KEY", "not-the-secret"));
    let out = tdsync(&data, &["backup", "--to", &url], &wrong);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("backup target s3://{bucket}/{prefix}")),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-secret"), "{stderr}");
    assert_eq!(
        seqs(&drill.server.shard(&drill.tenant, &drill.project)),
        before
    );
    // An unreachable endpoint: the same.
    let mut down = env.clone();
    down.retain(|(k, _)| *k != "AWS_ENDPOINT_URL");
    down.push(("AWS_ENDPOINT_URL", "http://127.0.0.1:9"));
    let out = tdsync(&data, &["backup", "--to", &url], &down);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("backup target"));
}

/// Overwrites the start of the b-tree page at the root of `table` in the shard file at `path`
/// with garbage, as a failing disk or a stray write would.
fn damage_table(path: &Path, table: &str) {
    let root = support::query(
        path,
        &format!("SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = '{table}'"),
    )[0][0]
        .as_i64()
        .unwrap() as u64;
    let mut bytes = std::fs::read(path).unwrap();
    let page_size = match u16::from_be_bytes([bytes[16], bytes[17]]) {
        1 => 65_536,
        n => u64::from(n),
    };
    let start = ((root - 1) * page_size + if root == 1 { 100 } else { 0 }) as usize;
    for b in &mut bytes[start..start + 48] {
        *b = 0xA5;
    }
    std::fs::write(path, bytes).unwrap();
}

/// A team on a server whose shards close as soon as another project is used
/// (`--max-open-shards 1`), so damage made to a file between two requests is what the next
/// one opens.
struct Damaged {
    td: PathBuf,
    server: Server,
    tenant: String,
    token: String,
    root: tempfile::TempDir,
    project: String,
    alice: TdUser,
    bob: TdUser,
}

impl Damaged {
    fn start(td: PathBuf, serve_args: &[&str]) -> Damaged {
        let mut args = vec!["--max-open-shards", "1", "--rate-limits", "off"];
        args.extend(serve_args);
        let server = Server::start_with(&args);
        let tenant = server.tenant("acme");
        let token = server.mint(&tenant, "write", None, "team").token;
        let root = tempfile::tempdir().unwrap();
        let alice = TdUser::new(&td, root.path(), "alice", &server.url(), &token);
        alice.ok(&["sync-project", "create", "precious"]);
        let project = alice.linked_project().unwrap();
        let bob = TdUser::new(&td, root.path(), "bob", &server.url(), &token);
        bob.ok(&["sync-project", "join", "precious"]);
        // Enough history for the log to span many pages.
        let mut ids = Vec::new();
        for i in 0..12 {
            ids.push(alice.create(&format!("Issue {i}"), &[]));
        }
        let mut update = vec!["update"];
        update.extend(ids.iter().map(String::as_str));
        update.extend(["--priority", "P1"]);
        alice.ok(&update);
        alice.sync();
        bob.sync();
        Damaged {
            td,
            server,
            tenant,
            token,
            root,
            project,
            alice,
            bob,
        }
    }

    fn shard(&self) -> PathBuf {
        self.server.shard(&self.tenant, &self.project)
    }

    /// Uses another project, which closes this one's shard (the open budget is one).
    fn close_the_shard(&self) {
        let other =
            self.server
                .admin(&["project", "create", "--tenant", &self.tenant, "elsewhere"]);
        let (status, _, body) = self.server.post(
            &format!("/v1/projects/{other}/sync/push"),
            &self.token,
            &json!({"device_id": "x", "session_id": "s", "events": [event("x", 1)]}),
        );
        assert_eq!(status, 200, "{body}");
    }

    /// A pull from the start (read from the log, so the shard opens): its status, and
    /// `Retry-After` if any.
    fn pull_from_start(&self) -> (u16, Value) {
        self.server.get(
            &format!("/v1/projects/{}/sync/pull?after_server_seq=0", self.project),
            &self.token,
        )
    }

    fn recovered(&self) -> u64 {
        self.server
            .metric("tdsync_shard_recoveries_total{outcome=\"recovered\"}")
    }

    /// Both users write and sync again; every replica ends equal to the server's projection,
    /// and `tdsync verify` finds the data directory sound (the log replays to the projection).
    fn keep_syncing(&self) {
        let x = self.alice.create("After the recovery", &[]);
        self.bob.create("Bob after the recovery", &[]);
        self.alice.sync();
        self.bob.sync();
        self.alice.sync();
        assert_eq!(self.bob.show(&x)["title"], "After the recovery");
        support::assert_same(&[
            ("server", &self.shard()),
            ("alice", &self.alice.db()),
            ("bob", &self.bob.db()),
        ]);
        let out = tdsync(
            &self.server.dir.path().join("data"),
            &["verify", "--json"],
            &[],
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(out.status.success(), "{report}");
        let _ = (&self.td, &self.root);
    }
}

/// The log's own b-tree damaged in a running server's shard: the project answers 503 with
/// `Retry-After` (never what the file holds), its shard is moved aside and restored from the
/// backup, and the team keeps syncing.
#[test]
fn a_damaged_log_is_restored_from_the_backup_while_the_server_runs() {
    let Some(td) = support::td() else { return };
    let backup = tempfile::tempdir().unwrap();
    let url = format!("file://{}", backup.path().display());
    let team = Damaged::start(td, &["--backup-to", &url, "--backup-interval", "1"]);
    let logged = seqs(&team.shard()).len() as u64;
    eventually(Duration::from_secs(30), "the log shipped", || {
        (team.server.metric("tdsync_backup_shipped_events_total") >= logged).then_some(())
    });
    team.close_the_shard();
    let before = seqs(&team.shard());
    damage_table(&team.shard(), "events");

    let (status, body) = team.pull_from_start();
    assert_eq!(status, 503, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("damaged"),
        "{body}"
    );
    eventually(Duration::from_secs(30), "the shard recovered", || {
        (team.recovered() >= 1).then_some(())
    });
    let (status, body) = team.pull_from_start();
    assert_eq!(status, 200, "{body}");
    assert_eq!(seqs(&team.shard()), before, "every logged event is back");
    let damaged: Vec<_> = std::fs::read_dir(
        team.server
            .dir
            .path()
            .join("data/damaged")
            .join(&team.tenant),
    )
    .map(|d| {
        d.filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "db"))
            .collect()
    })
    .unwrap_or_default();
    assert_eq!(
        damaged.len(),
        1,
        "the damaged file is kept aside: {damaged:?}"
    );
    team.keep_syncing();
}

/// Only the projection damaged, and no backup configured: the log reads whole, so the shard is
/// rebuilt from it alone.
#[test]
fn a_damaged_projection_is_rebuilt_from_the_local_log_without_a_backup() {
    let Some(td) = support::td() else { return };
    let team = Damaged::start(td, &[]);
    team.close_the_shard();
    let before = seqs(&team.shard());
    damage_table(&team.shard(), "issues");
    let (status, _) = team.pull_from_start();
    assert_eq!(status, 503);
    eventually(Duration::from_secs(30), "the shard rebuilt", || {
        (team.recovered() >= 1).then_some(())
    });
    assert_eq!(seqs(&team.shard()), before);
    team.keep_syncing();
}

/// The log damaged and no backup: the project stays out of service — across a restart too —
/// and the server log names the project and the seqs that cannot be read.
#[test]
fn a_damaged_log_without_a_backup_keeps_the_project_out_of_service_and_says_what_is_lost() {
    let Some(td) = support::td() else { return };
    let mut team = Damaged::start(td, &[]);
    team.close_the_shard();
    damage_table(&team.shard(), "events");
    let (status, _) = team.pull_from_start();
    assert_eq!(status, 503);
    eventually(Duration::from_secs(30), "the recovery gave up", || {
        (team
            .server
            .metric("tdsync_shard_recoveries_total{outcome=\"failed\"}")
            >= 1)
            .then_some(())
    });
    let log = team.server.process.log_tail();
    assert!(
        log.contains(&format!("project {}/{}", team.tenant, team.project))
            && log.contains("cannot be read"),
        "{log}"
    );
    team.server.process.stop();
    team.server.process.start().unwrap();
    let (status, body) = team.pull_from_start();
    assert_eq!(status, 503, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("moved to"),
        "{body}"
    );
    let sync = team.bob.run(&["sync"]);
    assert!(!sync.ok, "{}", sync.text());
}

/// An s3s-fs of the test's own (`TDSYNC_S3_SERVER`, which `infra/services.sh` exports), to take
/// down and bring back on the same port and data.
struct OwnS3 {
    bin: PathBuf,
    root: tempfile::TempDir,
    port: u16,
    secret: String,
    child: Option<std::process::Child>,
}

impl OwnS3 {
    fn start() -> Option<OwnS3> {
        let bin = match std::env::var("TDSYNC_S3_SERVER") {
            Ok(b) if !b.is_empty() => PathBuf::from(b),
            _ => {
                s3()?;
                panic!("TDSYNC_S3_SERVER is not set: run the tests with ./infra/test.sh");
            }
        };
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("bucket")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut s3 = OwnS3 {
            bin,
            root,
            port,
            secret: format!("secret-{}", std::process::id()),
            child: None,
        };
        s3.up();
        Some(s3)
    }

    fn up(&mut self) {
        let child = Command::new(&self.bin)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", "own", "--secret-key", &self.secret])
            .arg(self.root.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let port = self.port;
        eventually(Duration::from_secs(10), "s3s-fs answers", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
    }

    fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", self.port),
            ),
            ("AWS_ACCESS_KEY_ID", "own".into()),
            ("AWS_SECRET_ACCESS_KEY", self.secret.clone()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }
}

impl OwnS3 {
    /// A `tdsync serve` backing up to this server (`serve_args` name the bucket), with a
    /// project and a write token: (server, tenant, project, token).
    fn serve(&self, serve_args: &[&str]) -> (Server, String, String, String) {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let server = Server::start_with_env(serve_args, &env);
        let tenant = server.tenant("acme");
        let project = server.admin(&["project", "create", "--tenant", &tenant, "outage"]);
        let token = server.mint(&tenant, "write", None, "devices").token;
        (server, tenant, project, token)
    }
}

impl Drop for OwnS3 {
    fn drop(&mut self) {
        self.down();
    }
}

/// The target goes down under a running server: pushes go on as before, `/healthz` and
/// `/metrics` say the backup is behind, and when the target comes back the backlog ships by
/// itself — a restore then holds every event.
#[test]
fn an_unreachable_target_blocks_nothing_and_the_backlog_ships_when_it_returns() {
    let Some(mut s3) = OwnS3::start() else { return };
    let (server, tenant, project, token) = s3.serve(&[
        "--backup-to",
        "s3://bucket/outage",
        "--backup-interval",
        "1",
        "--backup-max-lag",
        "1",
    ]);
    let env = s3.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let push = |device: &str, from: usize| {
        let events: Vec<Value> = (from..from + 10).map(|i| event(device, i)).collect();
        let (status, _, body) = server.post(
            &format!("/v1/projects/{project}/sync/push"),
            &token,
            &json!({"device_id": device, "session_id": "s", "events": events}),
        );
        assert_eq!(status, 200, "{body}");
    };
    push("before", 0);
    eventually(Duration::from_secs(30), "the first events shipped", || {
        (server.metric("tdsync_backup_shipped_events_total") >= 10).then_some(())
    });

    s3.down();
    for round in 0..5 {
        push("during", round * 10);
    }
    eventually(Duration::from_secs(30), "shipping reported behind", || {
        let (_, health) = server.get("/healthz", &token);
        let failing = server.metric("tdsync_backup_failures_total") >= 1;
        (failing && health["backup"].as_str().unwrap_or("").contains("behind")).then_some(health)
    });
    assert_eq!(server.metric("tdsync_backup_backlog_events"), 50);

    s3.up();
    eventually(Duration::from_secs(60), "the backlog shipped", || {
        (server.metric("tdsync_backup_shipped_events_total") >= 60
            && server.metric("tdsync_backup_backlog_events") == 0)
            .then_some(())
    });
    let fresh = tempfile::tempdir().unwrap();
    let report = ok_json(&tdsync(
        fresh.path(),
        &["restore", "--from", "s3://bucket/outage", "--json"],
        &env,
    ));
    assert_eq!(report["projects"][0]["seq"], 60, "{report}");
    assert_eq!(
        seqs(
            &fresh
                .path()
                .join("tenants")
                .join(&tenant)
                .join(format!("{project}.db"))
        )
        .len(),
        60
    );
}

/// `--durability replicated` with its target down: a push is logged but answered 503 with
/// `Retry-After` (it is not in the backup yet); once the target is back, the same push retried
/// is answered with its events as duplicates of the logged ones — and they are in the backup.
#[test]
fn replicated_with_the_target_down_refuses_to_acknowledge_and_the_retry_succeeds() {
    let Some(mut s3) = OwnS3::start() else { return };
    let (server, _, project, token) = s3.serve(&[
        "--backup-to",
        "s3://bucket/replicated",
        "--durability",
        "replicated",
        "--backup-interval",
        "1",
    ]);
    let env = s3.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let body = json!({"device_id": "d", "session_id": "s",
                      "events": (0..5).map(|i| event("d", i)).collect::<Vec<_>>()});
    let path = format!("/v1/projects/{project}/sync/push");
    let (status, _, answer) = server.post(&path, &token, &body);
    assert_eq!(status, 200, "{answer}");

    s3.down();
    let more = json!({"device_id": "d", "session_id": "s",
                      "events": (5..10).map(|i| event("d", i)).collect::<Vec<_>>()});
    let (status, retry_after, answer) = server.post(&path, &token, &more);
    assert_eq!(status, 503, "{answer}");
    assert_eq!(retry_after.as_deref(), Some("5"));
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("not yet in the backup"),
        "{answer}"
    );

    s3.up();
    let retried = eventually(Duration::from_secs(30), "the retry acknowledged", || {
        let (status, _, answer) = server.post(&path, &token, &more);
        (status == 200).then_some(answer)
    });
    let duplicates = retried["rejected"].as_array().unwrap();
    assert_eq!(duplicates.len(), 5, "{retried}");
    assert!(
        duplicates.iter().all(|r| r["reason"] == "duplicate"),
        "{retried}"
    );
    let fresh = tempfile::tempdir().unwrap();
    let report = ok_json(&tdsync(
        fresh.path(),
        &["restore", "--from", "s3://bucket/replicated", "--json"],
        &env,
    ));
    assert_eq!(report["projects"][0]["seq"], 10, "{report}");
}

/// Bad input names what is wrong, exits 2 and changes nothing.
#[test]
fn bad_backup_and_restore_input_is_refused_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let backup = format!("file://{}", dir.path().join("backup").display());
    let refused = |args: &[&str], says: &str| {
        let out = tdsync(&data, args, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    };
    refused(
        &["backup", "--to", &backup],
        "is not a tdsync data directory",
    );
    std::fs::create_dir_all(data.join("tenants")).unwrap();
    refused(
        &["backup", "--to", "ftp://host/x"],
        "use file:///PATH or s3://BUCKET/PREFIX",
    );
    refused(
        &["backup", "--to", "file://relative"],
        "needs an absolute path",
    );
    refused(
        &["backup", "--to", "s3:///prefix"],
        "the bucket name is missing",
    );
    refused(
        &["restore", "--from", &backup, "--at", "yesterday"],
        "--at \"yesterday\" is not an RFC 3339 time",
    );
    refused(&["restore", "--from", &backup], "there is no backup here");
    refused(&["verify", "--backup", &backup], "there is no backup here");
    assert!(!dir.path().join("backup").exists(), "nothing was created");
    std::fs::write(data.join("control-plane.db"), b"").unwrap();
    std::fs::create_dir_all(dir.path().join("backup")).unwrap();
    refused(&["restore", "--from", &backup], "pass --force");
    assert!(data.join("control-plane.db").exists());
}
