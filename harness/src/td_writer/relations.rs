//! Dependencies and file links (`internal/db/relations_logged.go`, `cmd/dependencies.go`,
//! `cmd/link.go`), with td's deterministic ids.

use rusqlite::OptionalExtension;
use serde_json::Value;
use tdsync_protocol::ids;

use super::{
    Ctx, TdWriter,
    action_log::Event,
    clock::{parse_stored, rfc3339_secs, sqlite_text},
    error::{Sql, WriterError},
    gojson::go_map,
    issue::zero_time,
};

const DEPENDS_ON: &str = "depends_on";

fn dependency_json(issue_id: &str, depends_on: &str, relation: &str) -> String {
    go_map(vec![
        (
            "id",
            Value::from(ids::dependency(issue_id, depends_on, relation)),
        ),
        ("issue_id", Value::from(issue_id)),
        ("depends_on_id", Value::from(depends_on)),
        ("relation_type", Value::from(relation)),
    ])
}

impl Ctx<'_> {
    /// td's cycle test: would `issue` → `depends_on` close a loop of depends_on edges?
    fn would_create_cycle(&self, issue_id: &str, depends_on: &str) -> Result<bool, WriterError> {
        let mut visited = std::collections::HashSet::new();
        let mut stack = vec![depends_on.to_string()];
        while let Some(from) = stack.pop() {
            if from == issue_id {
                return Ok(true);
            }
            if !visited.insert(from.clone()) {
                continue;
            }
            stack.extend(self.depends_on_edges("issue_id", &from)?);
        }
        Ok(false)
    }

    /// td's `AddDependencyLogged` (INSERT OR REPLACE of the deterministic row).
    pub fn add_dependency_logged(
        &mut self,
        issue_id: &str,
        depends_on: &str,
    ) -> Result<(), WriterError> {
        let id = ids::dependency(issue_id, depends_on, DEPENDS_ON);
        let now = self.clock.now();
        self.conn
            .execute(
                "INSERT OR REPLACE INTO issue_dependencies (id, issue_id, depends_on_id, relation_type) \
                 VALUES (?1, ?2, ?3, ?4)",
                [&id, issue_id, depends_on, DEPENDS_ON],
            )
            .op("insert dependency")?;
        let json = dependency_json(issue_id, depends_on, DEPENDS_ON);
        self.log_own(
            Event {
                action: "add_dependency",
                entity: "issue_dependencies",
                id: &id,
                previous: "",
                new: &json,
            },
            &now,
        )?;
        self.supersede_approval_if_linked(issue_id)
    }

    /// td's `RemoveDependencyLogged`; false when there was nothing to remove (td writes
    /// nothing then).
    pub fn remove_dependency_logged(
        &mut self,
        issue_id: &str,
        depends_on: &str,
    ) -> Result<bool, WriterError> {
        let relation: Option<String> = self
            .conn
            .query_row(
                "SELECT relation_type FROM issue_dependencies WHERE issue_id = ?1 AND depends_on_id = ?2",
                [issue_id, depends_on],
                |r| r.get(0),
            )
            .optional()
            .op("read dependency")?;
        let Some(relation) = relation else {
            return Ok(false);
        };
        let id = ids::dependency(issue_id, depends_on, &relation);
        let previous = dependency_json(issue_id, depends_on, &relation);
        self.conn
            .execute(
                "DELETE FROM issue_dependencies WHERE issue_id = ?1 AND depends_on_id = ?2",
                [issue_id, depends_on],
            )
            .op("delete dependency")?;
        let now = self.clock.now();
        self.log_own(
            Event {
                action: "remove_dependency",
                entity: "issue_dependencies",
                id: &id,
                previous: &previous,
                new: "",
            },
            &now,
        )?;
        self.supersede_approval_if_linked(issue_id)?;
        Ok(true)
    }

    /// td's `LinkFileLogged` (INSERT OR REPLACE; relinking refreshes sha and time).
    pub fn link_file_logged(
        &mut self,
        issue_id: &str,
        path: &str,
        role: &str,
        sha: &str,
    ) -> Result<(), WriterError> {
        let id = ids::issue_file(issue_id, path);
        let now = self.clock.now();
        self.conn
            .execute(
                "INSERT OR REPLACE INTO issue_files (id, issue_id, file_path, role, linked_sha, linked_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                rusqlite::params![id, issue_id, path, role, sha, sqlite_text(&now)],
            )
            .op("insert file link")?;
        let json = file_json(&id, issue_id, path, role, sha, &rfc3339_secs(&now));
        self.log_own(
            Event {
                action: "link_file",
                entity: "issue_files",
                id: &id,
                previous: "",
                new: &json,
            },
            &now,
        )?;
        self.supersede_approval_if_linked(issue_id)
    }

    /// td's `UnlinkFileLogged`; false when the link did not exist (td writes nothing then).
    pub fn unlink_file_logged(&mut self, issue_id: &str, path: &str) -> Result<bool, WriterError> {
        let id = ids::issue_file(issue_id, path);
        let row: Option<(String, String, String)> = self
            .conn
            .query_row(
                "SELECT role, linked_sha, linked_at FROM issue_files WHERE id = ?1",
                [&id],
                |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                        r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                        r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    ))
                },
            )
            .optional()
            .op("read file link")?;
        let Some((role, sha, linked_at)) = row else {
            return Ok(false);
        };
        let linked_at = parse_stored(&linked_at).unwrap_or_else(zero_time);
        let previous = file_json(&id, issue_id, path, &role, &sha, &rfc3339_secs(&linked_at));
        self.conn
            .execute(
                "DELETE FROM issue_files WHERE issue_id = ?1 AND file_path = ?2",
                [issue_id, path],
            )
            .op("delete file link")?;
        let now = self.clock.now();
        self.log_own(
            Event {
                action: "unlink_file",
                entity: "issue_files",
                id: &id,
                previous: &previous,
                new: "",
            },
            &now,
        )?;
        self.supersede_approval_if_linked(issue_id)?;
        Ok(true)
    }
}

fn file_json(
    id: &str,
    issue_id: &str,
    path: &str,
    role: &str,
    sha: &str,
    linked_at: &str,
) -> String {
    go_map(vec![
        ("id", Value::from(id)),
        ("issue_id", Value::from(issue_id)),
        ("file_path", Value::from(path)),
        ("role", Value::from(role)),
        ("linked_sha", Value::from(sha)),
        ("linked_at", Value::from(linked_at)),
    ])
}

/// td stores links repo-relative with forward slashes; paths outside the repo are refused.
fn repo_relative(path: &str, repo_root: &str) -> Result<String, WriterError> {
    let relative = match path.strip_prefix(repo_root) {
        Some(rest) if rest.starts_with('/') => rest.trim_start_matches('/'),
        _ => path,
    };
    let clean = ids::normalize_file_path(relative);
    if clean == "." {
        return Err(WriterError::refused("no file to link"));
    }
    if clean.starts_with("..") || clean.starts_with('/') {
        return Err(WriterError::refused(format!(
            "file {path} is outside repo root {repo_root}"
        )));
    }
    Ok(clean)
}

impl TdWriter<'_> {
    /// `td dep add <issue> <depends-on>`. Self-dependencies and cycles are refused, as is an
    /// existing dependency (td warns and writes nothing).
    pub fn add_dependency(&mut self, issue_id: &str, depends_on: &str) -> Result<(), WriterError> {
        self.write(|ctx| {
            ctx.live_issue(issue_id)?;
            ctx.live_issue(depends_on)?;
            if ctx.would_create_cycle(issue_id, depends_on)? {
                return Err(WriterError::refused(
                    "cannot add dependency: would create circular dependency",
                ));
            }
            if ctx
                .depends_on_edges("issue_id", issue_id)?
                .iter()
                .any(|d| d == depends_on)
            {
                return Err(WriterError::refused(format!(
                    "{issue_id} already depends on {depends_on}"
                )));
            }
            ctx.add_dependency_logged(issue_id, depends_on)
        })
    }

    /// `td dep rm <issue> <depends-on>`.
    pub fn remove_dependency(
        &mut self,
        issue_id: &str,
        depends_on: &str,
    ) -> Result<(), WriterError> {
        self.write(|ctx| {
            ctx.live_issue(issue_id)?;
            ctx.live_issue(depends_on)?;
            if ctx.remove_dependency_logged(issue_id, depends_on)? {
                Ok(())
            } else {
                Err(WriterError::refused(format!(
                    "{issue_id} does not depend on {depends_on}"
                )))
            }
        })
    }

    /// `td link <issue> <path> --role <role>` (role defaults to implementation). td hashes the
    /// file's content; the writer has no file, so the sha is a seeded stand-in.
    pub fn link_file(&mut self, issue_id: &str, path: &str, role: &str) -> Result<(), WriterError> {
        let path = repo_relative(path, &self.worktree.root)?;
        let role = if role.is_empty() {
            "implementation"
        } else {
            role
        };
        self.write(|ctx| {
            ctx.live_issue(issue_id)?;
            let sha = ctx.ids.sha256_hex();
            ctx.link_file_logged(issue_id, &path, role, &sha)
        })
    }

    /// `td unlink <issue> <path>`.
    pub fn unlink_file(&mut self, issue_id: &str, path: &str) -> Result<(), WriterError> {
        let path = repo_relative(path, &self.worktree.root)?;
        self.write(|ctx| {
            ctx.live_issue(issue_id)?;
            if ctx.unlink_file_logged(issue_id, &path)? {
                Ok(())
            } else {
                Err(WriterError::refused(format!(
                    "{path} is not linked to {issue_id}"
                )))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_repo_relative() {
        assert_eq!(repo_relative("src//a.rs", "/r").unwrap(), "src/a.rs");
        assert_eq!(repo_relative("/r/src/a.rs", "/r").unwrap(), "src/a.rs");
        assert!(repo_relative("../x", "/r").is_err());
        assert!(repo_relative("/elsewhere/x", "/r").is_err());
        assert!(repo_relative("", "/r").is_err());
    }
}
