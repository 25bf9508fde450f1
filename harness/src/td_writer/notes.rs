//! Sidecar's notes through `td note` (`internal/db/notes.go`; schema >= 28). td logs note
//! events with an empty session id and stores note times as RFC 3339 seconds.

use rusqlite::OptionalExtension;

use super::{
    Ctx, TdWriter,
    action_log::Event,
    clock::{Instant, rfc3339_secs},
    error::{Sql, WriterError},
    gojson::GoStruct,
    ids::IdGen,
    issue::zero_time,
};

#[derive(Debug, Clone)]
struct Note {
    id: String,
    title: String,
    content: String,
    created_at: Instant,
    updated_at: Instant,
    pinned: bool,
    archived: bool,
    deleted_at: Option<Instant>,
}

impl Note {
    fn to_json(&self) -> String {
        GoStruct::new()
            .str("id", &self.id)
            .str("title", &self.title)
            .str("content", &self.content)
            .time("created_at", &self.created_at)
            .time("updated_at", &self.updated_at)
            .bool("pinned", self.pinned)
            .bool("archived", self.archived)
            .time_opt("deleted_at", self.deleted_at.as_ref())
            .finish()
    }
}

/// td reads note times with `time.RFC3339` only; anything else is Go's zero time.
fn parse_rfc3339(text: &str) -> Instant {
    chrono::DateTime::parse_from_rfc3339(text).unwrap_or_else(|_| zero_time())
}

/// td's lenient reader for deleted_at (falls back to the Unix epoch).
fn parse_deleted(text: &str) -> Instant {
    tdsync_protocol::timestamp::parse(text)
        .unwrap_or_else(|| chrono::DateTime::UNIX_EPOCH.fixed_offset())
}

fn note_not_found(id: &str) -> WriterError {
    WriterError::NotFound {
        kind: "note",
        id: id.to_string(),
    }
}

/// What one note command changes.
#[derive(Clone, Copy)]
enum NoteEdit<'e> {
    Text { title: &'e str, content: &'e str },
    Pinned(bool),
    Archived(bool),
}

impl Ctx<'_> {
    fn note(&self, id: &str) -> Result<Option<Note>, WriterError> {
        self.conn
            .query_row(
                "SELECT id, title, content, created_at, updated_at, pinned, archived, deleted_at \
                 FROM notes WHERE id = ?1",
                [id],
                |r| {
                    Ok(Note {
                        id: r.get(0)?,
                        title: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                        content: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                        created_at: parse_rfc3339(
                            &r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                        ),
                        updated_at: parse_rfc3339(
                            &r.get::<_, Option<String>>(4)?.unwrap_or_default(),
                        ),
                        pinned: r.get::<_, Option<i64>>(5)?.unwrap_or(0) != 0,
                        archived: r.get::<_, Option<i64>>(6)?.unwrap_or(0) != 0,
                        deleted_at: r.get::<_, Option<String>>(7)?.map(|t| parse_deleted(&t)),
                    })
                },
            )
            .optional()
            .op("read note")
    }

    fn live_note(&self, id: &str) -> Result<Note, WriterError> {
        match self.note(id)? {
            Some(n) if n.deleted_at.is_none() => Ok(n),
            _ => Err(note_not_found(id)),
        }
    }

    fn log_note(
        &mut self,
        action: &str,
        id: &str,
        previous: &str,
        new: &str,
        at: &Instant,
    ) -> Result<(), WriterError> {
        self.log_action(
            "",
            Event {
                action,
                entity: "note",
                id,
                previous,
                new,
            },
            at,
        )?;
        Ok(())
    }

    fn create_note(&mut self, title: &str, content: &str) -> Result<String, WriterError> {
        let id = self.unused_id("notes", IdGen::note)?;
        let now = self.clock.now();
        self.conn
            .execute(
                "INSERT INTO notes (id, title, content, created_at, updated_at, pinned, archived) \
                 VALUES (?1, ?2, ?3, ?4, ?4, 0, 0)",
                rusqlite::params![id, title, content, rfc3339_secs(&now)],
            )
            .op("insert note")?;
        let note = Note {
            id: id.clone(),
            title: title.to_string(),
            content: content.to_string(),
            created_at: now,
            updated_at: now,
            pinned: false,
            archived: false,
            deleted_at: None,
        };
        self.log_note("create", &id, "", &note.to_json(), &now)?;
        Ok(id)
    }

    fn edit_note(&mut self, id: &str, edit: NoteEdit<'_>) -> Result<(), WriterError> {
        let prev = self.live_note(id)?;
        let now = self.clock.now();
        let stamp = rfc3339_secs(&now);
        let mut next = prev.clone();
        next.updated_at = now;
        match edit {
            NoteEdit::Text { title, content } => {
                next.title = title.to_string();
                next.content = content.to_string();
                self.conn
                    .execute(
                        "UPDATE notes SET title = ?1, content = ?2, updated_at = ?3 WHERE id = ?4",
                        rusqlite::params![title, content, stamp, id],
                    )
                    .op("update note")?;
            }
            NoteEdit::Pinned(v) | NoteEdit::Archived(v) => {
                let column = if matches!(edit, NoteEdit::Pinned(_)) {
                    next.pinned = v;
                    "pinned"
                } else {
                    next.archived = v;
                    "archived"
                };
                self.conn
                    .execute(
                        &format!(
                            "UPDATE notes SET {column} = ?1, updated_at = ?2 WHERE id = ?3 AND deleted_at IS NULL"
                        ),
                        rusqlite::params![i64::from(v), stamp, id],
                    )
                    .op("update note flag")?;
            }
        }
        self.log_note("update", id, &prev.to_json(), &next.to_json(), &now)
    }

    fn delete_note(&mut self, id: &str) -> Result<(), WriterError> {
        let prev = self.live_note(id)?;
        let now = self.clock.now();
        self.conn
            .execute(
                "UPDATE notes SET deleted_at = ?1, updated_at = ?1 WHERE id = ?2",
                [rfc3339_secs(&now), id.to_string()],
            )
            .op("delete note")?;
        self.log_note("delete", id, &prev.to_json(), "", &now)
    }

    fn restore_note(&mut self, id: &str) -> Result<(), WriterError> {
        let prev = self.note(id)?.ok_or_else(|| note_not_found(id))?;
        if prev.deleted_at.is_none() {
            return Err(WriterError::refused(format!("note not deleted: {id}")));
        }
        let now = self.clock.now();
        self.conn
            .execute(
                "UPDATE notes SET deleted_at = NULL, updated_at = ?1 WHERE id = ?2",
                [rfc3339_secs(&now), id.to_string()],
            )
            .op("restore note")?;
        let mut next = prev.clone();
        next.deleted_at = None;
        next.updated_at = now;
        self.log_note("restore", id, &prev.to_json(), &next.to_json(), &now)
    }
}

impl TdWriter<'_> {
    /// `td note add <title> --content <content>`.
    pub fn create_note(&mut self, title: &str, content: &str) -> Result<String, WriterError> {
        self.write(|ctx| {
            ctx.schema.require("notes", "notes")?;
            ctx.create_note(title, content)
        })
    }

    /// `td note edit` (title/content, one event), then `td note pin|unpin` and
    /// `td note archive|unarchive`, each its own event, in that order.
    pub fn update_note(
        &mut self,
        id: &str,
        title: Option<&str>,
        content: Option<&str>,
        pinned: Option<bool>,
        archived: Option<bool>,
    ) -> Result<(), WriterError> {
        if title.is_none() && content.is_none() && pinned.is_none() && archived.is_none() {
            return Err(WriterError::refused("nothing to change"));
        }
        self.write(|ctx| {
            ctx.schema.require("notes", "notes")?;
            let current = ctx.live_note(id)?;
            if title.is_some() || content.is_some() {
                let title = title.unwrap_or(&current.title);
                let content = content.unwrap_or(&current.content);
                ctx.edit_note(id, NoteEdit::Text { title, content })?;
            }
            if let Some(p) = pinned {
                ctx.edit_note(id, NoteEdit::Pinned(p))?;
            }
            if let Some(a) = archived {
                ctx.edit_note(id, NoteEdit::Archived(a))?;
            }
            Ok(())
        })
    }

    /// `td note delete` (soft delete).
    pub fn delete_note(&mut self, id: &str) -> Result<(), WriterError> {
        self.write(|ctx| {
            ctx.schema.require("notes", "notes")?;
            ctx.delete_note(id)
        })
    }

    /// `td note restore`.
    pub fn restore_note(&mut self, id: &str) -> Result<(), WriterError> {
        self.write(|ctx| {
            ctx.schema.require("notes", "notes")?;
            ctx.restore_note(id)
        })
    }
}
