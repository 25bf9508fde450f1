//! Recovery of a project whose shard was found damaged while the server runs. The project is
//! out of service (its requests answer 503) from the moment the damage is seen; here its file
//! is moved aside and its log salvaged. A log read whole means only the projection (or an
//! index) was hit: the shard is rebuilt from the local log alone. Otherwise the shard is
//! restored from the backup and brought up to date with every salvaged event after it. With
//! neither, the project stays out of service and the error says what was lost.

use std::path::PathBuf;

use serde::Serialize;
use tdsync_tenants::{Aside, LoggedEvent, Project, ShardFile, salvage_log};

use crate::{
    catalog::Catalog,
    error::BackupError,
    layout::ProjectKey,
    progress::Progress,
    restore::{Until, restore_project},
    target::Target,
};

#[derive(Debug, Clone, Serialize)]
pub struct Recovered {
    pub project: String,
    /// Where the damaged file was moved.
    pub moved_to: Option<PathBuf>,
    /// Restored from the backup (false: rebuilt from the local log alone).
    pub from_backup: bool,
    pub events_from_backup: usize,
    pub events_from_local_log: usize,
    pub head: i64,
    /// Seqs read neither from the local log nor from the backup.
    pub lost: Vec<(i64, i64)>,
}

/// Events appended per transaction.
const CHUNK: usize = 2_000;

/// Recovers `project` (out of service) and returns it to service, or leaves it out with an
/// error naming what could not be recovered.
pub async fn recover(project: Project, target: Option<&Target>) -> Result<Recovered, BackupError> {
    let key = ProjectKey {
        tenant: project.tenant().clone(),
        project: project.id().clone(),
    };
    let moved = {
        let project = project.clone();
        tokio::task::spawn_blocking(move || project.move_aside(Aside::Damaged))
            .await
            .expect("moving a shard aside does not panic")?
    };
    let salvage = match &moved {
        Some(path) => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || salvage_log(&path))
                .await
                .expect("salvaging does not panic")
        }
        None => tdsync_tenants::Salvage {
            complete: true,
            ..Default::default()
        },
    };
    let mut report = Recovered {
        project: key.to_string(),
        moved_to: moved.clone(),
        from_backup: false,
        events_from_backup: 0,
        events_from_local_log: 0,
        head: 0,
        lost: Vec::new(),
    };
    if salvage.complete {
        report.events_from_local_log = append(&project, salvage.events, 0).await?;
    } else {
        let Some(target) = target else {
            return Err(BackupError::Refused(format!(
                "project {key}: its shard is damaged and seqs {} of its log cannot be read; there \
                 is no backup (--backup-to) to restore them from. The project stays out of \
                 service; the damaged file is {}",
                ranges(&salvage.unreadable),
                moved
                    .as_deref()
                    .map_or("gone".into(), |p| p.display().to_string())
            )));
        };
        let catalog = Catalog::read(target).await?;
        let cat = catalog.projects.get(&key).cloned().unwrap_or_default();
        let bar = Progress::hidden().bar(0, "recovering");
        let restored = restore_project(target, &project, &key, &cat, &Until::Latest, &bar).await?;
        report.from_backup = true;
        report.events_from_backup = restored.events_replayed;
        let after = restored.seq;
        report.events_from_local_log = append(&project, salvage.events, after).await?;
        report.lost = salvage
            .unreadable
            .iter()
            .filter(|(_, to)| *to > after)
            .map(|(from, to)| ((*from).max(after + 1), *to))
            .collect();
    }
    let path = project.path().to_path_buf();
    let (head, check) = tokio::task::spawn_blocking(move || {
        if !path.exists() {
            return Ok((0, None));
        }
        let file = ShardFile::open(&path)?;
        Ok::<_, BackupError>((file.head()?.0, Some(file.rebuild_check()?)))
    })
    .await
    .expect("checking does not panic")?;
    if let Some(check) = check.filter(|c| !c.matches) {
        return Err(BackupError::Refused(format!(
            "project {key}: the recovered shard fails its rebuild check ({}); it stays out of \
             service",
            check.divergence.unwrap_or_default()
        )));
    }
    report.head = head;
    project.return_to_service();
    Ok(report)
}

/// Appends the events after `after`, in chunks; returns how many.
async fn append(
    project: &Project,
    events: Vec<LoggedEvent>,
    after: i64,
) -> Result<usize, BackupError> {
    let events: Vec<LoggedEvent> = events
        .into_iter()
        .filter(|e| e.server_seq > after)
        .collect();
    let n = events.len();
    for chunk in events.chunks(CHUNK) {
        let (project, chunk) = (project.clone(), chunk.to_vec());
        tokio::task::spawn_blocking(move || project.append_logged(&chunk))
            .await
            .expect("appending does not panic")?;
    }
    Ok(n)
}

fn ranges(r: &[(i64, i64)]) -> String {
    r.iter()
        .map(|(a, b)| {
            if *b == i64::MAX {
                format!("{a}..")
            } else {
                format!("{a}..={b}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}
