//! Carries out a planned td command with the simulated td CLI, resolving its picks against
//! what the client's database holds right now.

use std::collections::HashMap;

use crate::{
    plan::{Pick, PoisonKind, WriteOp},
    td_writer::{HandoffSpec, IssueChange, IssueSpec, TdWriter, WriterError},
};

/// Ids of rows created under a name ([`Pick::Named`]), shared by every client of a run.
pub type Names = HashMap<String, String>;

/// Resolves a pick among `items` (ids). A named pick is the remembered id itself, whether or
/// not this client has the row: td is then asked about that id and answers as td would.
fn pick_id(items: &[String], p: &Pick, names: &Names) -> Option<String> {
    match p {
        Pick::Named(name) => names.get(name).cloned(),
        Pick::Index(_) => pick(items, p),
    }
}

/// Resolves an index pick among `items` (named picks only resolve to ids: [`pick_id`]).
fn pick<T: Clone>(items: &[T], p: &Pick) -> Option<T> {
    match p {
        Pick::Index(i) if !items.is_empty() => Some(items[*i as usize % items.len()].clone()),
        _ => None,
    }
}

fn nothing(what: &str) -> WriterError {
    WriterError::Refused(format!("no {what} to act on"))
}

/// Performs `op`; returns the id of an issue it created.
pub fn perform(
    w: &mut TdWriter<'_>,
    op: &WriteOp,
    names: &mut Names,
) -> Result<Option<String>, WriterError> {
    let live = w.issue_ids(false)?;
    let issue = |p: &Pick| pick_id(&live, p, names).ok_or_else(|| nothing("issue"));
    let update =
        |w: &mut TdWriter<'_>, p: &Pick, change: IssueChange| w.update_issue(&issue(p)?, &change);
    match op {
        WriteOp::CreateIssue {
            title,
            description,
            labels,
            priority,
            parent,
            name,
        } => {
            let spec = IssueSpec {
                title: title.clone(),
                description: description.clone(),
                labels: labels.clone(),
                priority: format!("P{}", priority % 5),
                parent_id: parent
                    .as_ref()
                    .and_then(|p| pick_id(&live, p, names))
                    .unwrap_or_default(),
                ..IssueSpec::default()
            };
            let id = w.create_issue(&spec)?;
            if let Some(name) = name {
                names.insert(name.clone(), id.clone());
            }
            return Ok(Some(id));
        }
        WriteOp::SetTitle { issue: i, title } => update(
            w,
            i,
            IssueChange {
                title: Some(title.clone()),
                ..Default::default()
            },
        ),
        WriteOp::SetDescription {
            issue: i,
            description,
        } => update(
            w,
            i,
            IssueChange {
                description: Some(description.clone()),
                ..Default::default()
            },
        ),
        WriteOp::SetPriority { issue: i, priority } => update(
            w,
            i,
            IssueChange {
                priority: Some(format!("P{}", priority % 5)),
                ..Default::default()
            },
        ),
        WriteOp::SetLabels { issue: i, labels } => update(
            w,
            i,
            IssueChange {
                labels: Some(labels.clone()),
                ..Default::default()
            },
        ),
        WriteOp::SetPoints { issue: i, points } => update(
            w,
            i,
            IssueChange {
                points: Some(*points),
                ..Default::default()
            },
        ),
        WriteOp::SetSprint { issue: i, sprint } => update(
            w,
            i,
            IssueChange {
                sprint: Some(sprint.clone()),
                ..Default::default()
            },
        ),
        WriteOp::SetAcceptance {
            issue: i,
            acceptance,
        } => update(
            w,
            i,
            IssueChange {
                acceptance: Some(acceptance.clone()),
                ..Default::default()
            },
        ),
        WriteOp::Start { issue: i } => w.start(&issue(i)?),
        WriteOp::Review { issue: i } => w.review(&issue(i)?),
        WriteOp::Approve { issue: i } => w.approve(&issue(i)?),
        WriteOp::Reject { issue: i } => w.reject(&issue(i)?),
        WriteOp::Block { issue: i } => w.block(&issue(i)?),
        WriteOp::Unblock { issue: i } => w.unblock(&issue(i)?),
        WriteOp::Close { issue: i } => w.close(&issue(i)?),
        WriteOp::Reopen { issue: i } => w.reopen(&issue(i)?),
        WriteOp::Delete { issue: i } => w.delete_issue(&issue(i)?),
        WriteOp::Restore { issue: i } => {
            let deleted: Vec<String> = w
                .issue_ids(true)?
                .into_iter()
                .filter(|id| !live.contains(id))
                .collect();
            let target = pick_id(&deleted, i, names).ok_or_else(|| nothing("deleted issue"))?;
            w.restore_issue(&target)
        }
        WriteOp::Log { issue: i, message } => w.add_log(&issue(i)?, message).map(drop),
        WriteOp::Comment { issue: i, text } => w.add_comment(&issue(i)?, text).map(drop),
        WriteOp::Handoff {
            issue: i,
            done,
            remaining,
        } => {
            let h = HandoffSpec {
                done: vec![done.clone()],
                remaining: vec![remaining.clone()],
                ..HandoffSpec::default()
            };
            w.add_handoff(&issue(i)?, &h).map(drop)
        }
        WriteOp::CreateBoard { name } => w.create_board(name, "").map(drop),
        WriteOp::Position {
            board,
            issue: i,
            position,
        } => {
            let boards = w.board_ids(false)?;
            let b = pick_id(&boards, board, names).ok_or_else(|| nothing("board"))?;
            w.set_position(&b, &issue(i)?, *position)
        }
        WriteOp::Unposition { board, issue: i } => {
            let boards = w.board_ids(false)?;
            let b = pick_id(&boards, board, names).ok_or_else(|| nothing("board"))?;
            let positioned: Vec<String> = w.positions(&b)?.into_iter().map(|(id, _)| id).collect();
            let target =
                pick_id(&positioned, i, names).ok_or_else(|| nothing("positioned issue"))?;
            w.unposition(&b, &target)
        }
        WriteOp::DeleteBoard { board } => {
            let boards = w.board_ids(false)?;
            w.delete_board(&pick_id(&boards, board, names).ok_or_else(|| nothing("board"))?)
        }
        WriteOp::Depend { issue: i, on } => w.add_dependency(&issue(i)?, &issue(on)?),
        WriteOp::Undepend { dependency } => {
            let deps = w.dependencies()?;
            let (a, b) = pick(&deps, dependency).ok_or_else(|| nothing("dependency"))?;
            w.remove_dependency(&a, &b)
        }
        WriteOp::LinkFile { issue: i, path } => w.link_file(&issue(i)?, path, "implementation"),
        WriteOp::UnlinkFile { link } => {
            let links = w.file_links()?;
            let (i, path) = pick(&links, link).ok_or_else(|| nothing("file link"))?;
            w.unlink_file(&i, &path)
        }
        WriteOp::StartWorkSession { name } => w.start_work_session(name).map(drop),
        WriteOp::EndWorkSession => {
            let ws = w
                .active_work_session()
                .map(str::to_string)
                .ok_or_else(|| nothing("open work session"))?;
            w.end_work_session(&ws)
        }
        WriteOp::Tag { issue: i } => {
            let ws = w
                .active_work_session()
                .map(str::to_string)
                .ok_or_else(|| nothing("open work session"))?;
            w.tag(&ws, &issue(i)?)
        }
        WriteOp::Untag { issue: i } => {
            let ws = w
                .active_work_session()
                .map(str::to_string)
                .ok_or_else(|| nothing("open work session"))?;
            let tagged = w.work_session_tags(&ws)?;
            w.untag(
                &ws,
                &pick_id(&tagged, i, names).ok_or_else(|| nothing("tagged issue"))?,
            )
        }
        WriteOp::CreateNote {
            title,
            content,
            name,
        } => {
            let id = w.create_note(title, content)?;
            if let Some(name) = name {
                names.insert(name.clone(), id);
            }
            Ok(())
        }
        WriteOp::EditNote { note, content } => {
            let notes = w.note_ids(false)?;
            w.update_note(
                &pick_id(&notes, note, names).ok_or_else(|| nothing("note"))?,
                None,
                Some(content),
                None,
                None,
            )
        }
        WriteOp::DeleteNote { note } => {
            let notes = w.note_ids(false)?;
            w.delete_note(&pick_id(&notes, note, names).ok_or_else(|| nothing("note"))?)
        }
        WriteOp::Undo => w.undo_last().map(drop),
        WriteOp::Poison { kind } => poison(w, *kind),
    }?;
    Ok(None)
}

/// Writes one poison row (see [`PoisonKind`]); its ids name the session and the row count, so
/// every poison is a distinct entity.
fn poison(w: &mut TdWriter<'_>, kind: PoisonKind) -> Result<(), WriterError> {
    let rows: i64 = w
        .database()
        .connection()
        .query_row("SELECT count(*) FROM action_log", [], |r| r.get(0))
        .map_err(|source| WriterError::Sqlite {
            op: "count action_log".into(),
            source,
        })?;
    let tag = format!("{}-{rows}", w.session_id());
    let (action, entity, id, previous, new) = match kind {
        PoisonKind::SoftDeleteComment => {
            let id = format!("cm-p{tag}");
            let image = serde_json::json!({"id": id, "issue_id": "td-000000", "text": "poison"});
            ("delete", "comment", id, image.to_string(), String::new())
        }
        PoisonKind::ReviewForMissingIssue => {
            let id = format!("rv-p{tag}");
            let image = serde_json::json!({
                "id": id,
                "issue_id": "td-000000",
                "reviewer_session": w.session_id(),
                "decision": "approved",
                "created_at": "2026-03-01T10:00:00Z",
            });
            (
                "create",
                "issue_review",
                id,
                String::new(),
                image.to_string(),
            )
        }
        PoisonKind::NoKnownFields => {
            let id = format!("td-p{tag}");
            let image = serde_json::json!({"no_such_column": "poison"});
            ("create", "issue", id, String::new(), image.to_string())
        }
        PoisonKind::UpdateMissingComment => {
            let id = format!("cm-m{tag}");
            let before = serde_json::json!({"id": id, "text": "before"});
            let after = serde_json::json!({"id": id, "text": "after"});
            (
                "update",
                "comment",
                id,
                before.to_string(),
                after.to_string(),
            )
        }
    };
    w.log_raw(action, entity, &id, &previous, &new).map(drop)
}
