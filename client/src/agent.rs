//! A background sync agent: syncs on its own thread, polls about every second while changes
//! flow and backs off to about 15 s when idle, snaps back on a local change or a remote
//! notification, can pause, and on stop flushes what is pending before it returns. Subscribers
//! hear after each sync which entities changed — what a UI re-renders.
//!
//! What the server says changes how it waits between syncs:
//!
//! - A server that offers long polls (tdsync: `X-Tdsync-Long-Poll` on every pull) is waited on
//!   at the head instead: a pull with `wait=` (the offer, at most the idle interval) answers as
//!   soon as another client pushes, so a change arrives in about a round trip. After each wait
//!   the agent pushes what td wrote meanwhile without telling it, so an unannounced local change
//!   still leaves within the idle interval. A long poll in flight is cancelled by
//!   [`SyncAgent::stop`], [`SyncAgent::pause`] and the nudges, so none of them waits for it.
//! - Otherwise it polls, and a server's advice (`X-Poll-Interval`, on pulls at the head) sets
//!   the interval instead of the agent's own back-off: never below `fast`, at most
//!   [`MAX_ADVISED`].

use std::{
    collections::BTreeSet,
    sync::{
        Arc, Condvar, Mutex, MutexGuard,
        mpsc::{self, Receiver, Sender},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use tdsync_protocol::EntityType;

use crate::{
    engine::{PushReport, SyncClient, SyncError, SyncReport},
    transport::{Cancel, Transport, TransportError},
};

/// The longest poll interval a server's advice can set (a bound on a nonsensical header).
pub const MAX_ADVISED: Duration = Duration::from_secs(300);

/// Polling bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentOptions {
    /// Interval while changes flow (and right after a nudge).
    pub fast: Duration,
    /// Interval when nothing has changed for a while; also the longest a long poll waits, so a
    /// local change the agent is not told about is pushed within it either way.
    pub idle: Duration,
    /// Wait at the head with long polls when the server offers them.
    pub long_poll: bool,
}

impl Default for AgentOptions {
    fn default() -> AgentOptions {
        AgentOptions {
            fast: Duration::from_secs(1),
            idle: Duration::from_secs(15),
            long_poll: true,
        }
    }
}

/// What subscribers are told.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentEvent {
    /// A sync changed something: these entities were written locally by the pull, and this
    /// many local events reached the server.
    Changed {
        entities: BTreeSet<(EntityType, String)>,
        pushed: usize,
    },
    /// A sync failed; the agent keeps going and retries at its next tick.
    Failed(String),
}

/// Counters for status displays and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentStats {
    /// Syncs (push, then pull) started by a tick or a nudge.
    pub syncs: u64,
    /// Long polls answered (by events or at their deadline; cancelled ones are not counted).
    pub long_polls: u64,
    pub failures: u64,
    /// The polling interval (used when the server offers no long polls).
    pub interval: Duration,
    /// Whether a long poll is in flight.
    pub long_polling: bool,
    pub paused: bool,
}

struct State {
    paused: bool,
    stopping: bool,
    nudged: bool,
    /// The long poll in flight, to cancel.
    waiting: Option<Cancel>,
    stats: AgentStats,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    subscribers: Mutex<Vec<Sender<AgentEvent>>>,
    options: AgentOptions,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, event: AgentEvent) {
        let mut subs = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        subs.retain(|s| s.send(event.clone()).is_ok());
    }

    /// Cancels the long poll in flight, if any (after `st` is released: cancel hooks take
    /// the transport's own locks).
    fn interrupt(&self, st: MutexGuard<'_, State>) {
        let waiting = st.waiting.clone();
        drop(st);
        if let Some(cancel) = waiting {
            cancel.cancel();
        }
    }

    fn changed(&self, report: SyncReport) {
        if report.changed_anything() {
            self.publish(AgentEvent::Changed {
                entities: report.pull.changed,
                pushed: report.push.accepted,
            });
        }
    }

    fn failed(&self, e: &SyncError) {
        let mut st = self.lock();
        st.stats.failures += 1;
        st.stats.interval = (st.stats.interval * 2).min(self.options.idle);
        drop(st);
        self.publish(AgentEvent::Failed(e.to_string()));
    }
}

/// A running agent that owns its client until stopped.
pub struct SyncAgent<T: Transport + 'static> {
    shared: Arc<Shared>,
    thread: JoinHandle<(SyncClient<T>, Result<PushReport, SyncError>)>,
}

impl<T: Transport + 'static> SyncAgent<T> {
    /// Starts syncing `client` in the background; the first sync runs at once.
    pub fn start(client: SyncClient<T>, options: AgentOptions) -> SyncAgent<T> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                paused: false,
                stopping: false,
                nudged: true,
                waiting: None,
                stats: AgentStats {
                    interval: options.fast,
                    ..AgentStats::default()
                },
            }),
            wake: Condvar::new(),
            subscribers: Mutex::new(Vec::new()),
            options,
        });
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("tdsync-agent".into())
            .spawn(move || run(&worker, client))
            .expect("spawning the sync agent thread");
        SyncAgent { shared, thread }
    }

    /// A channel that receives every [`AgentEvent`] from now on.
    pub fn subscribe(&self) -> Receiver<AgentEvent> {
        let (tx, rx) = mpsc::channel();
        self.shared
            .subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(tx);
        rx
    }

    /// Something was written locally: sync soon and poll fast again.
    pub fn notify_local_change(&self) {
        self.nudge();
    }

    /// The server says something changed (e.g. a push notification): pull soon.
    pub fn notify_remote_change(&self) {
        self.nudge();
    }

    fn nudge(&self) {
        let mut st = self.shared.lock();
        st.nudged = true;
        st.stats.interval = self.shared.options.fast;
        self.shared.wake.notify_all();
        self.shared.interrupt(st);
    }

    /// Stops syncing until [`resume`](Self::resume); local changes keep accumulating. A long
    /// poll in flight is cancelled, its answer dropped.
    pub fn pause(&self) {
        let mut st = self.shared.lock();
        st.paused = true;
        st.stats.paused = true;
        self.shared.interrupt(st);
    }

    pub fn resume(&self) {
        let mut st = self.shared.lock();
        st.paused = false;
        st.stats.paused = false;
        st.nudged = true;
        self.shared.wake.notify_all();
    }

    pub fn stats(&self) -> AgentStats {
        self.shared.lock().stats
    }

    /// Stops the agent: cancels a long poll in flight, waits for a sync in progress, pushes
    /// whatever is still pending, and returns the client with the result of that final push.
    pub fn stop(self) -> (SyncClient<T>, Result<PushReport, SyncError>) {
        {
            let mut st = self.shared.lock();
            st.stopping = true;
            self.shared.wake.notify_all();
            self.shared.interrupt(st);
        }
        match self.thread.join() {
            Ok(out) => out,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

fn run<T: Transport>(
    shared: &Shared,
    client: SyncClient<T>,
) -> (SyncClient<T>, Result<PushReport, SyncError>) {
    let mut last = Instant::now();
    loop {
        if !turn(shared, last) {
            let flushed = client.push();
            return (client, flushed);
        }
        let result = client.sync();
        last = Instant::now();
        let advice = client.transport().advice();
        let mut st = shared.lock();
        st.stats.syncs += 1;
        match result {
            Ok(report) => {
                st.stats.interval = next_interval(
                    st.stats.interval,
                    &report,
                    shared.options,
                    advice.poll_interval,
                );
                drop(st);
                shared.changed(report);
                wait_at_head(shared, &client);
                last = Instant::now();
            }
            Err(e) => {
                drop(st);
                shared.failed(&e);
            }
        }
    }
}

/// Waits until the next sync is due (a nudge, or the interval since `last`); false when the
/// agent is stopping.
fn turn(shared: &Shared, last: Instant) -> bool {
    let mut st = shared.lock();
    loop {
        if st.stopping {
            return false;
        }
        let due = last + st.stats.interval;
        let now = Instant::now();
        if !st.paused && (st.nudged || now >= due) {
            st.nudged = false;
            return true;
        }
        let wait = if st.paused {
            Duration::from_secs(3600)
        } else {
            due - now
        };
        st = shared
            .wake
            .wait_timeout(st, wait)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

/// While the server offers long polls: waits at the head for other clients' changes (applying
/// them as they come), then pushes what td wrote meanwhile, and again. Returns — for the next
/// sync to be decided by [`turn`] — when the agent is nudged, paused or stopped (which cancel
/// the wait), when a call fails, or when the server stops offering long polls.
fn wait_at_head<T: Transport>(shared: &Shared, client: &SyncClient<T>) {
    let options = shared.options;
    if !options.long_poll {
        return;
    }
    loop {
        let Some(offer) = client.transport().advice().long_poll else {
            return;
        };
        let wait = offer.min(options.idle);
        if wait.is_zero() {
            return;
        }
        let cancel = Cancel::new();
        {
            let mut st = shared.lock();
            if st.stopping || st.paused || st.nudged {
                return;
            }
            st.waiting = Some(cancel.clone());
            st.stats.long_polling = true;
        }
        let pulled = client.pull_waiting(wait, &cancel);
        {
            let mut st = shared.lock();
            st.waiting = None;
            st.stats.long_polling = false;
            if pulled.is_ok() {
                st.stats.long_polls += 1;
            }
        }
        let pull = match pulled {
            Ok(pull) => pull,
            Err(SyncError::Transport(TransportError::Cancelled)) => return,
            Err(e) => return shared.failed(&e),
        };
        // td writes without telling the agent: what it wrote meanwhile goes out now.
        let push = match client.push() {
            Ok(push) => push,
            Err(e) => {
                shared.changed(SyncReport {
                    push: PushReport::default(),
                    pull,
                });
                return shared.failed(&e);
            }
        };
        let report = SyncReport { push, pull };
        if report.changed_anything() {
            shared.lock().stats.interval = options.fast;
        }
        shared.changed(report);
    }
}

/// The polling interval after a sync. A server's advice (`X-Poll-Interval`) sets it, never below
/// `fast` nor above [`MAX_ADVISED`]; without advice: back to `fast` after a sync that moved
/// something, otherwise double, up to `idle`.
fn next_interval(
    current: Duration,
    report: &SyncReport,
    options: AgentOptions,
    advised: Option<Duration>,
) -> Duration {
    if let Some(advised) = advised {
        return advised.clamp(options.fast, MAX_ADVISED.max(options.fast));
    }
    if report.changed_anything() {
        options.fast
    } else {
        (current * 2).clamp(options.fast, options.idle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{PullReport, PushReport};

    #[test]
    fn polling_backs_off_when_idle_and_snaps_back_on_change() {
        let o = AgentOptions::default();
        let idle = SyncReport::default();
        let mut i = o.fast;
        let mut seen = vec![i];
        for _ in 0..6 {
            i = next_interval(i, &idle, o, None);
            seen.push(i);
        }
        assert_eq!(
            seen.iter().map(|d| d.as_secs()).collect::<Vec<_>>(),
            vec![1, 2, 4, 8, 15, 15, 15]
        );
        let busy = SyncReport {
            push: PushReport::default(),
            pull: PullReport {
                pulled: 3,
                ..PullReport::default()
            },
        };
        assert_eq!(next_interval(o.idle, &busy, o, None), o.fast);
    }

    #[test]
    fn a_servers_advice_sets_the_interval_within_bounds() {
        let o = AgentOptions::default();
        let idle = SyncReport::default();
        let secs = Duration::from_secs;
        // Advice wins over the agent's own back-off, both ways, and may exceed `idle`.
        assert_eq!(next_interval(o.fast, &idle, o, Some(secs(7))), secs(7));
        assert_eq!(next_interval(o.idle, &idle, o, Some(secs(3))), secs(3));
        assert_eq!(next_interval(o.fast, &idle, o, Some(secs(60))), secs(60));
        // Never below fast, never above the bound on nonsense.
        assert_eq!(next_interval(o.idle, &idle, o, Some(secs(0))), o.fast);
        assert_eq!(
            next_interval(o.idle, &idle, o, Some(secs(86_400))),
            MAX_ADVISED
        );
    }
}
