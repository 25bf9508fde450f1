//! `tdsync verify`: the integrity of every shard of a data directory (SQLite's integrity check,
//! the log replayed against the projection, seqs never logged) or of every object of a backup
//! (each segment decoded and its checksum and range checked, segments continuous, each
//! snapshot a sound shard of its project at the seq its name says), and what a data directory
//! holds that its backup lacks.

use std::path::Path;

use serde::Serialize;
use tdsync_tenants::ShardFile;

use crate::{
    catalog::Catalog,
    compress::gunzip_to,
    error::BackupError,
    layout::{Object, ProjectKey},
    progress::Progress,
    segment,
    target::Target,
};

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warning,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub level: Level,
    /// The shard file, object or project concerned.
    pub subject: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProjectSummary {
    pub project: String,
    /// The head seq (data dir) or the newest seq restorable without a gap (backup).
    pub seq: i64,
    pub events: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub checked: String,
    pub projects: Vec<ProjectSummary>,
    pub findings: Vec<Finding>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.findings.iter().all(|f| f.level != Level::Error)
    }

    fn error(&mut self, subject: impl ToString, message: impl Into<String>) {
        self.findings.push(Finding {
            level: Level::Error,
            subject: subject.to_string(),
            message: message.into(),
        });
    }

    fn warning(&mut self, subject: impl ToString, message: impl Into<String>) {
        self.findings.push(Finding {
            level: Level::Warning,
            subject: subject.to_string(),
            message: message.into(),
        });
    }
}

/// Checks every shard under `data_dir` (read-only: a running server may own it).
pub fn verify_data_dir(data_dir: &Path, progress: &Progress) -> Result<VerifyReport, BackupError> {
    let mut report = VerifyReport {
        checked: format!("data directory {}", data_dir.display()),
        ..VerifyReport::default()
    };
    let files = tdsync_tenants::shard_files(data_dir)?;
    let bar = progress.bar(files.len() as u64, "verifying shards");
    for path in files {
        bar.inc(1);
        let subject = path.display().to_string();
        let file = match ShardFile::open(&path) {
            Ok(f) => f,
            Err(e) => {
                report.error(&subject, e.to_string());
                continue;
            }
        };
        match file.quick_check() {
            Ok(problems) if problems.is_empty() => {}
            Ok(problems) => {
                report.error(
                    &subject,
                    format!("SQLite finds damage: {}", problems.join("; ")),
                );
                continue;
            }
            Err(e) => {
                report.error(&subject, e.to_string());
                continue;
            }
        }
        let summary = (|| -> Result<(i64, usize), tdsync_tenants::StoreError> {
            let (head, _) = file.head()?;
            let mut count = 0;
            let mut after = 0;
            loop {
                let page = file.events_after(after, 5_000)?;
                let Some(last) = page.last() else { break };
                after = last.server_seq;
                count += page.len();
            }
            Ok((head, count))
        })();
        let (head, count) = match summary {
            Ok(s) => s,
            Err(e) => {
                report.error(&subject, format!("reading the log: {e}"));
                continue;
            }
        };
        if (count as i64) < head {
            report.warning(
                &subject,
                format!(
                    "{} of seqs 1..={head} were never logged (seqs are never reused, so a \
                     rolled-back push leaves a gap)",
                    head - count as i64
                ),
            );
        }
        match file.rebuild_check() {
            Ok(r) if r.matches => {}
            Ok(r) => report.error(
                &subject,
                format!(
                    "the projection differs from its log replayed: {}",
                    r.divergence.unwrap_or_default()
                ),
            ),
            Err(e) => report.error(&subject, format!("replaying the log: {e}")),
        }
        report.projects.push(ProjectSummary {
            project: format!("{}/{}", file.tenant(), file.project()),
            seq: head,
            events: count,
        });
    }
    bar.finish_and_clear();
    Ok(report)
}

/// Checks every object of the backup in `target`.
pub async fn verify_backup(
    target: &Target,
    progress: &Progress,
) -> Result<VerifyReport, BackupError> {
    let mut report = VerifyReport {
        checked: format!("backup {target}"),
        ..VerifyReport::default()
    };
    let catalog = Catalog::read(target).await?;
    let objects: usize = catalog
        .projects
        .values()
        .map(|p| p.segments.len() + p.snapshots.len())
        .sum();
    let bar = progress.bar(objects as u64, "verifying objects");
    for (key, cat) in &catalog.projects {
        let mut reached = 0;
        let mut events = 0;
        for link in cat.chain() {
            bar.inc(1);
            let seg = link.segment;
            let object = seg.object(key);
            let name = object.key();
            if seg.first > reached + 1 {
                report.error(
                    key,
                    format!("seqs {}..={} are in no segment", reached + 1, seg.first - 1),
                );
            } else if seg.first <= reached {
                report.warning(
                    &name,
                    format!("overlaps seqs up to {reached} (shipped twice; harmless)"),
                );
            }
            let bytes = target.get(&name).await?;
            match segment::decode(&bytes, key, seg.first, seg.last) {
                Ok(evs) => {
                    events += evs
                        .iter()
                        .filter(|e| e.server_seq > reached && e.server_seq <= link.up_to)
                        .count()
                }
                Err(reason) => report.error(&name, reason),
            }
            reached = reached.max(link.up_to);
        }
        for seg in cat.fenced() {
            bar.inc(1);
            let name = seg.object(key).key();
            report.warning(
                &name,
                format!(
                    "written under epoch {} after a newer epoch began at seq {}: a fenced \
                     owner's, never restored",
                    seg.epoch,
                    cat.trusted_up_to(seg.epoch) + 1
                ),
            );
        }
        for snap in &cat.snapshots {
            bar.inc(1);
            let object = snap.object(key);
            if snap.seq > cat.trusted_up_to(snap.epoch) {
                report.warning(
                    object.key(),
                    format!(
                        "taken under epoch {} by a fenced owner: never restored",
                        snap.epoch
                    ),
                );
                continue;
            }
            if let Err(reason) = check_snapshot(target, key, &object, snap.seq).await? {
                report.error(object.key(), reason);
            }
        }
        report.projects.push(ProjectSummary {
            project: key.to_string(),
            seq: cat.shipped_seq(),
            events,
        });
    }
    bar.finish_and_clear();
    Ok(report)
}

/// Ok(Err(reason)) when the snapshot is damaged; Err when it cannot be read at all.
async fn check_snapshot(
    target: &Target,
    key: &ProjectKey,
    object: &Object,
    seq: i64,
) -> Result<Result<(), String>, BackupError> {
    let name = object.key();
    let bytes = target.get(&name).await?;
    let key = key.clone();
    Ok(tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let file = dir.path().join("snapshot.db");
        gunzip_to(&bytes, &file, name.as_ref()).map_err(|e| e.to_string())?;
        let shard = ShardFile::open(&file).map_err(|e| e.to_string())?;
        if shard.tenant() != &key.tenant || shard.project() != &key.project {
            return Err(format!(
                "it holds {}/{}, its name says {key}",
                shard.tenant(),
                shard.project()
            ));
        }
        let problems = shard.quick_check().map_err(|e| e.to_string())?;
        if !problems.is_empty() {
            return Err(format!("SQLite finds damage: {}", problems.join("; ")));
        }
        let (head, _) = shard.head().map_err(|e| e.to_string())?;
        if head != seq {
            return Err(format!("its head is seq {head}, its name says {seq}"));
        }
        Ok(())
    })
    .await
    .expect("checking a snapshot does not panic"))
}

/// Per project of `data_dir`, the seqs it logged that `target` does not hold: what a restore
/// from that backup would lose (the recovery point, measured).
pub async fn compare(target: &Target, data_dir: &Path) -> Result<VerifyReport, BackupError> {
    let mut report = VerifyReport {
        checked: format!("{} against backup {target}", data_dir.display()),
        ..VerifyReport::default()
    };
    let catalog = Catalog::read(target).await?;
    for path in tdsync_tenants::shard_files(data_dir)? {
        let file = ShardFile::open(&path)?;
        let key = ProjectKey {
            tenant: file.tenant().clone(),
            project: file.project().clone(),
        };
        let (head, _) = file.head()?;
        let shipped = catalog.projects.get(&key).map_or(0, |c| c.shipped_seq());
        let mut lacking = 0;
        let mut after = shipped;
        loop {
            let page = file.events_after(after, 5_000)?;
            let Some(last) = page.last() else { break };
            after = last.server_seq;
            lacking += page.len();
        }
        if lacking > 0 {
            report.error(
                &key,
                format!(
                    "the backup lacks {lacking} logged events: seqs {}..={head} (it holds up \
                     to {shipped})",
                    shipped + 1
                ),
            );
        }
        report.projects.push(ProjectSummary {
            project: key.to_string(),
            seq: head,
            events: lacking,
        });
    }
    Ok(report)
}
