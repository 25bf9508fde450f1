//! Boards and board positions (`internal/db/boards_logged.go`, `cmd/board.go`).

use rusqlite::{Connection, OptionalExtension};
use serde_json::Value;
use tdsync_protocol::ids;

use super::{
    Ctx, TdWriter,
    action_log::Event,
    clock::{Instant, parse_stored, rfc3339_secs, sqlite_text},
    error::{Sql, WriterError},
    gojson::{GoStruct, go_map},
    ids::IdGen,
    issue::zero_time,
};

/// td's Board.
#[derive(Debug, Clone)]
pub(crate) struct Board {
    pub id: String,
    pub name: String,
    pub query: String,
    pub is_builtin: bool,
    pub view_mode: String,
    pub last_viewed_at: Option<Instant>,
    pub created_at: Instant,
    pub updated_at: Instant,
}

impl Board {
    pub fn to_json(&self) -> String {
        GoStruct::new()
            .str("id", &self.id)
            .str("name", &self.name)
            .str("query", &self.query)
            .bool("is_builtin", self.is_builtin)
            .str("view_mode", &self.view_mode)
            .time_opt("last_viewed_at", self.last_viewed_at.as_ref())
            .time("created_at", &self.created_at)
            .time("updated_at", &self.updated_at)
            .finish()
    }

    pub fn from_json(text: &str) -> Result<Board, WriterError> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| WriterError::BadData(format!("board JSON: {e}")))?;
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let t = |k: &str| v.get(k).and_then(Value::as_str).and_then(parse_stored);
        Ok(Board {
            id: s("id"),
            name: s("name"),
            query: s("query"),
            is_builtin: v
                .get("is_builtin")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            view_mode: s("view_mode"),
            last_viewed_at: t("last_viewed_at"),
            created_at: t("created_at").unwrap_or_else(zero_time),
            updated_at: t("updated_at").unwrap_or_else(zero_time),
        })
    }

    pub fn load(conn: &Connection, id: &str) -> Result<Option<Board>, WriterError> {
        conn.query_row(
            "SELECT id, name, query, is_builtin, view_mode, last_viewed_at, created_at, updated_at \
             FROM boards WHERE id = ?1",
            [id],
            |r| {
                let time = |i: usize| -> rusqlite::Result<Option<Instant>> {
                    Ok(r.get::<_, Option<String>>(i)?
                        .and_then(|t| parse_stored(&t)))
                };
                Ok(Board {
                    id: r.get(0)?,
                    name: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                    query: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    is_builtin: r.get::<_, Option<i64>>(3)?.unwrap_or(0) == 1,
                    view_mode: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
                    last_viewed_at: time(5)?,
                    created_at: time(6)?.unwrap_or_else(zero_time),
                    updated_at: time(7)?.unwrap_or_else(zero_time),
                })
            },
        )
        .optional()
        .op("read board")
    }
}

fn board_not_found(id: &str) -> WriterError {
    WriterError::NotFound {
        kind: "board",
        id: id.to_string(),
    }
}

fn position_json(board_id: &str, issue_id: &str, position: i64) -> String {
    go_map(vec![
        (
            "id",
            Value::from(ids::board_issue_position(board_id, issue_id)),
        ),
        ("board_id", Value::from(board_id)),
        ("issue_id", Value::from(issue_id)),
        ("position", Value::from(position)),
    ])
}

impl Ctx<'_> {
    fn board(&self, id: &str) -> Result<Board, WriterError> {
        Board::load(self.conn, id)?.ok_or_else(|| board_not_found(id))
    }

    fn create_board_logged(&mut self, name: &str, query: &str) -> Result<String, WriterError> {
        let id = self.unused_id("boards", IdGen::board)?;
        let now = self.clock.now();
        let board = Board {
            id: id.clone(),
            name: name.to_string(),
            query: query.to_string(),
            is_builtin: false,
            view_mode: "swimlanes".into(),
            last_viewed_at: None,
            created_at: now,
            updated_at: now,
        };
        self.conn
            .execute(
                "INSERT INTO boards (id, name, query, is_builtin, view_mode, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, 0, ?4, ?5, ?5)",
                rusqlite::params![id, name, query, board.view_mode, sqlite_text(&now)],
            )
            .op("insert board")?;
        let json = board.to_json();
        self.log_own(
            Event {
                action: "board_create",
                entity: "board",
                id: &id,
                previous: "",
                new: &json,
            },
            &now,
        )?;
        Ok(id)
    }

    /// td's `UpdateBoardLogged`: name and query from `board`, a `board_update` event.
    pub fn update_board_logged(&mut self, mut board: Board) -> Result<(), WriterError> {
        let prev = self.board(&board.id)?;
        if prev.is_builtin {
            return Err(WriterError::refused("cannot modify builtin board"));
        }
        board.updated_at = self.clock.now();
        self.conn
            .execute(
                "UPDATE boards SET name = ?1, query = ?2, updated_at = ?3 WHERE id = ?4",
                rusqlite::params![
                    board.name,
                    board.query,
                    sqlite_text(&board.updated_at),
                    board.id
                ],
            )
            .op("update board")?;
        let (previous, new) = (prev.to_json(), board.to_json());
        self.log_own(
            Event {
                action: "board_update",
                entity: "board",
                id: &board.id,
                previous: &previous,
                new: &new,
            },
            &board.updated_at.clone(),
        )?;
        Ok(())
    }

    /// td's `DeleteBoardLogged`: each active position soft-deleted with a `board_unposition`
    /// event, then the board hard-deleted with a `board_delete` event.
    pub fn delete_board_logged(&mut self, id: &str) -> Result<(), WriterError> {
        let prev = self.board(id)?;
        if prev.is_builtin {
            return Err(WriterError::refused("cannot delete builtin board"));
        }
        let previous = prev.to_json();
        let now = self.clock.now();
        let positions = self.active_positions(id)?;
        self.conn
            .execute(
                "UPDATE board_issue_positions SET deleted_at = ?1 WHERE board_id = ?2 AND deleted_at IS NULL",
                [sqlite_text(&now), id.to_string()],
            )
            .op("soft-delete board positions")?;
        for (issue_id, position) in positions {
            let json = position_json(id, &issue_id, position);
            let pos_id = ids::board_issue_position(id, &issue_id);
            self.log_own(
                Event {
                    action: "board_unposition",
                    entity: "board_issue_positions",
                    id: &pos_id,
                    previous: &json,
                    new: "",
                },
                &now,
            )?;
        }
        self.conn
            .execute("DELETE FROM boards WHERE id = ?1", [id])
            .op("delete board")?;
        self.log_own(
            Event {
                action: "board_delete",
                entity: "board",
                id,
                previous: &previous,
                new: "",
            },
            &now,
        )?;
        Ok(())
    }

    /// Undo of a board delete: td re-inserts the old row and logs a `restore` of `board`.
    pub fn restore_board_logged(&mut self, board: &Board) -> Result<(), WriterError> {
        if Board::load(self.conn, &board.id)?.is_some() {
            return Err(WriterError::refused(format!(
                "board {} already exists",
                board.id
            )));
        }
        self.conn
            .execute(
                "INSERT INTO boards (id, name, query, is_builtin, view_mode, last_viewed_at, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                rusqlite::params![
                    board.id,
                    board.name,
                    board.query,
                    board.is_builtin,
                    board.view_mode,
                    board.last_viewed_at.as_ref().map(sqlite_text),
                    sqlite_text(&board.created_at),
                    sqlite_text(&board.updated_at)
                ],
            )
            .op("restore board")?;
        let json = board.to_json();
        self.log_own_now(Event {
            action: "restore",
            entity: "board",
            id: &board.id,
            previous: "",
            new: &json,
        })?;
        Ok(())
    }

    /// Active positions in td's (index) order: by issue id.
    fn active_positions(&self, board_id: &str) -> Result<Vec<(String, i64)>, WriterError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT issue_id, position FROM board_issue_positions \
                 WHERE board_id = ?1 AND deleted_at IS NULL ORDER BY issue_id",
            )
            .op("read board positions")?;
        let rows = stmt
            .query_map([board_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .op("read board positions")?;
        rows.collect::<Result<_, _>>().op("read board positions")
    }

    /// td's `SetIssuePositionLogged`: revives a soft-deleted row or inserts the deterministic
    /// one, and logs `board_set_position`.
    pub fn set_position_logged(
        &mut self,
        board_id: &str,
        issue_id: &str,
        position: i64,
    ) -> Result<(), WriterError> {
        let now = self.clock.now();
        let pos_id = ids::board_issue_position(board_id, issue_id);
        let existing: i64 = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM board_issue_positions WHERE board_id = ?1 AND issue_id = ?2",
                [board_id, issue_id],
                |r| r.get(0),
            )
            .op("read board position")?;
        if existing > 0 {
            self.conn
                .execute(
                    "UPDATE board_issue_positions SET position = ?1, deleted_at = NULL, added_at = ?2 \
                     WHERE board_id = ?3 AND issue_id = ?4",
                    rusqlite::params![position, sqlite_text(&now), board_id, issue_id],
                )
                .op("update board position")?;
        } else {
            self.conn
                .execute(
                    "INSERT INTO board_issue_positions (id, board_id, issue_id, position, added_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    rusqlite::params![pos_id, board_id, issue_id, position, sqlite_text(&now)],
                )
                .op("insert board position")?;
        }
        let json = go_map(vec![
            ("id", Value::from(pos_id.as_str())),
            ("board_id", Value::from(board_id)),
            ("issue_id", Value::from(issue_id)),
            ("position", Value::from(position)),
            ("added_at", Value::from(rfc3339_secs(&now))),
        ]);
        self.log_own(
            Event {
                action: "board_set_position",
                entity: "board_issue_positions",
                id: &pos_id,
                previous: "",
                new: &json,
            },
            &now,
        )?;
        Ok(())
    }

    /// td's `RemoveIssuePositionLogged`: soft delete and `board_unposition`.
    pub fn remove_position_logged(
        &mut self,
        board_id: &str,
        issue_id: &str,
    ) -> Result<(), WriterError> {
        let now = self.clock.now();
        let position: Option<i64> = self
            .conn
            .query_row(
                "SELECT position FROM board_issue_positions \
                 WHERE board_id = ?1 AND issue_id = ?2 AND deleted_at IS NULL",
                [board_id, issue_id],
                |r| r.get(0),
            )
            .optional()
            .op("read board position")?;
        let Some(position) = position else {
            return Err(WriterError::refused(format!(
                "issue {issue_id} not positioned on board {board_id}"
            )));
        };
        let json = position_json(board_id, issue_id, position);
        self.conn
            .execute(
                "UPDATE board_issue_positions SET deleted_at = ?1 \
                 WHERE board_id = ?2 AND issue_id = ?3 AND deleted_at IS NULL",
                rusqlite::params![sqlite_text(&now), board_id, issue_id],
            )
            .op("soft-delete board position")?;
        let pos_id = ids::board_issue_position(board_id, issue_id);
        self.log_own(
            Event {
                action: "board_unposition",
                entity: "board_issue_positions",
                id: &pos_id,
                previous: &json,
                new: "",
            },
            &now,
        )?;
        Ok(())
    }
}

impl TdWriter<'_> {
    /// `td board create <name> --query <q>`. The query is stored as given (td validates its
    /// TDQ syntax; pass valid TDQ). Returns the board id.
    pub fn create_board(&mut self, name: &str, query: &str) -> Result<String, WriterError> {
        if name.is_empty() {
            return Err(WriterError::refused("requires board name"));
        }
        self.write(|ctx| ctx.create_board_logged(name, query))
    }

    /// `td board edit <id> --name … --query …`.
    pub fn update_board(
        &mut self,
        id: &str,
        name: Option<&str>,
        query: Option<&str>,
    ) -> Result<(), WriterError> {
        self.write(|ctx| {
            let mut board = ctx.board(id)?;
            if let Some(name) = name.filter(|n| !n.is_empty()) {
                board.name = name.to_string();
            }
            if let Some(query) = query {
                board.query = query.to_string();
            }
            ctx.update_board_logged(board)
        })
    }

    /// `td board delete <id>`: unposition events for its active positions, then
    /// `board_delete`, in one transaction.
    pub fn delete_board(&mut self, id: &str) -> Result<(), WriterError> {
        self.write(|ctx| ctx.delete_board_logged(id))
    }

    /// Sets an issue's sparse sort key on a board (what `td board move` writes after turning a
    /// slot into a key; td's keys are multiples of 65536 apart).
    pub fn set_position(
        &mut self,
        board_id: &str,
        issue_id: &str,
        position: i64,
    ) -> Result<(), WriterError> {
        self.write(|ctx| {
            ctx.board(board_id)?;
            ctx.live_issue(issue_id)?;
            ctx.set_position_logged(board_id, issue_id, position)
        })
    }

    /// `td board unposition <board> <issue>`.
    pub fn unposition(&mut self, board_id: &str, issue_id: &str) -> Result<(), WriterError> {
        self.write(|ctx| {
            ctx.board(board_id)?;
            ctx.live_issue(issue_id)?;
            ctx.remove_position_logged(board_id, issue_id)
        })
    }
}
