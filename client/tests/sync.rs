//! The sync engine and agent through the in-process transport: convergence of several clients,
//! lost replies and duplicate delivery, partitions, a server restart, and the agent's
//! lifecycle (subscribers, pause/resume, stop flushing what is pending) and live behaviour
//! (long polls when the server offers them, polling otherwise, the server's poll advice).

mod common;

use std::{
    sync::{
        Arc, Mutex,
        mpsc::{self, RecvTimeoutError},
    },
    time::{Duration, Instant},
};

use common::{db_path, issue_json, log_action};
use serde_json::{Value, json};
use tdsync_client::{
    Advice, AgentEvent, AgentOptions, Cancel, Identity, SyncAgent, SyncClient, SyncError,
    Transport, TransportError,
    tddb::TdDatabase,
    transport::in_process::{Faults, InProcess, LocalServer},
};
use tdsync_projection::Dump;
use tdsync_protocol::wire::{PullQuery, PullResponse, PushRequest, PushResponse, SyncStatus};
use tdsync_tenants::{ProjectId, TenantId, Tenants, TenantsConfig};

struct World {
    dir: tempfile::TempDir,
    server: LocalServer,
    tenant: TenantId,
    project: ProjectId,
    _clients: Vec<tempfile::TempDir>,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Tenants::open(TenantsConfig::new(dir.path().join("server"))).unwrap();
    let (tenant, project) = (
        TenantId::parse("t").unwrap(),
        ProjectId::parse("p").unwrap(),
    );
    World {
        dir,
        server: LocalServer::new(store),
        tenant,
        project,
        _clients: Vec::new(),
    }
}

impl World {
    fn client(&mut self, device: &str, faults: Faults, seed: u64) -> SyncClient<InProcess> {
        let dir = tempfile::tempdir().unwrap();
        let db = TdDatabase::create(&db_path(dir.path())).unwrap();
        db.link(self.project.as_str()).unwrap();
        self._clients.push(dir);
        let transport = InProcess::with_faults(
            self.server.clone(),
            self.tenant.clone(),
            self.project.clone(),
            faults,
            seed,
        );
        SyncClient::new(
            db,
            transport,
            Identity {
                device_id: device.into(),
                session_id: format!("ses_{device}"),
            },
        )
    }

    fn projection(&self) -> Dump {
        let store = self.server.get().unwrap();
        let conn =
            rusqlite::Connection::open(store.project(&self.tenant, &self.project).path()).unwrap();
        Dump::read(&conn).unwrap()
    }

    fn event_count(&self) -> i64 {
        self.server
            .get()
            .unwrap()
            .project(&self.tenant, &self.project)
            .status()
            .unwrap()
            .event_count
    }
}

/// Writes an issue and its action_log row as td does.
fn create_issue(db: &TdDatabase, id: &str, title: &str) -> Value {
    let issue = issue_json(id, title, "open", "2026-08-01T10:00:00Z");
    db.connection()
        .execute(
            "INSERT INTO issues (id, title, status, type, priority, labels, creator_session, created_at, updated_at) \
             VALUES (?1, ?2, 'open', 'task', 'P2', 'a,b', 'ses_x', '2026-08-01 10:00:00+00:00', '2026-08-01 10:00:00+00:00')",
            [id, title],
        )
        .unwrap();
    log_action(
        db,
        [
            &format!("al-c{id}"),
            "create",
            "issue",
            id,
            "",
            &issue.to_string(),
            "2026-08-01T10:00:00Z",
        ],
    );
    issue
}

/// Renames an issue the way td's update does (previous and new images).
fn rename_issue(db: &TdDatabase, previous: &Value, title: &str, stamp: &str) -> Value {
    let mut next = previous.clone();
    next["title"] = json!(title);
    next["updated_at"] = json!(stamp);
    let id = previous["id"].as_str().unwrap();
    db.connection()
        .execute("UPDATE issues SET title = ?1 WHERE id = ?2", [title, id])
        .unwrap();
    log_action(
        db,
        [
            &format!("al-u{id}{stamp}"),
            "update",
            "issue",
            id,
            &previous.to_string(),
            &next.to_string(),
            stamp,
        ],
    );
    next
}

fn dump(c: &SyncClient<InProcess>) -> Dump {
    Dump::read(c.db().connection()).unwrap()
}

fn assert_converged(w: &World, clients: &[&SyncClient<InProcess>]) {
    let server = w.projection();
    for c in clients {
        if let Some(d) = server.first_difference(&dump(c)) {
            panic!("{} diverges from the server: {d}", c.identity().device_id);
        }
    }
}

#[test]
fn clients_converge_through_the_server() {
    let mut w = world();
    let a = w.client("dev-a", Faults::default(), 1);
    let b = w.client("dev-b", Faults::default(), 2);
    let issues: Vec<Value> = (1..=3)
        .map(|i| create_issue(a.db(), &format!("td-00000{i}"), "from a"))
        .collect();
    let r = a.sync().unwrap();
    assert_eq!(r.push.accepted, 3);
    let r = b.sync().unwrap();
    assert_eq!(r.pull.pulled, 3);
    assert_eq!(
        r.pull.changed.len(),
        3,
        "the subscriber-facing change set names each issue"
    );
    rename_issue(b.db(), &issues[0], "renamed by b", "2026-08-01T11:00:00Z");
    b.sync().unwrap();
    a.sync().unwrap();
    let title: String = a
        .db()
        .connection()
        .query_row("SELECT title FROM issues WHERE id = 'td-000001'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(title, "renamed by b");
    assert_converged(&w, &[&a, &b]);
}

/// A td database whose local-only `sessions` index counts the wrong number of entries (as found
/// in the wild) opens with a warning and syncs like any other.
#[test]
fn a_damaged_local_only_index_warns_and_sync_still_converges() {
    let mut w = world();
    let a = w.client("dev-a", Faults::default(), 1);
    let b = w.client("dev-b", Faults::default(), 2);
    a.db()
        .connection()
        .execute_batch(
            "INSERT INTO sessions (id, branch) VALUES ('ses_1', 'main'), ('ses_2', 'main');",
        )
        .unwrap();
    let issue = create_issue(a.db(), "td-000001", "before the damage");
    let identity = a.identity().clone();
    let (db, transport) = a.into_parts();
    let path = db.path().to_path_buf();
    drop(db);
    tdsync_client::testing::change_behind_index(
        &path,
        "idx_sessions_branch",
        "DELETE FROM sessions WHERE id = 'ses_1'",
    )
    .unwrap();

    let db = TdDatabase::open(&path).unwrap();
    let warnings = db.integrity_warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].table(), "sessions");
    assert!(
        warnings[0]
            .fix()
            .ends_with("\"REINDEX idx_sessions_branch\"")
    );
    let a = SyncClient::new(db, transport, identity);
    rename_issue(a.db(), &issue, "after the damage", "2026-08-01T11:00:00Z");
    let r = a.sync().unwrap();
    assert_eq!(r.push.accepted, 2);
    assert_eq!(b.sync().unwrap().pull.pulled, 2);
    assert_eq!(
        a.db().integrity_warnings(),
        warnings,
        "still there, still only a warning"
    );
    assert_converged(&w, &[&a, &b]);
}

#[test]
fn a_lost_reply_is_repaired_by_the_next_push_without_duplicates() {
    let mut w = world();
    let faults = Faults {
        lose_reply: 1.0,
        ..Faults::default()
    };
    let a = w.client("dev-a", faults, 3);
    for i in 0..5 {
        create_issue(a.db(), &format!("td-10000{i}"), "x");
    }
    // The server stores the batch, the client never hears back.
    let err = a.push().unwrap_err();
    assert!(
        matches!(err, SyncError::Transport(TransportError::Network(_))),
        "{err}"
    );
    assert_eq!(w.event_count(), 5);
    assert_eq!(
        a.pending_count().unwrap(),
        5,
        "unacknowledged rows stay pending"
    );
    // Same rows again through a healthy link: all five come back as duplicates with seqs.
    let (db, _) = a.into_parts();
    let transport = InProcess::new(w.server.clone(), w.tenant.clone(), w.project.clone());
    let a = SyncClient::new(
        db,
        transport,
        Identity {
            device_id: "dev-a".into(),
            session_id: "ses_dev-a".into(),
        },
    );
    let r = a.push().unwrap();
    assert_eq!((r.accepted, r.duplicates), (0, 5));
    assert_eq!(a.pending_count().unwrap(), 0);
    assert_eq!(w.event_count(), 5, "no event was logged twice");
    a.pull().unwrap();
    assert_converged(&w, &[&a]);
}

#[test]
fn duplicate_delivery_and_jitter_change_nothing() {
    let mut w = world();
    let faults = Faults {
        duplicate: 1.0,
        jitter: Duration::from_millis(2),
        ..Faults::default()
    };
    let a = w.client("dev-a", faults.clone(), 4);
    let b = w.client("dev-b", faults, 5);
    let issue = create_issue(a.db(), "td-200000", "dup");
    a.sync().unwrap();
    rename_issue(a.db(), &issue, "dup 2", "2026-08-01T12:00:00Z");
    let r = a.sync().unwrap();
    assert_eq!(r.push.sent, 1);
    assert_eq!(w.event_count(), 2);
    assert!(
        a.transport()
            .counts()
            .duplicates
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
    b.sync().unwrap();
    assert_converged(&w, &[&a, &b]);
}

#[test]
fn a_partitioned_client_keeps_its_changes_and_catches_up() {
    let mut w = world();
    let a = w.client("dev-a", Faults::default(), 6);
    let b = w.client("dev-b", Faults::default(), 7);
    let base = create_issue(a.db(), "td-300000", "base");
    a.sync().unwrap();
    b.sync().unwrap();
    a.transport().set_offline(true);
    rename_issue(a.db(), &base, "offline edit", "2026-08-01T13:00:00Z");
    assert!(a.sync().is_err());
    assert_eq!(a.pending_count().unwrap(), 1);
    create_issue(b.db(), "td-300001", "meanwhile");
    b.sync().unwrap();
    a.transport().set_offline(false);
    let r = a.sync().unwrap();
    assert_eq!(r.push.accepted, 1);
    b.sync().unwrap();
    assert_converged(&w, &[&a, &b]);
}

#[test]
fn a_server_restart_loses_nothing() {
    let mut w = world();
    let a = w.client("dev-a", Faults::default(), 8);
    create_issue(a.db(), "td-400000", "before restart");
    a.sync().unwrap();
    w.server.stop();
    create_issue(a.db(), "td-400001", "while down");
    assert!(matches!(
        a.sync(),
        Err(SyncError::Transport(TransportError::Network(_)))
    ));
    w.server
        .start(Tenants::open(TenantsConfig::new(w.dir.path().join("server"))).unwrap());
    let r = a.sync().unwrap();
    assert_eq!(r.push.accepted, 1);
    assert_eq!(
        w.event_count(),
        2,
        "the restarted server reads its head back from disk"
    );
    let b = w.client("dev-b", Faults::default(), 9);
    assert_eq!(b.sync().unwrap().pull.pulled, 2);
    assert_converged(&w, &[&a, &b]);
}

fn fast() -> AgentOptions {
    AgentOptions {
        fast: Duration::from_millis(20),
        idle: Duration::from_millis(200),
        ..AgentOptions::default()
    }
}

fn next_change(rx: &std::sync::mpsc::Receiver<AgentEvent>) -> AgentEvent {
    match rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the agent reported nothing for 10 s")
    {
        AgentEvent::Failed(e) => panic!("sync failed: {e}"),
        changed => changed,
    }
}

#[test]
fn the_agent_tells_subscribers_what_changed() {
    let mut w = world();
    let a = w.client("dev-a", Faults::default(), 10);
    let b = w.client("dev-b", Faults::default(), 11);
    let agent = SyncAgent::start(a, fast());
    let events = agent.subscribe();
    create_issue(b.db(), "td-500000", "from b");
    b.sync().unwrap();
    agent.notify_remote_change();
    match next_change(&events) {
        AgentEvent::Changed { entities, .. } => {
            assert!(
                entities.iter().any(|(_, id)| id == "td-500000"),
                "{entities:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    let (a, flushed) = agent.stop();
    assert_eq!(flushed.unwrap().sent, 0);
    assert_converged(&w, &[&a, &b]);
}

#[test]
fn the_agent_pauses_resumes_and_flushes_on_stop() {
    let mut w = world();
    let a = w.client("dev-a", Faults::default(), 12);
    let agent = SyncAgent::start(a, fast());
    let events = agent.subscribe();
    agent.pause();
    let syncs_when_paused = agent.stats().syncs;
    agent.notify_local_change();
    // A paused agent does not sync, even when nudged.
    assert_eq!(
        events.recv_timeout(Duration::from_millis(300)),
        Err(RecvTimeoutError::Timeout)
    );
    assert_eq!(agent.stats().syncs, syncs_when_paused);
    assert!(agent.stats().paused);
    agent.resume();
    assert!(!agent.stats().paused);
    // Stop right away: whatever was written is pushed before stop returns.
    let (a, flushed) = agent.stop();
    drop(a);
    assert!(flushed.is_ok());

    // A change written while the agent runs reaches the server by the time stop returns.
    let c = w.client("dev-c", Faults::default(), 13);
    create_issue(c.db(), "td-600000", "written before stop");
    let agent = SyncAgent::start(
        c,
        AgentOptions {
            fast: Duration::from_secs(3600),
            idle: Duration::from_secs(3600),
            ..AgentOptions::default()
        },
    );
    agent.pause();
    let (_c, flushed) = agent.stop();
    let flushed = flushed.unwrap();
    assert!(flushed.sent <= 1);
    assert_eq!(w.event_count(), 1, "stop pushed the pending change");
}

#[test]
fn polling_speeds_up_after_a_nudge() {
    let mut w = world();
    let a = w.client("dev-a", Faults::default(), 14);
    let opts = AgentOptions {
        fast: Duration::from_millis(10),
        idle: Duration::from_millis(80),
        ..AgentOptions::default()
    };
    let agent = SyncAgent::start(a, opts);
    // Idle syncs back the interval off to the idle bound.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while agent.stats().interval < opts.idle {
        assert!(
            std::time::Instant::now() < deadline,
            "never backed off: {:?}",
            agent.stats()
        );
        std::thread::yield_now();
    }
    agent.notify_local_change();
    assert_eq!(agent.stats().interval, opts.fast);
    agent.stop().1.unwrap();
}

/// Waits (checking every millisecond, at most 10 s) until `condition` holds.
fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within 10 s");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn changed_entity(rx: &mpsc::Receiver<AgentEvent>, id: &str) {
    match next_change(rx) {
        AgentEvent::Changed { entities, .. } => {
            assert!(entities.iter().any(|(_, e)| e == id), "{entities:?}");
        }
        other => panic!("{other:?}"),
    }
}

/// Polling so slow that only a long poll can bring a change within the tests' bounds.
fn slow() -> AgentOptions {
    AgentOptions {
        fast: Duration::from_secs(30),
        idle: Duration::from_secs(60),
        ..AgentOptions::default()
    }
}

#[test]
fn offered_long_polls_bring_another_clients_push_at_once() {
    let mut w = world();
    w.server.offer_long_polls(Some(Duration::from_secs(25)));
    let a = w.client("dev-a", Faults::default(), 20);
    let b = w.client("dev-b", Faults::default(), 21);
    assert_eq!(
        a.transport().advice().long_poll,
        Some(Duration::from_secs(25))
    );
    let agent = SyncAgent::start(a, slow());
    let events = agent.subscribe();
    eventually("a long poll is in flight", || agent.stats().long_polling);

    create_issue(b.db(), "td-700000", "from b");
    let pushed = Instant::now();
    b.sync().unwrap();
    changed_entity(&events, "td-700000");
    let took = pushed.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "{took:?}: a poll every 30 s could not have brought it"
    );
    let stats = agent.stats();
    assert_eq!(stats.syncs, 1, "only the first sync: {stats:?}");
    assert!(stats.long_polls >= 1, "{stats:?}");

    // A nudge does not wait for the long poll in flight: it syncs now.
    eventually("waiting at the head again", || agent.stats().long_polling);
    agent.notify_remote_change();
    eventually("the nudge's sync", || agent.stats().syncs == 2);

    let (a, flushed) = agent.stop();
    assert_eq!(flushed.unwrap().sent, 0);
    assert_converged(&w, &[&a, &b]);
}

#[test]
fn stop_and_pause_do_not_wait_for_a_long_poll() {
    let mut w = world();
    w.server.offer_long_polls(Some(Duration::from_secs(25)));
    let a = w.client("dev-a", Faults::default(), 22);
    let agent = SyncAgent::start(a, slow());
    eventually("a long poll is in flight", || agent.stats().long_polling);
    agent.pause();
    eventually("the long poll is cancelled", || !agent.stats().long_polling);
    let paused = agent.stats();
    assert_eq!(
        (paused.long_polls, paused.syncs),
        (0, 1),
        "cancelled, not answered: {paused:?}"
    );
    agent.resume();
    eventually("a sync, then a long poll again", || {
        let s = agent.stats();
        s.syncs == 2 && s.long_polling
    });
    let asked = Instant::now();
    let (_a, flushed) = agent.stop();
    let took = asked.elapsed();
    assert!(flushed.is_ok());
    assert!(
        took < Duration::from_secs(2),
        "stop waited {took:?} for a 25 s long poll"
    );
}

#[test]
fn without_an_offer_the_agent_polls() {
    let mut w = world();
    let a = w.client("dev-a", Faults::default(), 23);
    let b = w.client("dev-b", Faults::default(), 24);
    assert_eq!(a.transport().advice(), Advice::default());
    let agent = SyncAgent::start(a, fast());
    let events = agent.subscribe();
    eventually("a few polls", || agent.stats().syncs >= 3);
    create_issue(b.db(), "td-800000", "from b");
    b.sync().unwrap();
    changed_entity(&events, "td-800000");
    let stats = agent.stats();
    assert_eq!(
        (stats.long_polls, stats.long_polling),
        (0, false),
        "{stats:?}"
    );
    agent.stop().1.unwrap();

    // A client may also decline an offer.
    w.server.offer_long_polls(Some(Duration::from_secs(25)));
    let c = w.client("dev-c", Faults::default(), 25);
    let agent = SyncAgent::start(
        c,
        AgentOptions {
            long_poll: false,
            ..fast()
        },
    );
    eventually("a few polls", || agent.stats().syncs >= 3);
    assert_eq!(agent.stats().long_polls, 0);
    agent.stop().1.unwrap();
}

/// A transport whose server advises a poll interval (as `X-Poll-Interval` does over HTTP) and
/// that reports every pull.
struct Advising {
    inner: InProcess,
    advice: Arc<Mutex<Advice>>,
    pulls: Mutex<mpsc::Sender<()>>,
}

impl Transport for Advising {
    fn push(&self, request: &PushRequest) -> Result<PushResponse, TransportError> {
        self.inner.push(request)
    }
    fn pull(&self, query: &PullQuery) -> Result<PullResponse, TransportError> {
        let _ = self.pulls.lock().unwrap().send(());
        self.inner.pull(query)
    }
    fn status(&self) -> Result<SyncStatus, TransportError> {
        self.inner.status()
    }
    fn pull_wait(
        &self,
        query: &PullQuery,
        wait: Duration,
        cancel: &Cancel,
    ) -> Result<PullResponse, TransportError> {
        self.inner.pull_wait(query, wait, cancel)
    }
    fn advice(&self) -> Advice {
        *self.advice.lock().unwrap()
    }
}

#[test]
fn the_agent_honours_the_servers_poll_interval() {
    let mut w = world();
    let (db, inner) = w.client("dev-a", Faults::default(), 26).into_parts();
    let (tx, pulls) = mpsc::channel();
    let seven = Advice {
        long_poll: None,
        poll_interval: Some(Duration::from_secs(7)),
    };
    let advice = Arc::new(Mutex::new(seven));
    let transport = Advising {
        inner,
        advice: advice.clone(),
        pulls: Mutex::new(tx),
    };
    let client = SyncClient::new(
        db,
        transport,
        Identity {
            device_id: "dev-a".into(),
            session_id: "ses_dev-a".into(),
        },
    );
    // On its own this agent would poll every 10–50 ms.
    let opts = AgentOptions {
        fast: Duration::from_millis(10),
        idle: Duration::from_millis(50),
        ..AgentOptions::default()
    };
    let agent = SyncAgent::start(client, opts);
    pulls.recv_timeout(Duration::from_secs(10)).unwrap();
    eventually("the first sync", || agent.stats().syncs == 1);
    assert_eq!(agent.stats().interval, Duration::from_secs(7));
    assert_eq!(
        pulls.recv_timeout(Duration::from_millis(500)),
        Err(RecvTimeoutError::Timeout),
        "polled again before the advised 7 s"
    );

    // Advice below the agent's fast interval is raised to it; a nudge still syncs at once.
    *advice.lock().unwrap() = Advice {
        long_poll: None,
        poll_interval: Some(Duration::ZERO),
    };
    agent.notify_local_change();
    eventually("polling every 10 ms", || agent.stats().syncs >= 5);
    assert_eq!(agent.stats().interval, opts.fast);
    agent.stop().1.unwrap();
}
