//! A transport that calls the shard store directly — the same service functions the HTTP
//! handlers call — behind the network's faults ([`super::faulty`]: latency and jitter, requests
//! that never arrive, replies lost after the server acted, duplicate delivery, server errors,
//! partitions), drawn from a seeded generator so a run is reproducible from its seed.
//!
//! Long polls are the gateway's (its live layer), not the store's, so an in-process server
//! offers none unless asked ([`LocalServer::offer_long_polls`]); then it holds a pull at the
//! head until a push through any of its transports, as `tdsync serve` does.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use parking_lot::{Condvar, Mutex, RwLock};
use tdsync_protocol::wire::{PullQuery, PullResponse, PushRequest, PushResponse, SyncStatus};
use tdsync_tenants::{Project, ProjectId, StoreError, TenantId, Tenants};

pub use super::faulty::{FaultCounts, Faults, Faulty};
use super::{Advice, Cancel, Transport, TransportError};

/// An in-process server that can be stopped and started again on the same data directory (a
/// restart drops every in-memory state: shard handles, cached heads). Calls made while it is
/// down fail like calls to an unreachable host.
#[derive(Clone)]
pub struct LocalServer {
    store: Arc<RwLock<Option<Tenants>>>,
    live: Arc<Live>,
}

/// The long polls of an in-process server: its offer, and a wake-up for every push made
/// through its transports (pushes straight into the store are not seen).
#[derive(Default)]
struct Live {
    offer: Mutex<Option<Duration>>,
    pushes: Mutex<u64>,
    pushed: Condvar,
}

impl Live {
    fn wake(&self) {
        let mut pushes = self.pushes.lock();
        *pushes += 1;
        self.pushed.notify_all();
    }
}

impl LocalServer {
    pub fn new(store: Tenants) -> LocalServer {
        LocalServer {
            store: Arc::new(RwLock::new(Some(store))),
            live: Arc::default(),
        }
    }

    /// A server that is not running (until [`LocalServer::start`]).
    pub fn stopped() -> LocalServer {
        LocalServer {
            store: Arc::new(RwLock::new(None)),
            live: Arc::default(),
        }
    }

    /// Offers long polls of up to `max` (as `tdsync serve` offers 25 s), or none.
    pub fn offer_long_polls(&self, max: Option<Duration>) {
        *self.live.offer.lock() = max;
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
        let response = self.call(|p| p.push(request))?;
        self.server.live.wake();
        Ok(response)
    }

    fn pull(&self, query: &PullQuery) -> Result<PullResponse, TransportError> {
        self.call(|p| p.pull(query))
    }

    fn status(&self) -> Result<SyncStatus, TransportError> {
        self.call(Project::status)
    }

    /// With long polls offered: an empty page waits (without holding the store, so a restart
    /// does not wait for it) for a push through this server, the deadline or the cancel.
    fn pull_wait(
        &self,
        query: &PullQuery,
        wait: Duration,
        cancel: &Cancel,
    ) -> Result<PullResponse, TransportError> {
        let live = &self.server.live;
        let Some(max) = *live.offer.lock() else {
            return self.pull(query);
        };
        let deadline = Instant::now() + wait.min(max);
        // Counted before the first look, so a push in between is not missed.
        let mut seen = *live.pushes.lock();
        let woken = live.clone();
        cancel.on_cancel(move || {
            let _pushes = woken.pushes.lock();
            woken.pushed.notify_all();
        });
        loop {
            if cancel.is_cancelled() {
                return Err(TransportError::Cancelled);
            }
            let page = self.pull(query)?;
            if !page.events.is_empty() || Instant::now() >= deadline {
                return Ok(page);
            }
            let mut pushes = live.pushes.lock();
            while *pushes == seen && !cancel.is_cancelled() {
                if live.pushed.wait_until(&mut pushes, deadline).timed_out() {
                    break;
                }
            }
            seen = *pushes;
        }
    }

    fn advice(&self) -> Advice {
        Advice {
            long_poll: *self.server.live.offer.lock(),
            poll_interval: None,
        }
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
