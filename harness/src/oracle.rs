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
//!
//! The checks judge a [`Subject`] — one project on a server and the replicas syncing it — so
//! the scenarios' [`World`] and the real-log replay (`crate::replay`) are held to the same bar.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tdsync_client::{SyncClient, Transport, tddb::TdDatabase};
use tdsync_projection::{
    Dump, Tolerances,
    compare::{DivergenceKind, Norm},
};
use tdsync_protocol::{
    EntityType, Envelope,
    wire::{PullEvent, PullQuery, PullResponse},
};
use tdsync_tenants::{Conflict, ConflictFilter, Project, RebuildReport, SERVER_DEVICE, Tenants};

use crate::{
    report::ConflictView,
    world::{World, WorldError},
};

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
            "orphans an older client schema keeps after their parent's hard delete (td before schema 30 runs without foreign-key cascades)".into(),
            "what its author's `td undo` did to a handoff or a board (td logs the undo of a handoff as a soft delete and of a board delete as a restore, of tables without deleted_at: every replica quarantines the event, so only the author lacks the handoff, or has the board and what it puts on it)".into(),
        ],
    )
}

/// What the checks read from the server of one project: its log, its projection (the shard
/// file, opened read-only), a replay of the log against it, and its conflict log.
pub trait ServerView {
    /// A page of the log (td's pull).
    fn pull(&self, query: &PullQuery) -> Result<PullResponse, String>;
    /// The project's shard file (on a cluster, its current owner's).
    fn shard_path(&self) -> Result<PathBuf, String>;
    /// Replays the log into a scratch projection and compares it with the live one.
    fn rebuild_check(&self) -> Result<RebuildReport, String>;
    /// Every conflict recorded, oldest first.
    fn conflicts(&self) -> Result<Vec<Conflict>, String>;
}

impl<T: ServerView + ?Sized> ServerView for &T {
    fn pull(&self, query: &PullQuery) -> Result<PullResponse, String> {
        (**self).pull(query)
    }
    fn shard_path(&self) -> Result<PathBuf, String> {
        (**self).shard_path()
    }
    fn rebuild_check(&self) -> Result<RebuildReport, String> {
        (**self).rebuild_check()
    }
    fn conflicts(&self) -> Result<Vec<Conflict>, String> {
        (**self).conflicts()
    }
}

/// A project of a store in this process.
impl ServerView for Project {
    fn pull(&self, query: &PullQuery) -> Result<PullResponse, String> {
        Project::pull(self, query).map_err(|e| e.to_string())
    }

    fn shard_path(&self) -> Result<PathBuf, String> {
        Ok(self.path().to_path_buf())
    }

    fn rebuild_check(&self) -> Result<RebuildReport, String> {
        Project::rebuild_check(self).map_err(|e| e.to_string())
    }

    fn conflicts(&self) -> Result<Vec<Conflict>, String> {
        let filter = ConflictFilter {
            limit: Some(10_000),
            ..Default::default()
        };
        Project::conflicts(self, &filter).map_err(|e| e.to_string())
    }
}

/// What the checks judge: one project on a server and the client replicas syncing it.
pub struct Subject<'a> {
    pub server: Box<dyn ServerView + 'a>,
    pub replicas: Vec<Replica<'a>>,
}

/// One client's td database, as the checks see it.
pub struct Replica<'a> {
    /// How failures and traces name it (`client 0`, `source`, `fresh 1`).
    pub name: String,
    pub device_id: &'a str,
    pub db: &'a TdDatabase,
    /// Issues it created: it and the server must both hold them (read-your-writes).
    pub created_issues: &'a [String],
    /// Whether rows td never sends (no id, unknown or never-synced entity type, unreadable
    /// payload) may stay pending. A real td database can hold them; the simulated td never
    /// writes them, so a scenario's clients may not.
    pub may_keep_unsendable: bool,
}

impl<'a> Subject<'a> {
    /// A world's in-process server and clients (`client 0`, `client 1`, …).
    pub fn of_world(world: &'a World, store: &'a Tenants) -> Subject<'a> {
        Subject {
            server: Box::new(store.project(&world.tenant, &world.project)),
            replicas: world_replicas(world),
        }
    }

    /// Every conflict the server recorded, its devices named after the replicas.
    pub fn conflict_views(&self) -> Vec<ConflictView> {
        let name = |device: &str| device_name(&self.replicas, device);
        self.server
            .conflicts()
            .unwrap_or_default()
            .into_iter()
            .map(|c| ConflictView {
                id: c.id,
                entity_type: c.entity_type,
                entity_id: c.entity_id,
                fields: c.fields,
                clobbered: c.clobbered,
                clobbered_seq: c.clobbered_seq,
                clobbered_by: c.clobbered_device.as_deref().map(name),
                winner: c.winner,
                winning_seq: c.winning_seq,
                winning_by: name(&c.winning_device),
            })
            .collect()
    }
}

fn world_replicas(world: &World) -> Vec<Replica<'_>> {
    world
        .clients
        .iter()
        .enumerate()
        .map(|(i, sim)| Replica {
            name: format!("client {i}"),
            device_id: &sim.identity.device_id,
            db: sim.sync().db(),
            created_issues: &sim.created_issues,
            may_keep_unsendable: false,
        })
        .collect()
}

/// The replica a device id belongs to, or the id itself.
fn device_name(replicas: &[Replica<'_>], device: &str) -> String {
    replicas
        .iter()
        .find(|r| r.device_id == device)
        .map_or_else(|| device.to_string(), |r| r.name.clone())
}

/// Brings the world to rest: heal the network, then push and pull everywhere until nothing
/// moves. Returns the number of rounds.
pub fn quiesce(world: &mut World) -> Result<usize, Box<Failure>> {
    world.heal().map_err(|e| Box::new(broken(&e)))?;
    let clients: Vec<(String, &SyncClient<_>)> = world
        .clients
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("client {i}"), c.sync()))
        .collect();
    settle(&clients)
}

/// Pushes, then pulls, on every client until a round moves nothing (at most 10 rounds).
/// Returns the number of rounds.
pub fn settle<T: Transport>(clients: &[(String, &SyncClient<T>)]) -> Result<usize, Box<Failure>> {
    for round in 1..=10 {
        let mut moved = false;
        for (name, c) in clients {
            let r = c
                .push()
                .map_err(|e| Box::new(quiescence(name, "push", &e)))?;
            moved |= r.accepted > 0 || r.duplicates > 0;
        }
        for (name, c) in clients {
            let r = c
                .pull()
                .map_err(|e| Box::new(quiescence(name, "pull", &e)))?;
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

fn quiescence(name: &str, what: &str, e: &dyn std::fmt::Display) -> Failure {
    failure(
        "quiescence",
        format!("{name}: {what} failed on a healed network: {e}"),
    )
}

/// A failure with no entity, diff or trace.
pub fn failure(kind: &str, message: String) -> Failure {
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
    match with_subject(world, check_subject) {
        Some(found) => out.extend(found),
        None => out.push(failure("quiescence", "the server is down".into())),
    }
    out
}

/// Calls `f` with the world's server (in this process, or the processes of an HTTP or cluster
/// run) and clients; None when the server is down.
pub fn with_subject<R>(world: &World, f: impl FnOnce(&Subject<'_>) -> R) -> Option<R> {
    match &world.remote {
        Some(remote) => {
            let subject = Subject {
                server: Box::new(remote.as_ref()),
                replicas: world_replicas(world),
            };
            Some(f(&subject))
        }
        None => {
            let store = world.server.get()?;
            Some(f(&Subject::of_world(world, &store)))
        }
    }
}

/// Runs every check on a subject at rest.
pub fn check_subject(s: &Subject<'_>) -> Vec<Failure> {
    let log = match full_log(s) {
        Ok(log) => log,
        Err(e) => {
            return vec![failure(
                "quiescence",
                format!("reading the server log: {e}"),
            )];
        }
    };
    // The rebuild goes first: it also opens the shard of a project nobody wrote to, which
    // the projection read below needs on disk.
    let mut out = match s.server.rebuild_check() {
        Ok(r) if r.matches => vec![],
        Ok(r) => vec![failure(
            "rebuild",
            format!(
                "replaying the log differs from the projection: {}",
                r.divergence.unwrap_or_default()
            ),
        )],
        Err(e) => vec![failure("rebuild", e.to_string())],
    };
    out.extend(check_replicas(s, &log));
    out.extend(check_log(s, &log));
    out.extend(check_conflicts(s, &log));
    out
}

/// The server's whole log, in order.
fn full_log(s: &Subject<'_>) -> Result<Vec<PullEvent>, String> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let q = PullQuery {
            after_server_seq: after,
            limit: Some(10_000),
            exclude_client: None,
        };
        let page = s.server.pull(&q)?;
        if page.events.is_empty() {
            return Ok(out);
        }
        after = page.last_server_seq;
        out.extend(page.events);
    }
}

fn projection(s: &Subject<'_>) -> Result<Dump, String> {
    let conn = rusqlite::Connection::open_with_flags(
        s.server.shard_path()?,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .map_err(|e| e.to_string())?;
    Dump::read(&conn).map_err(|e| e.to_string())
}

fn check_replicas(s: &Subject<'_>, log: &[PullEvent]) -> Vec<Failure> {
    let mut out = Vec::new();
    let server = match projection(s) {
        Ok(d) => d,
        Err(e) => {
            return vec![failure(
                "diverged",
                format!("reading the server projection: {e}"),
            )];
        }
    };
    let (tolerances, _) = tolerances();
    for r in &s.replicas {
        let name = &r.name;
        let replica = match Dump::read(r.db.connection()) {
            Ok(d) => d,
            Err(e) => {
                out.push(failure(
                    "diverged",
                    format!("{name}: reading its database: {e}"),
                ));
                continue;
            }
        };
        let undone = undone_by_td_bugs(log, r.device_id);
        let (without_undone, replica_without_undone);
        let (server, replica) = if undone.is_empty() {
            (&server, &replica)
        } else {
            without_undone = without_rows(&server, &undone);
            replica_without_undone = without_rows(&replica, &undone);
            (&without_undone, &replica_without_undone)
        };
        if let Some(d) = server.first_difference_with(replica, &tolerances) {
            let (table, id) = (d.entity.as_str().to_string(), d.id.clone());
            let diff = match &d.kind {
                DivergenceKind::Value { .. } => row_diff(server, replica, d.entity, &id),
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
                message: format!("{name} differs from the server (left = server): {d}"),
                entity: Some((table.clone(), id.clone())),
                diff,
                trace: trace_replicas(&s.replicas, log, d.entity, &id),
            });
        }
        for issue in r.created_issues {
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
                        "{name} created {issue}; on its side: {mine}, on the server: {theirs}"
                    ),
                    entity: Some(("issues".into(), issue.clone())),
                    diff: Vec::new(),
                    trace: trace_replicas(&s.replicas, log, EntityType::Issues, issue),
                });
            }
        }
    }
    out
}

/// The events `td undo` logs that no replica can apply (their tables have no `deleted_at`),
/// while the undo itself changed the author's row: a handoff's undo deletes it, a board
/// delete's undo inserts the board again.
const TD_UNDO_BUGS: &[(EntityType, &str)] = &[
    (EntityType::Handoffs, "soft_delete"),
    (EntityType::Boards, "restore"),
];

/// The rows `device` changed through [`TD_UNDO_BUGS`].
fn undone_by_td_bugs(log: &[PullEvent], device: &str) -> Vec<(EntityType, String)> {
    log.iter()
        .filter(|e| e.device_id == device)
        .filter_map(|e| {
            let entity = EntityType::parse(&e.entity_type)?;
            TD_UNDO_BUGS
                .contains(&(entity, e.action_type.as_str()))
                .then(|| (entity, e.entity_id.clone()))
        })
        .collect()
}

/// A copy of `dump` without some rows and the rows hanging off them (their cascade children).
fn without_rows(dump: &Dump, rows: &[(EntityType, String)]) -> Dump {
    let mut out = dump.clone();
    for (entity, id) in rows {
        if let Some(t) = out.tables.get_mut(entity) {
            t.rows.remove(id);
        }
        for t in out.tables.values_mut() {
            let cascades = t.cascades.clone();
            t.rows.retain(|_, row| {
                !cascades.iter().any(|(column, parent)| {
                    parent == entity && matches!(row.get(column), Some(Norm::Text(v)) if v == id)
                })
            });
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
    trace_replicas(&world_replicas(world), log, entity, id)
}

fn trace_replicas(
    replicas: &[Replica<'_>],
    log: &[PullEvent],
    entity: EntityType,
    id: &str,
) -> Vec<TraceLine> {
    let mut out: Vec<TraceLine> = log
        .iter()
        .filter(|e| e.entity_id == id && EntityType::parse(&e.entity_type) == Some(entity))
        .map(|e| TraceLine {
            replica: "server".into(),
            seq: Some(e.server_seq),
            action: e.action_type.clone(),
            device: device_name(replicas, &e.device_id),
            detail: change_summary(entity, e.payload.get()),
        })
        .collect();
    for r in replicas {
        let conn = r.db.connection();
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
                replica: r.name.clone(),
                seq,
                action: format!(
                    "{action} (rowid {rowid}{})",
                    if undone != 0 { ", undone" } else { "" }
                ),
                device: r.name.clone(),
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

fn check_log(s: &Subject<'_>, log: &[PullEvent]) -> Vec<Failure> {
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
    for r in &s.replicas {
        let name = &r.name;
        let conn = r.db.connection();
        let rows: Vec<(i64, Option<i64>)> = match conn
            // Rows undone after they were pushed stay in the log, so every synced row counts.
            .prepare("SELECT rowid, server_seq FROM action_log WHERE synced_at IS NOT NULL")
            .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        {
            Ok(rows) => rows,
            Err(e) => {
                out.push(failure(
                    "lost",
                    format!("{name}: reading its action log: {e}"),
                ));
                continue;
            }
        };
        sent += rows.len();
        // A row whose push was logged but whose ack was lost, then undone before a re-push,
        // is never marked: td does not send undone rows. It still came from this row.
        sent += conn
            .prepare("SELECT rowid FROM action_log WHERE synced_at IS NULL AND undone != 0")
            .and_then(|mut s| {
                s.query_map([], |r| r.get::<_, i64>(0))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .unwrap_or_default()
            .into_iter()
            .filter(|rowid| logged.contains_key(&(r.device_id.to_string(), *rowid)))
            .count();
        for (rowid, seq) in rows {
            let key = (r.device_id.to_string(), rowid);
            match (logged.get(&key), seq) {
                (Some(s), Some(mine)) if *s == mine => {}
                (found, mine) => out.push(failure(
                    "lost",
                    format!("{name} action_log rowid {rowid} (synced as seq {mine:?}) is logged as {found:?}"),
                )),
            }
        }
        let kept = if r.may_keep_unsendable {
            r.db.pending_after(0, usize::MAX)
                .map_or(0, |p| p.unsendable.len() as i64)
        } else {
            0
        };
        let pending = r.db.pending_count().unwrap_or(-1) - kept;
        if pending != 0 {
            out.push(failure(
                "lost",
                format!("{name} still has {pending} pending row(s) after quiescence"),
            ));
        }
    }
    // The server's own events (restores, dependency-cycle repairs) were sent by no client.
    let own = log.iter().filter(|e| e.device_id == SERVER_DEVICE).count();
    if sent + own != log.len() {
        out.push(failure(
            "applied-twice",
            format!(
                "the log holds {} events ({own} the server's own) but the clients sent {sent} rows",
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
            // An update of a row that does not exist changes nothing (updates never create).
            "update" if !prev.is_empty() && !row.is_empty() => {
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

fn check_conflicts(s: &Subject<'_>, log: &[PullEvent]) -> Vec<Failure> {
    let conflicts = match s.server.conflicts() {
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
            trace: trace_replicas(&s.replicas, log, EntityType::Issues, &id),
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
