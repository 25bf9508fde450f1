//! Shipping inside `tdsync serve` (`--backup-to`): a background task ships every project whose
//! head moved past what the target holds, every interval, without ever holding a push up; with
//! `--durability replicated` a push waits in [`BackupService::wait_shipped`] until its events
//! are in a segment — pushes that wait together share one shipment of their project (group
//! commit). Counters for `/metrics` and `/healthz` come from [`BackupService::stats`].

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use futures_util::{StreamExt, stream};
use parking_lot::Mutex;
use serde::Serialize;
use tdsync_tenants::{Aside, Project, ProjectId, ShardFile, TenantId, Tenants};
use tokio::sync::{Notify, mpsc, oneshot, watch};

use crate::{
    catalog::Catalog,
    error::BackupError,
    layout::ProjectKey,
    restore::{Until, restore_project},
    ship::{Policy, Shipper},
    target::Target,
};

#[derive(Debug, Clone)]
pub struct BackupConfig {
    pub target: Target,
    /// How often changed projects are shipped.
    pub interval: Duration,
    pub policy: Policy,
    /// The SQLite control plane to snapshot when it changes (None for Postgres, which is
    /// backed up with its own tools).
    pub control_plane: Option<PathBuf>,
    /// `/healthz` reports the backup behind when a change has waited longer than this.
    pub max_lag: Duration,
}

/// What `/metrics` and `/healthz` show.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BackupStats {
    pub target: String,
    pub shipped_bytes: u64,
    pub shipped_events: u64,
    pub segments: u64,
    pub snapshots: u64,
    pub failures: u64,
    /// Events logged but not yet in the target (by seq distance, across projects).
    pub backlog_events: i64,
    /// The longest any project with a backlog has waited since it was last fully shipped.
    pub lag_seconds: f64,
    pub last_error: Option<String>,
    /// The lag is beyond the configured limit.
    pub behind: bool,
}

struct Waiter {
    key: ProjectKey,
    seq: i64,
    done: oneshot::Sender<Result<(), String>>,
}

#[derive(Default)]
struct Tracking {
    stats: BackupStats,
    /// When each project last had nothing left to ship.
    caught_up: HashMap<ProjectKey, Instant>,
    control_plane_seen: Option<(SystemTime, u64, Option<SystemTime>)>,
}

pub struct BackupService {
    /// Set once the target has been listed; until then every round tries again.
    shipper: std::sync::OnceLock<Shipper>,
    tenants: Tenants,
    config: BackupConfig,
    waiters: Mutex<Vec<Waiter>>,
    wake: Notify,
    tracking: Mutex<Tracking>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Projects whose log was just shipped, for the snapshot task to look at.
    snapshots: mpsc::UnboundedSender<(ProjectKey, PathBuf)>,
}

/// Projects shipped at once in a round.
const PARALLEL: usize = 4;

impl BackupService {
    /// Starts shipping in the background. The target is listed first (what it holds is not
    /// shipped again); a target that cannot be listed yet is retried every interval, and the
    /// server serves meanwhile — with `replicated`, pushes are refused until it answers.
    pub fn start(tenants: Tenants, config: BackupConfig) -> Arc<BackupService> {
        let (stop, stopped) = watch::channel(false);
        let (snapshots, snapshot_queue) = mpsc::unbounded_channel();
        let service = Arc::new(BackupService {
            snapshots,
            tracking: Mutex::new(Tracking {
                stats: BackupStats {
                    target: config.target.to_string(),
                    ..BackupStats::default()
                },
                ..Tracking::default()
            }),
            shipper: std::sync::OnceLock::new(),
            tenants,
            config,
            waiters: Mutex::new(Vec::new()),
            wake: Notify::new(),
            stop,
            task: Mutex::new(None),
        });
        let task = tokio::spawn(service.clone().run(stopped));
        *service.task.lock() = Some(task);
        let stopped = service.stop.subscribe();
        tokio::spawn(service.clone().take_snapshots(snapshot_queue, stopped));
        service
    }

    /// Takes the snapshots that are due, apart from the shipping rounds: a snapshot copies a
    /// whole shard, and no push (replicated) or shipment waits for it.
    async fn take_snapshots(
        self: Arc<Self>,
        mut queue: mpsc::UnboundedReceiver<(ProjectKey, PathBuf)>,
        mut stopped: watch::Receiver<bool>,
    ) {
        loop {
            let (key, path) = tokio::select! {
                next = queue.recv() => match next {
                    Some(next) => next,
                    None => return,
                },
                // Ends with the server (the task holds the service, and with it the store).
                _ = stopped.changed() => return,
            };
            let Some(shipper) = self.shipper.get() else {
                continue;
            };
            match shipper.snapshot_if_due(&key, &path).await {
                Ok(Some((_, size))) => {
                    let stats = &mut self.tracking.lock().stats;
                    stats.snapshots += 1;
                    stats.shipped_bytes += size;
                }
                Ok(None) => {}
                Err(e) => {
                    let mut tracking = self.tracking.lock();
                    tracking.stats.failures += 1;
                    tracking.stats.last_error = Some(e.to_string());
                    tracing::warn!(project = %key, error = %e, "snapshot failed; will retry");
                }
            }
        }
    }

    /// The shipper, listing the target first if that has not succeeded yet.
    async fn shipper(&self) -> Result<&Shipper, String> {
        if let Some(shipper) = self.shipper.get() {
            return Ok(shipper);
        }
        match Shipper::open(self.config.target.clone(), self.config.policy).await {
            Ok(shipper) => {
                tracing::info!(target = %self.config.target, "backup target listed; shipping");
                Ok(self.shipper.get_or_init(|| shipper))
            }
            Err(e) => {
                let mut tracking = self.tracking.lock();
                tracking.stats.failures += 1;
                tracking.stats.last_error = Some(e.to_string());
                tracing::warn!(error = %e, "backup target unavailable; will retry");
                Err(e.to_string())
            }
        }
    }

    fn shipped_seq(&self, key: &ProjectKey) -> i64 {
        self.shipper.get().map_or(0, |s| s.shipped_seq(key))
    }

    /// Returns once the target holds every event of the project up to `seq`; an error when the
    /// shipment that should have carried it failed (the events stay logged and ship later).
    pub async fn wait_shipped(
        &self,
        tenant: &TenantId,
        project: &ProjectId,
        seq: i64,
    ) -> Result<(), String> {
        let key = ProjectKey {
            tenant: tenant.clone(),
            project: project.clone(),
        };
        if self.shipped_seq(&key) >= seq {
            return Ok(());
        }
        let (done, wait) = oneshot::channel();
        self.waiters.lock().push(Waiter { key, seq, done });
        self.wake.notify_one();
        wait.await
            .unwrap_or_else(|_| Err("the backup shipper stopped".into()))
    }

    /// Makes this node's copy of `project` the backup's, for lease `epoch` (a cluster node that
    /// just claimed it): the local shard, if any, is moved aside as superseded, the project is
    /// restored from the target, and the epoch begun after its head (`Shipper::begin_epoch`),
    /// so what an earlier owner ships afterwards is fenced. The project is out of service
    /// meanwhile. Returns the restored head.
    pub async fn take_over(&self, project: &Project, epoch: i64) -> Result<i64, BackupError> {
        let key = ProjectKey {
            tenant: project.tenant().clone(),
            project: project.id().clone(),
        };
        let shipper = self.shipper().await.map_err(BackupError::Refused)?;
        let cat = Catalog::read_project(shipper.target(), &key).await?;
        let path = project.path().to_path_buf();
        if cat.epoch() == epoch && path.exists() {
            // This node began the epoch already (it restarted while holding the lease): its own
            // copy is the owner's, possibly ahead of the backup.
            let head = tokio::task::spawn_blocking(move || ShardFile::open(&path)?.head())
                .await
                .expect("reading a head does not panic")?;
            return Ok(head.0);
        }
        project.suspend(&format!("being taken over under lease epoch {epoch}"));
        let outcome = async {
            let aside = project.clone();
            tokio::task::spawn_blocking(move || aside.move_aside(Aside::Superseded))
                .await
                .expect("moving a shard aside does not panic")?;
            let bar = crate::progress::Progress::hidden().bar(0, "taking over");
            let restored =
                restore_project(shipper.target(), project, &key, &cat, &Until::Latest, &bar)
                    .await?;
            if let Some(missing) = restored.missing {
                return Err(BackupError::Refused(format!(
                    "{key}: the backup has a hole: {missing}"
                )));
            }
            // Begun already when the backup's newest epoch is this one: this node claimed the
            // project under this lease before it restarted, and never wrote it locally.
            if cat.epoch() < epoch {
                shipper.begin_epoch(&key, epoch, restored.seq + 1).await?;
            }
            Ok(restored.seq)
        }
        .await;
        if outcome.is_ok() {
            project.return_to_service();
        }
        outcome
    }

    pub fn stats(&self) -> BackupStats {
        let tracking = self.tracking.lock();
        let mut stats = tracking.stats.clone();
        let now = Instant::now();
        let mut backlog = 0;
        let mut lag = Duration::ZERO;
        for (tenant, project, head) in self.tenants.heads() {
            let key = ProjectKey { tenant, project };
            let shipped = self.shipped_seq(&key);
            if head > shipped {
                backlog += head - shipped;
                if let Some(since) = tracking.caught_up.get(&key) {
                    lag = lag.max(now - *since);
                }
            }
        }
        stats.backlog_events = backlog;
        stats.lag_seconds = lag.as_secs_f64();
        stats.behind = lag > self.config.max_lag;
        stats
    }

    /// Stops the background task after one last round (server shutdown).
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    async fn run(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        // The whole disk is looked at until the target has been listed once.
        while self.shipper.get().is_none() {
            self.round(true).await;
            if self.shipper.get().is_some() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.interval) => {}
                _ = self.wake.notified() => {}
                _ = stopped.changed() => return,
            }
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.config.interval) => {}
                _ = self.wake.notified() => {}
                _ = stopped.changed() => break,
            }
            self.round(false).await;
        }
        self.round(false).await;
    }

    /// One shipment of every project that needs one: those waited on, those whose head moved
    /// past what the target holds, and (the first round) every shard on disk.
    async fn round(&self, whole_disk: bool) {
        let waiters = std::mem::take(&mut *self.waiters.lock());
        let shipper = match self.shipper().await {
            Ok(shipper) => shipper,
            Err(e) => {
                for w in waiters {
                    let _ = w.done.send(Err(e.clone()));
                }
                return;
            }
        };
        let mut due: BTreeSet<ProjectKey> = waiters.iter().map(|w| w.key.clone()).collect();
        if whole_disk {
            match tdsync_tenants::shard_files(self.tenants.root()) {
                Ok(files) => due.extend(files.iter().filter_map(|f| key_of(f))),
                Err(e) => tracing::warn!(error = %e, "listing shards to back up"),
            }
        }
        let now = Instant::now();
        {
            let mut tracking = self.tracking.lock();
            for (tenant, project, head) in self.tenants.heads() {
                let key = ProjectKey { tenant, project };
                if head > self.shipped_seq(&key) {
                    due.insert(key);
                } else {
                    tracking.caught_up.insert(key, now);
                }
            }
        }
        let results: BTreeMap<ProjectKey, Result<PathBuf, String>> = stream::iter(due)
            .map(|key| async move {
                let path = self.tenants.project(&key.tenant, &key.project).path().to_path_buf();
                let result = shipper.ship_log(&key, &path).await;
                (key, path, result)
            })
            .buffer_unordered(PARALLEL)
            .map(|(key, path, result)| {
                let mut tracking = self.tracking.lock();
                let outcome = match result {
                    Ok(shipped) => {
                        let stats = &mut tracking.stats;
                        stats.shipped_bytes += shipped.bytes;
                        stats.shipped_events += shipped.events as u64;
                        stats.segments += shipped.segments as u64;
                        tracking.caught_up.insert(key.clone(), Instant::now());
                        Ok(path)
                    }
                    Err(e) => {
                        tracking.stats.failures += 1;
                        tracking.stats.last_error = Some(e.to_string());
                        tracing::warn!(project = %key, error = %e, "backup shipment failed; will retry");
                        Err(e.to_string())
                    }
                };
                (key, outcome)
            })
            .collect()
            .await;
        for w in waiters {
            let outcome = match results.get(&w.key) {
                Some(Err(e)) => Err(e.clone()),
                _ if self.shipped_seq(&w.key) >= w.seq => Ok(()),
                _ => Err(format!("seq {} of {} was not shipped", w.seq, w.key)),
            };
            let _ = w.done.send(outcome);
        }
        for (key, result) in &results {
            if let Ok(path) = result {
                let _ = self.snapshots.send((key.clone(), path.clone()));
            }
        }
        let shipped_any = !results.is_empty();
        if let Some(db) = &self.config.control_plane {
            self.ship_control_plane(shipper, db).await;
        }
        if shipped_any && let Err(e) = shipper.write_manifest().await {
            tracing::warn!(error = %e, "writing the backup manifest failed; will retry");
        }
    }

    async fn ship_control_plane(&self, shipper: &Shipper, db: &Path) {
        let seen = file_stamp(db);
        if seen.is_some() && self.tracking.lock().control_plane_seen == seen {
            return;
        }
        match shipper.ship_control_plane(db).await {
            Ok(sent) => {
                if let Some(unix_ms) = sent {
                    tracing::info!(unix_ms, "control plane snapshot shipped");
                }
                self.tracking.lock().control_plane_seen = seen;
            }
            Err(e) => {
                let mut tracking = self.tracking.lock();
                tracking.stats.failures += 1;
                tracking.stats.last_error = Some(e.to_string());
                tracing::warn!(error = %e, "control plane backup failed; will retry");
            }
        }
    }
}

/// The project a shard file belongs to, from its place in the data directory.
fn key_of(file: &Path) -> Option<ProjectKey> {
    let project = file.file_stem()?.to_str()?;
    let tenant = file.parent()?.file_name()?.to_str()?;
    Some(ProjectKey {
        tenant: TenantId::parse(tenant).ok()?,
        project: ProjectId::parse(project).ok()?,
    })
}

/// When a SQLite file (and its WAL) last changed, and its size: a cheap "did anything change".
fn file_stamp(db: &Path) -> Option<(SystemTime, u64, Option<SystemTime>)> {
    let meta = std::fs::metadata(db).ok()?;
    let wal = std::fs::metadata(db.with_extension("db-wal"))
        .and_then(|m| m.modified())
        .ok();
    Some((meta.modified().ok()?, meta.len(), wal))
}
