//! A transport that calls the shard store directly — the same service functions the HTTP
//! handlers call — behind the network's faults ([`super::faulty`]: latency and jitter, requests
//! that never arrive, replies lost after the server acted, duplicate delivery, server errors,
//! partitions), drawn from a seeded generator so a run is reproducible from its seed.

use std::sync::Arc;

use parking_lot::RwLock;
use tdsync_protocol::wire::{PullQuery, PullResponse, PushRequest, PushResponse, SyncStatus};
use tdsync_tenants::{Project, ProjectId, StoreError, TenantId, Tenants};

pub use super::faulty::{FaultCounts, Faults, Faulty};
use super::{Transport, TransportError};

/// An in-process server that can be stopped and started again on the same data directory (a
/// restart drops every in-memory state: shard handles, cached heads). Calls made while it is
/// down fail like calls to an unreachable host.
#[derive(Clone)]
pub struct LocalServer {
    store: Arc<RwLock<Option<Tenants>>>,
}

impl LocalServer {
    pub fn new(store: Tenants) -> LocalServer {
        LocalServer {
            store: Arc::new(RwLock::new(Some(store))),
        }
    }

    /// A server that is not running (until [`LocalServer::start`]).
    pub fn stopped() -> LocalServer {
        LocalServer {
            store: Arc::new(RwLock::new(None)),
        }
    }

    /// Stops the server once calls in flight have finished, closing every shard.
    pub fn stop(&self) {
        let old = self.store.write().take();
        drop(old);
    }

    /// Starts (or replaces) the server with a freshly opened store.
    pub fn start(&self, store: Tenants) {
        *self.store.write() = Some(store);
    }

    /// The running store, if the server is up.
    pub fn get(&self) -> Option<Tenants> {
        self.store.read().clone()
    }
}

/// One client's connection to one project of an in-process store, behind the shared fault
/// model ([`Faulty`]).
pub type InProcess = Faulty<Local>;

/// One project of an in-process store, called directly (no faults: see [`InProcess`]).
pub struct Local {
    server: LocalServer,
    tenant: TenantId,
    project: ProjectId,
}

impl Local {
    pub fn new(server: LocalServer, tenant: TenantId, project: ProjectId) -> Local {
        Local {
            server,
            tenant,
            project,
        }
    }

    /// Runs one call on the project of the running store, through the same [`Project`] handle
    /// the gateway's handlers use.
    fn call<T>(&self, op: impl Fn(&Project) -> Result<T, StoreError>) -> Result<T, TransportError> {
        // Held for the call: a restart waits for calls in flight, as a graceful shutdown does.
        let guard = self.server.store.read();
        let Some(store) = guard.as_ref() else {
            return Err(TransportError::Network(
                "connection refused (server down)".into(),
            ));
        };
        op(&store.project(&self.tenant, &self.project)).map_err(to_transport)
    }
}

impl Transport for Local {
    fn push(&self, request: &PushRequest) -> Result<PushResponse, TransportError> {
        self.call(|p| p.push(request))
    }

    fn pull(&self, query: &PullQuery) -> Result<PullResponse, TransportError> {
        self.call(|p| p.pull(query))
    }

    fn status(&self) -> Result<SyncStatus, TransportError> {
        self.call(Project::status)
    }
}

impl Faulty<Local> {
    pub fn new(server: LocalServer, tenant: TenantId, project: ProjectId) -> InProcess {
        InProcess::with_faults(server, tenant, project, Faults::default(), 0)
    }

    pub fn with_faults(
        server: LocalServer,
        tenant: TenantId,
        project: ProjectId,
        faults: Faults,
        seed: u64,
    ) -> InProcess {
        Faulty::wrap(Local::new(server, tenant, project), faults, seed)
    }
}

fn to_transport(e: StoreError) -> TransportError {
    match e {
        StoreError::BadRequest(m) => TransportError::Rejected {
            status: 400,
            message: m,
        },
        StoreError::NotFound(m) => TransportError::NotFound(format!("{m} not found")),
        other => TransportError::Server(other.to_string()),
    }
}
