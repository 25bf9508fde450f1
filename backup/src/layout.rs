//! Object names in a backup target. Every name says what the object holds, so a target can be
//! read by listing it, without trusting any index:
//!
//! ```text
//! projects/<tenant>/<project>/segments/<first>-<last>-e<epoch>.jsonl.gz   the log, seqs first..=last
//! projects/<tenant>/<project>/snapshots/<seq>-<unix-ms>-e<epoch>.db.gz    the shard as of seq, logged at
//! projects/<tenant>/<project>/epochs/<epoch>.json                         where an owner's epoch began
//! control-plane/<unix-ms>.db.gz                                  the SQLite control plane
//! manifest.json                                                  a summary, rewritten per round
//! ```
//!
//! Numbers are zero-padded to 20 digits so names sort in seq (or time) order. The epoch is the
//! writer's lease epoch (0 on a single node): an owner that took a project over writes its
//! epoch's marker before anything else, and what an older epoch wrote at or after that
//! marker's first seq is a fenced owner's and is never restored (`catalog`).

use object_store::path::Path as Key;
use tdsync_tenants::{ProjectId, TenantId};

pub const MANIFEST: &str = "manifest.json";
const PROJECTS: &str = "projects";
const CONTROL_PLANE: &str = "control-plane";

/// A project's name in a target.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProjectKey {
    pub tenant: TenantId,
    pub project: ProjectId,
}

impl std::fmt::Display for ProjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.tenant, self.project)
    }
}

/// What an object name says it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    Segment {
        project: ProjectKey,
        first: i64,
        last: i64,
        epoch: i64,
    },
    /// `unix_ms`: the server time of the event at `seq` (0 for an empty log), so a
    /// point-in-time restore picks its snapshot by name.
    Snapshot {
        project: ProjectKey,
        seq: i64,
        unix_ms: i64,
        epoch: i64,
    },
    /// Written once, create-only, by the owner that begins `epoch`; its body says the first seq
    /// that epoch writes.
    Epoch {
        project: ProjectKey,
        epoch: i64,
    },
    ControlPlane {
        unix_ms: i64,
    },
}

impl Object {
    pub fn key(&self) -> Key {
        match self {
            Object::Segment {
                project,
                first,
                last,
                epoch,
            } => Key::from(format!(
                "{PROJECTS}/{}/{}/segments/{first:020}-{last:020}-e{epoch:020}.jsonl.gz",
                project.tenant, project.project
            )),
            Object::Snapshot {
                project,
                seq,
                unix_ms,
                epoch,
            } => Key::from(format!(
                "{PROJECTS}/{}/{}/snapshots/{seq:020}-{unix_ms:020}-e{epoch:020}.db.gz",
                project.tenant, project.project
            )),
            Object::Epoch { project, epoch } => Key::from(format!(
                "{PROJECTS}/{}/{}/epochs/{epoch:020}.json",
                project.tenant, project.project
            )),
            Object::ControlPlane { unix_ms } => {
                Key::from(format!("{CONTROL_PLANE}/{unix_ms:020}.db.gz"))
            }
        }
    }

    /// The object a name denotes; None for names tdsync does not write (they are left alone).
    pub fn parse(key: &Key) -> Option<Object> {
        let parts: Vec<&str> = key.as_ref().split('/').collect();
        match parts.as_slice() {
            [PROJECTS, tenant, project, kind, name] => {
                let project = ProjectKey {
                    tenant: TenantId::parse(tenant).ok()?,
                    project: ProjectId::parse(project).ok()?,
                };
                match *kind {
                    "segments" => {
                        let [first, last, epoch] = numbers(name.strip_suffix(".jsonl.gz")?)?;
                        Some(Object::Segment {
                            project,
                            first,
                            last,
                            epoch,
                        })
                    }
                    "snapshots" => {
                        let [seq, unix_ms, epoch] = numbers(name.strip_suffix(".db.gz")?)?;
                        Some(Object::Snapshot {
                            project,
                            seq,
                            unix_ms,
                            epoch,
                        })
                    }
                    "epochs" => Some(Object::Epoch {
                        project,
                        epoch: name.strip_suffix(".json")?.parse().ok()?,
                    }),
                    _ => None,
                }
            }
            [CONTROL_PLANE, name] => Some(Object::ControlPlane {
                unix_ms: name.strip_suffix(".db.gz")?.parse().ok()?,
            }),
            _ => None,
        }
    }
}

/// `A-B-eC` as three numbers.
fn numbers(stem: &str) -> Option<[i64; 3]> {
    let mut parts = stem.split('-');
    let a = parts.next()?.parse().ok()?;
    let b = parts.next()?.parse().ok()?;
    let c = parts.next()?.strip_prefix('e')?.parse().ok()?;
    parts.next().is_none().then_some([a, b, c])
}

pub fn projects_prefix() -> Key {
    Key::from(PROJECTS)
}

/// Everything of one project.
pub fn project_prefix(project: &ProjectKey) -> Key {
    Key::from(format!("{PROJECTS}/{}/{}", project.tenant, project.project))
}

pub fn control_plane_prefix() -> Key {
    Key::from(CONTROL_PLANE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let project = ProjectKey {
            tenant: TenantId::parse("acme").unwrap(),
            project: ProjectId::parse("web-app").unwrap(),
        };
        for object in [
            Object::Segment {
                project: project.clone(),
                first: 1,
                last: 1200,
                epoch: 3,
            },
            Object::Snapshot {
                project: project.clone(),
                seq: 77,
                unix_ms: 1_764_900_000_123,
                epoch: 0,
            },
            Object::Epoch {
                project: project.clone(),
                epoch: 4,
            },
            Object::ControlPlane {
                unix_ms: 1_764_900_000_000,
            },
        ] {
            assert_eq!(Object::parse(&object.key()), Some(object.clone()));
        }
        assert_eq!(
            Object::Segment {
                project,
                first: 1,
                last: 12,
                epoch: 2
            }
            .key()
            .as_ref(),
            "projects/acme/web-app/segments/\
             00000000000000000001-00000000000000000012-e00000000000000000002.jsonl.gz"
        );
        assert_eq!(
            Object::parse(&Key::from("projects/acme/x/other/1.txt")),
            None
        );
        assert_eq!(Object::parse(&Key::from("manifest.json")), None);
    }
}
