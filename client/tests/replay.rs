//! Real td databases replayed through the whole engine: each fixture's action log is pushed by
//! a client to a shard, a fresh td database pulls it, and every replica must hold the same
//! synced tables — the shard's projection, the fresh client, and the source after it pulled
//! its own events back (as `td sync` does). `sindri-series/` is one project's history in four
//! successive versions, replayed incrementally.

mod common;

use std::{path::Path, sync::Arc};

use common::{copy_fixture, db_path, fixture_files, fixtures_dir};
use tdsync_client::{
    Identity, SyncClient,
    tddb::TdDatabase,
    transport::in_process::{InProcess, LocalServer},
};
use tdsync_projection::Dump;
use tdsync_tenants::{ProjectId, TenantId, Tenants, TenantsConfig};

struct Server {
    _dir: tempfile::TempDir,
    server: LocalServer,
    store: Arc<Tenants>,
    tenant: TenantId,
    project: ProjectId,
}

fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = Tenants::open(TenantsConfig::new(dir.path())).unwrap();
    let (tenant, project) = (
        TenantId::parse("t").unwrap(),
        ProjectId::parse("p").unwrap(),
    );
    store.create_project(&tenant, &project).unwrap();
    let server = LocalServer::new(store);
    let store = server.get().unwrap();
    Server {
        _dir: dir,
        server,
        store,
        tenant,
        project,
    }
}

impl Server {
    fn client(&self, db: TdDatabase, device: &str) -> SyncClient<InProcess> {
        db.link(self.project.as_str()).unwrap();
        let transport = InProcess::new(
            self.server.clone(),
            self.tenant.clone(),
            self.project.clone(),
        );
        SyncClient::new(
            db,
            transport,
            Identity {
                device_id: device.into(),
                session_id: "ses_replay".into(),
            },
        )
    }

    /// The shard's projection, read from its file.
    fn projection(&self) -> Dump {
        let conn =
            rusqlite::Connection::open(self.store.shard_path(&self.tenant, &self.project)).unwrap();
        Dump::read(&conn).unwrap()
    }
}

fn assert_same(what: &str, left: &Dump, right: &Dump) {
    if let Some(d) = left.first_difference(right) {
        panic!("{what}: replicas diverge: {d}");
    }
}

/// Pushes a fixture copy, onboards a fresh client, and checks all three replicas agree.
fn replay(fixture: &Path) {
    let name = fixture.file_name().unwrap().to_string_lossy().to_string();
    let srv = server();
    let src_dir = tempfile::tempdir().unwrap();
    let source = srv.client(
        TdDatabase::open(&copy_fixture(fixture, src_dir.path())).unwrap(),
        "source-device",
    );
    let pending_before = source.pending_count().unwrap();
    let pushed = source.push().unwrap();
    assert!(pushed.accepted > 0, "{name}: nothing pushed");
    assert_eq!(
        pushed.rejected,
        vec![],
        "{name}: the server rejected events"
    );
    assert_eq!(pushed.unsendable, 0, "{name}: rows that cannot be sent");
    assert_eq!(
        source.pending_count().unwrap(),
        0,
        "{name}: still pending after push"
    );
    let status = srv.store.status(&srv.tenant, &srv.project).unwrap();
    assert_eq!(
        status.event_count as usize, pushed.accepted,
        "{name}: every accepted event is in the log ({pending_before} were pending, {} backfilled)",
        pushed.backfilled
    );

    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh = srv.client(
        TdDatabase::create(&db_path(fresh_dir.path())).unwrap(),
        "fresh-device",
    );
    let pulled = fresh.pull().unwrap();
    assert_eq!(
        pulled.pulled, pushed.accepted,
        "{name}: the fresh client pulled everything"
    );
    assert_eq!(pulled.cursor, status.last_server_seq);

    let projection = srv.projection();
    assert_same(
        &format!("{name}: shard vs fresh client"),
        &projection,
        &Dump::read(fresh.db().connection()).unwrap(),
    );
    // td's `td sync` pulls its own events back; then the source agrees too.
    source.pull().unwrap();
    assert_same(
        &format!("{name}: shard vs source"),
        &projection,
        &Dump::read(source.db().connection()).unwrap(),
    );
    let rebuilt = srv.store.rebuild_check(&srv.tenant, &srv.project).unwrap();
    assert!(
        rebuilt.matches,
        "{name}: projection differs from a replay of the log: {:?}",
        rebuilt.divergence
    );
    let issues = projection.tables[&tdsync_protocol::EntityType::Issues]
        .rows
        .len();
    let src_issues: i64 = rusqlite::Connection::open(fixture)
        .unwrap()
        .query_row("SELECT count(*) FROM issues", [], |r| r.get(0))
        .unwrap();
    assert_eq!(issues as i64, src_issues, "{name}: every issue arrived");
}

#[test]
fn every_real_td_database_converges_through_the_server() {
    let files: Vec<_> = fixture_files(&fixtures_dir())
        .into_iter()
        .filter(|f| !f.to_string_lossy().contains("sindri-series"))
        .collect();
    assert!(
        files.len() >= 3,
        "expected the real-td fixtures, found {files:?}"
    );
    for f in files {
        replay(&f);
    }
}

#[test]
fn the_sindri_series_replays_incrementally() {
    let series_dir = fixtures_dir().join("sindri-series");
    let mut versions = fixture_files(&series_dir);
    versions.sort();
    assert_eq!(versions.len(), 4, "{versions:?}");
    let srv = server();
    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh = srv.client(
        TdDatabase::create(&db_path(fresh_dir.path())).unwrap(),
        "fresh-device",
    );
    let src_dir = tempfile::tempdir().unwrap();
    let mut cursor = 0;
    let mut seen_events = 0;
    for (step, version) in versions.iter().enumerate() {
        // The project's next committed state replaces the working copy, as a `git pull` would;
        // its sync cursor carries over (td keeps it in the same file in real life).
        let path = copy_fixture(version, src_dir.path());
        let db = TdDatabase::open(&path).unwrap();
        let source = srv.client(db, "sindri-device");
        source
            .db()
            .connection()
            .execute(
                "UPDATE sync_state SET last_pulled_server_seq = ?1",
                [cursor],
            )
            .unwrap();
        let log_rows: i64 = source
            .db()
            .connection()
            .query_row("SELECT count(*) FROM action_log", [], |r| r.get(0))
            .unwrap();
        let pushed = source.push().unwrap();
        // Earlier versions' rows are the same rows (same device, session and rowid): the server
        // recognises them as duplicates and sends back their original seqs.
        if step > 0 {
            assert!(
                pushed.duplicates > 0,
                "step {step}: old rows were not recognised as duplicates: {pushed:?}"
            );
        }
        assert_eq!(source.pending_count().unwrap(), 0, "step {step}");
        let status = srv.store.status(&srv.tenant, &srv.project).unwrap();
        assert!(
            status.event_count >= log_rows,
            "step {step}: log has {} of {log_rows}",
            status.event_count
        );
        let pulled = fresh.pull().unwrap();
        assert_eq!(
            pulled.pulled as i64,
            status.event_count - seen_events,
            "step {step}: only the new events are pulled"
        );
        seen_events = status.event_count;
        source.pull().unwrap();
        cursor = source
            .db()
            .sync_state()
            .unwrap()
            .unwrap()
            .last_pulled_server_seq;
        let projection = srv.projection();
        assert_same(
            &format!("step {step}: shard vs fresh"),
            &projection,
            &Dump::read(fresh.db().connection()).unwrap(),
        );
        assert_same(
            &format!("step {step}: shard vs source"),
            &projection,
            &Dump::read(source.db().connection()).unwrap(),
        );
    }
    let issues: i64 = fresh
        .db()
        .connection()
        .query_row("SELECT count(*) FROM issues", [], |r| r.get(0))
        .unwrap();
    assert_eq!(issues, 13, "the series ends with 13 issues");
}
