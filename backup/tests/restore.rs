//! Backups through the library: ship a store's projects to a file target, restore them into a
//! fresh directory, and compare log, projection and conflicts; point-in-time and per-project
//! bounds; snapshots; verification finding damage and gaps.

use std::path::{Path, PathBuf};

use serde_json::{Value, json, value::RawValue};
use tdsync_backup::{
    Policy, Shipper, Target,
    layout::ProjectKey,
    progress::Progress,
    restore::{RestoreInto, Until, restore},
    verify::{Level, verify_backup},
};
use tdsync_projection::Dump;
use tdsync_protocol::wire::{PushEvent, PushRequest};
use tdsync_tenants::{LoggedEvent, ProjectId, ShardFile, TenantId, Tenants, TenantsConfig};

fn issue_event(caid: i64, id: &str, title: &str, prev_title: Option<&str>) -> PushEvent {
    let row = |t: &str| {
        json!({"id": id, "title": t, "status": "open", "type": "task", "priority": "P2",
               "created_at": "2026-12-01T09:00:00Z", "updated_at": "2026-12-01T09:00:00Z"})
    };
    let (action, prev) = match prev_title {
        None => ("create", Value::Null),
        Some(p) => ("update", row(p)),
    };
    let payload = json!({"new_data": row(title), "previous_data": prev, "schema_version": 1});
    PushEvent {
        client_action_id: caid,
        action_type: action.into(),
        entity_type: "issues".into(),
        entity_id: id.into(),
        payload: RawValue::from_string(payload.to_string()).unwrap(),
        client_timestamp: "2026-12-01T10:00:00Z".into(),
    }
}

fn push(store: &Tenants, key: &ProjectKey, device: &str, events: Vec<PushEvent>) -> i64 {
    let response = store
        .project(&key.tenant, &key.project)
        .push(&PushRequest {
            device_id: device.into(),
            session_id: "ses_1".into(),
            events,
        })
        .unwrap();
    assert!(response.rejected.is_empty(), "{:?}", response.rejected);
    response.acks.last().unwrap().server_seq
}

fn key(tenant: &str, project: &str) -> ProjectKey {
    ProjectKey {
        tenant: TenantId::parse(tenant).unwrap(),
        project: ProjectId::parse(project).unwrap(),
    }
}

fn shard_path(root: &Path, key: &ProjectKey) -> PathBuf {
    root.join("tenants")
        .join(key.tenant.as_str())
        .join(format!("{}.db", key.project))
}

fn log_of(path: &Path) -> Vec<LoggedEvent> {
    ShardFile::open(path)
        .unwrap()
        .events_after(0, 1_000_000)
        .unwrap()
}

fn dump_of(path: &Path) -> Dump {
    let conn = rusqlite::Connection::open(path).unwrap();
    Dump::read(&conn).unwrap()
}

fn conflicts_of(path: &Path) -> Vec<(String, i64, String)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.prepare("SELECT entity_id, winning_seq, fields FROM conflicts ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn file_target(dir: &Path) -> Target {
    Target::parse(&format!("file://{}", dir.display())).unwrap()
}

async fn ship_all(shipper: &Shipper, root: &Path, keys: &[&ProjectKey]) {
    for key in keys {
        shipper.ship(key, &shard_path(root, key)).await.unwrap();
    }
}

/// Two projects, two devices, a clobbered title (a conflict), shipped in two rounds.
fn write_history(store: &Tenants, a: &ProjectKey, b: &ProjectKey, round: usize) {
    let base = (round * 100) as i64;
    push(
        store,
        a,
        "dev-a",
        (0..30)
            .map(|i| issue_event(base + i, &format!("td-{round}-{i}"), "first", None))
            .collect(),
    );
    push(
        store,
        a,
        "dev-a",
        vec![issue_event(
            base + 50,
            &format!("td-{round}-0"),
            "by a",
            Some("first"),
        )],
    );
    // dev-b had not seen "by a": a conflict, recorded with both versions.
    push(
        store,
        a,
        "dev-b",
        vec![issue_event(
            base + 51,
            &format!("td-{round}-0"),
            "by b",
            Some("first"),
        )],
    );
    push(
        store,
        b,
        "dev-c",
        vec![issue_event(base, &format!("td-b-{round}"), "only", None)],
    );
}

#[tokio::test]
async fn a_restore_gives_back_every_event_the_projection_and_the_conflicts() {
    let (data, backup, restored) = (tempdir(), tempdir(), tempdir());
    let store = Tenants::open(TenantsConfig::new(data.path())).unwrap();
    let (a, b) = (key("acme", "web"), key("acme", "api"));
    let shipper = Shipper::open(file_target(backup.path()), Policy::default())
        .await
        .unwrap();
    write_history(&store, &a, &b, 1);
    ship_all(&shipper, data.path(), &[&a, &b]).await;
    write_history(&store, &a, &b, 2);
    // Incremental: only what came after the first round goes out.
    let second = shipper
        .ship(&a, &shard_path(data.path(), &a))
        .await
        .unwrap();
    assert_eq!((second.segments, second.events), (1, 32));
    ship_all(&shipper, data.path(), &[&b]).await;
    store.close_all();

    let report = restore_from(backup.path(), restored.path(), Until::Latest)
        .await
        .unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.projects.len(), 2);
    for key in [&a, &b] {
        let (original, copy) = (
            shard_path(data.path(), key),
            shard_path(restored.path(), key),
        );
        assert_eq!(log_of(&copy), log_of(&original), "{key}: the log");
        assert!(
            dump_of(&copy)
                .first_difference(&dump_of(&original))
                .is_none(),
            "{key}: the projection"
        );
        assert_eq!(
            conflicts_of(&copy),
            conflicts_of(&original),
            "{key}: conflicts"
        );
    }
    assert_eq!(conflicts_of(&shard_path(restored.path(), &a)).len(), 2);
}

#[tokio::test]
async fn a_point_in_time_restore_holds_exactly_what_was_logged_before_it() {
    let (data, backup) = (tempdir(), tempdir());
    let store = Tenants::open(TenantsConfig::new(data.path())).unwrap();
    let (a, b) = (key("acme", "web"), key("acme", "api"));
    let early = push(
        &store,
        &a,
        "dev-a",
        vec![issue_event(1, "td-1", "before", None)],
    );
    push(
        &store,
        &b,
        "dev-c",
        vec![issue_event(1, "td-b", "before", None)],
    );
    // Server timestamps have microseconds: wait until the clock has moved past the writes.
    let between = wait_for_clock_to_pass(chrono::Utc::now());
    wait_for_clock_to_pass(between);
    push(
        &store,
        &a,
        "dev-a",
        vec![issue_event(2, "td-1", "after", Some("before"))],
    );
    push(
        &store,
        &a,
        "dev-a",
        vec![issue_event(3, "td-2", "after", None)],
    );
    let shipper = Shipper::open(file_target(backup.path()), Policy::default())
        .await
        .unwrap();
    ship_all(&shipper, data.path(), &[&a, &b]).await;

    let restored = tempdir();
    let report = restore_from(backup.path(), restored.path(), Until::At(between))
        .await
        .unwrap();
    assert!(report.ok(), "{report:?}");
    let copy = shard_path(restored.path(), &a);
    let log = log_of(&copy);
    assert_eq!(
        log.iter().map(|e| e.server_seq).collect::<Vec<_>>(),
        [early]
    );
    let title: String = rusqlite::Connection::open(&copy)
        .unwrap()
        .query_row("SELECT title FROM issues WHERE id = 'td-1'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(title, "before");
    assert_eq!(log_of(&shard_path(restored.path(), &b)).len(), 1);

    // Per project: `a` up to its first event, `b` whole.
    let bounded = tempdir();
    let seqs = [(a.to_string(), early)].into_iter().collect();
    restore_from(backup.path(), bounded.path(), Until::Seqs(seqs))
        .await
        .unwrap();
    assert_eq!(log_of(&shard_path(bounded.path(), &a)).len(), 1);
    assert_eq!(log_of(&shard_path(bounded.path(), &b)).len(), 1);
}

fn wait_for_clock_to_pass(t: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    loop {
        let now = chrono::Utc::now();
        if now.timestamp_millis() > t.timestamp_millis() {
            return now;
        }
        std::thread::yield_now();
    }
}

#[tokio::test]
async fn snapshots_and_the_segments_after_them_restore_together() {
    let (data, backup, restored) = (tempdir(), tempdir(), tempdir());
    let store = Tenants::open(TenantsConfig::new(data.path())).unwrap();
    let (a, b) = (key("acme", "web"), key("acme", "api"));
    let policy = Policy {
        segment_events: 10,
        snapshot_every_segments: 2,
        snapshot_every_bytes: u64::MAX,
    };
    let shipper = Shipper::open(file_target(backup.path()), policy)
        .await
        .unwrap();
    write_history(&store, &a, &b, 1);
    let first = shipper
        .ship(&a, &shard_path(data.path(), &a))
        .await
        .unwrap();
    assert_eq!(first.segments, 4, "{first:?}");
    let snapshot = first.snapshot_seq.expect("a snapshot after two segments");
    write_history(&store, &a, &b, 2);
    ship_all(&shipper, data.path(), &[&a, &b]).await;

    let report = restore_from(backup.path(), restored.path(), Until::Latest)
        .await
        .unwrap();
    assert!(report.ok(), "{report:?}");
    let restored_a = report
        .projects
        .iter()
        .find(|p| p.project == a.to_string())
        .unwrap();
    assert!(
        restored_a.snapshot_seq.unwrap() >= snapshot,
        "{restored_a:?}"
    );
    assert!(restored_a.events_replayed < 64, "{restored_a:?}");
    let (original, copy) = (shard_path(data.path(), &a), shard_path(restored.path(), &a));
    assert_eq!(log_of(&copy), log_of(&original));
    assert!(
        dump_of(&copy)
            .first_difference(&dump_of(&original))
            .is_none()
    );
    assert_eq!(conflicts_of(&copy), conflicts_of(&original));
}

#[tokio::test]
async fn verify_names_a_damaged_segment_and_a_missing_one() {
    let (data, backup) = (tempdir(), tempdir());
    let store = Tenants::open(TenantsConfig::new(data.path())).unwrap();
    let (a, b) = (key("acme", "web"), key("acme", "api"));
    let policy = Policy {
        segment_events: 10,
        ..Policy::default()
    };
    let shipper = Shipper::open(file_target(backup.path()), policy)
        .await
        .unwrap();
    write_history(&store, &a, &b, 1);
    ship_all(&shipper, data.path(), &[&a, &b]).await;
    let target = file_target(backup.path());
    assert!(
        verify_backup(&target, &Progress::hidden())
            .await
            .unwrap()
            .ok()
    );

    let segments = backup.path().join("projects/acme/web/segments");
    let mut names: Vec<_> = std::fs::read_dir(&segments)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let damaged = &names[0];
    let mut bytes = std::fs::read(damaged).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(damaged, bytes).unwrap();
    std::fs::remove_file(&names[1]).unwrap();

    let report = verify_backup(&target, &Progress::hidden()).await.unwrap();
    assert!(!report.ok());
    let errors: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.level == Level::Error)
        .collect();
    let first_name = damaged.file_name().unwrap().to_str().unwrap();
    assert!(
        errors.iter().any(|f| f.subject.ends_with(first_name)),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(
            |f| f.subject == "acme/web" && f.message.contains("seqs 11..=20 are in no segment")
        ),
        "{errors:?}"
    );
    // A restore from it says what is missing instead of inventing anything.
    let restored = tempdir();
    let err = restore(
        &target,
        &into_dir(restored.path()),
        &Until::Latest,
        false,
        &Progress::hidden(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains(first_name), "{err}");
}

#[tokio::test]
async fn a_data_dir_that_is_not_empty_is_refused_without_force() {
    let (data, backup) = (tempdir(), tempdir());
    let store = Tenants::open(TenantsConfig::new(data.path())).unwrap();
    let a = key("acme", "web");
    push(&store, &a, "dev-a", vec![issue_event(1, "td-1", "x", None)]);
    let shipper = Shipper::open(file_target(backup.path()), Policy::default())
        .await
        .unwrap();
    ship_all(&shipper, data.path(), &[&a]).await;
    drop(store);
    let target = file_target(backup.path());
    let err = restore(
        &target,
        &into_dir(data.path()),
        &Until::Latest,
        false,
        &Progress::hidden(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("--force"), "{err}");
    // Nothing was touched.
    assert_eq!(log_of(&shard_path(data.path(), &a)).len(), 1);
    let report = restore(
        &target,
        &into_dir(data.path()),
        &Until::Latest,
        true,
        &Progress::hidden(),
    )
    .await
    .unwrap();
    assert!(report.ok());
    assert_eq!(log_of(&shard_path(data.path(), &a)).len(), 1);
}

/// Restores the file target in `backup` into `into`.
async fn restore_from(
    backup: &Path,
    into: &Path,
    until: Until,
) -> Result<tdsync_backup::restore::RestoreReport, tdsync_backup::BackupError> {
    restore(
        &file_target(backup),
        &into_dir(into),
        &until,
        false,
        &Progress::hidden(),
    )
    .await
}

/// `dir` as the data directory to restore into (no control plane in these backups).
fn into_dir(dir: &Path) -> RestoreInto<'_> {
    RestoreInto {
        data_dir: dir,
        control_plane: None,
    }
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Two owners of one project in turn, as a cluster's failover makes them: the new owner begins
/// its epoch (a marker, create-only) after restoring; the old one, fenced but unaware, keeps
/// shipping what it accepted afterwards. A restore holds the new owner's log, never the stale
/// one's, and verification names the fenced segment.
#[tokio::test]
async fn a_fenced_owners_segments_are_never_restored() {
    let (node_a, node_b, backup) = (tempdir(), tempdir(), tempdir());
    let key = key("acme", "web");
    let a = Tenants::open(TenantsConfig::new(node_a.path())).unwrap();
    let shipper_a = Shipper::open(file_target(backup.path()), Policy::default())
        .await
        .unwrap();
    shipper_a.begin_epoch(&key, 1, 1).await.unwrap();
    push(
        &a,
        &key,
        "dev-a",
        (0..10)
            .map(|i| issue_event(i, &format!("td-{i}"), "from a", None))
            .collect(),
    );
    ship_all(&shipper_a, node_a.path(), &[&key]).await;

    // Node b takes over: it restores what the backup holds and begins epoch 2 after it.
    let report = restore_from(backup.path(), node_b.path(), Until::Latest)
        .await
        .unwrap();
    assert_eq!(report.projects[0].seq, 10);
    let b = Tenants::open(TenantsConfig::new(node_b.path())).unwrap();
    let shipper_b = Shipper::open(file_target(backup.path()), Policy::default())
        .await
        .unwrap();
    shipper_b.begin_epoch(&key, 2, 11).await.unwrap();

    // Node a, fenced but unaware, accepts and ships seqs 11..=15; node b logs its own 11..=20.
    push(
        &a,
        &key,
        "dev-a",
        (10..15)
            .map(|i| issue_event(i, &format!("stale-{i}"), "stale", None))
            .collect(),
    );
    ship_all(&shipper_a, node_a.path(), &[&key]).await;
    push(
        &b,
        &key,
        "dev-b",
        (0..10)
            .map(|i| issue_event(i, &format!("td-b-{i}"), "from b", None))
            .collect(),
    );
    ship_all(&shipper_b, node_b.path(), &[&key]).await;
    // Node a cannot begin an epoch someone else began.
    let err = shipper_a.begin_epoch(&key, 2, 16).await.unwrap_err();
    assert!(err.to_string().contains("another owner holds it"), "{err}");

    let fresh = tempdir();
    let report = restore_from(backup.path(), fresh.path(), Until::Latest)
        .await
        .unwrap();
    assert!(report.ok(), "{report:?}");
    let restored = log_of(&shard_path(fresh.path(), &key));
    assert_eq!(restored, log_of(&shard_path(node_b.path(), &key)));
    assert!(restored.iter().all(|e| !e.entity_id.starts_with("stale")));

    let verified = verify_backup(&file_target(backup.path()), &Progress::hidden())
        .await
        .unwrap();
    assert!(verified.ok(), "{verified:?}");
    let fenced: Vec<_> = verified
        .findings
        .iter()
        .filter(|f| f.message.contains("a fenced owner's"))
        .collect();
    assert_eq!(fenced.len(), 1, "{:?}", verified.findings);
    assert!(
        fenced[0]
            .subject
            .contains("00000000000000000011-00000000000000000015-e")
    );
}
