//! The shard store through its public API: td's push/pull/status semantics, the projection kept
//! with the log, conflicts with restore, history, rebuild, clock skew and file handling.

use serde_json::{Value, json, value::RawValue};
use tdsync_protocol::{
    EntityType,
    wire::{PullQuery, PushEvent, PushRequest},
};
use tdsync_tenants::{
    ConflictFilter, Project, ProjectId, StoreError, TenantId, Tenants, TenantsConfig,
};

struct Fixture {
    _dir: tempfile::TempDir,
    store: Tenants,
    tenant: TenantId,
    project: ProjectId,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Tenants::open(TenantsConfig::new(dir.path())).unwrap();
    let tenant = TenantId::parse("acme").unwrap();
    let project = ProjectId::parse("p_0001").unwrap();
    Fixture {
        _dir: dir,
        store,
        tenant,
        project,
    }
}

fn event(caid: i64, action: &str, entity: &str, id: &str, new: Value, prev: Value) -> PushEvent {
    let payload = json!({"new_data": new, "previous_data": prev, "schema_version": 1});
    PushEvent {
        client_action_id: caid,
        action_type: action.into(),
        entity_type: entity.into(),
        entity_id: id.into(),
        payload: RawValue::from_string(payload.to_string()).unwrap(),
        client_timestamp: "2026-03-01T10:00:00Z".into(),
    }
}

fn issue(id: &str, title: &str) -> Value {
    json!({"id": id, "title": title, "status": "open", "type": "task", "priority": "P2",
           "points": 0, "implementer_session": "", "creator_session": "s", "reviewer_session": "",
           "created_at": "2026-03-01T09:00:00Z", "updated_at": "2026-03-01T09:00:00Z",
           "minor": false, "defer_count": 0})
}

fn with(mut v: Value, k: &str, x: Value) -> Value {
    v[k] = x;
    v
}

fn req(device: &str, events: Vec<PushEvent>) -> PushRequest {
    PushRequest {
        device_id: device.into(),
        session_id: "ses_000001".into(),
        events,
    }
}

impl Fixture {
    fn p(&self) -> Project {
        self.store.project(&self.tenant, &self.project)
    }

    fn push(&self, r: &PushRequest) -> tdsync_protocol::wire::PushResponse {
        self.store
            .project(&self.tenant, &self.project)
            .push(r)
            .unwrap()
    }

    fn pull(
        &self,
        after: i64,
        limit: Option<i64>,
        exclude: Option<&str>,
    ) -> tdsync_protocol::wire::PullResponse {
        self.store
            .project(&self.tenant, &self.project)
            .pull(&PullQuery {
                after_server_seq: after,
                limit,
                exclude_client: exclude.map(str::to_string),
            })
            .unwrap()
    }

    fn title(&self, id: &str) -> Option<String> {
        self.store
            .project(&self.tenant, &self.project)
            .state_at(EntityType::Issues, id, i64::MAX)
            .unwrap()
            .map(|v| v["title"].as_str().unwrap().to_string())
    }
}

#[test]
fn push_acks_new_events_with_increasing_seqs() {
    let f = fixture();
    let r = f.push(&req(
        "dev-a",
        vec![
            event(
                1,
                "create",
                "issue",
                "td-1",
                issue("td-1", "one"),
                json!({}),
            ),
            event(
                2,
                "create",
                "issues",
                "td-2",
                issue("td-2", "two"),
                json!({}),
            ),
        ],
    ));
    assert_eq!(r.accepted, 2);
    assert_eq!(
        r.acks.iter().map(|a| a.server_seq).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert!(r.rejected.is_empty());
    let status = f.p().status().unwrap();
    assert_eq!((status.event_count, status.last_server_seq), (2, 2));
    assert!(status.last_event_time.is_some());
}

#[test]
fn a_repeated_event_is_rejected_as_duplicate_with_its_original_seq() {
    let f = fixture();
    let batch = req(
        "dev-a",
        vec![event(
            7,
            "create",
            "issues",
            "td-1",
            issue("td-1", "one"),
            json!({}),
        )],
    );
    f.push(&batch);
    let again = f.push(&batch);
    assert_eq!(again.accepted, 0);
    assert!(again.acks.is_empty());
    assert_eq!(again.rejected.len(), 1);
    assert_eq!(again.rejected[0].reason, "duplicate");
    assert_eq!(again.rejected[0].server_seq, Some(1));
    // Same action id from another session or device is a different event.
    let mut other_session = batch.clone();
    other_session.session_id = "ses_000002".into();
    assert_eq!(f.push(&other_session).accepted, 1);
    // A duplicate inside one request behaves the same.
    let dup_inside = req(
        "dev-b",
        vec![
            event(1, "create", "issues", "td-9", issue("td-9", "x"), json!({})),
            event(1, "create", "issues", "td-9", issue("td-9", "x"), json!({})),
        ],
    );
    let r = f.push(&dup_inside);
    assert_eq!(r.accepted, 1);
    assert_eq!(r.rejected[0].server_seq, Some(r.acks[0].server_seq));
}

#[test]
fn an_event_without_entity_id_is_rejected_alone() {
    let f = fixture();
    let r = f.push(&req(
        "dev-a",
        vec![
            event(1, "create", "issues", "", issue("", "x"), json!({})),
            event(
                2,
                "create",
                "issues",
                "td-2",
                issue("td-2", "two"),
                json!({}),
            ),
        ],
    ));
    assert_eq!(r.accepted, 1);
    assert_eq!(r.rejected[0].reason, "empty entity_id");
    assert_eq!(r.rejected[0].server_seq, None);
}

#[test]
fn a_bad_request_is_refused_whole_and_changes_nothing() {
    let f = fixture();
    let good = || {
        event(
            1,
            "create",
            "issues",
            "td-1",
            issue("td-1", "one"),
            json!({}),
        )
    };
    let mut bad_ts = good();
    bad_ts.client_timestamp = "yesterday".into();
    let cases: Vec<(PushRequest, &str)> = vec![
        (req("", vec![good()]), "device_id"),
        (
            PushRequest {
                session_id: " ".into(),
                ..req("d", vec![good()])
            },
            "session_id",
        ),
        (req("d", vec![]), "events is empty"),
        (
            req(
                "d",
                (0..1001)
                    .map(|i| event(i, "create", "issues", "td-1", json!({}), json!({})))
                    .collect(),
            ),
            "too many",
        ),
        (
            req(
                "d",
                vec![
                    good(),
                    event(2, "create", "widgets", "w-1", json!({}), json!({})),
                ],
            ),
            "widgets",
        ),
        (req("d", vec![good(), bad_ts]), "client_timestamp"),
    ];
    for (r, needle) in cases {
        match f.p().push(&r) {
            Err(StoreError::BadRequest(m)) => assert!(m.contains(needle), "{m} lacks {needle}"),
            other => panic!("expected BadRequest({needle}), got {other:?}"),
        }
    }
    assert_eq!(f.p().status().unwrap().event_count, 0);
    assert_eq!(f.title("td-1"), None);
}

#[test]
fn pull_pages_follow_td_semantics() {
    let f = fixture();
    for (dev, base) in [("dev-a", 0), ("dev-b", 10)] {
        let events = (1..=5)
            .map(|i| {
                event(
                    i,
                    "create",
                    "issues",
                    &format!("td-{}", base + i),
                    issue(&format!("td-{}", base + i), "t"),
                    json!({}),
                )
            })
            .collect();
        f.push(&req(dev, events));
    }
    let page = f.pull(0, Some(4), None);
    assert_eq!(
        page.events.iter().map(|e| e.server_seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert_eq!(page.last_server_seq, 4);
    assert!(page.has_more, "a full page says there may be more");
    let rest = f.pull(4, Some(100), None);
    assert_eq!(rest.events.len(), 6);
    assert!(!rest.has_more);
    assert_eq!(rest.last_server_seq, 10);
    // exclude_client is ignored: a device gets its own events back too (td's autosync asks
    // without them and would otherwise keep an earlier write of another device over its own).
    let with_own = f.pull(0, None, Some("dev-b"));
    assert_eq!(with_own.events.len(), 10);
    assert!(with_own.events.iter().any(|e| e.device_id == "dev-b"));
    assert_eq!(with_own.last_server_seq, 10);
    // At the head: empty, cursor echoed.
    let head = f.pull(10, None, None);
    assert!(head.events.is_empty());
    assert_eq!(head.last_server_seq, 10);
    // A limit over 10000 is capped, not refused; below 1 is refused.
    assert_eq!(f.pull(0, Some(50_000), None).events.len(), 10);
    let bad = f.p().pull(&PullQuery {
        after_server_seq: 0,
        limit: Some(0),
        exclude_client: None,
    });
    assert!(matches!(bad, Err(StoreError::BadRequest(_))));
}

#[test]
fn payloads_come_back_byte_for_byte_and_names_canonical() {
    let f = fixture();
    let raw = r#"{"new_data":{"title":"x","id":"td-1","status":"open","custom_future_field":[1, 2]},"previous_data":{},"schema_version":1}"#;
    let ev = PushEvent {
        client_action_id: 1,
        action_type: "handoff".into(),
        entity_type: "handoff".into(),
        entity_id: "ho-1".into(),
        payload: RawValue::from_string(raw.into()).unwrap(),
        client_timestamp: "2026-03-01T10:00:00-07:00".into(),
    };
    f.push(&req("dev-a", vec![ev]));
    let got = &f.pull(0, None, None).events[0];
    assert_eq!(got.payload.get(), raw);
    assert_eq!(got.entity_type, "handoffs");
    assert_eq!(got.action_type, "create");
    assert_eq!(got.client_timestamp, "2026-03-01T10:00:00-07:00");
    // A canonical delete stays a delete.
    f.push(&req(
        "dev-a",
        vec![event(2, "delete", "issues", "td-1", json!({}), json!({}))],
    ));
    assert_eq!(f.pull(1, None, None).events[0].action_type, "delete");
}

#[test]
fn work_session_local_fields_never_leave_the_server() {
    let f = fixture();
    let ws = json!({"id":"ws-1","name":"w","session_id":"s","started_at":"2026-03-01T10:00:00Z","worktree_root":"/home/alice/x"});
    f.push(&req(
        "dev-a",
        vec![event(1, "create", "work_sessions", "ws-1", ws, json!({}))],
    ));
    let got = &f.pull(0, None, None).events[0];
    assert!(
        !got.payload.get().contains("worktree_root"),
        "{}",
        got.payload.get()
    );
}

#[test]
fn the_projection_follows_the_log_and_rebuilds_to_the_same_state() {
    let f = fixture();
    let base = issue("td-1", "one");
    f.push(&req("dev-a", vec![
        event(1, "create", "issues", "td-1", base.clone(), json!({})),
        event(2, "update", "issues", "td-1", with(base.clone(), "title", json!("two")), base.clone()),
        event(3, "create", "comments", "cm-1", json!({"id":"cm-1","issue_id":"td-1","session_id":"s","text":"hi","created_at":"2026-03-01T10:00:00Z"}), json!({})),
        event(4, "create", "board_issue_positions", "bip_x", json!({"id":"bip_x","board_id":"bd-gone","issue_id":"td-1","position":1}), json!({})),
    ]));
    assert_eq!(f.title("td-1").as_deref(), Some("two"));
    let check = f.p().rebuild_check().unwrap();
    assert!(check.matches, "{:?}", check.divergence);
    assert_eq!(check.events, 4);
    let rebuilt = f.p().rebuild_in_place().unwrap();
    assert_eq!(rebuilt.events, 4);
    assert_eq!(f.title("td-1").as_deref(), Some("two"));
    assert!(
        f.store
            .project(&f.tenant, &f.project)
            .rebuild_check()
            .unwrap()
            .matches
    );
    // The orphaned position is in the log and in history, marked as skipped.
    let h = f
        .store
        .project(&f.tenant, &f.project)
        .history(EntityType::BoardIssuePositions, "bip_x")
        .unwrap();
    assert!(
        h[0].skipped
            .as_deref()
            .unwrap()
            .starts_with("orphaned_parent"),
        "{:?}",
        h[0].skipped
    );
}

#[test]
fn a_clobbered_value_is_kept_with_both_versions_and_can_be_restored() {
    let f = fixture();
    let base = issue("td-1", "base");
    f.push(&req(
        "dev-a",
        vec![event(
            1,
            "create",
            "issues",
            "td-1",
            base.clone(),
            json!({}),
        )],
    ));
    f.push(&req(
        "dev-a",
        vec![event(
            2,
            "update",
            "issues",
            "td-1",
            with(base.clone(), "title", json!("alice's")),
            base.clone(),
        )],
    ));
    // Bob edits the same field from the base he had: alice's title is clobbered.
    f.push(&req(
        "dev-b",
        vec![event(
            1,
            "update",
            "issues",
            "td-1",
            with(base.clone(), "title", json!("bob's")),
            base.clone(),
        )],
    ));
    // A different field from a stale base is not a conflict.
    f.push(&req(
        "dev-c",
        vec![event(
            1,
            "update",
            "issues",
            "td-1",
            with(base.clone(), "priority", json!("P0")),
            base.clone(),
        )],
    ));
    let all = f
        .store
        .project(&f.tenant, &f.project)
        .conflicts(&ConflictFilter::default())
        .unwrap();
    assert_eq!(all.len(), 1, "{all:#?}");
    let c = &all[0];
    assert_eq!(c.fields, vec!["title"]);
    assert_eq!(c.clobbered["title"], "alice's");
    assert_eq!(c.winner["title"], "bob's");
    assert_eq!(
        (c.clobbered_seq, c.clobbered_device.as_deref()),
        (Some(2), Some("dev-a"))
    );
    assert_eq!((c.winning_seq, c.winning_device.as_str()), (3, "dev-b"));
    let by_entity = f
        .store
        .project(&f.tenant, &f.project)
        .conflicts(&ConflictFilter {
            entity: Some((EntityType::Issues, "td-1".into())),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(by_entity.len(), 1);
    let none = f
        .store
        .project(&f.tenant, &f.project)
        .conflicts(&ConflictFilter {
            entity: Some((EntityType::Issues, "td-2".into())),
            ..Default::default()
        })
        .unwrap();
    assert!(none.is_empty());

    let restored = f
        .store
        .project(&f.tenant, &f.project)
        .restore_conflict(c.id)
        .unwrap();
    assert_eq!(restored.action_type, "update");
    assert_eq!(f.title("td-1").as_deref(), Some("alice's"));
    assert_eq!(
        f.store
            .project(&f.tenant, &f.project)
            .state_at(EntityType::Issues, "td-1", i64::MAX)
            .unwrap()
            .unwrap()["priority"],
        "P0",
        "the restore keeps later unrelated edits"
    );
    // The restore is an ordinary event that every client pulls.
    let page = f.pull(4, None, None);
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].server_seq, restored.server_seq);
    let after = f
        .store
        .project(&f.tenant, &f.project)
        .conflicts(&ConflictFilter::default())
        .unwrap();
    assert_eq!(after[0].restored_by_seq, Some(restored.server_seq));
    assert!(
        f.store
            .project(&f.tenant, &f.project)
            .rebuild_check()
            .unwrap()
            .matches
    );
    assert!(matches!(
        f.p().restore_conflict(999),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn a_hard_deleted_row_is_restored_by_a_create() {
    let f = fixture();
    let base = issue("td-1", "base");
    f.push(&req(
        "dev-a",
        vec![event(
            1,
            "create",
            "issues",
            "td-1",
            base.clone(),
            json!({}),
        )],
    ));
    f.push(&req(
        "dev-a",
        vec![event(
            2,
            "update",
            "issues",
            "td-1",
            with(base.clone(), "title", json!("edited")),
            base.clone(),
        )],
    ));
    f.push(&req(
        "dev-b",
        vec![event(
            1,
            "delete",
            "issues",
            "td-1",
            json!({}),
            base.clone(),
        )],
    ));
    assert_eq!(f.title("td-1"), None);
    let c = f
        .store
        .project(&f.tenant, &f.project)
        .conflicts(&ConflictFilter::default())
        .unwrap()
        .remove(0);
    assert_eq!(c.winner, Value::Null);
    assert_eq!(
        f.store
            .project(&f.tenant, &f.project)
            .restore_conflict(c.id)
            .unwrap()
            .action_type,
        "create"
    );
    assert_eq!(f.title("td-1").as_deref(), Some("edited"));
}

#[test]
fn history_lists_every_event_and_state_at_any_seq() {
    let f = fixture();
    let base = issue("td-1", "v1");
    f.push(&req(
        "dev-a",
        vec![
            event(1, "create", "issues", "td-1", base.clone(), json!({})),
            event(
                2,
                "create",
                "issues",
                "td-2",
                issue("td-2", "other"),
                json!({}),
            ),
            event(
                3,
                "update",
                "issues",
                "td-1",
                with(base.clone(), "title", json!("v2")),
                base.clone(),
            ),
            event(
                4,
                "soft_delete",
                "issues",
                "td-1",
                json!({}),
                with(base, "title", json!("v2")),
            ),
        ],
    ));
    let h = f
        .store
        .project(&f.tenant, &f.project)
        .history(EntityType::Issues, "td-1")
        .unwrap();
    assert_eq!(
        h.iter().map(|e| e.server_seq).collect::<Vec<_>>(),
        vec![1, 3, 4]
    );
    assert_eq!(h[1].before["title"], "v1");
    assert_eq!(h[1].after["title"], "v2");
    let at = |seq| {
        f.store
            .project(&f.tenant, &f.project)
            .state_at(EntityType::Issues, "td-1", seq)
            .unwrap()
    };
    assert_eq!(at(0), None);
    assert_eq!(at(1).unwrap()["title"], "v1");
    assert_eq!(at(2).unwrap()["title"], "v1");
    assert_eq!(at(3).unwrap()["title"], "v2");
    assert_eq!(at(3).unwrap()["deleted_at"], Value::Null);
    assert_ne!(at(4).unwrap()["deleted_at"], Value::Null);
}

#[test]
fn clock_skew_is_estimated_per_device() {
    let f = fixture();
    let ahead = (chrono::Utc::now() + chrono::Duration::hours(3)).to_rfc3339();
    let mut ev = event(1, "create", "issues", "td-1", issue("td-1", "x"), json!({}));
    ev.client_timestamp = ahead;
    f.push(&req("dev-fast", vec![ev]));
    let mut ev = event(1, "create", "issues", "td-2", issue("td-2", "y"), json!({}));
    ev.client_timestamp = chrono::Utc::now().to_rfc3339();
    f.push(&req("dev-ok", vec![ev]));
    let clocks = f.p().device_clocks().unwrap();
    let fast = clocks.iter().find(|c| c.device_id == "dev-fast").unwrap();
    let ok = clocks.iter().find(|c| c.device_id == "dev-ok").unwrap();
    assert!((fast.skew_ms - 3 * 3600 * 1000).abs() < 60_000, "{fast:?}");
    assert!(ok.skew_ms.abs() < 60_000, "{ok:?}");
}

#[test]
fn projects_are_isolated_and_an_unwritten_one_is_empty_without_a_file() {
    let f = fixture();
    let other = ProjectId::parse("p_0002").unwrap();
    let stranger = TenantId::parse("globex").unwrap();
    f.push(&req(
        "dev-a",
        vec![event(
            1,
            "create",
            "issues",
            "td-1",
            issue("td-1", "x"),
            json!({}),
        )],
    ));
    assert_eq!(f.p().status().unwrap().event_count, 1);
    // Another project of the tenant, and the same project id in another tenant: empty, and
    // reading them (status, pulls, snapshots) creates nothing on disk.
    for p in [
        f.store.project(&f.tenant, &other),
        f.store.project(&stranger, &f.project),
    ] {
        assert_eq!(p.status().unwrap().event_count, 0);
        assert!(p.pull(&PullQuery::default()).unwrap().events.is_empty());
        assert!(p.snapshot().unwrap().is_none());
        assert!(!p.path().exists(), "{}", p.path().display());
    }
    assert_ne!(
        f.store.project(&stranger, &f.project).path(),
        f.p().path(),
        "each tenant has its own directory"
    );
}

#[test]
fn damaged_or_foreign_files_are_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = Tenants::open(TenantsConfig::new(dir.path())).unwrap();
    let t = TenantId::parse("acme").unwrap();
    let garbage = ProjectId::parse("garbage").unwrap();
    let foreign = ProjectId::parse("foreign").unwrap();
    std::fs::create_dir_all(dir.path().join("tenants/acme")).unwrap();
    std::fs::write(store.project(&t, &garbage).path(), vec![0x42; 8192]).unwrap();
    rusqlite::Connection::open(store.project(&t, &foreign).path())
        .unwrap()
        .execute_batch("CREATE TABLE x (a)")
        .unwrap();
    for (p, kind) in [(&garbage, "damaged"), (&foreign, "not a tdsync shard")] {
        let err = store.project(&t, p).status().expect_err("must fail");
        let msg = err.to_string();
        assert!(
            msg.contains(kind) && msg.contains(&format!("{p}.db")),
            "{msg}"
        );
    }
}

fn create(i: usize) -> PushRequest {
    let id = format!("td-{i}");
    req(
        "d",
        vec![event(
            i as i64 + 1,
            "create",
            "issues",
            &id,
            issue(&id, "x"),
            json!({}),
        )],
    )
}

#[test]
fn the_pool_caps_open_shards_and_reopens_on_demand() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = TenantsConfig::new(dir.path());
    config.max_open_shards = 2;
    let store = Tenants::open(config).unwrap();
    let t = TenantId::parse("acme").unwrap();
    let ids: Vec<ProjectId> = (0..5)
        .map(|i| ProjectId::parse(&format!("p{i}")).unwrap())
        .collect();
    for (i, p) in ids.iter().enumerate() {
        store.project(&t, p).push(&create(i)).unwrap();
        assert!(store.open_shards() <= 2);
    }
    for (i, p) in ids.iter().enumerate() {
        let page = store.project(&t, p).pull(&PullQuery::default()).unwrap();
        assert_eq!(page.events[0].entity_id, format!("td-{i}"), "reopened {p}");
        assert!(store.open_shards() <= 2);
    }
    store.close_all();
    assert_eq!(store.open_shards(), 0);
}

#[test]
fn heads_are_answered_from_memory_without_opening_shards() {
    let dir = tempfile::tempdir().unwrap();
    let t = TenantId::parse("acme").unwrap();
    let ids: Vec<ProjectId> = (0..20)
        .map(|i| ProjectId::parse(&format!("p{i}")).unwrap())
        .collect();
    {
        let store = Tenants::open(TenantsConfig::new(dir.path())).unwrap();
        for (i, p) in ids.iter().enumerate() {
            for _ in 0..=i % 3 {
                store.project(&t, p).push(&create(i)).unwrap();
            }
        }
        store.close_all();
        // Closed shards keep their heads: status and pulls at the head open nothing.
        for p in &ids {
            let project = store.project(&t, p);
            let status = project.status_cached().expect("head kept after close");
            assert_eq!(status.event_count, 1);
            let at_head = PullQuery {
                after_server_seq: status.last_server_seq,
                ..PullQuery::default()
            };
            assert!(project.pull_cached(&at_head).unwrap().is_some());
        }
        assert_eq!(store.open_shards(), 0);
    }
    // After a restart a head is read from the file once (no shard opened), then from memory.
    let store = Tenants::open(TenantsConfig::new(dir.path())).unwrap();
    let project = store.project(&t, &ids[4]);
    assert!(project.status_cached().is_none(), "nothing read yet");
    let status = project.status().unwrap();
    assert_eq!((status.event_count, status.last_server_seq), (1, 1));
    assert!(status.last_event_time.is_some());
    assert_eq!(project.status_cached(), Some(status));
    assert_eq!(store.open_shards(), 0);
    assert_eq!(store.known_projects(), 1);
}

#[test]
fn a_project_with_a_few_events_is_small_on_disk() {
    let f = fixture();
    for i in 0..5 {
        assert_eq!(f.push(&create(i)).accepted, 1);
    }
    f.store.close_all();
    let bytes = std::fs::metadata(f.p().path()).unwrap().len();
    assert!(
        bytes <= 64 * 1024,
        "{bytes} bytes for a project with 5 events"
    );
    let sidecars = ["-wal", "-shm"].map(|s| format!("{}{s}", f.p().path().display()));
    assert!(
        sidecars.iter().all(|s| !std::path::Path::new(s).exists()),
        "a closed shard is one file"
    );
}

fn page_size(path: &std::path::Path) -> (i64, String) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let size = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    let mode = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    (size, mode)
}

#[test]
fn a_growing_shard_is_rewritten_once_with_big_pages_and_keeps_everything() {
    let f = fixture();
    let batch = |from: usize, n: usize| {
        let events = (from..from + n)
            .map(|i| {
                let id = format!("td-{i}");
                event(
                    i as i64 + 1,
                    "create",
                    "issues",
                    &id,
                    issue(&id, "x"),
                    json!({}),
                )
            })
            .collect();
        req("dev-a", events)
    };
    assert_eq!(f.push(&batch(0, 150)).accepted, 150);
    f.store.close_all();
    assert_eq!(
        page_size(f.p().path()),
        (1024, "wal".into()),
        "150 events: small pages"
    );
    // The push that takes the log past 200 events finds the file rewritten first.
    assert_eq!(f.push(&batch(150, 100)).accepted, 100);
    f.store.close_all();
    assert_eq!(page_size(f.p().path()), (4096, "wal".into()));
    let page = f.pull(0, Some(10_000), None);
    assert_eq!(page.events.len(), 250);
    assert_eq!(page.events[249].entity_id, "td-249");
    assert!(
        f.p().rebuild_check().unwrap().matches,
        "the projection survived the rewrite"
    );
    assert_eq!(f.title("td-200").as_deref(), Some("x"));
    assert_eq!(
        f.push(&batch(250, 500)).accepted,
        500,
        "and the shard goes on"
    );
    // A first push big enough goes straight into big pages.
    let big = f
        .store
        .project(&f.tenant, &ProjectId::parse("p_big").unwrap());
    assert_eq!(big.push(&batch(0, 500)).unwrap().accepted, 500);
    f.store.close_all();
    assert_eq!(page_size(big.path()), (4096, "wal".into()));
}

#[test]
fn opening_a_blocked_shard_does_not_hold_up_other_projects() {
    let f = fixture();
    let slow = ProjectId::parse("p_slow").unwrap();
    f.store.project(&f.tenant, &slow).push(&create(0)).unwrap();
    f.store.close_all();
    // Another process holds the slow project's file: opening it waits out SQLite's busy
    // timeout (5 s). Meanwhile every other project must be served.
    let holder = rusqlite::Connection::open(f.store.project(&f.tenant, &slow).path()).unwrap();
    holder
        .execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;")
        .unwrap();
    let started = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let blocked = {
        let (store, tenant, started) = (f.store.clone(), f.tenant.clone(), started.clone());
        std::thread::spawn(move || {
            started.store(true, std::sync::atomic::Ordering::SeqCst);
            store.project(&tenant, &slow).push(&create(1))
        })
    };
    while !started.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::yield_now();
    }
    for i in 0..3 {
        f.push(&create(10 + i));
    }
    assert!(
        !blocked.is_finished(),
        "the other project's pushes were held up by the blocked open"
    );
    // Once the file is free the waiting push goes through.
    drop(holder);
    assert_eq!(blocked.join().unwrap().unwrap().accepted, 1);
}

#[test]
fn one_process_per_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Tenants::open(TenantsConfig::new(dir.path())).unwrap();
    assert!(matches!(
        Tenants::open(TenantsConfig::new(dir.path())),
        Err(StoreError::DataDirBusy { .. })
    ));
}

#[test]
fn concurrent_pushes_get_distinct_strictly_increasing_seqs() {
    let f = std::sync::Arc::new(fixture());
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let f = f.clone();
            std::thread::spawn(move || {
                let mut seqs = Vec::new();
                for i in 0..25 {
                    let id = format!("td-{t}-{i}");
                    let r = f.push(&req(
                        &format!("dev-{t}"),
                        vec![event(
                            i,
                            "create",
                            "issues",
                            &id,
                            issue(&id, "x"),
                            json!({}),
                        )],
                    ));
                    seqs.push(r.acks[0].server_seq);
                }
                seqs
            })
        })
        .collect();
    let mut all: Vec<i64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort();
    assert_eq!(all, (1..=100).collect::<Vec<_>>());
    let page = f.pull(0, None, None);
    assert!(
        page.events
            .windows(2)
            .all(|w| w[0].server_seq < w[1].server_seq)
    );
}

#[test]
fn a_snapshot_is_a_td_database_of_the_projection_at_the_head() {
    let f = fixture();
    assert!(
        f.p().snapshot().unwrap().is_none(),
        "no events, no snapshot"
    );
    let base = issue("td-1", "one");
    f.push(&req("dev-a", vec![
        event(1, "create", "issues", "td-1", base.clone(), json!({})),
        event(2, "create", "comments", "cm-1", json!({"id":"cm-1","issue_id":"td-1","session_id":"s","text":"hi","created_at":"2026-03-01T10:00:00Z"}), json!({})),
        event(3, "update", "issues", "td-1", with(base.clone(), "title", json!("two")), base),
    ]));
    let snap = f.p().snapshot().unwrap().unwrap();
    assert_eq!(snap.seq, 3);
    let db = rusqlite::Connection::open(&snap.path).unwrap();
    let header = std::fs::read(&snap.path).unwrap();
    assert_eq!(&header[..16], b"SQLite format 3\0");
    let one = |sql: &str| -> String {
        db.query_row(sql, [], |r| r.get::<_, rusqlite::types::Value>(0))
            .map(|v| format!("{v:?}"))
            .unwrap()
    };
    assert_eq!(
        one("SELECT value FROM schema_info WHERE key = 'version'"),
        "Text(\"38\")"
    );
    assert_eq!(one("SELECT title FROM issues"), "Text(\"two\")");
    assert_eq!(one("SELECT count(*) FROM comments"), "Integer(1)");
    assert_eq!(one("SELECT count(*) FROM action_log"), "Integer(0)");
    assert_eq!(one("SELECT count(*) FROM sync_state"), "Integer(0)");
    assert_eq!(
        one("SELECT count(*) FROM boards WHERE id = 'bd-all-issues'"),
        "Integer(1)"
    );
    assert_eq!(one("PRAGMA journal_mode"), "Text(\"delete\")");
    let shard = rusqlite::Connection::open(f.p().path()).unwrap();
    let (a, b) = (
        tdsync_projection::Dump::read(&shard).unwrap(),
        tdsync_projection::Dump::read(&db).unwrap(),
    );
    assert_eq!(a.first_difference(&b), None);
    // Cached per head: the same file until the head moves, then a new one (the old is pruned).
    let again = f.p().snapshot().unwrap().unwrap();
    assert_eq!(again.path, snap.path);
    f.push(&req(
        "dev-a",
        vec![event(
            4,
            "create",
            "issues",
            "td-2",
            issue("td-2", "x"),
            json!({}),
        )],
    ));
    let next = f.p().snapshot().unwrap().unwrap();
    assert_eq!(next.seq, 4);
    assert!(!snap.path.exists(), "the older snapshot is pruned");
}
