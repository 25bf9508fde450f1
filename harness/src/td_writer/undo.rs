//! `td undo` (`cmd/undo.go`): the session's newest undoable action_log row is reversed by a new
//! logged action and marked `undone = 1`, so an undo before sync sends only the compensation.
//! Where td's undo fails (unsupported types, missing data) the writer refuses and writes nothing.

use rusqlite::OptionalExtension;
use serde_json::Value;

use super::{
    Ctx, TdWriter,
    action_log::Event,
    boards::Board,
    error::{Sql, WriterError},
    issue::Issue,
};

struct LastAction {
    id: String,
    action: String,
    entity: String,
    entity_id: String,
    previous: String,
    new: String,
}

/// Issue actions whose undo restores the previous image.
const UPDATE_LIKE: &[&str] = &[
    "update",
    "start",
    "review",
    "approve",
    "reject",
    "block",
    "unblock",
    "close",
    "reopen",
    "review_approve",
    "review_changes_requested",
    "close_after_review",
];

fn field(json: &str, key: &str) -> Result<String, WriterError> {
    let v: Value = serde_json::from_str(json)
        .map_err(|e| WriterError::refused(format!("cannot undo: unreadable data: {e}")))?;
    Ok(v.get(key).and_then(Value::as_str).unwrap_or("").to_string())
}

impl Ctx<'_> {
    /// td's `GetLastAction`: newest by timestamp text, not undone, types td can reverse.
    fn last_action(&self) -> Result<Option<LastAction>, WriterError> {
        self.conn
            .query_row(
                "SELECT id, action_type, entity_type, entity_id, previous_data, new_data FROM action_log \
                 WHERE session_id = ?1 AND undone = 0 \
                 AND entity_type NOT IN ('logs', 'comments', 'work_sessions', 'issue_review', 'issue_reviews') \
                 ORDER BY timestamp DESC LIMIT 1",
                [self.session],
                |r| {
                    let text = |i: usize| -> rusqlite::Result<String> {
                        Ok(r.get::<_, Option<String>>(i)?.unwrap_or_default())
                    };
                    Ok(LastAction {
                        id: text(0)?,
                        action: text(1)?,
                        entity: text(2)?,
                        entity_id: text(3)?,
                        previous: text(4)?,
                        new: text(5)?,
                    })
                },
            )
            .optional()
            .op("read last action")
    }

    fn undo_last(&mut self) -> Result<Option<String>, WriterError> {
        let Some(last) = self.last_action()? else {
            return Ok(None);
        };
        let already_marked = match self.reverse(&last) {
            Ok(marked) => marked,
            // td's undo fails on the same constraint (e.g. re-positioning on a deleted board)
            // and leaves the action to be tried again.
            Err(WriterError::Sqlite { op, source })
                if source.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) =>
            {
                return Err(WriterError::refused(format!("cannot undo: {op}: {source}")));
            }
            Err(e) => return Err(e),
        };
        if !already_marked {
            self.mark_undone(&last.id)?;
        }
        Ok(Some(last.id))
    }

    /// Performs the compensating action; true when it marked the original itself.
    fn reverse(&mut self, last: &LastAction) -> Result<bool, WriterError> {
        match last.entity.as_str() {
            "issue" => self.undo_issue(last),
            "dependency" | "issue_dependencies" => self.undo_dependency(last),
            "file_link" | "issue_files" => self.undo_file_link(last),
            "board_position" | "board_issue_positions" => self.undo_position(last),
            "board" | "boards" => self.undo_board(last),
            "handoff" => self.undo_handoff(last),
            other => Err(WriterError::refused(format!(
                "cannot undo: unknown entity type: {other}"
            ))),
        }
    }

    fn undo_issue(&mut self, last: &LastAction) -> Result<bool, WriterError> {
        match last.action.as_str() {
            "create" => {
                self.delete_issue_logged(&last.entity_id)?;
                Ok(false)
            }
            "delete" => {
                self.restore_issue_logged(&last.entity_id)?;
                Ok(false)
            }
            a if UPDATE_LIKE.contains(&a) => {
                if last.previous.is_empty() {
                    return Err(WriterError::refused(
                        "cannot undo: no previous data to restore",
                    ));
                }
                let restored = Issue::from_json(&last.previous)
                    .map_err(|e| WriterError::refused(format!("cannot undo: {e}")))?;
                let current = Issue::load(self.conn, &restored.id)?
                    .ok_or_else(|| WriterError::issue_not_found(&restored.id))?;
                // Review-aware actions roll their review rows back too, in the same step.
                let (created, prior) = match serde_json::from_str::<Value>(&last.new) {
                    Ok(v) => (
                        v.get("created_review_id")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        v.get("prior_active_review_id")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                    ),
                    Err(_) => (String::new(), String::new()),
                };
                let review_aware = !created.is_empty() || !prior.is_empty();
                if review_aware {
                    if !created.is_empty() {
                        self.delete_review_logged(&created)?;
                    }
                    if !prior.is_empty() {
                        self.clear_review_superseded_logged(&prior)?;
                    }
                }
                self.update_issue_logged(restored, &current, "update")?;
                if review_aware {
                    self.mark_undone(&last.id)?;
                }
                Ok(review_aware)
            }
            other => Err(WriterError::refused(format!(
                "cannot undo action type: {other}"
            ))),
        }
    }

    fn undo_dependency(&mut self, last: &LastAction) -> Result<bool, WriterError> {
        // td reads new_data for both directions; a removal has none, so its undo fails.
        let issue = field(&last.new, "issue_id")?;
        let depends_on = field(&last.new, "depends_on_id")?;
        match last.action.as_str() {
            "add_dependency" => {
                self.remove_dependency_logged(&issue, &depends_on)?;
            }
            "remove_dependency" => self.add_dependency_logged(&issue, &depends_on)?,
            other => {
                return Err(WriterError::refused(format!(
                    "cannot undo dependency action: {other}"
                )));
            }
        }
        Ok(false)
    }

    fn undo_file_link(&mut self, last: &LastAction) -> Result<bool, WriterError> {
        let issue = field(&last.new, "issue_id")?;
        let path = field(&last.new, "file_path")?;
        match last.action.as_str() {
            "link_file" => {
                self.unlink_file_logged(&issue, &path)?;
            }
            "unlink_file" => {
                let role = field(&last.new, "role")?;
                let mut sha = field(&last.new, "linked_sha")?;
                if sha.is_empty() {
                    sha = field(&last.new, "sha")?;
                }
                self.link_file_logged(&issue, &path, &role, &sha)?;
            }
            other => {
                return Err(WriterError::refused(format!(
                    "cannot undo file link action: {other}"
                )));
            }
        }
        Ok(false)
    }

    fn undo_position(&mut self, last: &LastAction) -> Result<bool, WriterError> {
        let data = if last.action == "board_unposition" && !last.previous.is_empty() {
            &last.previous
        } else {
            &last.new
        };
        let v: Value = serde_json::from_str(data)
            .map_err(|e| WriterError::refused(format!("cannot undo: unreadable data: {e}")))?;
        let board = v.get("board_id").and_then(Value::as_str).unwrap_or("");
        let issue = v.get("issue_id").and_then(Value::as_str).unwrap_or("");
        let position = v.get("position").and_then(Value::as_i64).unwrap_or(0);
        match last.action.as_str() {
            "board_set_position" => self.remove_position_logged(board, issue)?,
            "board_unposition" => {
                if position > 0 {
                    self.set_position_logged(board, issue, position)?;
                }
            }
            other => {
                return Err(WriterError::refused(format!(
                    "cannot undo board position action: {other}"
                )));
            }
        }
        Ok(false)
    }

    fn undo_board(&mut self, last: &LastAction) -> Result<bool, WriterError> {
        match last.action.as_str() {
            "board_create" | "create" => self.delete_board_logged(&last.entity_id)?,
            "board_delete" | "delete" | "board_update" | "update" => {
                if last.previous.is_empty() {
                    return Err(WriterError::refused(
                        "cannot undo: no previous data to restore",
                    ));
                }
                let board = Board::from_json(&last.previous)?;
                if last.action.ends_with("delete") {
                    self.restore_board_logged(&board)?;
                } else {
                    self.update_board_logged(board)?;
                }
            }
            other => {
                return Err(WriterError::refused(format!(
                    "cannot undo board action: {other}"
                )));
            }
        }
        Ok(false)
    }

    fn undo_handoff(&mut self, last: &LastAction) -> Result<bool, WriterError> {
        if last.action != "handoff" {
            return Err(WriterError::refused(format!(
                "cannot undo handoff action: {}",
                last.action
            )));
        }
        self.conn
            .execute("DELETE FROM handoffs WHERE id = ?1", [&last.entity_id])
            .op("delete handoff")?;
        self.log_own_now(Event {
            action: "delete",
            entity: "handoff",
            id: &last.entity_id,
            previous: &last.new,
            new: "",
        })?;
        Ok(false)
    }
}

impl TdWriter<'_> {
    /// `td undo` for this writer's session. Returns the id of the action_log row undone, or
    /// `None` when the session has nothing undoable.
    pub fn undo_last(&mut self) -> Result<Option<String>, WriterError> {
        self.write(|ctx| ctx.undo_last())
    }
}
