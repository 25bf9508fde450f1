//! The convergence oracle. After quiescence (the network heals; every client pushes, then
//! pulls, until nothing moves) it checks:
//! - every client database equals the server projection on the 12 synced tables, row by row,
//!   timestamps as instants (differences td itself produces are named in
//!   [`Tolerances::td`]; tables and columns an older client schema lacks are not compared);
//! - nothing a client sent is missing from the server's log, and every logged event came from
//!   exactly one action_log row (no event applied twice); a replay of the log equals the
//!   projection;
//! - server_seq is strictly increasing;
//! - every clobbered value is in the conflict log with both versions (an independent model of
//!   the issue fields says which writes clobbered);
//! - each writer reads its own writes (every issue it created is there, on its side and the
//!   server's).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tdsync_projection::{Dump, Tolerances, compare::DivergenceKind};
use tdsync_protocol::{EntityType, Envelope, wire::PullEvent, wire::PullQuery};
use tdsync_tenants::ConflictFilter;

use crate::world::{World, WorldError};

/// One thing the oracle found wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// `diverged`, `lost`, `applied-twice`, `rebuild`, `seq-order`, `conflict`, `read-your-writes`,
    /// `unexpected-error`, `quiescence`.
    pub kind: String,
    pub message: String,
    /// The table and row the failure is about, when there is one.
    pub entity: Option<(String, String)>,
    /// Column-by-column difference, server against the client.
    pub diff: Vec<DiffLine>,
    /// Every event of that entity, on the server and in each client's action log.
    pub trace: Vec<TraceLine>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiffLine {
    pub column: String,
    pub server: String,
    pub client: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceLine {
    /// `server` or `client N`.
    pub replica: String,
    pub seq: Option<i64>,
    pub action: String,
    pub device: String,
    /// What the event wrote (the fields its images differ in), shortened.
    pub detail: String,
}

/// The tolerances the oracle applies, named for reports.
pub fn tolerances() -> (Tolerances, Vec<String>) {
    (
        Tolerances::td(),
        vec![
            "updated_at of a soft-deleted row on its author (td's delete moves it locally; the soft_delete event carries only deleted_at)".into(),
            "tables and columns an older client schema lacks (the events stay in the server log)".into(),
            "the builtin board's own creation times (every td database makes it locally)".into(),
        ],
    )
}

/// Brings the world to rest: heal the network, then push and pull everywhere until nothing
/// moves. Returns the number of rounds.
pub fn quiesce(world: &mut World) -> Result<usize, Box<Failure>> {
    world.heal().map_err(|e| Box::new(broken(&e)))?;
    for round in 1..=10 {
        let mut moved = false;
        for (i, c) in world.clients.iter().enumerate() {
            let r = c.sync().push().map_err(|e| Box::new(quiescence(i, "push", &e)))?;
            moved |= r.accepted > 0 || r.duplicates > 0;
        }
        for (i, c) in world.clients.iter().enumerate() {
            let r = c.sync().pull().map_err(|e| Box::new(quiescence(i, "pull", &e)))?;
            moved |= r.pulled > 0;
        }
        if !moved {
            return Ok(round);
        }
    }
    Err(Box::new(failure(
        "quiescence",
        "still moving after 10 rounds of push and pull".into(),
    )))
}

fn broken(e: &WorldError) -> Failure {
    failure("quiescence", e.to_string())
}

fn quiescence(i: usize, what: &str, e: &dyn std::fmt::Display) -> Failure {
    failure(
        "quiescence",
        format!("client {i}: {what} failed on a healed network: {e}"),
    )
}

fn failure(kind: &str, message: String) -> Failure {
    Failure {
        kind: kind.into(),
        message,
        entity: None,
        diff: Vec::new(),
        trace: Vec::new(),
    }
}

/// Runs every check on a world at rest.
pub fn check(world: &World) -> Vec<Failure> {
    let mut out: Vec<Failure> = world
        .unexpected
        .iter()
        .map(|m| failure("unexpected-error", m.clone()))
        .collect();
    let Some(store) = world.server.get() else {
        out.push(failure("quiescence", "the server is down".into()));
        return out;
    };
    let log = match full_log(world) {
        Ok(log) => log,
        Err(e) => {
            out.push(failure(
                "quiescence",
                format!("reading the server log: {e}"),
            ));
            return out;
        }
    };
    out.extend(check_replicas(world, &log));
    out.extend(check_log(world, &log));
    match store.rebuild_check(&world.tenant, &world.project) {
        Ok(r) if r.matches => {}
        Ok(r) => out.push(failure(
            "rebuild",
            format!(
                "replaying the log differs from the projection: {}",
                r.divergence.unwrap_or_default()
            ),
        )),
        Err(e) => out.push(failure("rebuild", e.to_string())),
    }
    out.extend(check_conflicts(world, &log));
    out
}

/// The server's whole log, in order.
fn full_log(world: &World) -> Result<Vec<PullEvent>, String> {
    let store = world.server.get().ok_or("server down")?;
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let q = PullQuery {
            after_server_seq: after,
            limit: Some(10_000),
            exclude_client: None,
        };
        let page = store
            .pull(&world.tenant, &world.project, &q)
            .map_err(|e| e.to_string())?;
        if page.events.is_empty() {
            return Ok(out);
        }
        after = page.last_server_seq;
        out.extend(page.events);
    }
}

fn projection(world: &World) -> Result<Dump, String> {
    let store = world.server.get().ok_or("server down")?;
    let conn = rusqlite::Connection::open(store.shard_path(&world.tenant, &world.project))
        .map_err(|e| e.to_string())?;
    Dump::read(&conn).map_err(|e| e.to_string())
}

fn check_replicas(world: &World, log: &[PullEvent]) -> Vec<Failure> {
    let mut out = Vec::new();
    let server = match projection(world) {
        Ok(d) => d,
        Err(e) => {
            return vec![failure(
                "diverged",
                format!("reading the server projection: {e}"),
            )];
        }
    };
    let (tolerances, _) = tolerances();
    for (i, sim) in world.clients.iter().enumerate() {
        let replica = match Dump::read(sim.sync().db().connection()) {
            Ok(d) => d,
            Err(e) => {
                out.push(failure(
                    "diverged",
                    format!("client {i}: reading its database: {e}"),
                ));
                continue;
            }
        };
        if let Some(d) = server.first_difference_with(&replica, &tolerances) {
            let (table, id) = (d.entity.as_str().to_string(), d.id.clone());
            let diff = match &d.kind {
                DivergenceKind::Value { .. } => row_diff(&server, &replica, d.entity, &id),
                DivergenceKind::RowMissing { row, on_left } => row
                    .iter()
                    .map(|(k, v)| DiffLine {
                        column: k.clone(),
                        server: if *on_left {
                            "(no row)".into()
                        } else {
                            v.to_string()
                        },
                        client: if *on_left {
                            v.to_string()
                        } else {
                            "(no row)".into()
                        },
                    })
                    .collect(),
            };
            out.push(Failure {
                kind: "diverged".into(),
                message: format!("client {i} differs from the server (left = server): {d}"),
                entity: Some((table.clone(), id.clone())),
                diff,
                trace: trace(world, log, d.entity, &id),
            });
        }
        for issue in &sim.created_issues {
            let mine = replica
                .tables
                .get(&EntityType::Issues)
                .is_some_and(|t| t.rows.contains_key(issue));
            let theirs = server
                .tables
                .get(&EntityType::Issues)
                .is_some_and(|t| t.rows.contains_key(issue));
            if !(mine && theirs) {
                out.push(Failure {
                    kind: "read-your-writes".into(),
                    message: format!(
                        "client {i} created {issue}; on its side: {mine}, on the server: {theirs}"
                    ),
                    entity: Some(("issues".into(), issue.clone())),
                    diff: Vec::new(),
                    trace: trace(world, log, EntityType::Issues, issue),
                });
            }
        }
    }
    out
}

/// Every column of one row that differs between server and client.
fn row_diff(server: &Dump, client: &Dump, entity: EntityType, id: &str) -> Vec<DiffLine> {
    let (Some(s), Some(c)) = (
        server.tables.get(&entity).and_then(|t| t.rows.get(id)),
        client.tables.get(&entity).and_then(|t| t.rows.get(id)),
    ) else {
        return Vec::new();
    };
    s.iter()
        .filter_map(|(k, v)| {
            let other = c.get(k)?;
            (other != v).then(|| DiffLine {
                column: k.clone(),
                server: v.to_string(),
                client: other.to_string(),
            })
        })
        .collect()
}

/// Every event of one entity: the server's log, and each client's action_log rows.
pub fn trace(world: &World, log: &[PullEvent], entity: EntityType, id: &str) -> Vec<TraceLine> {
    let device_name = |d: &str| {
        world
            .clients
            .iter()
            .position(|c| c.identity.device_id == d)
            .map_or_else(|| d.to_string(), |i| format!("client {i}"))
    };
    let mut out: Vec<TraceLine> = log
        .iter()
        .filter(|e| e.entity_id == id && EntityType::parse(&e.entity_type) == Some(entity))
        .map(|e| TraceLine {
            replica: "server".into(),
            seq: Some(e.server_seq),
            action: e.action_type.clone(),
            device: device_name(&e.device_id),
            detail: change_summary(entity, e.payload.get()),
        })
        .collect();
    for (i, sim) in world.clients.iter().enumerate() {
        let conn = sim.sync().db().connection();
        let Ok(mut stmt) = conn.prepare(
            "SELECT rowid, action_type, entity_type, new_data, previous_data, server_seq, undone \
             FROM action_log WHERE entity_id = ?1 ORDER BY rowid",
        ) else {
            continue;
        };
        let rows = stmt.query_map([id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<i64>>(5)?,
                r.get::<_, i64>(6)?,
            ))
        });
        for (rowid, action, etype, new, prev, seq, undone) in rows.into_iter().flatten().flatten() {
            if EntityType::parse(&etype) != Some(entity) {
                continue;
            }
            let payload = tdsync_protocol::Envelope::encode_action_log(
                entity,
                new.as_deref(),
                prev.as_deref(),
            );
            out.push(TraceLine {
                replica: format!("client {i}"),
                seq,
                action: format!(
                    "{action} (rowid {rowid}{})",
                    if undone != 0 { ", undone" } else { "" }
                ),
                device: format!("client {i}"),
                detail: change_summary(entity, &payload),
            });
        }
    }
    out
}

/// The fields an event's two images differ in, with their new values, shortened.
fn change_summary(entity: EntityType, payload: &str) -> String {
    let Ok(env) = Envelope::parse(entity, payload) else {
        return "unreadable payload".into();
    };
    let mut parts = Vec::new();
    for (k, v) in &env.new_data {
        if env.previous_data.get(k) != Some(v) && k != "updated_at" {
            let text = v.to_string();
            let short: String = text.chars().take(60).collect();
            parts.push(format!(
                "{k}={short}{}",
                if text.chars().count() > 60 { "…" } else { "" }
            ));
        }
    }
    if parts.is_empty() && !env.previous_data.is_empty() && env.new_data.is_empty() {
        parts.push("(row removed)".into());
    }
    parts.join(" ")
}

fn check_log(world: &World, log: &[PullEvent]) -> Vec<Failure> {
    let mut out = Vec::new();
    if let Some(w) = log.windows(2).find(|w| w[0].server_seq >= w[1].server_seq) {
        out.push(failure(
            "seq-order",
            format!(
                "server_seq {} is followed by {}",
                w[0].server_seq, w[1].server_seq
            ),
        ));
    }
    let logged: BTreeMap<(String, i64), i64> = log
        .iter()
        .map(|e| ((e.device_id.clone(), e.client_action_id), e.server_seq))
        .collect();
    if logged.len() != log.len() {
        out.push(failure(
            "applied-twice",
            format!(
                "{} logged events share a (device, action id) key",
                log.len() - logged.len()
            ),
        ));
    }
    let mut sent = 0usize;
    for (i, sim) in world.clients.iter().enumerate() {
        let conn = sim.sync().db().connection();
        let rows: Vec<(i64, Option<i64>)> = match conn
            // Rows undone after they were pushed stay in the log, so every synced row counts.
            .prepare("SELECT rowid, server_seq FROM action_log WHERE synced_at IS NOT NULL")
            .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        {
            Ok(rows) => rows,
            Err(e) => {
                out.push(failure(
                    "lost",
                    format!("client {i}: reading its action log: {e}"),
                ));
                continue;
            }
        };
        sent += rows.len();
        for (rowid, seq) in rows {
            let key = (sim.identity.device_id.clone(), rowid);
            match (logged.get(&key), seq) {
                (Some(s), Some(mine)) if *s == mine => {}
                (found, mine) => out.push(failure(
                    "lost",
                    format!("client {i} action_log rowid {rowid} (synced as seq {mine:?}) is logged as {found:?}"),
                )),
            }
        }
        let pending = sim.sync().pending_count().unwrap_or(-1);
        if pending != 0 {
            out.push(failure(
                "lost",
                format!("client {i} still has {pending} pending row(s) after quiescence"),
            ));
        }
    }
    if sent != log.len() {
        out.push(failure(
            "applied-twice",
            format!(
                "the log holds {} events but the clients sent {sent} rows",
                log.len()
            ),
        ));
    }
    out
}

/// Issue fields modelled independently of the engine.
const MODELLED: &[&str] = &["title", "priority", "status", "points", "description"];

/// The (seq, field) pairs where the log says a write clobbered an unseen value: walking the
/// log in order, an update changes a field whose current value is neither what its writer saw
/// nor what it writes.
pub fn expected_issue_clobbers(log: &[PullEvent]) -> BTreeSet<(i64, String)> {
    let mut model: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    let mut expected = BTreeSet::new();
    let norm = |v: Option<&Value>| v.cloned().unwrap_or(Value::String(String::new()));
    for ev in log.iter().filter(|e| e.entity_type == "issues") {
        let Ok(env) = Envelope::parse(EntityType::Issues, ev.payload.get()) else {
            continue;
        };
        let image = |m: &serde_json::Map<String, Value>| match m.get("issue") {
            Some(Value::Object(inner)) => inner.clone(),
            _ => m.clone(),
        };
        let (new, prev) = (image(&env.new_data), image(&env.previous_data));
        let row = model.entry(ev.entity_id.clone()).or_default();
        match ev.action_type.as_str() {
            "create" => {
                if row.is_empty() {
                    for f in MODELLED {
                        row.insert(f.to_string(), norm(new.get(*f)));
                    }
                } else {
                    // A create over an existing row rewrites it whole; every changed value was
                    // unseen by a writer that assumed no row.
                    for f in MODELLED {
                        let n = norm(new.get(*f));
                        if row.get(*f) != Some(&n) {
                            expected.insert((ev.server_seq, f.to_string()));
                        }
                        row.insert(f.to_string(), n);
                    }
                }
            }
            "update" if !prev.is_empty() => {
                for f in MODELLED {
                    let (p, n) = (norm(prev.get(*f)), norm(new.get(*f)));
                    if p != n {
                        let current = row.get(*f).cloned().unwrap_or(Value::String(String::new()));
                        if current != p && current != n {
                            expected.insert((ev.server_seq, f.to_string()));
                        }
                        row.insert(f.to_string(), n);
                    }
                }
            }
            _ => {}
        }
    }
    expected
}

fn check_conflicts(world: &World, log: &[PullEvent]) -> Vec<Failure> {
    let Some(store) = world.server.get() else {
        return Vec::new();
    };
    let conflicts = match store.conflicts(
        &world.tenant,
        &world.project,
        &ConflictFilter {
            limit: Some(10_000),
            ..Default::default()
        },
    ) {
        Ok(c) => c,
        Err(e) => return vec![failure("conflict", format!("listing conflicts: {e}"))],
    };
    let mut out = Vec::new();
    for c in &conflicts {
        if !c.clobbered.is_object() || c.clobbered_seq.is_none() {
            out.push(failure(
                "conflict",
                format!("conflict {} lacks its clobbered side: {c:?}", c.id),
            ));
        }
        let deleted = log
            .iter()
            .any(|e| e.server_seq == c.winning_seq && e.action_type == "delete");
        if !c.winner.is_object() && !deleted {
            out.push(failure(
                "conflict",
                format!("conflict {} lacks its winning side", c.id),
            ));
        }
    }
    let recorded: BTreeSet<(i64, String)> = conflicts
        .iter()
        .filter(|c| c.entity_type == "issues")
        .flat_map(|c| {
            c.fields
                .iter()
                .filter(|f| MODELLED.contains(&f.as_str()))
                .map(move |f| (c.winning_seq, f.clone()))
        })
        .collect();
    let expected = expected_issue_clobbers(log);
    for (seq, field) in expected.difference(&recorded) {
        let id = log
            .iter()
            .find(|e| e.server_seq == *seq)
            .map(|e| e.entity_id.clone())
            .unwrap_or_default();
        out.push(Failure {
            kind: "conflict".into(),
            message: format!(
                "event {seq} clobbered {field} of {id}, but no conflict keeps the old value"
            ),
            entity: Some(("issues".into(), id.clone())),
            diff: Vec::new(),
            trace: trace(world, log, EntityType::Issues, &id),
        });
    }
    for (seq, field) in recorded.difference(&expected) {
        out.push(failure(
            "conflict",
            format!("conflict recorded for event {seq} on {field}, which overwrote nothing unseen"),
        ));
    }
    out
}
