//! A shard node's projects (`--role shard`). Every request for a project passes
//! [`Ownership::ensure`] (through `AppState::project`): a project whose lease this node holds,
//! with its local copy current for that lease's epoch, is served at once; a free one is claimed
//! and taken over — restored from the backup, its epoch begun — before it is served; one that
//! another node holds is answered 421 with that node's URL. A push is acknowledged only if the
//! lease is still trusted after it committed ([`Ownership::still_owner`]), so a node that lost
//! its lease — paused past it, cut off from Postgres — acknowledges nothing.
//!
//! A takeover and a hand-over are announced through the live layer (Redis), with the head the
//! node now serves, so gateways forget where the project was at once.
//!
//! Every second the node also beats (`HEARTBEAT`), hands over what it is asked to (a drain:
//! everything; `tdsync cluster move`: one project) — it stops acknowledging the project, ships
//! it to its head and releases its lease — and, unless draining, takes over projects whose
//! lease ran out (a dead node's), a few at a time.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use futures_util::{StreamExt, stream};
use parking_lot::Mutex;
use tdsync_backup::BackupService;
use tdsync_live::{Live, ProjectKey};
use tdsync_placement::{Acquired, Holder, NodeId, Placement};
use tdsync_tenants::{Project, ProjectId, ShardFile, TenantId, Tenants};

use crate::error::ApiError;

type Key = (TenantId, ProjectId);

/// How often a shard node tells the placement store it is alive (gateways send new projects
/// only to nodes heard from within a few of these), and looks for work.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// Expired projects one node looks at per round, and how many it restores at once (a dead
/// node's thousand projects move in seconds, not minutes).
const TAKEOVERS_PER_ROUND: i64 = 256;
const TAKEOVERS_AT_ONCE: usize = 8;

pub struct Ownership {
    node: NodeId,
    holder: Arc<Holder>,
    placement: Placement,
    backup: Arc<BackupService>,
    tenants: Tenants,
    live: Arc<Live>,
    /// The lease epoch each project's local copy is current for.
    ready: Mutex<HashMap<Key, i64>>,
    /// Projects being handed over: not acknowledged, not served.
    leaving: Mutex<HashSet<Key>>,
    /// This node is draining: it claims nothing.
    draining: AtomicBool,
    /// One takeover or hand-over at a time per project.
    gates: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    takeovers: AtomicU64,
    handoffs: AtomicU64,
}

impl Ownership {
    /// Registers `node` at `url`, renews its leases every fifth of `lease` and starts its beat.
    pub async fn start(
        placement: Placement,
        node: NodeId,
        url: &str,
        lease: Duration,
        backup: Arc<BackupService>,
        tenants: Tenants,
        live: Arc<Live>,
    ) -> anyhow::Result<Arc<Ownership>> {
        placement.register(&node, url).await?;
        let holder = Arc::new(Holder::new(
            placement.clone(),
            node.clone(),
            lease,
            lease / 5,
            Box::new(|lease| {
                tracing::warn!(tenant = %lease.tenant, project = %lease.project, epoch = lease.epoch, "lease lost: this node no longer serves the project");
            }),
        ));
        let renewals = holder.spawn_renewals(lease / 5);
        tracing::info!(node = %node, url, lease_ms = lease.as_millis() as u64, "shard node registered");
        let ownership = Arc::new(Ownership {
            node,
            holder,
            placement,
            backup,
            tenants,
            live,
            ready: Mutex::new(HashMap::new()),
            leaving: Mutex::new(HashSet::new()),
            draining: AtomicBool::new(false),
            gates: Mutex::new(HashMap::new()),
            tasks: Mutex::new(vec![renewals]),
            takeovers: AtomicU64::new(0),
            handoffs: AtomicU64::new(0),
        });
        let beat = tokio::spawn(ownership.clone().beat());
        ownership.tasks.lock().push(beat);
        Ok(ownership)
    }

    fn gate(&self, key: &Key) -> Arc<tokio::sync::Mutex<()>> {
        self.gates.lock().entry(key.clone()).or_default().clone()
    }

    /// Makes sure this node serves `project` now; its lease epoch.
    pub async fn ensure(&self, project: &Project) -> Result<i64, ApiError> {
        let key = (project.tenant().clone(), project.id().clone());
        let moving = || {
            ApiError::unavailable(format!(
                "project {} is being handed to another shard node: retry",
                key.1
            ))
            .with_retry_after(1)
        };
        if self.leaving.lock().contains(&key) {
            return Err(moving());
        }
        if let Some(epoch) = self.holder.may_write(&key.0, &key.1)
            && self.ready.lock().get(&key) == Some(&epoch)
        {
            return Ok(epoch);
        }
        let gate = self.gate(&key);
        let _one_at_a_time = gate.lock().await;
        if self.leaving.lock().contains(&key) {
            return Err(moving());
        }
        let unavailable = |e: String| ApiError::unavailable(e).with_retry_after(2);
        let held = self.holder.may_write(&key.0, &key.1).is_some();
        if !held && self.draining.load(Ordering::Acquire) {
            return Err(self.elsewhere(&key, None).await);
        }
        match self
            .holder
            .acquire(&key.0, &key.1)
            .await
            .map_err(|e| unavailable(format!("the placement store: {e}")))?
        {
            Acquired::Held { epoch, .. } => {
                if self.ready.lock().get(&key) != Some(&epoch) {
                    let head = self.backup.take_over(project, epoch).await.map_err(|e| {
                        unavailable(format!(
                            "taking project {} over from the backup: {e}",
                            key.1
                        ))
                    })?;
                    tracing::info!(tenant = %key.0, project = %key.1, epoch, head, "project taken over");
                    self.takeovers.fetch_add(1, Ordering::Relaxed);
                    self.ready.lock().insert(key.clone(), epoch);
                    let status = {
                        let project = project.clone();
                        crate::state::blocking(move || project.status()).await.ok()
                    };
                    let head = status.map(|status| tdsync_live::Head { epoch, status });
                    self.live
                        .announce_move(&ProjectKey::new(&key.0, &key.1), head)
                        .await;
                }
                Ok(epoch)
            }
            Acquired::Elsewhere { by } => Err(self.elsewhere(&key, Some(by)).await),
        }
    }

    /// The 421 that names where `key` is served (or 503 when nobody serves it yet).
    async fn elsewhere(&self, key: &Key, by: Option<NodeId>) -> ApiError {
        let owner = self.placement.owner(&key.0, &key.1).await.ok().flatten();
        let url = owner.and_then(|o| if o.live { Some(o.url) } else { o.moving_to });
        match (by, url) {
            (by, Some(url)) => ApiError::not_owner(
                format!(
                    "project {} is served by shard node {} at {url}",
                    key.1,
                    by.map_or_else(|| "another node".into(), |b| b.to_string())
                ),
                Some(url),
            ),
            (_, None) => ApiError::unavailable(format!(
                "project {} is between shard nodes (this one is draining): retry",
                key.1
            ))
            .with_retry_after(1),
        }
    }

    /// Whether this node still holds `project` under `epoch`: asked after a push committed and
    /// before it is acknowledged.
    pub fn still_owner(&self, project: &Project, epoch: i64) -> Result<(), ApiError> {
        let key = (project.tenant().clone(), project.id().clone());
        let trusted = self.holder.may_write(&key.0, &key.1) == Some(epoch)
            && !self.leaving.lock().contains(&key);
        if trusted {
            return Ok(());
        }
        Err(ApiError::unavailable(format!(
            "this node gave up project {}'s lease while the push ran: it is not acknowledged, \
             retry (another node serves the project)",
            project.id()
        ))
        .with_retry_after(1))
    }

    /// Hands `key` over: no more acknowledgements, shipped to its head, lease released.
    async fn hand_off(&self, key: Key) -> anyhow::Result<()> {
        let gate = self.gate(&key);
        let _one_at_a_time = gate.lock().await;
        self.leaving.lock().insert(key.clone());
        let project = self.tenants.project(&key.0, &key.1);
        project.suspend("being handed to another shard node");
        let path = project.path().to_path_buf();
        let outcome = async {
            let head = tokio::task::spawn_blocking(move || {
                if !path.exists() {
                    return Ok(0);
                }
                ShardFile::open(&path)?.head().map(|h| h.0)
            })
            .await??;
            self.backup
                .wait_shipped(&key.0, &key.1, head)
                .await
                .map_err(anyhow::Error::msg)?;
            self.holder.release(&key.0, &key.1).await?;
            anyhow::Ok(head)
        }
        .await;
        self.ready.lock().remove(&key);
        self.leaving.lock().remove(&key);
        match outcome {
            Ok(head) => {
                tracing::info!(tenant = %key.0, project = %key.1, head, "project handed over");
                self.handoffs.fetch_add(1, Ordering::Relaxed);
                self.live
                    .announce_move(&ProjectKey::new(&key.0, &key.1), None)
                    .await;
                Ok(())
            }
            Err(e) => {
                // Still ours: serve it again and try the hand-over at the next beat.
                project.return_to_service();
                Err(e)
            }
        }
    }

    /// Once a second: heartbeat, hand-overs, takeovers of expired leases.
    async fn beat(self: Arc<Self>) {
        loop {
            tokio::time::sleep(HEARTBEAT).await;
            if let Err(e) = self.one_beat().await {
                tracing::warn!(error = %e, "shard node beat failed; trying again");
            }
        }
    }

    async fn one_beat(&self) -> anyhow::Result<()> {
        self.placement.heartbeat(&self.node).await?;
        let draining = self
            .placement
            .nodes()
            .await?
            .into_iter()
            .any(|n| n.id == self.node && n.draining);
        self.draining.store(draining, Ordering::Release);
        let leaving: Vec<Key> = if draining {
            self.holder.held()
        } else {
            self.placement
                .moves_from(&self.node)
                .await?
                .into_iter()
                .map(|l| (l.tenant, l.project))
                .collect()
        };
        for key in leaving {
            if let Err(e) = self.hand_off(key.clone()).await {
                tracing::warn!(tenant = %key.0, project = %key.1, error = %e, "hand-over failed; trying again");
            }
        }
        if draining {
            return Ok(());
        }
        // Round after round while there is work: other nodes take their share meanwhile (each
        // claim is atomic), so no project is taken twice.
        loop {
            let expired = self
                .placement
                .expired(&self.node, TAKEOVERS_PER_ROUND)
                .await?;
            let full = expired.len() as i64 == TAKEOVERS_PER_ROUND;
            let taken = &std::sync::atomic::AtomicUsize::new(0);
            stream::iter(expired)
                .for_each_concurrent(TAKEOVERS_AT_ONCE, |lease| async move {
                    let project = self.tenants.project(&lease.tenant, &lease.project);
                    match self.ensure(&project).await {
                        Ok(_) => {
                            taken.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            tracing::debug!(project = %lease.project, error = %e.message, "takeover not done");
                        }
                    }
                })
                .await;
            // Another round only while this one made progress (no spinning on failures).
            if !full || taken.load(Ordering::Relaxed) == 0 {
                return Ok(());
            }
        }
    }

    /// The projects this node serves now, with their lease epochs.
    pub fn served(&self) -> Vec<(Key, i64)> {
        let ready = self.ready.lock().clone();
        let leaving = self.leaving.lock().clone();
        ready
            .into_iter()
            .filter(|(key, epoch)| {
                !leaving.contains(key) && self.holder.may_write(&key.0, &key.1) == Some(*epoch)
            })
            .collect()
    }

    pub fn gauges(&self) -> crate::metrics::ShardGauges {
        crate::metrics::ShardGauges {
            projects_held: self.holder.held().len(),
            takeovers: self.takeovers.load(Ordering::Relaxed),
            handoffs: self.handoffs.load(Ordering::Relaxed),
        }
    }

    /// Stops renewing (server shutdown: the leases run out and other nodes take over).
    pub fn stop(&self) {
        for task in self.tasks.lock().drain(..) {
            task.abort();
        }
    }
}
