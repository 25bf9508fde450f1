//! [`Live`]: the layer the gateway calls. Everything on the request path is in memory; what is
//! shared with other processes travels in the background ([`Live::spawn_sync`]) or right after
//! a change commits ([`Live::publish`]).

use std::{
    collections::HashMap,
    sync::{
        Arc, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::Utc;
use parking_lot::Mutex;
use tokio::sync::broadcast::error::RecvError;

use tdsync_protocol::wire::SyncStatus;

use crate::{
    change::{Change, ChangeKind, Head, ProjectKey},
    cursors::{Cursor, LocalCursors},
    hub::{Hubs, Subscription},
    limits::{Admission, LocalLimiter, Rate},
    shared::{Inbox, Notice, SharedError, SharedState},
};

/// How long a long-poll may wait at most (`wait=` is clamped to it).
pub const MAX_WAIT: Duration = Duration::from_secs(25);

/// What `/healthz` and `/metrics` say of the live layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveHealth {
    /// `in-process`, or the shared backend's name.
    pub backend: &'static str,
    /// With a shared backend: whether its last call succeeded.
    pub shared_up: Option<bool>,
    /// Shared-backend calls that failed (and fell back to in-process state).
    pub shared_failures: u64,
    /// Subscribers in this process (SSE streams and long-polls).
    pub subscribers: usize,
}

/// The heads of the projects this process serves (with their lease epochs), for writing back
/// to a shared backend that may lack them.
pub type HeadSource = Arc<dyn Fn() -> Vec<(ProjectKey, Head)> + Send + Sync>;

/// Called with a project another process says moved to another shard node.
pub type MoveHandler = Box<dyn Fn(&ProjectKey) + Send + Sync>;

/// Heads written back to a shared backend per call.
const HEADS_PER_CALL: usize = 512;

pub struct Live {
    hubs: Arc<Hubs>,
    moves: Arc<Mutex<Vec<MoveHandler>>>,
    heads: Mutex<Option<HeadSource>>,
    /// The shared backend may lack or hold old heads of ours (a failed or skipped publish, a
    /// backend that lost its state, a start): written back at the next sync.
    heads_stale: AtomicBool,
    cursors: LocalCursors,
    limiter: LocalLimiter,
    shared: Option<Arc<dyn SharedState>>,
    /// Cursors recorded since the last sync, for the shared backend.
    dirty: Mutex<HashMap<(ProjectKey, String), Cursor>>,
    /// Requests per bucket since the last sync, with the bucket's rate.
    counted: Mutex<HashMap<String, (u64, Rate)>>,
    /// Buckets over their per-minute rate across every process, with the window (minute) in
    /// which they are.
    over: Mutex<HashMap<String, u64>>,
    degraded: AtomicBool,
    failures: AtomicU64,
}

impl Live {
    /// Everything in this process.
    pub fn in_process() -> Live {
        Live {
            hubs: Arc::new(Hubs::default()),
            moves: Arc::default(),
            heads: Mutex::new(None),
            heads_stale: AtomicBool::new(true),
            cursors: LocalCursors::default(),
            limiter: LocalLimiter::default(),
            shared: None,
            dirty: Mutex::default(),
            counted: Mutex::default(),
            over: Mutex::default(),
            degraded: AtomicBool::new(false),
            failures: AtomicU64::new(0),
        }
    }

    /// Shared with every process on `shared`; its changes reach this process's subscribers.
    /// Start [`Live::spawn_sync`] too.
    pub fn with_shared(shared: Arc<dyn SharedState>) -> Live {
        let mut live = Live::in_process();
        shared.listen(Arc::new(Delivery {
            hubs: live.hubs.clone(),
            moves: live.moves.clone(),
        }));
        live.shared = Some(shared);
        live
    }

    /// Whether a shared backend is configured and answering (changes from other processes are
    /// being delivered).
    pub fn shared_up(&self) -> bool {
        self.shared.is_some() && !self.degraded.load(Ordering::Acquire)
    }

    /// This process serves projects: `source` lists their heads, written back to the shared
    /// backend whenever it may lack them.
    pub fn serve_heads(&self, source: HeadSource) {
        *self.heads.lock() = Some(source);
        self.heads_stale.store(true, Ordering::Release);
    }

    /// Calls `handler` with every project another process says moved.
    pub fn on_move(&self, handler: MoveHandler) {
        self.moves.lock().push(handler);
    }

    /// The project's status as the shared backend knows it from the process that serves it;
    /// `None` without a shared backend, while it is unreachable, or when its writer went quiet.
    pub async fn head(&self, key: &ProjectKey) -> Option<SyncStatus> {
        let shared = self.shared.as_ref()?;
        if self.degraded.load(Ordering::Acquire) {
            return None;
        }
        self.note(shared.head(key).await)
            .flatten()
            .map(|head| head.status)
    }

    /// Changes to `key` from now on (an SSE stream, a long-poll).
    pub fn subscribe(&self, key: &ProjectKey) -> Subscription {
        self.hubs.subscribe(key)
    }

    /// Fans a committed change out: to this process's subscribers at once, then to other
    /// processes through the shared backend, with the project's new head.
    pub async fn publish(&self, key: &ProjectKey, head: Option<Head>, change: Change) {
        let change = Arc::new(change);
        self.hubs.deliver(key, change.clone());
        self.share(key, head.as_ref(), &Notice::Change((*change).clone()))
            .await;
    }

    /// Tells every other process that the project moved to or from this one (with its head
    /// here, after a takeover).
    pub async fn announce_move(&self, key: &ProjectKey, head: Option<Head>) {
        self.share(key, head.as_ref(), &Notice::Moved).await;
    }

    async fn share(&self, key: &ProjectKey, head: Option<&Head>, notice: &Notice) {
        let Some(shared) = &self.shared else { return };
        // While the backend is down a call would only wait out its timeout; the heads are
        // written back once it answers again.
        if self.degraded.load(Ordering::Acquire) {
            self.heads_stale.store(true, Ordering::Release);
            return;
        }
        let outcome = shared.publish(key, head, notice).await;
        if self.note(outcome).is_none() {
            self.heads_stale.store(true, Ordering::Release);
        }
    }

    /// Waits on `subscription` until a change moves the head past `after`, or `deadline`.
    /// Returns whether one did (a lagged subscription, or word of missed changes, counts:
    /// something may have happened).
    pub async fn wait_past(subscription: &mut Subscription, after: i64, deadline: Instant) -> bool {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match tokio::time::timeout(left, subscription.recv()).await {
                Err(_) => return false,
                Ok(Ok(change)) if change.head > after || change.kind == ChangeKind::Missed => {
                    return true;
                }
                Ok(Ok(_)) => {}
                Ok(Err(RecvError::Lagged(_))) => return true,
                Ok(Err(RecvError::Closed)) => return false,
            }
        }
    }

    /// Notes where `device` is in `key`'s log (in memory; shared at the next sync).
    pub fn record_cursor(&self, key: &ProjectKey, device: &str, seq: i64) {
        let cursor = Cursor {
            device_id: device.to_string(),
            last_seq: seq,
            last_seen: Utc::now(),
        };
        self.cursors.record(key, &cursor);
        if self.shared.is_some() {
            self.mark_dirty(key.clone(), cursor);
        }
    }

    /// Queues `cursor` for the next sync, merged with what is queued for its device.
    fn mark_dirty(&self, key: ProjectKey, cursor: Cursor) {
        let mut dirty = self.dirty.lock();
        match dirty.get_mut(&(key.clone(), cursor.device_id.clone())) {
            Some(known) => known.merge(&cursor),
            None => {
                dirty.insert((key, cursor.device_id.clone()), cursor);
            }
        }
    }

    /// Every device of `key`: as all processes recorded them, or, while the shared backend is
    /// down, as this one did.
    pub async fn cursors(&self, key: &ProjectKey) -> Vec<Cursor> {
        let mine = self.cursors.list(key);
        let Some(shared) = &self.shared else {
            return mine;
        };
        let Some(mut all) = self.note(shared.cursors(key).await) else {
            return mine;
        };
        // This process's own view may be newer than what reached the backend.
        for cursor in mine {
            match all.iter_mut().find(|c| c.device_id == cursor.device_id) {
                Some(c) => c.merge(&cursor),
                None => all.push(cursor),
            }
        }
        all.sort_by(|a, b| a.device_id.cmp(&b.device_id));
        all
    }

    /// Counts one request against `bucket` (no I/O): refused when this process's bucket is
    /// empty, or — with a shared backend — when every process together went over `rate` in
    /// this minute.
    pub fn admit(&self, bucket: &str, rate: Rate) -> Admission {
        self.admit_at(bucket, rate, Instant::now())
    }

    /// [`Live::admit`] with this process's buckets read at `now` (a clock the caller keeps —
    /// tests move one by hand); the shared window is the wall clock's minute.
    pub fn admit_at(&self, bucket: &str, rate: Rate, now: Instant) -> Admission {
        if self.shared.is_some() {
            if let Some(refused) = self.shared_refusal(bucket) {
                return refused;
            }
            let mut counted = self.counted.lock();
            let entry = counted.entry(bucket.to_string()).or_insert((0, rate));
            entry.0 += 1;
            entry.1 = rate;
        }
        self.limiter.admit(bucket, rate, now)
    }

    /// What [`Live::admit_at`] would answer, without counting a request (no I/O).
    pub fn peek_at(&self, bucket: &str, rate: Rate, now: Instant) -> Admission {
        if let Some(refused) = self
            .shared
            .as_ref()
            .and_then(|_| self.shared_refusal(bucket))
        {
            return refused;
        }
        self.limiter.peek(bucket, rate, now)
    }

    /// Refused until the end of this minute when every process together went over the bucket's
    /// rate in it (as of the last sync).
    fn shared_refusal(&self, bucket: &str) -> Option<Admission> {
        let (minute, into) = minute_now();
        (self.over.lock().get(bucket) == Some(&minute)).then(|| Admission::Refused {
            retry_after: Duration::from_secs(60 - into),
        })
    }

    /// Exchanges what is shared (cursors, rate counts) with the backend every `every`, until
    /// the layer is dropped. Without a shared backend it does nothing.
    pub fn spawn_sync(self: &Arc<Self>, every: Duration) -> Option<tokio::task::JoinHandle<()>> {
        self.shared.as_ref()?;
        let weak: Weak<Live> = Arc::downgrade(self);
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(live) = weak.upgrade() else { return };
                live.sync_once().await;
            }
        }))
    }

    /// One exchange with the shared backend (what [`Live::spawn_sync`] runs): a heartbeat (so
    /// an outage and a recovery are known without traffic), the heads when the backend may lack
    /// them, then cursors and rate-limit counts.
    pub async fn sync_once(&self) {
        let Some(shared) = &self.shared else { return };
        match self.note(shared.heartbeat().await) {
            None => return,
            Some(false) => self.heads_stale.store(true, Ordering::Release),
            Some(true) => {}
        }
        if self.heads_stale.load(Ordering::Acquire) {
            self.write_back_heads(shared.as_ref()).await;
        }
        let batch: Vec<(ProjectKey, Cursor)> = self
            .dirty
            .lock()
            .drain()
            .map(|((key, _), cursor)| (key, cursor))
            .collect();
        if !batch.is_empty() {
            let outcome = shared.record_cursors(&batch).await;
            if self.note(outcome).is_none() {
                // Kept for the next sync: the backend has them once it is back.
                for (key, cursor) in batch {
                    self.mark_dirty(key, cursor);
                }
            }
        }
        let counted: Vec<(String, u64, Rate)> = self
            .counted
            .lock()
            .drain()
            .map(|(bucket, (n, rate))| (bucket, n, rate))
            .collect();
        if !counted.is_empty() {
            self.exchange_counts(shared.as_ref(), counted).await;
        }
    }

    /// Writes the heads of every project this process serves (if it serves any).
    async fn write_back_heads(&self, shared: &dyn SharedState) {
        let Some(source) = self.heads.lock().clone() else {
            self.heads_stale.store(false, Ordering::Release);
            return;
        };
        // Cleared before the heads are read: a publish failing meanwhile marks them again.
        self.heads_stale.store(false, Ordering::Release);
        let heads = source();
        for chunk in heads.chunks(HEADS_PER_CALL) {
            if self.note(shared.record_heads(chunk).await).is_none() {
                self.heads_stale.store(true, Ordering::Release);
                return;
            }
        }
        tracing::debug!(
            heads = heads.len(),
            "heads written back to the shared live state"
        );
    }

    async fn exchange_counts(&self, shared: &dyn SharedState, counted: Vec<(String, u64, Rate)>) {
        let (minute, _) = minute_now();
        let deltas: Vec<(String, u64)> = counted.iter().map(|(b, n, _)| (b.clone(), *n)).collect();
        if let Some(totals) = self.note(shared.add_counts(minute, &deltas).await) {
            let mut over = self.over.lock();
            over.retain(|_, window| *window == minute);
            for ((bucket, _, rate), total) in counted.into_iter().zip(totals) {
                if total > u64::from(rate.per_minute) {
                    over.insert(bucket, minute);
                }
            }
        }
    }

    pub fn health(&self) -> LiveHealth {
        LiveHealth {
            backend: self.shared.as_ref().map_or("in-process", |s| s.name()),
            shared_up: self
                .shared
                .as_ref()
                .map(|_| !self.degraded.load(Ordering::Relaxed)),
            shared_failures: self.failures.load(Ordering::Relaxed),
            subscribers: self.hubs.subscribers(),
        }
    }

    /// Records how a shared call went: the first failure after success is logged, as is the
    /// first success after failures.
    fn note<T>(&self, outcome: Result<T, SharedError>) -> Option<T> {
        match outcome {
            Ok(value) => {
                if self.degraded.swap(false, Ordering::AcqRel) {
                    tracing::info!(
                        "shared live state reachable again: back to shared heads, cursors and limits"
                    );
                }
                Some(value)
            }
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                if !self.degraded.swap(true, Ordering::AcqRel) {
                    tracing::warn!(error = %e, "shared live state unreachable: using this process's own until it returns");
                }
                None
            }
        }
    }
}

/// Where another process's notices land: changes to this process's subscribers, moves to the
/// move handlers.
struct Delivery {
    hubs: Arc<Hubs>,
    moves: Arc<Mutex<Vec<MoveHandler>>>,
}

impl Inbox for Delivery {
    fn deliver(&self, key: ProjectKey, notice: Notice) {
        match notice {
            Notice::Change(change) => {
                self.hubs.deliver(&key, Arc::new(change));
            }
            Notice::Moved => {
                for handler in self.moves.lock().iter() {
                    handler(&key);
                }
            }
        }
    }

    fn resumed(&self) {
        self.hubs.missed_all();
    }
}

/// The current rate-limit window (minutes since the epoch) and the seconds into it.
fn minute_now() -> (u64, u64) {
    let secs = Utc::now().timestamp().max(0) as u64;
    (secs / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::SharedFuture;

    /// A backend whose every bucket is, with every other process, at `total` this minute.
    struct Busy {
        total: u64,
    }

    impl SharedState for Busy {
        fn name(&self) -> &'static str {
            "busy"
        }
        fn publish<'a>(
            &'a self,
            _: &'a ProjectKey,
            _: Option<&'a Head>,
            _: &'a Notice,
        ) -> SharedFuture<'a, ()> {
            Box::pin(async { Ok(()) })
        }
        fn record_heads<'a>(&'a self, _: &'a [(ProjectKey, Head)]) -> SharedFuture<'a, ()> {
            Box::pin(async { Ok(()) })
        }
        fn head<'a>(&'a self, _: &'a ProjectKey) -> SharedFuture<'a, Option<Head>> {
            Box::pin(async { Ok(None) })
        }
        fn record_cursors<'a>(&'a self, _: &'a [(ProjectKey, Cursor)]) -> SharedFuture<'a, ()> {
            Box::pin(async { Ok(()) })
        }
        fn cursors<'a>(&'a self, _: &'a ProjectKey) -> SharedFuture<'a, Vec<Cursor>> {
            Box::pin(async { Ok(Vec::new()) })
        }
        fn add_counts<'a>(
            &'a self,
            _: u64,
            deltas: &'a [(String, u64)],
        ) -> SharedFuture<'a, Vec<u64>> {
            Box::pin(async move { Ok(vec![self.total; deltas.len()]) })
        }
        fn heartbeat(&self) -> SharedFuture<'_, bool> {
            Box::pin(async { Ok(true) })
        }
        fn listen(&self, _: Arc<dyn Inbox>) {}
    }

    /// Over the rate across processes, a bucket is refused by `admit_at` and `peek_at` alike,
    /// though this process's own bucket is full; within it, neither refuses.
    #[tokio::test]
    async fn the_shared_count_refuses_admits_and_peeks() {
        let rate = Rate {
            per_minute: 10,
            burst: 10,
        };
        let now = Instant::now();
        for (total, refused) in [(10, false), (11, true)] {
            let live = Live::with_shared(Arc::new(Busy { total }));
            assert_eq!(live.admit_at("push:t", rate, now), Admission::Allowed);
            live.sync_once().await;
            for admission in [
                live.peek_at("push:t", rate, now),
                live.admit_at("push:t", rate, now),
            ] {
                match admission {
                    Admission::Refused { retry_after } => {
                        assert!(refused, "{total} of {}", rate.per_minute);
                        assert!((1..=60).contains(&retry_after.as_secs()), "{retry_after:?}");
                    }
                    Admission::Allowed => assert!(!refused, "{total} of {}", rate.per_minute),
                }
            }
            assert_eq!(
                live.peek_at("push:other", rate, now),
                Admission::Allowed,
                "another bucket is not over"
            );
        }
    }
}
