//! Page size over a project's life. New shards have 1 KiB pages, so the ~50 b-trees of an empty
//! shard cost ~50 KB (`template`). Small pages make a busy log slow, though — each event's ~1 KB
//! payload spills across pages, and b-trees grow deep (push throughput falls by a third in the
//! engine bench). A shard whose log would reach [`GROWN_AT_EVENTS`] is therefore rewritten once
//! with 4 KiB pages, before the write that takes it there (a backfill's first 500-event batch
//! goes straight into big pages), or when it is next opened.
//!
//! SQLite fixes a WAL database's page size; changing it takes leaving WAL mode, `VACUUM`, and
//! returning, which needs the file to itself. So the rewrite runs under the writer lock with no
//! reader connection of this shard in use (idle ones are closed first); when another
//! connection — a reader at work, or another process — holds the file, it waits for a later push.

use rusqlite::Connection;

/// The page size of a grown shard (SQLite's default).
pub(crate) const GROWN_PAGE_SIZE: i64 = 4096;
/// Events from which a shard with smaller pages is rewritten with [`GROWN_PAGE_SIZE`] pages: the
/// rewrite of a shard this small takes a few milliseconds, and a project this busy no longer
/// counts as nearly empty.
pub(crate) const GROWN_AT_EVENTS: i64 = 200;

pub(crate) fn page_size(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA page_size", [], |r| r.get(0))
}

/// Whether a shard of `events` events with pages of `page_size` bytes should be rewritten.
pub(crate) fn should_grow(page_size: i64, events: i64) -> bool {
    page_size < GROWN_PAGE_SIZE && events >= GROWN_AT_EVENTS
}

/// Rewrites the database of `conn` (which must be its only connection) with big pages and
/// returns to WAL mode. Returns whether the page size changed: `false` when another connection
/// kept SQLite from leaving WAL mode. The file is whole at every step (the rewrite is one
/// rollback-journal transaction).
pub(crate) fn grow(conn: &Connection) -> rusqlite::Result<bool> {
    let mode: String = conn.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("delete") {
        return Ok(false);
    }
    let rewritten = conn
        .pragma_update(None, "page_size", GROWN_PAGE_SIZE)
        .and_then(|()| conn.execute_batch("VACUUM"));
    // Back to WAL whatever happened: the shard's connections expect it.
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    debug_assert_eq!(mode.to_ascii_lowercase(), "wal");
    rewritten?;
    Ok(page_size(conn)? == GROWN_PAGE_SIZE)
}
