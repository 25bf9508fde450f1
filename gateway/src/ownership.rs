//! A shard node's projects (`--role shard`). Every request for a project passes
//! [`Ownership::ensure`] (through `AppState::project`): a project whose lease this node holds,
//! with its local copy current for that lease's epoch, is served at once; a free one is claimed
//! and taken over — restored from the backup, its epoch begun — before it is served; one that
//! another node holds is answered 421 with that node's URL. A push is acknowledged only if the
//! lease is still trusted after it committed ([`Ownership::still_owner`]), so a node that lost
//! its lease — paused past it, cut off from Postgres — acknowledges nothing.

use std::{collections::HashMap, sync::Arc, time::Duration};

use parking_lot::Mutex;
use tdsync_backup::BackupService;
use tdsync_placement::{Acquired, Holder, NodeId, Placement};
use tdsync_tenants::{Project, ProjectId, TenantId};

use crate::error::ApiError;

type Key = (TenantId, ProjectId);

/// How often a shard node tells the placement store it is alive (gateways send new projects
/// only to nodes heard from within a few of these).
pub const HEARTBEAT: Duration = Duration::from_secs(1);

pub struct Ownership {
    holder: Arc<Holder>,
    placement: Placement,
    backup: Arc<BackupService>,
    /// The lease epoch each project's local copy is current for.
    ready: Mutex<HashMap<Key, i64>>,
    /// One takeover at a time per project.
    gates: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Ownership {
    /// Registers `node` at `url` and starts renewing its leases and heartbeats every fifth of
    /// `lease`.
    pub async fn start(
        placement: Placement,
        node: NodeId,
        url: &str,
        lease: Duration,
        backup: Arc<BackupService>,
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
        let heartbeat = {
            let (placement, node) = (placement.clone(), node.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(HEARTBEAT).await;
                    if let Err(e) = placement.heartbeat(&node).await {
                        tracing::warn!(error = %e, "heartbeat failed");
                    }
                }
            })
        };
        tracing::info!(node = %node, url, lease_ms = lease.as_millis() as u64, "shard node registered");
        Ok(Arc::new(Ownership {
            holder,
            placement,
            backup,
            ready: Mutex::new(HashMap::new()),
            gates: Mutex::new(HashMap::new()),
            tasks: Mutex::new(vec![renewals, heartbeat]),
        }))
    }

    /// Makes sure this node serves `project` now; its lease epoch.
    pub async fn ensure(&self, project: &Project) -> Result<i64, ApiError> {
        let key = (project.tenant().clone(), project.id().clone());
        if let Some(epoch) = self.holder.may_write(&key.0, &key.1)
            && self.ready.lock().get(&key) == Some(&epoch)
        {
            return Ok(epoch);
        }
        let gate = self.gates.lock().entry(key.clone()).or_default().clone();
        let _one_at_a_time = gate.lock().await;
        let unavailable = |e: String| ApiError::unavailable(e).with_retry_after(2);
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
                    self.ready.lock().insert(key, epoch);
                }
                Ok(epoch)
            }
            Acquired::Elsewhere { by } => {
                let url = self
                    .placement
                    .owner(&key.0, &key.1)
                    .await
                    .ok()
                    .flatten()
                    .map(|o| o.url);
                Err(ApiError::not_owner(
                    format!(
                        "project {} is served by shard node {by}{}",
                        key.1,
                        url.as_deref()
                            .map(|u| format!(" at {u}"))
                            .unwrap_or_default()
                    ),
                    url,
                ))
            }
        }
    }

    /// Whether this node still holds `project` under `epoch`: asked after a push committed and
    /// before it is acknowledged.
    pub fn still_owner(&self, project: &Project, epoch: i64) -> Result<(), ApiError> {
        match self.holder.may_write(project.tenant(), project.id()) {
            Some(e) if e == epoch => Ok(()),
            _ => Err(ApiError::unavailable(format!(
                "this node lost project {}'s lease while the push ran: it is not acknowledged, \
                 retry (another node serves the project)",
                project.id()
            ))
            .with_retry_after(1)),
        }
    }

    /// Stops renewing (server shutdown: the leases run out and other nodes take over).
    pub fn stop(&self) {
        for task in self.tasks.lock().drain(..) {
            task.abort();
        }
    }
}
