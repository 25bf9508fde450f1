//! A background sync agent: syncs on its own thread, polls about every second while changes
//! flow and backs off to about 15 s when idle, snaps back on a local change or a remote
//! notification, can pause, and on stop flushes what is pending before it returns. Subscribers
//! hear after each sync which entities changed — what a UI re-renders.

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
    transport::Transport,
};

/// Polling bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentOptions {
    /// Interval while changes flow (and right after a nudge).
    pub fast: Duration,
    /// Interval when nothing has changed for a while.
    pub idle: Duration,
}

impl Default for AgentOptions {
    fn default() -> AgentOptions {
        AgentOptions {
            fast: Duration::from_secs(1),
            idle: Duration::from_secs(15),
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
    pub syncs: u64,
    pub failures: u64,
    pub interval: Duration,
    pub paused: bool,
}

struct State {
    paused: bool,
    stopping: bool,
    nudged: bool,
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
    }

    /// Stops syncing until [`resume`](Self::resume); local changes keep accumulating.
    pub fn pause(&self) {
        let mut st = self.shared.lock();
        st.paused = true;
        st.stats.paused = true;
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

    /// Stops the agent: waits for a sync in progress, pushes whatever is still pending, and
    /// returns the client with the result of that final push.
    pub fn stop(self) -> (SyncClient<T>, Result<PushReport, SyncError>) {
        {
            let mut st = self.shared.lock();
            st.stopping = true;
            self.shared.wake.notify_all();
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
        {
            let mut st = shared.lock();
            loop {
                if st.stopping {
                    drop(st);
                    let flushed = client.push();
                    return (client, flushed);
                }
                let due = last + st.stats.interval;
                let now = Instant::now();
                if !st.paused && (st.nudged || now >= due) {
                    st.nudged = false;
                    break;
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
        let result = client.sync();
        last = Instant::now();
        let mut st = shared.lock();
        st.stats.syncs += 1;
        let options = shared.options;
        match result {
            Ok(report) => {
                st.stats.interval = next_interval(st.stats.interval, &report, options);
                drop(st);
                if report.changed_anything() {
                    shared.publish(AgentEvent::Changed {
                        entities: report.pull.changed,
                        pushed: report.push.accepted,
                    });
                }
            }
            Err(e) => {
                st.stats.failures += 1;
                st.stats.interval = (st.stats.interval * 2).min(options.idle);
                drop(st);
                shared.publish(AgentEvent::Failed(e.to_string()));
            }
        }
    }
}

/// Back to fast polling after a sync that moved something; otherwise double, up to idle.
fn next_interval(current: Duration, report: &SyncReport, options: AgentOptions) -> Duration {
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
            i = next_interval(i, &idle, o);
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
        assert_eq!(next_interval(o.idle, &busy, o), o.fast);
    }
}
