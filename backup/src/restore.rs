//! `tdsync restore`: rebuilds a data directory from a target — per project its newest usable
//! snapshot, then the segments after it, every event appended under its own seq and applied
//! with the one apply engine — and checks each shard with a rebuild check. Optionally to a
//! point in time, or to a seq per project.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Instant,
};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tdsync_tenants::{LoggedEvent, Project, ShardFile, Tenants, TenantsConfig};

use crate::{
    catalog::{Catalog, ProjectCatalog},
    compress::gunzip_to,
    error::BackupError,
    layout::{Object, ProjectKey},
    progress::Progress,
    segment,
    ship::unix_ms,
    target::Target,
};

/// How far to restore.
#[derive(Debug, Clone)]
pub enum Until {
    Latest,
    /// Every event the server logged at or before this time.
    At(DateTime<Utc>),
    /// Up to a seq per project (`tenant/project` → seq); projects not named are restored whole.
    Seqs(BTreeMap<String, i64>),
}

#[derive(Debug, Clone, Serialize)]
pub struct ProjectRestored {
    pub project: String,
    /// The restored head.
    pub seq: i64,
    pub snapshot_seq: Option<i64>,
    /// Events appended from segments after the snapshot.
    pub events_replayed: usize,
    pub segments: usize,
    /// Seqs the backup should hold below the bound but does not (a hole in its segments).
    pub missing: Option<String>,
    pub rebuild_matches: bool,
    pub divergence: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub target: String,
    pub data_dir: PathBuf,
    pub projects: Vec<ProjectRestored>,
    /// The control-plane snapshot restored (unix ms), if any.
    pub control_plane: Option<i64>,
    pub millis: u128,
}

impl RestoreReport {
    pub fn ok(&self) -> bool {
        self.projects
            .iter()
            .all(|p| p.rebuild_matches && p.missing.is_none())
    }
}

/// Events appended per transaction.
const CHUNK: usize = 2_000;

/// Where a restore writes.
#[derive(Debug, Clone)]
pub struct RestoreInto<'a> {
    pub data_dir: &'a Path,
    /// The SQLite control plane's file; None: the control plane is not restored (Postgres:
    /// restore it with its own tools).
    pub control_plane: Option<&'a Path>,
}

/// Restores `target` into `into`. A data dir holding anything is refused unless `force`,
/// which removes its shards, snapshots cache and SQLite control plane first.
pub async fn restore(
    target: &Target,
    into: &RestoreInto<'_>,
    until: &Until,
    force: bool,
    progress: &Progress,
) -> Result<RestoreReport, BackupError> {
    let data_dir = into.data_dir;
    let started = Instant::now();
    prepare_dir(data_dir, force)?;
    let catalog = Catalog::read(target).await?;
    let tenants = Tenants::open(TenantsConfig::new(data_dir))?;
    let total_segments: usize = catalog.projects.values().map(|p| p.segments.len()).sum();
    let bar = progress.bar(total_segments as u64, "restoring segments");
    let mut projects = Vec::new();
    for (key, cat) in &catalog.projects {
        bar.set_message(key.to_string());
        let project = tenants.project(&key.tenant, &key.project);
        projects.push(restore_project(target, &project, key, cat, until, &bar).await?);
    }
    bar.finish_and_clear();
    tenants.close_all();
    drop(tenants);
    let control_plane = match into.control_plane {
        Some(dest) => restore_control_plane(target, &catalog, dest, until).await?,
        None => None,
    };
    Ok(RestoreReport {
        target: target.to_string(),
        data_dir: data_dir.to_path_buf(),
        projects,
        control_plane,
        millis: started.elapsed().as_millis(),
    })
}

fn prepare_dir(data_dir: &Path, force: bool) -> Result<(), BackupError> {
    let entries: Vec<_> = match std::fs::read_dir(data_dir) {
        Ok(dir) => dir.filter_map(Result::ok).map(|e| e.path()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            return Err(BackupError::io(format!("reading {}", data_dir.display()))(
                e,
            ));
        }
    };
    if entries.is_empty() {
        return Ok(());
    }
    if !force {
        return Err(BackupError::Refused(format!(
            "{} is not empty: restore into an empty directory, or pass --force to replace its \
             shards and control plane",
            data_dir.display()
        )));
    }
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let ours = matches!(name, "tenants" | "snapshots")
            || name.starts_with("control-plane.db")
            || name.starts_with(".template");
        if !ours {
            continue;
        }
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(BackupError::io(format!("removing {}", path.display())))?;
    }
    Ok(())
}

/// Restores one project from `target` into `project`, which has no shard yet.
pub(crate) async fn restore_project(
    target: &Target,
    project: &Project,
    key: &ProjectKey,
    cat: &ProjectCatalog,
    until: &Until,
    bar: &indicatif::ProgressBar,
) -> Result<ProjectRestored, BackupError> {
    let seq_bound = match until {
        Until::Seqs(seqs) => seqs.get(&key.to_string()).copied().unwrap_or(i64::MAX),
        _ => i64::MAX,
    };
    let time_bound = match until {
        Until::At(at) => Some(at.timestamp_millis()),
        _ => None,
    };
    // A fenced owner's objects are never read (`ProjectCatalog::chain`).
    let snapshot = cat
        .trusted_snapshots()
        .into_iter()
        .rev()
        .find(|s| s.seq <= seq_bound && time_bound.is_none_or(|t| s.unix_ms <= t));
    let mut reached = 0;
    if let Some(snap) = snapshot {
        let object = snap.object(key);
        let name = object.key();
        let bytes = target.get(&name).await?;
        let project = project.clone();
        reached = tokio::task::spawn_blocking(move || {
            let dir = tempfile::tempdir().map_err(BackupError::io("making a scratch directory"))?;
            let file = dir.path().join("snapshot.db");
            gunzip_to(&bytes, &file, name.as_ref())?;
            Ok::<_, BackupError>(project.install_copy(&file)?)
        })
        .await
        .expect("installing a snapshot does not panic")?;
    }
    let (mut replayed, mut segments, mut missing) = (0, 0, None);
    'segments: for link in cat.chain() {
        let seg = link.segment;
        bar.inc(1);
        if link.up_to <= reached {
            continue;
        }
        if seg.first > reached + 1 {
            missing = Some(format!(
                "seqs {}..={} are in no segment",
                reached + 1,
                seg.first - 1
            ));
            break;
        }
        if reached >= seq_bound {
            break;
        }
        let object = seg.object(key);
        let bytes = target.get(&object.key()).await?;
        let events = segment::decode(&bytes, key, seg.first, seg.last)
            .map_err(|reason| BackupError::damaged(object.key(), reason))?;
        segments += 1;
        let mut wanted: Vec<LoggedEvent> = Vec::new();
        let mut past_bound = false;
        for ev in events {
            if ev.server_seq <= reached {
                continue;
            }
            if ev.server_seq > link.up_to {
                break;
            }
            let late = time_bound.is_some_and(|t| unix_ms(&ev.server_timestamp) > t);
            if ev.server_seq > seq_bound || late {
                past_bound = true;
                break;
            }
            wanted.push(ev);
        }
        for chunk in wanted.chunks(CHUNK) {
            let project = project.clone();
            let chunk = chunk.to_vec();
            let n = chunk.len();
            reached = tokio::task::spawn_blocking(move || project.append_logged(&chunk))
                .await
                .expect("appending does not panic")?;
            replayed += n;
        }
        // The segment's range is covered even where its last seqs were never logged.
        if !past_bound {
            reached = reached.max(link.up_to.min(seq_bound));
        }
        if past_bound {
            break 'segments;
        }
    }
    // Read from the file: a project being recovered is out of service for everything else.
    let (seq, check) = {
        let path = project.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            if !path.exists() {
                return Ok((0, None));
            }
            let file = ShardFile::open(&path)?;
            Ok::<_, BackupError>((file.head()?.0, Some(file.rebuild_check()?)))
        })
        .await
        .expect("a rebuild check does not panic")?
    };
    Ok(ProjectRestored {
        project: key.to_string(),
        seq,
        snapshot_seq: snapshot.map(|s| s.seq),
        events_replayed: replayed,
        segments,
        missing,
        rebuild_matches: check.as_ref().is_none_or(|c| c.matches),
        divergence: check.and_then(|c| c.divergence),
    })
}

async fn restore_control_plane(
    target: &Target,
    catalog: &Catalog,
    dest: &Path,
    until: &Until,
) -> Result<Option<i64>, BackupError> {
    let bound = match until {
        Until::At(at) => at.timestamp_millis(),
        _ => i64::MAX,
    };
    let Some(&unix_ms) = catalog.control_plane.iter().rev().find(|t| **t <= bound) else {
        return Ok(None);
    };
    let key = Object::ControlPlane { unix_ms }.key();
    let bytes = target.get(&key).await?;
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir)
            .map_err(BackupError::io(format!("creating {}", dir.display())))?;
    }
    gunzip_to(&bytes, dest, key.as_ref())?;
    Ok(Some(unix_ms))
}
