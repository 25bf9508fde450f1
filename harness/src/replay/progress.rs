//! The replay's transport: the in-process one, telling the user how far a large push or pull
//! has come. Nothing is said in the first second, so small databases replay silently.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use tdsync_client::{Transport, TransportError, transport::in_process::InProcess};
use tdsync_protocol::wire::{PullQuery, PullResponse, PushRequest, PushResponse, SyncStatus};

/// Receives progress lines (the CLI prints them on stderr).
pub type Progress<'a> = &'a (dyn Fn(&str) + Sync);

pub struct Reporting<'a> {
    inner: InProcess,
    progress: Progress<'a>,
    every: Duration,
    state: Mutex<State>,
}

struct State {
    /// What the lines are about: `replay llmfit-v29.db: source`.
    label: String,
    /// Events expected in this push or pull, when known.
    total: Option<usize>,
    pushed: usize,
    pulled: usize,
    last_said: Instant,
}

impl<'a> Reporting<'a> {
    pub fn new(inner: InProcess, progress: Progress<'a>, every: Duration) -> Reporting<'a> {
        Reporting {
            inner,
            progress,
            every,
            state: Mutex::new(State {
                label: String::new(),
                total: None,
                pushed: 0,
                pulled: 0,
                last_said: Instant::now(),
            }),
        }
    }

    /// Starts counting afresh for the next push or pull, under a new label.
    pub fn begin(&self, label: String, total: Option<usize>) {
        let mut s = self.state();
        *s = State {
            label,
            total,
            pushed: 0,
            pulled: 0,
            last_said: Instant::now(),
        };
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Counters only: a panic elsewhere leaves nothing half-written worth refusing.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count(&self, pushed: usize, pulled: usize) {
        let mut s = self.state();
        s.pushed += pushed;
        s.pulled += pulled;
        if s.last_said.elapsed() >= self.every {
            s.last_said = Instant::now();
            let (verb, n) = if pushed > 0 {
                ("pushed", s.pushed)
            } else {
                ("pulled", s.pulled)
            };
            let of = s.total.map_or(String::new(), |t| format!(" of {t}"));
            (self.progress)(&format!("{}: {verb} {n}{of} events so far", s.label));
        }
    }
}

impl Transport for Reporting<'_> {
    fn push(&self, request: &PushRequest) -> Result<PushResponse, TransportError> {
        let out = self.inner.push(request)?;
        self.count(request.events.len(), 0);
        Ok(out)
    }

    fn pull(&self, query: &PullQuery) -> Result<PullResponse, TransportError> {
        let out = self.inner.pull(query)?;
        self.count(0, out.events.len());
        Ok(out)
    }

    fn status(&self) -> Result<SyncStatus, TransportError> {
        self.inner.status()
    }
}
