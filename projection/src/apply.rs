//! td's apply rules (`../shared/reference/td-local-db-and-apply-semantics.md` §2.3–2.5), one event
//! at a time, on any connection holding td's synced tables: a tdsync shard's projection or a td
//! client database. Both run this code, which is why they converge.
//!
//! Where td does `INSERT OR REPLACE`, this does an upsert that writes the same row — payload
//! columns from the payload, every other column back to its default — without deleting the
//! old row first, so `ON DELETE CASCADE` children survive (td's REPLACE silently drops them).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use rusqlite::{Connection, ToSql, types::Value as SqlValue};
use serde_json::{Map, Value};
use tdsync_protocol::{ActionType, EntityType, Envelope, timestamp};

use crate::{
    failure::ApplyError,
    table::{Schema, TableInfo},
    value::{Row, read_row, same_value, to_sql},
};

/// One event to apply, as stored in a shard's log or received on pull.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    pub server_seq: i64,
    pub device_id: &'a str,
    pub action_type: &'a str,
    pub entity_type: &'a str,
    pub entity_id: &'a str,
    /// The whole envelope text `{"new_data":…,"previous_data":…,"schema_version":1}`.
    pub payload: &'a str,
    pub client_timestamp: &'a str,
}

/// What applying one event did.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// A create inserted a new row.
    Inserted,
    /// A create, or an update without a usable merge, rewrote an existing row in full.
    Replaced,
    /// An update with `previous_data` wrote only the fields that changed.
    Merged(Vec<String>),
    Deleted,
    SoftDeleted,
    Restored,
    /// Nothing to do (the row is missing and the rule never resurrects).
    Unchanged,
    /// A child whose cascade parent is gone: dropped on purpose, recorded, never retried.
    Orphaned(Orphan),
    /// A dependency create that would close a cycle and loses under td's tie-break.
    CycleSkipped,
}

/// A child row whose `ON DELETE CASCADE` parent does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    pub column: String,
    pub parent_table: String,
    pub parent_id: String,
}

impl std::fmt::Display for Orphan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} references missing {}/{}",
            self.column, self.parent_table, self.parent_id
        )
    }
}

/// The outcome of one event, with what conflict bookkeeping needs.
#[derive(Debug, Clone)]
pub struct Applied {
    pub entity: EntityType,
    pub effect: Effect,
    /// The row as it was before this event wrote it: None when it did not exist, and for a
    /// field merge that clobbered nothing (only the changed fields were read).
    pub before: Option<Row>,
    /// The row after the event, read only when the write may have clobbered something (it is
    /// the "winning" side of a conflict); None otherwise, and when the row is gone.
    pub after: Option<Row>,
    /// Columns whose value this write overwrote without its writer having seen that value
    /// (see [`unseen_columns`]). Empty for fresh inserts and writes without a known view.
    pub clobbered: Vec<String>,
}

impl Applied {
    /// td's notion of an overwrite: the upsert path replaced an existing row. td clients use it
    /// (with author device and last-sync time) to fill their `sync_conflicts` table.
    pub fn overwrote_existing_row(&self) -> bool {
        matches!(self.effect, Effect::Replaced) && self.before.is_some()
    }

    pub fn changed_anything(&self) -> bool {
        !matches!(
            self.effect,
            Effect::Unchanged | Effect::Orphaned(_) | Effect::CycleSkipped
        )
    }
}

/// Applies events to the synced tables of one database.
#[derive(Debug)]
pub struct Applier {
    schema: Schema,
    // Statement text per (table, statement kind, column set): building it is most of the cost
    // of a small write, and the same few shapes repeat for every event.
    sql: Mutex<HashMap<(EntityType, SqlKind, u64), Arc<str>>>,
    #[cfg(feature = "fault-injection")]
    fault: Option<ApplyFault>,
}

/// Deliberately wrong apply rules, compiled only into test builds (feature
/// `fault-injection`): switched on for one replica, they must make the harness's oracle fail.
#[cfg(feature = "fault-injection")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyFault {
    /// Updates ignore `previous_data` and rewrite the whole row, so concurrent edits of
    /// different fields clobber each other on this replica only.
    MergeIgnoresPreviousData,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SqlKind {
    Upsert,
    Merge,
    SelectSome,
    ClearUnique(usize),
}

/// `updated_at` moves on every write, so overwriting it says nothing about lost work.
const BOOKKEEPING_COLUMNS: &[&str] = &["id", "updated_at"];

impl Applier {
    /// Reads the synced tables' schema from `conn` (the database the events will be applied to).
    pub fn new(conn: &Connection) -> rusqlite::Result<Applier> {
        Ok(Applier {
            schema: Schema::load(conn)?,
            sql: Mutex::new(HashMap::new()),
            #[cfg(feature = "fault-injection")]
            fault: None,
        })
    }

    /// Switches a deliberately wrong rule on for this replica (tests of the oracle only).
    #[cfg(feature = "fault-injection")]
    pub fn inject_fault(&mut self, fault: Option<ApplyFault>) {
        self.fault = fault;
    }

    /// The cached statement text for a shape, built on first use.
    fn sql(
        &self,
        entity: EntityType,
        kind: SqlKind,
        shape: Option<u64>,
        build: impl FnOnce() -> String,
    ) -> Arc<str> {
        let Some(shape) = shape else {
            return Arc::from(build());
        };
        let mut cache = self.sql.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .entry((entity, kind, shape))
            .or_insert_with(|| Arc::from(build()))
            .clone()
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Applies one event, with the before-image and clobber detection live replicas need.
    /// Errors leave earlier statements of the same event in place, as td's apply does; callers
    /// decide from [`ApplyError::is_permanent`] whether to quarantine.
    pub fn apply(&self, conn: &Connection, ev: &Event<'_>) -> Result<Applied, ApplyError> {
        self.apply_with(conn, ev, Tracking::Changes)
    }

    /// Applies one event exactly as [`apply`](Self::apply) does, without reading before-images
    /// or looking for clobbers: for re-deriving a projection from a log that was already
    /// checked once (rebuilds, state as of a seq). `before`, `after` and `clobbered` are empty.
    pub fn replay(&self, conn: &Connection, ev: &Event<'_>) -> Result<Applied, ApplyError> {
        self.apply_with(conn, ev, Tracking::None)
    }

    fn apply_with(
        &self,
        conn: &Connection,
        ev: &Event<'_>,
        tracking: Tracking,
    ) -> Result<Applied, ApplyError> {
        let entity = EntityType::parse(ev.entity_type)
            .filter(|e| e.is_synced())
            .ok_or_else(|| ApplyError::InvalidEntityType(ev.entity_type.to_string()))?;
        if ev.entity_id.is_empty() {
            return Err(ApplyError::EmptyEntityId(ev.action_type.to_string()));
        }
        let action = ActionType::parse_canonical(ev.action_type)
            .ok_or_else(|| ApplyError::UnknownActionType(ev.action_type.to_string()))?;
        let table = self
            .schema
            .table(entity)
            .ok_or(ApplyError::MissingTable(entity.table()))?;
        #[cfg_attr(not(feature = "fault-injection"), allow(unused_mut))]
        let mut env = Envelope::parse(entity, ev.payload)?;
        #[cfg(feature = "fault-injection")]
        if self.fault == Some(ApplyFault::MergeIgnoresPreviousData) && action == ActionType::Update
        {
            env.previous_data.clear();
        }
        let (new_data, previous_data) = if entity == EntityType::Issues {
            (unwrap_issue(env.new_data), unwrap_issue(env.previous_data))
        } else {
            (env.new_data, env.previous_data)
        };
        if tracking == Tracking::Changes
            && action == ActionType::Update
            && !previous_data.is_empty()
            && let Some(applied) =
                self.merge_unclobbered(conn, table, ev, &previous_data, &new_data)?
        {
            return Ok(applied);
        }
        let before = match tracking {
            Tracking::Changes => {
                read_row(conn, table, ev.entity_id).map_err(|e| sql_err(table, ev, e))?
            }
            Tracking::None => None,
        };

        let op = Op {
            conn,
            table,
            applier: self,
            ev,
            before: &before,
            tracking,
        };
        let (effect, view) = match action {
            ActionType::Create => {
                if entity == EntityType::IssueDependencies && op.cycle_loses(&new_data)? {
                    (Effect::CycleSkipped, View::Unknown)
                } else {
                    (op.upsert(new_data, false)?, View::Nothing)
                }
            }
            ActionType::Update if previous_data.is_empty() => {
                (op.upsert(new_data, true)?, View::Unknown)
            }
            ActionType::Update => {
                let effect = op.merge(&previous_data, new_data)?;
                (effect, View::Saw(&previous_data))
            }
            ActionType::Delete => (op.delete()?, view_of(&previous_data)),
            ActionType::SoftDelete => (op.soft_delete()?, view_of(&previous_data)),
            ActionType::Restore => (op.restore()?, view_of(&previous_data)),
        };

        // Only columns whose old value the writer had not seen can be clobbered; read the row
        // back only when there are such columns.
        let candidates = match &before {
            Some(b) if effect != Effect::Unchanged => unseen_columns(table, b, view),
            _ => Vec::new(),
        };
        let (after, clobbered) = if candidates.is_empty() {
            (None, Vec::new())
        } else {
            let after = match effect {
                Effect::Deleted => None,
                _ => read_row(conn, table, ev.entity_id).map_err(|e| sql_err(table, ev, e))?,
            };
            let clobbered = candidates
                .iter()
                .filter(|&&i| match (&after, &before) {
                    (Some(a), Some(b)) => !same_value(&table.columns[i], b.at(i), a.at(i)),
                    _ => true,
                })
                .map(|&i| table.columns[i].name.clone())
                .collect();
            (after, clobbered)
        };
        Ok(Applied {
            entity,
            effect,
            before,
            after,
            clobbered,
        })
    }
}

impl Applier {
    /// The common update: a merge of changed fields over values its writer had seen. Reads only
    /// the changed columns' old values; when one of them is a possible clobber (or the row is
    /// missing, or there is nothing to merge) it returns None and the caller takes the general
    /// path, which reads the whole row and records what is overwritten.
    fn merge_unclobbered(
        &self,
        conn: &Connection,
        table: &TableInfo,
        ev: &Event<'_>,
        previous: &Map<String, Value>,
        new_data: &Map<String, Value>,
    ) -> Result<Option<Applied>, ApplyError> {
        let keys = changed_columns(table, previous, new_data);
        if keys.is_empty() {
            return Ok(None);
        }
        let positions = || keys.iter().map(|(i, _)| *i);
        let select = self.sql(
            table.entity,
            SqlKind::SelectSome,
            shape(positions()),
            || {
                let cols: Vec<&str> = positions()
                    .map(|i| table.columns[i].name.as_str())
                    .collect();
                format!(
                    "SELECT {} FROM {} WHERE id = ?1",
                    cols.join(", "),
                    table.name()
                )
            },
        );
        let err = |e| sql_err(table, ev, e);
        let mut stmt = conn.prepare_cached(&select).map_err(err)?;
        let mut rows = stmt.query([ev.entity_id]).map_err(err)?;
        let Some(row) = rows.next().map_err(err)? else {
            return Ok(None);
        };
        for (n, (i, new_value)) in keys.iter().enumerate() {
            let col = &table.columns[*i];
            if !can_clobber(table, col) {
                continue;
            }
            let old: SqlValue = row.get(n).map_err(err)?;
            let seen = to_sql(table, col, previous.get(&col.name).unwrap_or(&Value::Null));
            if !same_value(col, &old, &seen) && !same_value(col, &old, new_value) {
                return Ok(None);
            }
        }
        drop(rows);
        drop(stmt);
        let op = Op {
            conn,
            table,
            applier: self,
            ev,
            before: &None,
            tracking: Tracking::Changes,
        };
        match op.update_columns(&keys) {
            Ok(n) if n > 0 => Ok(Some(Applied {
                entity: table.entity,
                effect: Effect::Merged(
                    positions().map(|i| table.columns[i].name.clone()).collect(),
                ),
                before: None,
                after: None,
                clobbered: Vec::new(),
            })),
            // A failed statement changed nothing; the general path repeats it with td's fallback.
            _ => Ok(None),
        }
    }
}

/// The columns (by position, in table order) whose value differs between the writer's before
/// and after images, with the value to write; keys that are not columns are dropped.
fn changed_columns(
    table: &TableInfo,
    previous: &Map<String, Value>,
    new_data: &Map<String, Value>,
) -> Vec<(usize, SqlValue)> {
    let mut keys: Vec<(usize, SqlValue)> = diff(previous, new_data)
        .iter()
        .filter_map(|(k, v)| {
            let i = table.position(k)?;
            Some((i, to_sql(table, &table.columns[i], v)))
        })
        .collect();
    keys.sort_by_key(|(i, _)| *i);
    keys
}

/// Whether a write records what it overwrote.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tracking {
    Changes,
    None,
}

/// What the writer of an event had seen of the row it wrote.
#[derive(Clone, Copy)]
enum View<'a> {
    /// A create: the writer assumed no row, so every differing value was unseen.
    Nothing,
    /// The event's `previous_data`.
    Saw(&'a Map<String, Value>),
    /// No record of what the writer saw (e.g. td's work-session updates): never a conflict.
    Unknown,
}

fn view_of(previous: &Map<String, Value>) -> View<'_> {
    if previous.is_empty() {
        View::Unknown
    } else {
        View::Saw(previous)
    }
}

/// Positions of the columns whose value before the write the writer had not seen: the
/// candidates for a clobber (a candidate the write actually changed is one). `updated_at` is
/// bookkeeping (every write moves it) and never counts.
fn unseen_columns(table: &TableInfo, before: &Row, view: View<'_>) -> Vec<usize> {
    let seen = match view {
        View::Unknown => return Vec::new(),
        View::Nothing => None,
        View::Saw(seen) => Some(seen),
    };
    table
        .columns
        .iter()
        .enumerate()
        .filter(|(_, col)| can_clobber(table, col))
        .filter(|(i, col)| match seen {
            None => true,
            Some(seen) => {
                let seen_value = to_sql(table, col, seen.get(&col.name).unwrap_or(&Value::Null));
                !same_value(col, before.at(*i), &seen_value)
            }
        })
        .map(|(i, _)| i)
        .collect()
}

/// Whether overwriting this column can lose work (not bookkeeping, not a local-only field).
fn can_clobber(table: &TableInfo, col: &crate::table::Column) -> bool {
    !BOOKKEEPING_COLUMNS.contains(&col.name.as_str())
        && !table
            .entity
            .local_only_fields()
            .contains(&col.name.as_str())
}

/// td wraps the issue for some review actions as `{"issue":{…},…}`.
fn unwrap_issue(mut fields: Map<String, Value>) -> Map<String, Value> {
    match fields.remove("issue") {
        Some(Value::Object(inner)) => inner,
        Some(other) => {
            fields.insert("issue".into(), other);
            fields
        }
        None => fields,
    }
}

fn sql_err(table: &TableInfo, ev: &Event<'_>, e: rusqlite::Error) -> ApplyError {
    ApplyError::sql(
        format!("{} {}/{}", ev.action_type, table.name(), ev.entity_id),
        e,
    )
}

/// One event's application, with the pieces every rule needs.
struct Op<'a> {
    conn: &'a Connection,
    table: &'a TableInfo,
    applier: &'a Applier,
    ev: &'a Event<'a>,
    before: &'a Option<Row>,
    tracking: Tracking,
}

impl Op<'_> {
    fn err(&self, e: rusqlite::Error) -> ApplyError {
        sql_err(self.table, self.ev, e)
    }

    /// Whether the event's row exists (known from the before-image when it was read).
    fn exists(&self) -> Result<bool, ApplyError> {
        if self.tracking == Tracking::Changes {
            return Ok(self.before.is_some());
        }
        let sql = format!("SELECT 1 FROM {} WHERE id = ?1", self.table.name());
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        stmt.exists([self.ev.entity_id]).map_err(|e| self.err(e))
    }

    fn exec(&self, sql: &str, params: &[&dyn ToSql]) -> Result<usize, ApplyError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        stmt.execute(params).map_err(|e| self.err(e))
    }

    /// create (and update without previous_data): the whole row from `new_data`; columns the
    /// payload lacks take their defaults. `only_existing` never inserts (updates never
    /// resurrect a missing or hard-deleted row).
    fn upsert(
        &self,
        mut fields: Map<String, Value>,
        only_existing: bool,
    ) -> Result<Effect, ApplyError> {
        let table = self.table;
        let id = self.ev.entity_id;
        if fields.is_empty() {
            return Err(ApplyError::NoFields {
                table: table.name(),
                id: id.to_string(),
            });
        }
        let exists = self.exists()?;
        if only_existing && !exists {
            return Ok(Effect::Unchanged);
        }
        fields.insert("id".into(), Value::String(id.to_string()));
        if !exists && let Some(orphan) = self.missing_parent(&fields)? {
            return Ok(Effect::Orphaned(orphan));
        }
        // Payload columns in table order; the set of them is the statement's shape.
        let mut cols: Vec<(usize, SqlValue)> = Vec::with_capacity(fields.len());
        for (name, value) in &fields {
            if let Some(i) = table.position(name) {
                cols.push((i, to_sql(table, &table.columns[i], value)));
            }
        }
        if cols.len() <= 1 {
            return Err(ApplyError::NoKnownFields {
                table: table.name(),
                id: id.to_string(),
            });
        }
        cols.sort_by_key(|(i, _)| *i);
        self.clear_unique_collisions(&cols)?;

        let sql = self.applier.sql(
            table.entity,
            SqlKind::Upsert,
            shape(cols.iter().map(|(i, _)| *i)),
            || upsert_sql(table, &cols),
        );
        let params: Vec<&dyn ToSql> = cols.iter().map(|(_, v)| v as &dyn ToSql).collect();
        self.exec(&sql, &params)?;
        Ok(if exists {
            Effect::Replaced
        } else {
            Effect::Inserted
        })
    }

    /// td's REPLACE also removes rows that collide on another UNIQUE key (e.g. a legacy
    /// position with a non-deterministic id). Those tables have no children, so this deletes
    /// nothing else.
    fn clear_unique_collisions(&self, cols: &[(usize, SqlValue)]) -> Result<(), ApplyError> {
        let table = self.table;
        for (k, key) in table.unique_keys.iter().enumerate() {
            let values: Option<Vec<&SqlValue>> = key
                .iter()
                .map(|name| {
                    let pos = table.position(name)?;
                    cols.iter().find(|(i, _)| *i == pos).map(|(_, v)| v)
                })
                .collect();
            let Some(values) = values else { continue };
            let sql = self
                .applier
                .sql(table.entity, SqlKind::ClearUnique(k), Some(0), || {
                    let cond: Vec<String> = key
                        .iter()
                        .enumerate()
                        .map(|(i, k)| format!("{k} = ?{}", i + 2))
                        .collect();
                    format!(
                        "DELETE FROM {} WHERE id != ?1 AND {}",
                        table.name(),
                        cond.join(" AND ")
                    )
                });
            let id = self.ev.entity_id;
            let mut params: Vec<&dyn ToSql> = vec![&id];
            params.extend(values.iter().map(|v| *v as &dyn ToSql));
            self.exec(&sql, &params)?;
        }
        Ok(())
    }

    /// The first cascade parent a fresh child references that does not exist. Only when the
    /// database enforces foreign keys, as td: without enforcement the insert would succeed.
    fn missing_parent(&self, fields: &Map<String, Value>) -> Result<Option<Orphan>, ApplyError> {
        if !self.applier.schema.foreign_keys_enforced {
            return Ok(None);
        }
        for fk in &self.table.cascade_parents {
            let parent_id = match fields.get(&fk.column) {
                Some(Value::String(s)) if !s.is_empty() => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => continue,
            };
            let Some(parent) = EntityType::parse(&fk.parent_table)
                .and_then(|e| self.applier.schema.table(e))
                .filter(|t| t.has_column(&fk.parent_column))
            else {
                // Cannot check here; SQLite's own enforcement decides (and then quarantines).
                continue;
            };
            let sql = format!(
                "SELECT 1 FROM {} WHERE {} = ?1 LIMIT 1",
                parent.name(),
                fk.parent_column
            );
            let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
            if !stmt.exists([&parent_id]).map_err(|e| self.err(e))? {
                return Ok(Some(Orphan {
                    column: fk.column.clone(),
                    parent_table: fk.parent_table.clone(),
                    parent_id,
                }));
            }
        }
        Ok(None)
    }

    /// update with previous_data: write only the fields that differ between the writer's before
    /// and after images. td falls back to a whole-row rewrite of an existing row when there is
    /// no difference, no known column among the differences, no such row, or an error.
    fn merge(
        &self,
        previous: &Map<String, Value>,
        new_data: Map<String, Value>,
    ) -> Result<Effect, ApplyError> {
        let keys = changed_columns(self.table, previous, &new_data);
        if keys.is_empty() {
            return self.upsert(new_data, true);
        }
        match self.update_columns(&keys) {
            Ok(n) if n > 0 => Ok(Effect::Merged(
                keys.iter()
                    .map(|(i, _)| self.table.columns[*i].name.clone())
                    .collect(),
            )),
            _ => self.upsert(new_data, true),
        }
    }

    /// `UPDATE … SET <these columns> WHERE id = ?`; the number of rows it matched.
    fn update_columns(&self, keys: &[(usize, SqlValue)]) -> Result<usize, ApplyError> {
        let table = self.table;
        let sql = self.applier.sql(
            table.entity,
            SqlKind::Merge,
            shape(keys.iter().map(|(i, _)| *i)),
            || {
                let set: Vec<String> = keys
                    .iter()
                    .enumerate()
                    .map(|(n, (i, _))| format!("{} = ?{}", table.columns[*i].name, n + 1))
                    .collect();
                format!(
                    "UPDATE {} SET {} WHERE id = ?{}",
                    table.name(),
                    set.join(", "),
                    keys.len() + 1
                )
            },
        );
        let id = self.ev.entity_id;
        let mut params: Vec<&dyn ToSql> = keys.iter().map(|(_, v)| v as &dyn ToSql).collect();
        params.push(&id);
        self.exec(&sql, &params)
    }

    fn delete(&self) -> Result<Effect, ApplyError> {
        let id = self.ev.entity_id;
        if self.table.entity == EntityType::Issues {
            // parent_id has no FK ('' means no parent), so children are unlinked by hand.
            self.exec(
                "UPDATE issues SET parent_id = '' WHERE parent_id = ?1",
                &[&id],
            )?;
        }
        let n = self.exec(
            &format!("DELETE FROM {} WHERE id = ?1", self.table.name()),
            &[&id],
        )?;
        Ok(if n > 0 {
            Effect::Deleted
        } else {
            Effect::Unchanged
        })
    }

    fn soft_delete(&self) -> Result<Effect, ApplyError> {
        let when = event_time(self.ev.client_timestamp);
        let id = self.ev.entity_id;
        let n = self.exec(
            &format!(
                "UPDATE {} SET deleted_at = ?1 WHERE id = ?2",
                self.table.name()
            ),
            &[&when, &id],
        )?;
        Ok(if n > 0 {
            Effect::SoftDeleted
        } else {
            Effect::Unchanged
        })
    }

    fn restore(&self) -> Result<Effect, ApplyError> {
        let when = event_time(self.ev.client_timestamp);
        let id = self.ev.entity_id;
        let n = self.exec(
            &format!(
                "UPDATE {} SET deleted_at = NULL, updated_at = ?1 WHERE id = ?2",
                self.table.name()
            ),
            &[&when, &id],
        )?;
        Ok(if n > 0 {
            Effect::Restored
        } else {
            Effect::Unchanged
        })
    }

    /// td's cycle rule for dependency creates: if the new edge closes a `depends_on` cycle, the
    /// edge whose `issue_id|depends_on_id` sorts first wins; when the incoming one wins, the
    /// reverse edge is removed. Returns true when the incoming edge loses and is skipped.
    fn cycle_loses(&self, new_data: &Map<String, Value>) -> Result<bool, ApplyError> {
        let field = |k: &str| new_data.get(k).and_then(Value::as_str).unwrap_or("");
        let (issue, depends_on) = (field("issue_id"), field("depends_on_id"));
        if issue.is_empty() || depends_on.is_empty() {
            return Ok(false);
        }
        if !self.path_exists(depends_on, issue)? {
            return Ok(false);
        }
        let incoming = format!("{issue}|{depends_on}");
        let reverse = format!("{depends_on}|{issue}");
        if incoming < reverse {
            self.exec(
                "DELETE FROM issue_dependencies WHERE issue_id = ?1 AND depends_on_id = ?2",
                &[&depends_on, &issue],
            )?;
            Ok(false)
        } else {
            Ok(true)
        }
    }

    /// Whether `to` is reachable from `from` along `depends_on` edges (or they are equal).
    fn path_exists(&self, from: &str, to: &str) -> Result<bool, ApplyError> {
        let mut seen = std::collections::HashSet::new();
        let mut stack = vec![from.to_string()];
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT depends_on_id FROM issue_dependencies \
                 WHERE issue_id = ?1 AND relation_type = 'depends_on'",
            )
            .map_err(|e| self.err(e))?;
        while let Some(node) = stack.pop() {
            if node == to {
                return Ok(true);
            }
            if !seen.insert(node.clone()) {
                continue;
            }
            let next: Vec<String> = stmt
                .query_map([&node], |r| r.get(0))
                .and_then(|rows| rows.collect())
                .map_err(|e| self.err(e))?;
            stack.extend(next);
        }
        Ok(false)
    }
}

/// A set of column positions as a bitmask, or None for a column beyond the 64th (td's widest
/// table has 26), in which case the statement text is not cached.
fn shape(positions: impl Iterator<Item = usize>) -> Option<u64> {
    positions
        .map(|i| 1u64.checked_shl(i as u32).filter(|_| i < 64))
        .try_fold(0u64, |m, bit| bit.map(|b| m | b))
}

/// `INSERT … ON CONFLICT(id) DO UPDATE` writing the payload columns and putting every other
/// column back to its default: td's REPLACE without the delete.
fn upsert_sql(table: &TableInfo, cols: &[(usize, SqlValue)]) -> String {
    let names: Vec<&str> = cols
        .iter()
        .map(|(i, _)| table.columns[*i].name.as_str())
        .collect();
    let placeholders: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
    let mut set: Vec<String> = names
        .iter()
        .filter(|n| **n != "id")
        .map(|n| format!("{n} = excluded.{n}"))
        .collect();
    for col in &table.columns {
        if !col.primary_key && !names.contains(&col.name.as_str()) {
            let default = col.default_sql.as_deref().unwrap_or("NULL");
            set.push(format!("{} = {default}", col.name));
        }
    }
    format!(
        "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT(id) DO UPDATE SET {}",
        table.name(),
        names.join(", "),
        placeholders.join(", "),
        set.join(", ")
    )
}

/// The time td binds for soft_delete/restore: the event's client timestamp in td's SQLite text
/// form, or Go's zero time when it cannot be read (as td does).
fn event_time(client_timestamp: &str) -> String {
    match timestamp::parse(client_timestamp) {
        Some(t) => timestamp::format_sqlite(&t),
        None => "0001-01-01 00:00:00+00:00".to_string(),
    }
}

/// Fields that differ between the writer's before and after images: new or changed keys with
/// their new value, removed keys as null. `id` never changes.
fn diff(previous: &Map<String, Value>, current: &Map<String, Value>) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (k, v) in current {
        if k != "id" && !previous.get(k).is_some_and(|old| json_equal(old, v)) {
            out.push((k.clone(), v.clone()));
        }
    }
    for k in previous.keys() {
        if k != "id" && !current.contains_key(k) {
            out.push((k.clone(), Value::Null));
        }
    }
    out
}

/// Equality of decoded JSON as Go compares it: every number is a float64.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_sees_changes_removals_and_float_equality() {
        let prev: Map<String, Value> =
            serde_json::from_str(r#"{"id":"x","a":1,"b":"x","c":[1]}"#).unwrap();
        let new: Map<String, Value> =
            serde_json::from_str(r#"{"id":"y","a":1.0,"b":"y","d":true}"#).unwrap();
        let mut d = diff(&prev, &new);
        d.sort_by(|a, b| a.0.cmp(&b.0));
        let keys: Vec<&str> = d.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, vec!["b", "c", "d"]);
        assert_eq!(d[1].1, Value::Null);
    }
}
