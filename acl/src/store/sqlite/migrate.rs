//! The SQLite backend's migrations: numbered SQL files applied in order, the count kept in
//! `PRAGMA user_version`, inside one `BEGIN IMMEDIATE` so two processes opening a fresh file at
//! once cannot both migrate it. `application_id` marks the file as a tdsync control plane so a
//! wrong `--control-plane` path is refused instead of being written into.

use rusqlite::{Connection, TransactionBehavior};

/// 'tdcp' in ASCII.
const APPLICATION_ID: i64 = 0x7464_6370;

const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/sqlite/0001_control_plane.sql"),
    include_str!("../../../migrations/sqlite/0002_people.sql"),
];

#[derive(Debug)]
pub(super) enum MigrateFailure {
    Sql(rusqlite::Error),
    Foreign(String),
}

impl From<rusqlite::Error> for MigrateFailure {
    fn from(e: rusqlite::Error) -> Self {
        MigrateFailure::Sql(e)
    }
}

pub(super) fn migrate(conn: &mut Connection) -> Result<(), MigrateFailure> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let app: i64 = tx.query_row("PRAGMA application_id", [], |r| r.get(0))?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let tables: i64 = tx.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
        [],
        |r| r.get(0),
    )?;
    if app != APPLICATION_ID && (app != 0 || tables > 0) {
        return Err(MigrateFailure::Foreign(
            "this SQLite file is not a tdsync control plane (check --control-plane)".into(),
        ));
    }
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(MigrateFailure::Foreign(format!(
            "the control plane has schema {version}, newer than this tdsync knows ({known}): upgrade tdsync"
        )));
    }
    for sql in &MIGRATIONS[version as usize..] {
        tx.execute_batch(sql)?;
    }
    tx.execute_batch(&format!(
        "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {known};"
    ))?;
    tx.commit()?;
    Ok(())
}
