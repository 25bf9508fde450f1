//! The shipping service as `tdsync serve` runs it: a push waited on is in a segment when the
//! wait returns (replicated), snapshots are taken in the background, and counts say so; a node
//! that restarts holding a lease it claimed for a project it never wrote takes it over again.

use std::time::{Duration, Instant};

use serde_json::json;
use tdsync_backup::{BackupConfig, BackupService, Catalog, Policy, Target};
use tdsync_protocol::wire::{PushEvent, PushRequest};
use tdsync_tenants::{ProjectId, TenantId, Tenants, TenantsConfig};

fn request(n: i64) -> PushRequest {
    let id = format!("td-{n}");
    let payload = json!({"schema_version": 1, "previous_data": null, "new_data": {
        "id": id, "title": "t", "status": "open", "type": "task", "priority": "P2",
        "created_at": "2026-12-05T09:00:00Z", "updated_at": "2026-12-05T09:00:00Z"}});
    PushRequest {
        device_id: "dev".into(),
        session_id: "s".into(),
        events: vec![PushEvent {
            client_action_id: n,
            action_type: "create".into(),
            entity_type: "issues".into(),
            entity_id: id,
            payload: serde_json::value::RawValue::from_string(payload.to_string()).unwrap(),
            client_timestamp: "2026-12-05T09:00:00Z".into(),
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waited_push_is_in_a_segment_and_snapshots_follow_in_the_background() {
    let (data, backup) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let tenants = Tenants::open(TenantsConfig::new(data.path())).unwrap();
    let target = Target::parse(&format!("file://{}", backup.path().display())).unwrap();
    let service = BackupService::start(
        tenants.clone(),
        BackupConfig {
            target: target.clone(),
            // Long: only the waits below make shipments happen.
            interval: Duration::from_secs(3600),
            policy: Policy {
                snapshot_every_segments: 2,
                ..Policy::default()
            },
            control_plane: None,
            max_lag: Duration::from_secs(120),
        },
    );
    let (tenant, project) = (
        TenantId::parse("acme").unwrap(),
        ProjectId::parse("web").unwrap(),
    );
    for n in 1..=4 {
        let answer = tenants
            .project(&tenant, &project)
            .push(&request(n))
            .unwrap();
        let seq = answer.acks[0].server_seq;
        service.wait_shipped(&tenant, &project, seq).await.unwrap();
        let held = Catalog::read(&target).await.unwrap();
        let shipped = held.projects.values().next().unwrap().shipped_seq();
        assert!(
            shipped >= seq,
            "seq {seq} acknowledged, the target holds {shipped}"
        );
    }
    let started = Instant::now();
    while service.stats().snapshots == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no snapshot taken"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let held = Catalog::read(&target).await.unwrap();
    assert!(!held.projects.values().next().unwrap().snapshots.is_empty());
    let stats = service.stats();
    assert_eq!(
        (stats.shipped_events, stats.backlog_events),
        (4, 0),
        "{stats:?}"
    );
    service.stop().await;
}

/// A shard node claimed a project (epoch 1 began in the backup) and restarted before it wrote
/// anything, still holding the lease: taking the project over again under epoch 1 succeeds, and
/// what it then ships is in the backup under that epoch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_under_the_same_lease_takes_an_unwritten_project_over_again() {
    let backup = tempfile::tempdir().unwrap();
    let target = Target::parse(&format!("file://{}", backup.path().display())).unwrap();
    // Each start on a data directory of its own: the node never wrote the project, so its
    // directory holds nothing of it either way, and the backup is what a restart meets.
    let open = || {
        let data = tempfile::tempdir().unwrap();
        let tenants = Tenants::open(TenantsConfig::new(data.path())).unwrap();
        (data, tenants)
    };
    let config = || BackupConfig {
        target: target.clone(),
        interval: Duration::from_secs(3600),
        policy: Policy::default(),
        control_plane: None,
        max_lag: Duration::from_secs(120),
    };
    let (tenant, project) = (
        TenantId::parse("acme").unwrap(),
        ProjectId::parse("web").unwrap(),
    );
    for start in ["first", "after the restart"] {
        let (_data, tenants) = open();
        let service = BackupService::start(tenants.clone(), config());
        let taken = service
            .take_over(&tenants.project(&tenant, &project), 1)
            .await;
        assert_eq!(taken.unwrap(), 0, "{start} takeover");
        assert!(!tenants.project(&tenant, &project).path().exists());
        service.stop().await;
    }
    let (_data, tenants) = open();
    let service = BackupService::start(tenants.clone(), config());
    service
        .take_over(&tenants.project(&tenant, &project), 1)
        .await
        .unwrap();
    let seq = tenants
        .project(&tenant, &project)
        .push(&request(1))
        .unwrap()
        .acks[0]
        .server_seq;
    service.wait_shipped(&tenant, &project, seq).await.unwrap();
    let held = Catalog::read(&target).await.unwrap();
    let entry = held.projects.values().next().unwrap();
    assert_eq!((entry.epoch(), entry.shipped_seq()), (1, seq));
}
