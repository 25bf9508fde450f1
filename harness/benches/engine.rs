//! Engine benchmarks: shard push throughput, pull page latency, rebuild time and client apply
//! throughput, each next to a baseline measured in the same run (plain SQLite doing the bare
//! minimum of the same work), so the figures survive a noisy 2-core machine as ratios.
//!
//! Run: `cargo bench -p tdsync-harness --bench engine` (add `-- quick` for a short run, and any
//! of `push`, `pull`, `rebuild`, `apply` to run only those).
//! Prints one line per measurement: name, median, and the ratio to its baseline.

use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use tdsync_client::tddb::TdDatabase;
use tdsync_harness::workload::issue_events as events;
use tdsync_protocol::wire::{PullEvent, PullQuery, PushEvent, PushRequest};
use tdsync_tenants::{Project, ProjectId, TenantId, Tenants, TenantsConfig};

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

struct Store {
    _dir: tempfile::TempDir,
    project: Project,
}

impl Store {
    /// td's pull of this project's log from `after` (all devices).
    fn pull(&self, after: i64, limit: Option<i64>) -> tdsync_protocol::wire::PullResponse {
        self.project
            .pull(&PullQuery {
                after_server_seq: after,
                limit,
                exclude_client: None,
            })
            .unwrap()
    }
}

fn store() -> Store {
    let dir = tempfile::tempdir().unwrap();
    let store = Tenants::open(TenantsConfig::new(dir.path())).unwrap();
    let project = store.project(
        &TenantId::parse("bench").unwrap(),
        &ProjectId::parse("p").unwrap(),
    );
    Store { _dir: dir, project }
}

fn push_all(s: &Store, evs: &[PushEvent], device: &str) {
    for chunk in evs.chunks(500) {
        let r = s
            .project
            .push(&PushRequest {
                device_id: device.into(),
                session_id: "ses_1".into(),
                events: chunk.to_vec(),
            })
            .unwrap();
        assert_eq!(r.accepted as usize, chunk.len());
    }
}

/// Baseline for push: the same rows inserted into an events table alone, 500 per transaction.
fn raw_insert(evs: &[PushEvent]) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = Connection::open(dir.path().join("raw.db")).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
         CREATE TABLE events (server_seq INTEGER PRIMARY KEY AUTOINCREMENT, device_id TEXT, session_id TEXT,
           client_action_id INTEGER, action_type TEXT, entity_type TEXT, entity_id TEXT, payload TEXT,
           client_timestamp TEXT, server_timestamp TEXT, UNIQUE(device_id, session_id, client_action_id));",
    )
    .unwrap();
    let start = Instant::now();
    for chunk in evs.chunks(500) {
        let tx = conn.transaction().unwrap();
        {
            let mut st = tx.prepare_cached("INSERT INTO events (device_id, session_id, client_action_id, action_type, entity_type, entity_id, payload, client_timestamp, server_timestamp) VALUES ('d','s',?1,?2,?3,?4,?5,?6,'now')").unwrap();
            for e in chunk {
                st.execute(params![
                    e.client_action_id,
                    e.action_type,
                    e.entity_type,
                    e.entity_id,
                    e.payload.get(),
                    e.client_timestamp
                ])
                .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    start.elapsed()
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let quick = args.iter().any(|a| a == "quick");
    let picked: Vec<&String> = args.iter().filter(|a| *a != "quick").collect();
    let run = |name: &str| picked.is_empty() || picked.iter().any(|p| *p == name);
    let rounds = if quick { 3 } else { 7 };
    let n = if quick { 5_000 } else { 20_000 };
    println!("# tdsync engine benchmarks ({rounds} rounds, median)");
    if run("push") {
        bench_push(n, rounds);
    }
    if run("pull") || run("rebuild") || run("apply") {
        let s = store();
        push_all(&s, &events(50_000, "b"), "dev-b");
        if run("pull") {
            bench_pull(&s, rounds);
        }
        if run("rebuild") {
            bench_rebuild(&s, rounds);
        }
        if run("apply") {
            bench_apply(&s, rounds);
        }
    }
}

/// A client applying the 50k-event log in 1000-event pages to a fresh td database, against
/// plain SQLite writing each event's after-image (`INSERT OR REPLACE`, no td rules).
fn bench_apply(s: &Store, rounds: usize) {
    let mut pages: Vec<(Vec<PullEvent>, i64)> = Vec::new();
    let mut after = 0;
    loop {
        let page = s.pull(after, Some(1000));
        if page.events.is_empty() {
            break;
        }
        after = page.last_server_seq;
        pages.push((page.events, page.last_server_seq));
    }
    let total: usize = pages.iter().map(|p| p.0.len()).sum();
    let mut ours = Vec::new();
    let mut base = Vec::new();
    for _ in 0..rounds.min(5) {
        let dir = tempfile::tempdir().unwrap();
        let db = TdDatabase::create(&dir.path().join(".todos/issues.db")).unwrap();
        db.link("p").unwrap();
        let start = Instant::now();
        for (events, last) in &pages {
            db.apply_page(events, *last, "bench-device").unwrap();
        }
        ours.push(total as f64 / start.elapsed().as_secs_f64());
        base.push(total as f64 / raw_apply(&pages).as_secs_f64());
    }
    let (o, b) = (median(ours), median(base));
    println!(
        "client_apply       {o:>10.0} events/s   baseline raw upsert {b:>10.0} events/s   ratio {:.2}",
        o / b
    );
}

/// Baseline for apply: each event's new image written whole, one transaction per page.
fn raw_apply(pages: &[(Vec<PullEvent>, i64)]) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = Connection::open(dir.path().join("raw.db")).unwrap();
    tdsync_projection::schema::create_td_database(&conn).unwrap();
    let start = Instant::now();
    for (events, _) in pages {
        let tx = conn.transaction().unwrap();
        {
            let mut st = tx.prepare_cached("INSERT OR REPLACE INTO issues (id, title, description, status, type, priority, points, labels, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)").unwrap();
            for e in events {
                let v: serde_json::Value = serde_json::from_str(e.payload.get()).unwrap();
                let n = &v["new_data"];
                st.execute(params![
                    e.entity_id,
                    n["title"].as_str(),
                    n["description"].as_str(),
                    n["status"].as_str(),
                    n["type"].as_str(),
                    n["priority"].as_str(),
                    n["points"].as_i64(),
                    "backend,sync",
                    n["created_at"].as_str(),
                    n["updated_at"].as_str()
                ])
                .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    start.elapsed()
}

/// 500-event batches into a fresh shard (log + projection + bookkeeping in one transaction).
fn bench_push(n: usize, rounds: usize) {
    let evs = events(n, "a");
    let mut ours = Vec::new();
    let mut base = Vec::new();
    for _ in 0..rounds {
        let s = store();
        let start = Instant::now();
        push_all(&s, &evs, "dev-a");
        ours.push(n as f64 / start.elapsed().as_secs_f64());
        base.push(n as f64 / raw_insert(&evs).as_secs_f64());
    }
    let (o, b) = (median(ours), median(base));
    println!(
        "push_500_batch     {o:>10.0} events/s   baseline raw insert {b:>10.0} events/s   ratio {:.2}",
        o / b
    );
}

/// 1000-event pages from a 50k-event shard at spread-out cursors, and pulls at the head.
fn bench_pull(s: &Store, rounds: usize) {
    let mut ours = Vec::new();
    let mut base = Vec::new();
    let raw = Connection::open(s.project.path()).unwrap();
    for r in 0..rounds * 5 {
        let after = ((r * 9973) % 49_000) as i64;
        let start = Instant::now();
        let page = s.pull(after, Some(1000));
        ours.push(start.elapsed().as_secs_f64() * 1e3);
        assert_eq!(page.events.len(), 1000);
        let start = Instant::now();
        let mut st = raw.prepare_cached("SELECT server_seq, device_id, session_id, client_action_id, action_type, entity_type, entity_id, payload, client_timestamp FROM events WHERE server_seq > ?1 ORDER BY server_seq LIMIT 1000").unwrap();
        let rows: Vec<(i64, String)> = st
            .query_map([after], |r| Ok((r.get(0)?, r.get(7)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(rows.len(), 1000);
        base.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let (o, b) = (median(ours), median(base));
    println!(
        "pull_1000_page     {o:>10.3} ms         baseline raw select {b:>10.3} ms         ratio {:.2}",
        o / b
    );

    // At the head the answer comes from the cached head.
    let head = s.project.status().unwrap().last_server_seq;
    let start = Instant::now();
    let reps = 100_000;
    for _ in 0..reps {
        let page = s.pull(head, None);
        assert!(page.events.is_empty());
    }
    println!(
        "pull_at_head       {:>10.2} µs/op",
        start.elapsed().as_secs_f64() * 1e6 / reps as f64
    );
}

/// The whole projection re-derived from a 50k-event log, in place; then the check that
/// replays into memory and compares with the live projection.
fn bench_rebuild(s: &Store, rounds: usize) {
    let mut ours = Vec::new();
    for _ in 0..rounds.min(5) {
        let report = s.project.rebuild_in_place().unwrap();
        assert_eq!(report.events, 50_000);
        ours.push(report.millis as f64);
    }
    println!("rebuild_50k        {:>10.0} ms", median(ours));
    let check = s.project.rebuild_check().unwrap();
    assert!(check.matches);
    println!(
        "rebuild_check_50k  {:>10} ms (replay into memory + compare with live)",
        check.millis
    );
}
