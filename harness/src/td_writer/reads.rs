//! Small read-only views for scenario generators: what exists, in insertion order, so a seeded
//! generator picks the same targets on every run.

use rusqlite::{Connection, Params, Row};

use super::{
    TdWriter,
    error::{Sql, WriterError},
    issue::split_labels,
};

/// An issue as a generator needs it to pick a plausible command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueSnapshot {
    pub id: String,
    pub title: String,
    pub status: String,
    pub kind: String,
    pub priority: String,
    pub points: i64,
    pub labels: Vec<String>,
    pub parent_id: String,
    pub implementer_session: String,
    pub creator_session: String,
    pub reviewer_session: String,
    pub minor: bool,
    pub deleted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkSessionSnapshot {
    pub id: String,
    pub name: String,
    pub session_id: String,
    pub ended: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSnapshot {
    pub id: String,
    pub title: String,
    pub pinned: bool,
    pub archived: bool,
    pub deleted: bool,
}

fn collect<T, P: Params>(
    conn: &Connection,
    sql: &str,
    params: P,
    f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, WriterError> {
    let mut stmt = conn.prepare(sql).op("read")?;
    let rows = stmt.query_map(params, f).op("read")?;
    rows.collect::<Result<_, _>>().op("read")
}

fn text(r: &Row<'_>, i: usize) -> rusqlite::Result<String> {
    Ok(r.get::<_, Option<String>>(i)?.unwrap_or_default())
}

fn issue_snapshot(r: &Row<'_>) -> rusqlite::Result<IssueSnapshot> {
    Ok(IssueSnapshot {
        id: text(r, 0)?,
        title: text(r, 1)?,
        status: text(r, 2)?,
        kind: text(r, 3)?,
        priority: text(r, 4)?,
        points: r.get::<_, Option<i64>>(5)?.unwrap_or(0),
        labels: split_labels(&text(r, 6)?),
        parent_id: text(r, 7)?,
        implementer_session: text(r, 8)?,
        creator_session: text(r, 9)?,
        reviewer_session: text(r, 10)?,
        minor: r.get::<_, Option<i64>>(11)?.unwrap_or(0) != 0,
        deleted: r.get::<_, Option<String>>(12)?.is_some(),
    })
}

const ISSUE_COLUMNS: &str = "id, title, status, type, priority, points, labels, parent_id, \
     implementer_session, creator_session, reviewer_session, minor, deleted_at";

impl TdWriter<'_> {
    fn conn(&self) -> &Connection {
        self.db.connection()
    }

    /// Issue ids in creation order; soft-deleted ones only when asked.
    pub fn issue_ids(&self, include_deleted: bool) -> Result<Vec<String>, WriterError> {
        Ok(self
            .issues(include_deleted)?
            .into_iter()
            .map(|i| i.id)
            .collect())
    }

    pub fn issues(&self, include_deleted: bool) -> Result<Vec<IssueSnapshot>, WriterError> {
        let filter = if include_deleted {
            ""
        } else {
            " WHERE deleted_at IS NULL"
        };
        let sql = format!("SELECT {ISSUE_COLUMNS} FROM issues{filter} ORDER BY rowid");
        collect(self.conn(), &sql, [], issue_snapshot)
    }

    pub fn issue(&self, id: &str) -> Result<Option<IssueSnapshot>, WriterError> {
        let sql = format!("SELECT {ISSUE_COLUMNS} FROM issues WHERE id = ?1");
        Ok(collect(self.conn(), &sql, [id], issue_snapshot)?.pop())
    }

    /// Board ids in creation order; td's builtin board only when asked.
    pub fn board_ids(&self, include_builtin: bool) -> Result<Vec<String>, WriterError> {
        let filter = if include_builtin {
            ""
        } else {
            " WHERE is_builtin = 0"
        };
        let sql = format!("SELECT id FROM boards{filter} ORDER BY rowid");
        collect(self.conn(), &sql, [], |r| r.get(0))
    }

    /// Active (not soft-deleted) positions on a board: (issue id, sort key).
    pub fn positions(&self, board_id: &str) -> Result<Vec<(String, i64)>, WriterError> {
        collect(
            self.conn(),
            "SELECT issue_id, position FROM board_issue_positions \
             WHERE board_id = ?1 AND deleted_at IS NULL ORDER BY position, rowid",
            [board_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    /// `depends_on` edges: (issue, depends on).
    pub fn dependencies(&self) -> Result<Vec<(String, String)>, WriterError> {
        collect(
            self.conn(),
            "SELECT issue_id, depends_on_id FROM issue_dependencies \
             WHERE relation_type = 'depends_on' ORDER BY rowid",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    /// File links: (issue, repo-relative path).
    pub fn file_links(&self) -> Result<Vec<(String, String)>, WriterError> {
        collect(
            self.conn(),
            "SELECT issue_id, file_path FROM issue_files ORDER BY rowid",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    pub fn work_sessions(&self) -> Result<Vec<WorkSessionSnapshot>, WriterError> {
        collect(
            self.conn(),
            "SELECT id, name, session_id, ended_at FROM work_sessions ORDER BY rowid",
            [],
            |r| {
                Ok(WorkSessionSnapshot {
                    id: text(r, 0)?,
                    name: text(r, 1)?,
                    session_id: text(r, 2)?,
                    ended: r.get::<_, Option<String>>(3)?.is_some(),
                })
            },
        )
    }

    /// Issues tagged into a work session.
    pub fn work_session_tags(&self, work_session_id: &str) -> Result<Vec<String>, WriterError> {
        collect(
            self.conn(),
            "SELECT issue_id FROM work_session_issues WHERE work_session_id = ?1 ORDER BY rowid",
            [work_session_id],
            |r| r.get(0),
        )
    }

    /// Notes (none when the schema predates them).
    pub fn notes(&self, include_deleted: bool) -> Result<Vec<NoteSnapshot>, WriterError> {
        let has_notes: bool = self
            .conn()
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'notes')",
                [],
                |r| r.get(0),
            )
            .op("read schema")?;
        if !has_notes {
            return Ok(Vec::new());
        }
        let filter = if include_deleted {
            ""
        } else {
            " WHERE deleted_at IS NULL"
        };
        let sql = format!(
            "SELECT id, title, pinned, archived, deleted_at FROM notes{filter} ORDER BY rowid"
        );
        collect(self.conn(), &sql, [], |r| {
            Ok(NoteSnapshot {
                id: text(r, 0)?,
                title: text(r, 1)?,
                pinned: r.get::<_, Option<i64>>(2)?.unwrap_or(0) != 0,
                archived: r.get::<_, Option<i64>>(3)?.unwrap_or(0) != 0,
                deleted: r.get::<_, Option<String>>(4)?.is_some(),
            })
        })
    }

    pub fn note_ids(&self, include_deleted: bool) -> Result<Vec<String>, WriterError> {
        Ok(self
            .notes(include_deleted)?
            .into_iter()
            .map(|n| n.id)
            .collect())
    }
}
