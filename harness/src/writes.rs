//! Carries out a planned td command with the simulated td CLI, resolving its picks against
//! what the client's database holds right now.

use crate::{
    plan::{Pick, WriteOp},
    td_writer::{HandoffSpec, IssueChange, IssueSpec, TdWriter, WriterError},
};

fn pick<T: Clone>(items: &[T], p: Pick) -> Option<T> {
    if items.is_empty() {
        None
    } else {
        Some(items[p as usize % items.len()].clone())
    }
}

fn nothing(what: &str) -> WriterError {
    WriterError::Refused(format!("no {what} to act on"))
}

/// Performs `op`; returns the id of an issue it created.
pub fn perform(w: &mut TdWriter<'_>, op: &WriteOp) -> Result<Option<String>, WriterError> {
    let live = w.issue_ids(false)?;
    let issue = |p: Pick| pick(&live, p).ok_or_else(|| nothing("issue"));
    match op {
        WriteOp::CreateIssue {
            title,
            description,
            labels,
            priority,
            parent,
        } => {
            let spec = IssueSpec {
                title: title.clone(),
                description: description.clone(),
                labels: labels.clone(),
                priority: format!("P{}", priority % 5),
                parent_id: parent.and_then(|p| pick(&live, p)).unwrap_or_default(),
                ..IssueSpec::default()
            };
            return w.create_issue(&spec).map(Some);
        }
        WriteOp::SetTitle { issue: i, title } => w.update_issue(
            &issue(*i)?,
            &IssueChange {
                title: Some(title.clone()),
                ..Default::default()
            },
        ),
        WriteOp::SetDescription {
            issue: i,
            description,
        } => w.update_issue(
            &issue(*i)?,
            &IssueChange {
                description: Some(description.clone()),
                ..Default::default()
            },
        ),
        WriteOp::SetPriority { issue: i, priority } => w.update_issue(
            &issue(*i)?,
            &IssueChange {
                priority: Some(format!("P{}", priority % 5)),
                ..Default::default()
            },
        ),
        WriteOp::SetLabels { issue: i, labels } => w.update_issue(
            &issue(*i)?,
            &IssueChange {
                labels: Some(labels.clone()),
                ..Default::default()
            },
        ),
        WriteOp::SetPoints { issue: i, points } => w.update_issue(
            &issue(*i)?,
            &IssueChange {
                points: Some(*points),
                ..Default::default()
            },
        ),
        WriteOp::Start { issue: i } => w.start(&issue(*i)?),
        WriteOp::Review { issue: i } => w.review(&issue(*i)?),
        WriteOp::Approve { issue: i } => w.approve(&issue(*i)?),
        WriteOp::Reject { issue: i } => w.reject(&issue(*i)?),
        WriteOp::Block { issue: i } => w.block(&issue(*i)?),
        WriteOp::Unblock { issue: i } => w.unblock(&issue(*i)?),
        WriteOp::Close { issue: i } => w.close(&issue(*i)?),
        WriteOp::Reopen { issue: i } => w.reopen(&issue(*i)?),
        WriteOp::Delete { issue: i } => w.delete_issue(&issue(*i)?),
        WriteOp::Restore { issue: i } => {
            let deleted: Vec<String> = w
                .issue_ids(true)?
                .into_iter()
                .filter(|id| !live.contains(id))
                .collect();
            let target = pick(&deleted, *i).ok_or_else(|| nothing("deleted issue"))?;
            w.restore_issue(&target)
        }
        WriteOp::Log { issue: i, message } => w.add_log(&issue(*i)?, message).map(drop),
        WriteOp::Comment { issue: i, text } => w.add_comment(&issue(*i)?, text).map(drop),
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
            w.add_handoff(&issue(*i)?, &h).map(drop)
        }
        WriteOp::CreateBoard { name } => w.create_board(name, "").map(drop),
        WriteOp::Position {
            board,
            issue: i,
            position,
        } => {
            let boards = w.board_ids(false)?;
            let b = pick(&boards, *board).ok_or_else(|| nothing("board"))?;
            w.set_position(&b, &issue(*i)?, *position)
        }
        WriteOp::Unposition { board, issue: i } => {
            let boards = w.board_ids(false)?;
            let b = pick(&boards, *board).ok_or_else(|| nothing("board"))?;
            let positioned: Vec<String> = w.positions(&b)?.into_iter().map(|(id, _)| id).collect();
            let target = pick(&positioned, *i).ok_or_else(|| nothing("positioned issue"))?;
            w.unposition(&b, &target)
        }
        WriteOp::DeleteBoard { board } => {
            let boards = w.board_ids(false)?;
            w.delete_board(&pick(&boards, *board).ok_or_else(|| nothing("board"))?)
        }
        WriteOp::Depend { issue: i, on } => w.add_dependency(&issue(*i)?, &issue(*on)?),
        WriteOp::Undepend { dependency } => {
            let deps = w.dependencies()?;
            let (a, b) = pick(&deps, *dependency).ok_or_else(|| nothing("dependency"))?;
            w.remove_dependency(&a, &b)
        }
        WriteOp::LinkFile { issue: i, path } => w.link_file(&issue(*i)?, path, "implementation"),
        WriteOp::UnlinkFile { link } => {
            let links = w.file_links()?;
            let (i, path) = pick(&links, *link).ok_or_else(|| nothing("file link"))?;
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
            w.tag(&ws, &issue(*i)?)
        }
        WriteOp::Untag { issue: i } => {
            let ws = w
                .active_work_session()
                .map(str::to_string)
                .ok_or_else(|| nothing("open work session"))?;
            let tagged = w.work_session_tags(&ws)?;
            w.untag(
                &ws,
                &pick(&tagged, *i).ok_or_else(|| nothing("tagged issue"))?,
            )
        }
        WriteOp::CreateNote { title, content } => w.create_note(title, content).map(drop),
        WriteOp::EditNote { note, content } => {
            let notes = w.note_ids(false)?;
            w.update_note(
                &pick(&notes, *note).ok_or_else(|| nothing("note"))?,
                None,
                Some(content),
                None,
                None,
            )
        }
        WriteOp::DeleteNote { note } => {
            let notes = w.note_ids(false)?;
            w.delete_note(&pick(&notes, *note).ok_or_else(|| nothing("note"))?)
        }
        WriteOp::Undo => w.undo_last().map(drop),
    }?;
    Ok(None)
}
