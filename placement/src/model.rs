//! The placement vocabulary: node ids, leases and what a claim answers.

use std::fmt;

use chrono::{DateTime, Utc};
use tdsync_protocol::ids::{ProjectId, TenantId};

use crate::error::PlacementError;

/// A shard node's name: 1 to 64 of `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(String);

impl NodeId {
    pub fn parse(raw: &str) -> Result<NodeId, PlacementError> {
        let ok = (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(NodeId(raw.to_string()))
        } else {
            Err(PlacementError::BadNodeId(raw.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A node's hold on a project: valid until `until` (Postgres's clock), for `epoch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub tenant: TenantId,
    pub project: ProjectId,
    pub node: NodeId,
    /// Raised by every change of owner; what the owner's writes are fenced by.
    pub epoch: i64,
    pub until: DateTime<Utc>,
}

/// What a claim answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The caller holds the lease (new, taken over from an expired holder, or its own renewed).
    Granted(Lease),
    /// Another node holds a lease that has not run out.
    Held { by: NodeId, until: DateTime<Utc> },
}

/// A project's owner as a gateway needs it: where to send requests, and the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub lease: Lease,
    pub url: String,
    /// Whether the lease has not run out (by Postgres's clock when it was read).
    pub live: bool,
    /// The URL of the node it is asked to move to (`tdsync cluster move`, a drain), if any.
    pub moving_to: Option<String>,
}

/// A registered node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInfo {
    pub id: NodeId,
    pub url: String,
    /// Seconds since its last heartbeat.
    pub heartbeat_age_secs: f64,
    pub draining: bool,
    /// Leases it holds that have not run out.
    pub projects: i64,
}

/// Where a new project goes: the node holding the fewest live leases among those not draining,
/// heard from within `live_within`, and not `skip`ped (a caller's own knowledge: one that did
/// not answer). Ties go to the smaller id.
pub fn least_loaded(
    nodes: &[NodeInfo],
    live_within: std::time::Duration,
    skip: impl Fn(&NodeInfo) -> bool,
) -> Option<&NodeInfo> {
    nodes
        .iter()
        .filter(|n| !n.draining && n.heartbeat_age_secs < live_within.as_secs_f64() && !skip(n))
        .min_by(|a, b| a.projects.cmp(&b.projects).then_with(|| a.id.cmp(&b.id)))
}
