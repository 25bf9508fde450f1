//! Row-by-row comparison of the synced tables of two databases: the convergence check used by
//! the rebuild verification, the property tests and the harness oracle.
//!
//! Values are compared by meaning: timestamps as instants, integral reals as integers.
//! Differences that are not divergence are named here, each with its reason.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use rusqlite::{Connection, types::Value as SqlValue};
use tdsync_protocol::{EntityType, timestamp};

use crate::table::Schema;

/// A value reduced to what it means.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Norm {
    Null,
    Int(i64),
    /// A non-integral real, by its bits.
    Real(u64),
    Text(String),
    /// A timestamp, as nanoseconds since the epoch (UTC).
    Instant(i128),
    Blob(Vec<u8>),
}

impl fmt::Display for Norm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Norm::Null => f.write_str("NULL"),
            Norm::Int(i) => write!(f, "{i}"),
            Norm::Real(bits) => write!(f, "{}", f64::from_bits(*bits)),
            Norm::Text(s) if s.chars().count() > 120 => {
                let head: String = s.chars().take(117).collect();
                write!(f, "{head:?}… ({} chars)", s.chars().count())
            }
            Norm::Text(s) => write!(f, "{s:?}"),
            Norm::Instant(ns) => {
                let secs = (*ns).div_euclid(1_000_000_000) as i64;
                let nanos = (*ns).rem_euclid(1_000_000_000) as u32;
                match chrono::DateTime::from_timestamp(secs, nanos) {
                    Some(t) => write!(f, "{}", t.to_rfc3339()),
                    None => write!(f, "instant({ns})"),
                }
            }
            Norm::Blob(b) => write!(f, "blob({} bytes)", b.len()),
        }
    }
}

/// One table's rows, by id.
#[derive(Debug, Clone, Default)]
pub struct TableDump {
    pub columns: BTreeSet<String>,
    pub rows: BTreeMap<String, BTreeMap<String, Norm>>,
    /// Columns naming a parent whose hard delete removes the row in this database (an
    /// `ON DELETE CASCADE` foreign key, enforced), with the parent's table.
    pub cascades: Vec<(String, EntityType)>,
}

/// The synced tables of one database.
#[derive(Debug, Clone, Default)]
pub struct Dump {
    pub tables: BTreeMap<EntityType, TableDump>,
}

/// The builtin board is created locally by every td database at init and never synced, so
/// its times are per-replica facts, not divergence.
const PER_REPLICA: &[(EntityType, &str, &[&str])] = &[(
    EntityType::Boards,
    "bd-all-issues",
    &["created_at", "updated_at", "last_viewed_at"],
)];

impl Dump {
    /// Reads every synced table present in `conn`.
    pub fn read(conn: &Connection) -> rusqlite::Result<Dump> {
        let schema = Schema::load(conn)?;
        let mut tables = BTreeMap::new();
        for entity in EntityType::SYNCED {
            let Some(info) = schema.table(entity) else {
                continue;
            };
            let local_only = entity.local_only_fields();
            let cols: Vec<&crate::table::Column> = info
                .columns
                .iter()
                .filter(|c| !local_only.contains(&c.name.as_str()))
                .collect();
            let names: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
            let sql = format!(
                "SELECT {} FROM {} ORDER BY id",
                names.join(", "),
                entity.table()
            );
            let mut stmt = conn.prepare(&sql)?;
            let mut rows = stmt.query([])?;
            let cascades = if schema.foreign_keys_enforced {
                info.cascade_parents
                    .iter()
                    .filter(|c| c.parent_column == "id")
                    .filter_map(|c| Some((c.column.clone(), EntityType::parse(&c.parent_table)?)))
                    .collect()
            } else {
                Vec::new()
            };
            let mut dump = TableDump {
                columns: names.iter().map(|s| s.to_string()).collect(),
                rows: BTreeMap::new(),
                cascades,
            };
            while let Some(r) = rows.next()? {
                let mut row = BTreeMap::new();
                for (i, col) in cols.iter().enumerate() {
                    let v: SqlValue = r.get(i)?;
                    row.insert(col.name.clone(), normalize(v, col.is_timestamp()));
                }
                let id = match row.get("id") {
                    Some(Norm::Text(s)) => s.clone(),
                    other => format!("{other:?}"),
                };
                for (e, rid, per_replica) in PER_REPLICA {
                    if *e == entity && *rid == id {
                        for c in *per_replica {
                            row.remove(*c);
                        }
                    }
                }
                dump.rows.insert(id, row);
            }
            tables.insert(entity, dump);
        }
        Ok(Dump { tables })
    }

    /// The first difference between two dumps with no tolerance beyond schema differences
    /// (see [`first_difference_with`](Self::first_difference_with)).
    pub fn first_difference(&self, other: &Dump) -> Option<Divergence> {
        self.first_difference_with(other, &Tolerances::none())
    }

    /// The first difference between two dumps (tables, then rows by id, then columns), over
    /// the tables and columns both sides have: a replica at an older td schema cannot hold
    /// what its schema lacks (those events stay in the server's log, nothing is lost).
    /// Differences `tolerances` names are skipped. None means they agree.
    pub fn first_difference_with(
        &self,
        other: &Dump,
        tolerances: &Tolerances,
    ) -> Option<Divergence> {
        for entity in EntityType::SYNCED {
            let (Some(a), Some(b)) = (self.tables.get(&entity), other.tables.get(&entity)) else {
                continue;
            };
            let common: BTreeSet<&String> = a.columns.intersection(&b.columns).collect();
            let ids: BTreeSet<&String> = a.rows.keys().chain(b.rows.keys()).collect();
            for id in ids {
                let (ra, rb) = match (a.rows.get(id), b.rows.get(id)) {
                    (Some(ra), Some(rb)) => (ra, rb),
                    (Some(row), None) if tolerances.kept_orphan(entity, row, self, other) => {
                        continue;
                    }
                    (None, Some(row)) if tolerances.kept_orphan(entity, row, other, self) => {
                        continue;
                    }
                    (ra, _) => {
                        return Some(Divergence {
                            entity,
                            id: id.clone(),
                            kind: DivergenceKind::RowMissing {
                                on_left: ra.is_none(),
                                row: ra.or(b.rows.get(id)).cloned().unwrap_or_default(),
                            },
                        });
                    }
                };
                for col in &common {
                    let (va, vb) = (ra.get(*col), rb.get(*col));
                    if va != vb && !tolerances.excuses(entity, col, ra, rb) {
                        return Some(Divergence {
                            entity,
                            id: id.clone(),
                            kind: DivergenceKind::Value {
                                column: (*col).clone(),
                                left: va.cloned().unwrap_or(Norm::Null),
                                right: vb.cloned().unwrap_or(Norm::Null),
                            },
                        });
                    }
                }
            }
        }
        None
    }

    /// Total rows across tables.
    pub fn row_count(&self) -> usize {
        self.tables.values().map(|t| t.rows.len()).sum()
    }
}

/// Differences between replicas that td's own protocol produces, each switched on by name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tolerances {
    /// td's local delete moves `updated_at` on the author's row, but the `soft_delete` event
    /// carries only `deleted_at`: while a row stays soft-deleted, its author's `updated_at` may
    /// differ from every other replica's (td's own e2e oracle skips soft-deleted rows).
    pub soft_deleted_updated_at: bool,
    /// td before schema 30 runs without foreign keys (and its older tables declare none): a
    /// row whose parent was hard-deleted (a board's positions) stays there as an orphan, while
    /// a replica that enforces the cascade drops it.
    pub orphans_without_cascade: bool,
}

impl Tolerances {
    /// Exact comparison.
    pub fn none() -> Tolerances {
        Tolerances::default()
    }

    /// What td clients themselves cannot avoid.
    pub fn td() -> Tolerances {
        Tolerances {
            soft_deleted_updated_at: true,
            orphans_without_cascade: true,
        }
    }

    /// Whether `row`, which only `holder` has, is an orphan there that `dropper`'s cascade
    /// removed: `dropper` cascades from a parent `holder` does not, and `holder` lacks that
    /// parent row.
    fn kept_orphan(
        &self,
        entity: EntityType,
        row: &BTreeMap<String, Norm>,
        holder: &Dump,
        dropper: &Dump,
    ) -> bool {
        let (Some(h), Some(d)) = (holder.tables.get(&entity), dropper.tables.get(&entity)) else {
            return false;
        };
        self.orphans_without_cascade
            && d.cascades.iter().any(|cascade| {
                let (column, parent) = cascade;
                !h.cascades.contains(cascade)
                    && matches!(row.get(column), Some(Norm::Text(id)) if !id.is_empty()
                        && holder.tables.get(parent).is_some_and(|t| !t.rows.contains_key(id)))
            })
    }

    fn excuses(
        &self,
        _entity: EntityType,
        column: &str,
        left: &BTreeMap<String, Norm>,
        right: &BTreeMap<String, Norm>,
    ) -> bool {
        let deleted =
            |row: &BTreeMap<String, Norm>| row.get("deleted_at").is_some_and(|v| *v != Norm::Null);
        self.soft_deleted_updated_at && column == "updated_at" && deleted(left) && deleted(right)
    }
}

fn normalize(v: SqlValue, is_timestamp: bool) -> Norm {
    match v {
        SqlValue::Null => Norm::Null,
        SqlValue::Integer(i) => Norm::Int(i),
        SqlValue::Real(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Norm::Int(f as i64),
        SqlValue::Real(f) => Norm::Real(f.to_bits()),
        SqlValue::Text(s) => {
            if is_timestamp
                && let Some(t) = timestamp::parse(&s)
                && let Some(ns) = t.timestamp_nanos_opt()
            {
                return Norm::Instant(i128::from(ns));
            }
            Norm::Text(s)
        }
        // td's Go driver stores some JSON lists as BLOBs where a replica stores TEXT: the same
        // bytes mean the same value.
        SqlValue::Blob(b) => match String::from_utf8(b) {
            Ok(s) => Norm::Text(s),
            Err(e) => Norm::Blob(e.into_bytes()),
        },
    }
}

/// Where two replicas first disagree.
#[derive(Debug, Clone, PartialEq)]
pub struct Divergence {
    pub entity: EntityType,
    pub id: String,
    pub kind: DivergenceKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DivergenceKind {
    RowMissing {
        on_left: bool,
        row: BTreeMap<String, Norm>,
    },
    Value {
        column: String,
        left: Norm,
        right: Norm,
    },
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            DivergenceKind::RowMissing { on_left, row } => {
                write!(
                    f,
                    "{}/{}: row only on the {} side:",
                    self.entity,
                    self.id,
                    if *on_left { "right" } else { "left" }
                )?;
                for (k, v) in row {
                    write!(f, " {k}={v}")?;
                }
                Ok(())
            }
            DivergenceKind::Value {
                column,
                left,
                right,
            } => write!(
                f,
                "{}/{}: column {column}: left {left} ≠ right {right}",
                self.entity, self.id
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::create_synced_tables;

    fn db() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        create_synced_tables(&c).unwrap();
        c
    }

    #[test]
    fn equal_meaning_is_no_difference_and_a_real_change_is_named() {
        let (a, b) = (db(), db());
        a.execute(
            "INSERT INTO issues (id, title, points, created_at, updated_at) \
             VALUES ('td-1','t',2,'2026-01-01T00:00:00Z','2026-01-01T00:00:00Z')",
            [],
        )
        .unwrap();
        b.execute(
            "INSERT INTO issues (id, title, points, created_at, updated_at) \
             VALUES ('td-1','t',2.0,'2026-01-01 00:00:00+00:00','2026-01-01 00:00:00')",
            [],
        )
        .unwrap();
        let (da, db_) = (Dump::read(&a).unwrap(), Dump::read(&b).unwrap());
        assert_eq!(da.first_difference(&db_), None);
        b.execute("UPDATE issues SET title='u'", []).unwrap();
        let d = da.first_difference(&Dump::read(&b).unwrap()).unwrap();
        assert_eq!(d.entity, EntityType::Issues);
        assert_eq!(d.id, "td-1");
        assert!(d.to_string().contains("column title"), "{d}");
    }

    #[test]
    fn missing_rows_are_reported_with_their_side() {
        let (a, b) = (db(), db());
        a.execute(
            "INSERT INTO notes VALUES ('nt-1','t','c','x','x',0,0,NULL)",
            [],
        )
        .unwrap();
        let d = Dump::read(&a)
            .unwrap()
            .first_difference(&Dump::read(&b).unwrap())
            .unwrap();
        assert!(matches!(
            d.kind,
            DivergenceKind::RowMissing { on_left: false, .. }
        ));
    }

    #[test]
    fn an_orphan_kept_where_no_cascade_runs_is_tolerated_by_name() {
        let enforcing = db();
        enforcing.execute_batch("PRAGMA foreign_keys = ON").unwrap();
        let lax = db();
        lax.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
        // The board was hard-deleted everywhere; only the replica without the cascade kept
        // its position.
        lax.execute(
            "INSERT INTO board_issue_positions (id, board_id, issue_id, position, deleted_at) \
             VALUES ('bip-1', 'bd-gone', 'td-1', 1, '2026-01-01T00:00:00Z')",
            [],
        )
        .unwrap();
        let (e, l) = (Dump::read(&enforcing).unwrap(), Dump::read(&lax).unwrap());
        assert!(e.first_difference(&l).is_some(), "exact comparison sees it");
        assert_eq!(e.first_difference_with(&l, &Tolerances::td()), None);
        assert_eq!(l.first_difference_with(&e, &Tolerances::td()), None);
        // A replica whose cascade would have removed it must not hold it.
        let mut cascading = l.clone();
        let positions = EntityType::BoardIssuePositions;
        cascading.tables.get_mut(&positions).unwrap().cascades =
            e.tables[&positions].cascades.clone();
        assert!(!cascading.tables[&positions].cascades.is_empty());
        assert!(
            e.first_difference_with(&cascading, &Tolerances::td())
                .is_some()
        );
    }
}
