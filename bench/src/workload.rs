//! What the bench sends, prepared before any clock starts: td-shaped issue events from the
//! harness's `workload` (full Issue JSON images, one create per five events, updates carrying
//! `previous_data`), cut into 500-event batches, once as JSON for HTTP and once as structs for
//! the in-process baseline; and that baseline's store.

use std::sync::Mutex;

use anyhow::Context;
use axum::body::Bytes;
use tdsync_protocol::wire::{CLIENT_PUSH_BATCH, PushEvent, PushRequest};
use tdsync_tenants::{Project, ProjectId, TenantId, Tenants, TenantsConfig};

/// Events a populated project holds: 10,000 issues (one create per five events).
pub const SEED_EVENTS: usize = 50_000;

/// One device's batches: each batch's `events` array as JSON (pasted into a push body with the
/// device and a session id at send time) and as push requests for the in-process store.
pub struct Batches {
    pub device: String,
    pub json: Vec<Bytes>,
    /// Locked by the one thread that pushes them in a baseline round (which sets the session).
    pub requests: Mutex<Vec<PushRequest>>,
    counts: Vec<i64>,
}

impl Batches {
    /// `n` events (a multiple of the batch size is best) of issues `td-<prefix>NNNNNN`.
    pub fn new(device: &str, prefix: &str, n: usize) -> anyhow::Result<Batches> {
        let events = tdsync_harness::workload::issue_events(n, prefix);
        let mut json = Vec::new();
        let mut requests = Vec::new();
        let mut counts = Vec::new();
        for chunk in events.chunks(CLIENT_PUSH_BATCH) {
            counts.push(chunk.len() as i64);
            json.push(Bytes::from(serde_json::to_vec(chunk)?));
            requests.push(PushRequest {
                device_id: device.to_string(),
                session_id: String::new(),
                events: chunk.to_vec(),
            });
        }
        Ok(Batches {
            device: device.to_string(),
            json,
            requests: Mutex::new(requests),
            counts,
        })
    }

    pub fn events_in(&self, batch: usize) -> i64 {
        self.counts[batch]
    }

    /// The push body of `batch` under `session` (td's field order).
    pub fn body(&self, batch: usize, session: &str) -> Bytes {
        push_body(&self.device, session, &self.json[batch])
    }
}

/// `{"device_id":…,"session_id":…,"events":[…]}` around an events array already in JSON.
pub fn push_body(device: &str, session: &str, events_json: &[u8]) -> Bytes {
    let quoted = |s: &str| serde_json::to_string(s).expect("a string serializes");
    let mut out = Vec::with_capacity(events_json.len() + device.len() + session.len() + 64);
    out.extend_from_slice(b"{\"device_id\":");
    out.extend_from_slice(quoted(device).as_bytes());
    out.extend_from_slice(b",\"session_id\":");
    out.extend_from_slice(quoted(session).as_bytes());
    out.extend_from_slice(b",\"events\":");
    out.extend_from_slice(events_json);
    out.push(b'}');
    Bytes::from(out)
}

/// One more event on top of a populated project (a status change of its first issue), so the
/// head moves and the next snapshot is built afresh.
pub fn head_mover(prefix: &str, n: usize) -> PushEvent {
    let id = format!("td-{prefix}000001");
    let new = tdsync_harness::workload::issue_json(
        &id,
        "Fix the login timeout",
        if n.is_multiple_of(2) {
            "open"
        } else {
            "in_review"
        },
        &format!("2026-03-02T10:{:02}:{:02}Z", (n / 60) % 60, n % 60),
    );
    let payload = serde_json::json!({"new_data": new, "previous_data": {}, "schema_version": 1});
    PushEvent {
        client_action_id: n as i64 + 1,
        action_type: "update".into(),
        entity_type: "issues".into(),
        entity_id: id,
        payload: serde_json::value::RawValue::from_string(payload.to_string())
            .expect("serde_json output is JSON"),
        client_timestamp: "2026-03-02T10:00:00Z".into(),
    }
}

/// The baseline: tdsync's shard store in a temporary directory of its own, called directly
/// (no HTTP, no JSON on the way in or out), with the same batches.
pub struct Reference {
    store: Tenants,
    tenant: TenantId,
    _dir: tempfile::TempDir,
}

impl Reference {
    pub fn open() -> anyhow::Result<Reference> {
        let dir = tempfile::Builder::new()
            .prefix("tdsync-bench-reference-")
            .tempdir()
            .context("creating the baseline's directory")?;
        let store = Tenants::open(TenantsConfig::new(dir.path()))?;
        Ok(Reference {
            store,
            tenant: TenantId::parse("bench")?,
            _dir: dir,
        })
    }

    /// A project of the baseline store (its shard is made by its first push).
    pub fn project(&self, id: &ProjectId) -> Project {
        self.store.project(&self.tenant, id)
    }

    pub fn push(&self, project: &ProjectId, request: &PushRequest) -> anyhow::Result<i64> {
        Ok(self.project(project).push(request)?.accepted)
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        self.store.close_all();
    }
}
