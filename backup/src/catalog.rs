//! What a target holds, read by listing it: per project its segments and snapshots, and the
//! control-plane snapshots. Names are the truth (a segment is durable once its upload
//! returned); the manifest is only a summary for people.

use std::collections::BTreeMap;

use crate::{
    error::BackupError,
    layout::{Object, ProjectKey, control_plane_prefix, projects_prefix},
    target::Target,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentRef {
    pub first: i64,
    pub last: i64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotRef {
    pub seq: i64,
    /// Server time of the event at `seq`.
    pub unix_ms: i64,
}

#[derive(Debug, Clone, Default)]
pub struct ProjectCatalog {
    /// Sorted by first seq.
    pub segments: Vec<SegmentRef>,
    /// Sorted by seq.
    pub snapshots: Vec<SnapshotRef>,
}

impl ProjectCatalog {
    /// The newest seq the segments cover without a gap from seq 1 (or from the oldest
    /// snapshot): what a restore reaches.
    pub fn shipped_seq(&self) -> i64 {
        let mut reached = self.snapshots.first().map_or(0, |s| s.seq);
        for s in &self.segments {
            if s.first > reached + 1 {
                break;
            }
            reached = reached.max(s.last);
        }
        reached.max(self.snapshots.last().map_or(0, |s| s.seq))
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
        let mut catalog = Catalog::default();
        for meta in target.list(&projects_prefix()).await? {
            match Object::parse(&meta.location) {
                Some(Object::Segment {
                    project,
                    first,
                    last,
                }) => catalog
                    .projects
                    .entry(project)
                    .or_default()
                    .segments
                    .push(SegmentRef {
                        first,
                        last,
                        bytes: meta.size,
                    }),
                Some(Object::Snapshot {
                    project,
                    seq,
                    unix_ms,
                }) => catalog
                    .projects
                    .entry(project)
                    .or_default()
                    .snapshots
                    .push(SnapshotRef { seq, unix_ms }),
                _ => {}
            }
        }
        for meta in target.list(&control_plane_prefix()).await? {
            if let Some(Object::ControlPlane { unix_ms }) = Object::parse(&meta.location) {
                catalog.control_plane.push(unix_ms);
            }
        }
        for p in catalog.projects.values_mut() {
            p.segments.sort_by_key(|s| (s.first, s.last));
            p.snapshots.sort_by_key(|s| s.seq);
        }
        catalog.control_plane.sort_unstable();
        Ok(catalog)
    }
}
