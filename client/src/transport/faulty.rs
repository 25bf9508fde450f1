//! The network's faults, around any transport: latency and jitter, requests that never arrive,
//! replies lost after the server acted, duplicate delivery, server errors, partitions. The
//! in-process transport and the HTTP transport share this one fault model (the harness runs the
//! same scenarios over both). Faults are drawn from a seeded generator, so a run is reproducible
//! from its seed.

use std::{
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::Duration,
};

use parking_lot::Mutex;
use rand::{Rng, SeedableRng, rngs::StdRng};
use tdsync_protocol::wire::{PullQuery, PullResponse, PushRequest, PushResponse, SyncStatus};

use super::{Advice, Cancel, Transport, TransportError};

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

/// A transport behind a faulty network.
pub struct Faulty<T> {
    inner: T,
    faults: Faults,
    rng: Mutex<StdRng>,
    offline: AtomicBool,
    lose_next_push_reply: AtomicBool,
    counts: FaultCounts,
}

impl<T: Transport> Faulty<T> {
    /// `inner` behind `faults`, drawn from a generator seeded with `seed`.
    pub fn wrap(inner: T, faults: Faults, seed: u64) -> Faulty<T> {
        Faulty {
            inner,
            faults,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            offline: AtomicBool::new(false),
            lose_next_push_reply: AtomicBool::new(false),
            counts: FaultCounts::default(),
        }
    }

    /// The transport the faults wrap.
    pub fn inner(&self) -> &T {
        &self.inner
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
    fn call<R>(
        &self,
        is_push: bool,
        op: impl Fn(&T) -> Result<R, TransportError>,
    ) -> Result<R, TransportError> {
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
        let mut result = op(&self.inner);
        // A request that never reached the server (it is down, unreachable) has no second
        // delivery and no reply to lose; nor has a call its caller gave up on.
        if let Err(e @ (TransportError::Network(_) | TransportError::Cancelled)) = result {
            return Err(e);
        }
        if self.chance(self.faults.duplicate) {
            self.counts.duplicates.fetch_add(1, Ordering::Relaxed);
            result = op(&self.inner);
        }
        let lose_this = is_push && self.lose_next_push_reply.swap(false, Ordering::SeqCst);
        if lose_this || self.chance(self.faults.lose_reply) {
            self.counts.lost_replies.fetch_add(1, Ordering::Relaxed);
            return Err(TransportError::Network(
                "reply lost after the server acted".into(),
            ));
        }
        result
    }
}

impl<T: Transport> Transport for Faulty<T> {
    fn push(&self, request: &PushRequest) -> Result<PushResponse, TransportError> {
        self.call(true, |t| t.push(request))
    }

    fn pull(&self, query: &PullQuery) -> Result<PullResponse, TransportError> {
        self.call(false, |t| t.pull(query))
    }

    fn status(&self) -> Result<SyncStatus, TransportError> {
        self.call(false, |t| t.status())
    }

    fn pull_wait(
        &self,
        query: &PullQuery,
        wait: std::time::Duration,
        cancel: &Cancel,
    ) -> Result<PullResponse, TransportError> {
        self.call(false, |t| t.pull_wait(query, wait, cancel))
    }

    /// The server's advice reaches the client through the faults unchanged.
    fn advice(&self) -> Advice {
        self.inner.advice()
    }
}
