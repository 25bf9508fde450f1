//! A transport that calls the shard store directly — the same service functions the HTTP
//! handlers call — with faults a network would inject: latency and jitter, requests that never
//! arrive, replies lost after the server acted, duplicate delivery, server errors, partitions.
//! Faults are drawn from a seeded generator, so a run is reproducible from its seed.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use parking_lot::{Mutex, RwLock};
use rand::{Rng, SeedableRng, rngs::StdRng};
use tdsync_protocol::wire::{PullQuery, PullResponse, PushRequest, PushResponse, SyncStatus};
use tdsync_tenants::{ProjectId, StoreError, TenantId, Tenants};

use super::{Transport, TransportError};

/// An in-process server that can be stopped and started again on the same data directory (a
/// restart drops every in-memory state: shard handles, cached heads). Calls made while it is
/// down fail like calls to an unreachable host.
#[derive(Clone)]
pub struct LocalServer {
    store: Arc<RwLock<Option<Arc<Tenants>>>>,
}

impl LocalServer {
    pub fn new(store: Tenants) -> LocalServer {
        LocalServer {
            store: Arc::new(RwLock::new(Some(Arc::new(store)))),
        }
    }

    /// Stops the server once calls in flight have finished, closing every shard.
    pub fn stop(&self) {
        let old = self.store.write().take();
        drop(old);
    }

    /// Starts (or replaces) the server with a freshly opened store.
    pub fn start(&self, store: Tenants) {
        *self.store.write() = Some(Arc::new(store));
    }

    /// The running store, if the server is up.
    pub fn get(&self) -> Option<Arc<Tenants>> {
        self.store.read().clone()
    }
}

/// Network faults, each a probability per call (0 = never), plus latency.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    pub latency: Duration,
    /// Up to this much extra latency, uniformly drawn.
    pub jitter: Duration,
    /// The request is lost on the way: the server never sees it.
    pub lose_request: f64,
    /// The server commits, then the reply is lost: the client sees a network error.
    pub lose_reply: f64,
    /// The request is delivered twice; the client gets the second answer.
    pub duplicate: f64,
    /// The server answers 5xx without acting.
    pub server_error: f64,
}

/// What the faults did so far (for reports and for tests that check a fault fired).
#[derive(Debug, Default)]
pub struct FaultCounts {
    pub calls: AtomicU64,
    pub lost_requests: AtomicU64,
    pub lost_replies: AtomicU64,
    pub duplicates: AtomicU64,
    pub server_errors: AtomicU64,
    pub offline_refusals: AtomicU64,
}

/// One client's connection to one project of an in-process store.
pub struct InProcess {
    server: LocalServer,
    tenant: TenantId,
    project: ProjectId,
    faults: Faults,
    rng: Mutex<StdRng>,
    offline: AtomicBool,
    lose_next_push_reply: AtomicBool,
    counts: FaultCounts,
}

impl InProcess {
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
        InProcess {
            server,
            tenant,
            project,
            faults,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            offline: AtomicBool::new(false),
            lose_next_push_reply: AtomicBool::new(false),
            counts: FaultCounts::default(),
        }
    }

    /// Cuts the client off (a partition) or reconnects it.
    pub fn set_offline(&self, offline: bool) {
        self.offline.store(offline, Ordering::SeqCst);
    }

    /// The next push reaches the server, which commits it, but its reply is lost.
    pub fn lose_next_push_reply(&self) {
        self.lose_next_push_reply.store(true, Ordering::SeqCst);
    }

    pub fn counts(&self) -> &FaultCounts {
        &self.counts
    }

    fn chance(&self, p: f64) -> bool {
        p > 0.0 && self.rng.lock().random::<f64>() < p
    }

    /// Runs one call through the fault model.
    fn call<T>(
        &self,
        is_push: bool,
        op: impl Fn(&Tenants) -> Result<T, StoreError>,
    ) -> Result<T, TransportError> {
        self.counts.calls.fetch_add(1, Ordering::Relaxed);
        if self.offline.load(Ordering::SeqCst) {
            self.counts.offline_refusals.fetch_add(1, Ordering::Relaxed);
            return Err(TransportError::Network("offline (partitioned)".into()));
        }
        let delay = {
            let mut rng = self.rng.lock();
            let jitter = if self.faults.jitter.is_zero() {
                Duration::ZERO
            } else {
                self.faults.jitter.mul_f64(rng.random::<f64>())
            };
            self.faults.latency + jitter
        };
        if !delay.is_zero() {
            // Simulated network time, not a wait for a condition.
            std::thread::sleep(delay);
        }
        if self.chance(self.faults.lose_request) {
            self.counts.lost_requests.fetch_add(1, Ordering::Relaxed);
            return Err(TransportError::Network("request lost".into()));
        }
        if self.chance(self.faults.server_error) {
            self.counts.server_errors.fetch_add(1, Ordering::Relaxed);
            return Err(TransportError::Server("injected 503".into()));
        }
        // Held for the call: a restart waits for calls in flight, as a graceful shutdown does.
        let guard = self.server.store.read();
        let Some(store) = guard.as_ref() else {
            return Err(TransportError::Network(
                "connection refused (server down)".into(),
            ));
        };
        let mut result = op(store);
        if self.chance(self.faults.duplicate) {
            self.counts.duplicates.fetch_add(1, Ordering::Relaxed);
            result = op(store);
        }
        drop(guard);
        let lose_this = is_push && self.lose_next_push_reply.swap(false, Ordering::SeqCst);
        if lose_this || self.chance(self.faults.lose_reply) {
            self.counts.lost_replies.fetch_add(1, Ordering::Relaxed);
            return Err(TransportError::Network(
                "reply lost after the server acted".into(),
            ));
        }
        result.map_err(to_transport)
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

impl Transport for InProcess {
    fn push(&self, request: &PushRequest) -> Result<PushResponse, TransportError> {
        self.call(true, |s| s.push(&self.tenant, &self.project, request))
    }

    fn pull(&self, query: &PullQuery) -> Result<PullResponse, TransportError> {
        self.call(false, |s| s.pull(&self.tenant, &self.project, query))
    }

    fn status(&self) -> Result<SyncStatus, TransportError> {
        self.call(false, |s| s.status(&self.tenant, &self.project))
    }
}
