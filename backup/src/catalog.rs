//! What a target holds, read by listing it: per project its segments, snapshots and epoch
//! markers, and the control-plane snapshots. Names are the truth (a segment is durable once its
//! upload returned); the manifest is only a summary for people.
//!
//! **Fencing by epoch.** Every segment and snapshot carries its writer's lease epoch, and an
//! owner that takes a project over writes its epoch's marker (the first seq it will write)
//! before anything else. What an older epoch wrote at or after a newer marker's first seq comes
//! from an owner that had lost the project: [`ProjectCatalog::chain`] trusts each object only
//! below the first seq of the next newer epoch, so a stale owner can never append to the log a
//! restore sees.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    error::BackupError,
    layout::{Object, ProjectKey, control_plane_prefix, project_prefix, projects_prefix},
    target::Target,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentRef {
    pub first: i64,
    pub last: i64,
    pub epoch: i64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotRef {
    pub seq: i64,
    /// Server time of the event at `seq`.
    pub unix_ms: i64,
    pub epoch: i64,
}

impl SegmentRef {
    /// The object this names in `project`'s part of a target.
    pub fn object(&self, project: &ProjectKey) -> Object {
        Object::Segment {
            project: project.clone(),
            first: self.first,
            last: self.last,
            epoch: self.epoch,
        }
    }
}

impl SnapshotRef {
    /// The object this names in `project`'s part of a target.
    pub fn object(&self, project: &ProjectKey) -> Object {
        Object::Snapshot {
            project: project.clone(),
            seq: self.seq,
            unix_ms: self.unix_ms,
            epoch: self.epoch,
        }
    }
}

/// An epoch marker's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochStart {
    pub epoch: i64,
    /// The first seq the epoch's owner writes (its restored head + 1).
    pub first_seq: i64,
}

/// A segment a restore uses, and the newest seq it is trusted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub segment: SegmentRef,
    pub up_to: i64,
}

#[derive(Debug, Clone, Default)]
pub struct ProjectCatalog {
    /// Sorted by first seq, then epoch.
    pub segments: Vec<SegmentRef>,
    /// Sorted by seq.
    pub snapshots: Vec<SnapshotRef>,
    /// Sorted by epoch.
    pub epochs: Vec<EpochStart>,
}

impl ProjectCatalog {
    /// The newest seq an object of `epoch` is trusted for: below the first seq of the next
    /// newer epoch that began.
    pub fn trusted_up_to(&self, epoch: i64) -> i64 {
        self.epochs
            .iter()
            .filter(|e| e.epoch > epoch)
            .map(|e| e.first_seq - 1)
            .min()
            .unwrap_or(i64::MAX)
    }

    /// The segments a restore reads, in seq order, each with the newest seq it is trusted for;
    /// a fenced owner's segments (wholly past its epoch's end) are left out.
    pub fn chain(&self) -> Vec<Link> {
        self.segments
            .iter()
            .filter_map(|s| {
                let up_to = s.last.min(self.trusted_up_to(s.epoch));
                (s.first <= up_to).then_some(Link { segment: *s, up_to })
            })
            .collect()
    }

    /// Segments written by an owner after it had lost the project: never restored.
    pub fn fenced(&self) -> Vec<SegmentRef> {
        self.segments
            .iter()
            .filter(|s| s.first > self.trusted_up_to(s.epoch))
            .copied()
            .collect()
    }

    /// Snapshots a restore may start from (not a fenced owner's), sorted by seq.
    pub fn trusted_snapshots(&self) -> Vec<SnapshotRef> {
        self.snapshots
            .iter()
            .filter(|s| s.seq <= self.trusted_up_to(s.epoch))
            .copied()
            .collect()
    }

    /// The newest epoch that began (0 when none did: a single node).
    pub fn epoch(&self) -> i64 {
        self.epochs.last().map_or(0, |e| e.epoch)
    }

    /// The newest seq the chain covers without a gap from seq 1 (or from the oldest trusted
    /// snapshot): what a restore reaches.
    pub fn shipped_seq(&self) -> i64 {
        let snapshots = self.trusted_snapshots();
        let mut reached = snapshots.first().map_or(0, |s| s.seq);
        for link in self.chain() {
            if link.segment.first > reached + 1 {
                break;
            }
            reached = reached.max(link.up_to);
        }
        reached.max(snapshots.last().map_or(0, |s| s.seq))
    }
}

#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub projects: BTreeMap<ProjectKey, ProjectCatalog>,
    /// Control-plane snapshot times (unix ms), sorted.
    pub control_plane: Vec<i64>,
}

impl Catalog {
    pub async fn read(target: &Target) -> Result<Catalog, BackupError> {
        let mut catalog = Catalog::projects_under(target, &projects_prefix()).await?;
        for meta in target.list(&control_plane_prefix()).await? {
            if let Some(Object::ControlPlane { unix_ms }) = Object::parse(&meta.location) {
                catalog.control_plane.push(unix_ms);
            }
        }
        catalog.control_plane.sort_unstable();
        Ok(catalog)
    }

    /// What the target holds of one project (one listing of its own prefix).
    pub async fn read_project(
        target: &Target,
        project: &ProjectKey,
    ) -> Result<ProjectCatalog, BackupError> {
        let mut catalog = Catalog::projects_under(target, &project_prefix(project)).await?;
        Ok(catalog.projects.remove(project).unwrap_or_default())
    }

    async fn projects_under(
        target: &Target,
        prefix: &object_store::path::Path,
    ) -> Result<Catalog, BackupError> {
        let mut catalog = Catalog::default();
        for meta in target.list(prefix).await? {
            match Object::parse(&meta.location) {
                Some(Object::Segment {
                    project,
                    first,
                    last,
                    epoch,
                }) => catalog
                    .projects
                    .entry(project)
                    .or_default()
                    .segments
                    .push(SegmentRef {
                        first,
                        last,
                        epoch,
                        bytes: meta.size,
                    }),
                Some(Object::Snapshot {
                    project,
                    seq,
                    unix_ms,
                    epoch,
                }) => catalog
                    .projects
                    .entry(project)
                    .or_default()
                    .snapshots
                    .push(SnapshotRef {
                        seq,
                        unix_ms,
                        epoch,
                    }),
                Some(Object::Epoch { project, epoch }) => {
                    let body = target.get(&meta.location).await?;
                    let start: EpochStart = serde_json::from_slice(&body).map_err(|e| {
                        BackupError::damaged(&meta.location, format!("unreadable marker: {e}"))
                    })?;
                    if start.epoch != epoch {
                        return Err(BackupError::damaged(
                            &meta.location,
                            format!("it says epoch {}, its name {epoch}", start.epoch),
                        ));
                    }
                    catalog
                        .projects
                        .entry(project)
                        .or_default()
                        .epochs
                        .push(start);
                }
                _ => {}
            }
        }
        for p in catalog.projects.values_mut() {
            p.segments.sort_by_key(|s| (s.first, s.epoch, s.last));
            p.snapshots.sort_by_key(|s| (s.seq, s.epoch));
            p.epochs.sort_by_key(|e| e.epoch);
        }
        Ok(catalog)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(first: i64, last: i64, epoch: i64) -> SegmentRef {
        SegmentRef {
            first,
            last,
            epoch,
            bytes: 1,
        }
    }

    #[test]
    fn a_fenced_owners_objects_are_trusted_only_before_the_next_epoch_began() {
        // Epoch 1 shipped 1..=20; epoch 2 took over at 15 (it had restored 1..=14); the fenced
        // epoch-1 owner still wrote 21..=30 afterwards.
        let cat = ProjectCatalog {
            segments: vec![
                seg(1, 10, 1),
                seg(11, 20, 1),
                seg(15, 40, 2),
                seg(21, 30, 1),
            ],
            snapshots: vec![
                SnapshotRef {
                    seq: 10,
                    unix_ms: 1,
                    epoch: 1,
                },
                SnapshotRef {
                    seq: 18,
                    unix_ms: 2,
                    epoch: 1,
                },
            ],
            epochs: vec![EpochStart {
                epoch: 2,
                first_seq: 15,
            }],
        };
        let chain: Vec<(i64, i64, i64)> = cat
            .chain()
            .iter()
            .map(|l| (l.segment.first, l.up_to, l.segment.epoch))
            .collect();
        assert_eq!(chain, [(1, 10, 1), (11, 14, 1), (15, 40, 2)]);
        assert_eq!(cat.fenced(), [seg(21, 30, 1)]);
        assert_eq!(
            cat.trusted_snapshots()
                .iter()
                .map(|s| s.seq)
                .collect::<Vec<_>>(),
            [10]
        );
        assert_eq!(cat.shipped_seq(), 40);
        assert_eq!(cat.epoch(), 2);
    }

    #[test]
    fn a_single_node_has_epoch_zero_and_trusts_everything() {
        let cat = ProjectCatalog {
            segments: vec![seg(1, 5, 0), seg(6, 9, 0)],
            ..ProjectCatalog::default()
        };
        assert_eq!(cat.chain().len(), 2);
        assert!(cat.fenced().is_empty());
        assert_eq!((cat.shipped_seq(), cat.epoch()), (9, 0));
    }
}
