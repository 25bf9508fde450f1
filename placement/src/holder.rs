//! [`Holder`]: the leases one shard node holds, and whether it may write each project *now*.
//!
//! Postgres decides who holds a lease, by its own clock; a node cannot ask it before every
//! write. So each lease also gets a local deadline on the node's monotonic clock, computed
//! from the moment the claim or renewal was *sent*: `sent + lease - margin`. Postgres set the
//! lease to end `lease` after it ran the statement, which is later than `sent`, so the local
//! deadline always comes first (the margin covers the two clocks' rates). A node that stops
//! renewing — partitioned from Postgres, paused by SIGSTOP, starved — passes its deadlines
//! before anyone else can claim its projects, and from then on [`Holder::may_write`] says no:
//! it cannot acknowledge a single push. The monotonic clock keeps counting while the process is
//! stopped, so a paused-then-resumed node finds its deadlines past at once.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use parking_lot::Mutex;
use tdsync_protocol::ids::{ProjectId, TenantId};

use crate::{
    error::PlacementError,
    model::{Claim, Lease, NodeId},
    store::Placement,
};

/// What [`Holder::acquire`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// This node holds the project at `epoch`. `new`: the lease was just claimed (the node's
    /// copy of the project may be behind the previous owner's: bring it up to date first).
    Held { epoch: i64, new: bool },
    /// Another node holds it.
    Elsewhere { by: NodeId },
}

struct Held {
    lease: Lease,
    deadline: Instant,
    /// When the claim that granted it was answered: a renewal sent before then may not have
    /// seen it.
    claimed: Instant,
}

type Key = (TenantId, ProjectId);

/// Called with each lease found lost at a renewal (the node must stop serving that project).
pub type OnLost = Box<dyn Fn(&Lease) + Send + Sync>;

pub struct Holder {
    placement: Placement,
    node: NodeId,
    lease: Duration,
    margin: Duration,
    held: Mutex<HashMap<Key, Held>>,
    on_lost: OnLost,
}

impl Holder {
    /// A holder for `node`, asking for leases of `lease`, trusting each for `lease - margin`
    /// on the local clock.
    pub fn new(
        placement: Placement,
        node: NodeId,
        lease: Duration,
        margin: Duration,
        on_lost: OnLost,
    ) -> Holder {
        assert!(margin < lease, "the margin must be shorter than the lease");
        Holder {
            placement,
            node,
            lease,
            margin,
            held: Mutex::new(HashMap::new()),
            on_lost,
        }
    }

    pub fn node(&self) -> &NodeId {
        &self.node
    }

    fn deadline(&self, sent: Instant) -> Instant {
        sent + (self.lease - self.margin)
    }

    /// The epoch to write `project` under, if this node may write it now.
    pub fn may_write(&self, tenant: &TenantId, project: &ProjectId) -> Option<i64> {
        let held = self.held.lock();
        let h = held.get(&(tenant.clone(), project.clone()))?;
        (Instant::now() < h.deadline).then_some(h.lease.epoch)
    }

    /// The projects this node holds a lease on (trusted or not).
    pub fn held(&self) -> Vec<(TenantId, ProjectId)> {
        self.held.lock().keys().cloned().collect()
    }

    /// Makes sure this node holds `project`: answered from memory while its lease is trusted,
    /// else claimed.
    pub async fn acquire(
        &self,
        tenant: &TenantId,
        project: &ProjectId,
    ) -> Result<Acquired, PlacementError> {
        if let Some(epoch) = self.may_write(tenant, project) {
            return Ok(Acquired::Held { epoch, new: false });
        }
        let known = self
            .held
            .lock()
            .get(&(tenant.clone(), project.clone()))
            .map(|h| h.lease.epoch);
        let sent = Instant::now();
        match self
            .placement
            .claim(tenant, project, &self.node, self.lease)
            .await?
        {
            Claim::Granted(lease) => {
                let epoch = lease.epoch;
                let deadline = self.deadline(sent);
                self.held.lock().insert(
                    (tenant.clone(), project.clone()),
                    Held {
                        lease,
                        deadline,
                        // When the claim's answer came, not when it was sent: a claim sent
                        // before a renewal may still commit after the renewal's statement
                        // read the leases; one answered before the renewal was sent cannot.
                        claimed: Instant::now(),
                    },
                );
                Ok(Acquired::Held {
                    epoch,
                    new: known != Some(epoch),
                })
            }
            Claim::Held { by, .. } => {
                self.held.lock().remove(&(tenant.clone(), project.clone()));
                Ok(Acquired::Elsewhere { by })
            }
        }
    }

    /// Renews every lease this node holds in one statement; a lease Postgres no longer has for
    /// this node is dropped and reported to `on_lost`. A failed renewal changes nothing: the
    /// deadlines run out by themselves.
    pub async fn renew(&self) -> Result<(), PlacementError> {
        let sent = Instant::now();
        let kept = self.placement.renew_all(&self.node, self.lease).await?;
        let deadline = self.deadline(sent);
        let lost = settle(&mut self.held.lock(), kept, sent, deadline);
        for lease in &lost {
            tracing::warn!(tenant = %lease.tenant, project = %lease.project, epoch = lease.epoch, "lease lost");
            (self.on_lost)(lease);
        }
        Ok(())
    }

    /// Renews every `every` until the task is aborted; failures are logged and retried.
    pub fn spawn_renewals(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let holder = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = holder.renew().await {
                    tracing::warn!(error = %e, "lease renewal failed; writes stop when the leases run out");
                }
            }
        })
    }

    /// Gives `project` up (a graceful move): from now on this node does not write it.
    pub async fn release(
        &self,
        tenant: &TenantId,
        project: &ProjectId,
    ) -> Result<bool, PlacementError> {
        let held = self.held.lock().remove(&(tenant.clone(), project.clone()));
        match held {
            Some(h) => self.placement.release(&h.lease).await,
            None => Ok(false),
        }
    }
}

/// Applies a renewal sent at `sent` that kept `kept`: those get `deadline`; a lease the renewal
/// did not keep is lost — unless its claim was answered after the renewal was sent (it may have
/// committed after the renewal's statement read the leases). Returns the lost ones.
fn settle(
    held: &mut HashMap<Key, Held>,
    kept: Vec<Lease>,
    sent: Instant,
    deadline: Instant,
) -> Vec<Lease> {
    let mut kept: HashMap<Key, Lease> = kept
        .into_iter()
        .map(|l| ((l.tenant.clone(), l.project.clone()), l))
        .collect();
    let mut lost = Vec::new();
    held.retain(|key, h| match kept.remove(key) {
        Some(lease) if lease.epoch == h.lease.epoch => {
            h.lease = lease;
            h.deadline = deadline;
            true
        }
        _ if h.claimed >= sent => true,
        _ => {
            lost.push(h.lease.clone());
            false
        }
    });
    lost
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(project: &str, epoch: i64, claimed: Instant) -> (Key, Held) {
        let (tenant, project) = (
            TenantId::parse("acme").unwrap(),
            ProjectId::parse(project).unwrap(),
        );
        let lease = Lease {
            tenant: tenant.clone(),
            project: project.clone(),
            node: NodeId::parse("node-a").unwrap(),
            epoch,
            until: chrono::Utc::now(),
        };
        let h = Held {
            lease,
            deadline: claimed,
            claimed,
        };
        ((tenant, project), h)
    }

    #[test]
    fn a_renewal_judges_only_the_leases_it_could_see() {
        let before = Instant::now();
        let sent = before + Duration::from_millis(10);
        let after = sent + Duration::from_millis(10);
        let deadline = sent + Duration::from_secs(8);
        let mut map: HashMap<Key, Held> = [
            held("kept", 1, before),
            held("lost", 1, before),
            held("taken-over", 1, before),
            held("claimed-meanwhile", 1, after),
        ]
        .into_iter()
        .collect();
        let mut still = map[&held("kept", 1, before).0].lease.clone();
        still.until = chrono::Utc::now();
        let mut newer = map[&held("taken-over", 1, before).0].lease.clone();
        newer.epoch = 2;
        let lost = settle(&mut map, vec![still, newer], sent, deadline);
        let mut lost: Vec<&str> = lost.iter().map(|l| l.project.as_str()).collect();
        lost.sort();
        assert_eq!(lost, ["lost", "taken-over"]);
        let mut left: Vec<&str> = map.keys().map(|k| k.1.as_str()).collect();
        left.sort();
        assert_eq!(left, ["claimed-meanwhile", "kept"]);
        assert_eq!(map[&held("kept", 1, before).0].deadline, deadline);
    }
}
