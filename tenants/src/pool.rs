//! The shard pool: at most `cap` shards held open (least recently used closed first), reopened
//! on demand. A shard still in use when evicted stays alive for its users and is found again by
//! the next caller, so one file never has two writers in this process.

use std::{
    collections::HashMap,
    num::NonZeroUsize,
    sync::{Arc, Weak},
};

use lru::LruCache;
use parking_lot::Mutex;

use crate::{
    error::StoreError,
    ids::{ProjectId, TenantId},
    shard::Shard,
};

type Key = (TenantId, ProjectId);

pub(crate) struct ShardPool {
    state: Mutex<State>,
}

struct State {
    open: LruCache<Key, Arc<Shard>>,
    live: HashMap<Key, Weak<Shard>>,
}

impl ShardPool {
    pub fn new(cap: usize) -> ShardPool {
        let cap = NonZeroUsize::new(cap.max(1)).unwrap_or(NonZeroUsize::MIN);
        ShardPool {
            state: Mutex::new(State {
                open: LruCache::new(cap),
                live: HashMap::new(),
            }),
        }
    }

    /// The shard for `key`, opening it with `open` when no live handle exists.
    pub fn get(
        &self,
        key: &Key,
        open: impl FnOnce() -> Result<Shard, StoreError>,
    ) -> Result<Arc<Shard>, StoreError> {
        let evicted;
        let shard = {
            let mut st = self.state.lock();
            if let Some(s) = st.open.get(key) {
                return Ok(s.clone());
            }
            let shard = match st.live.get(key).and_then(Weak::upgrade) {
                Some(s) => s,
                None => Arc::new(open()?),
            };
            st.live.insert(key.clone(), Arc::downgrade(&shard));
            evicted = st.open.push(key.clone(), shard.clone());
            st.live.retain(|_, w| w.strong_count() > 0);
            shard
        };
        // Closing a shard checkpoints it; do that outside the pool lock.
        drop(evicted);
        Ok(shard)
    }

    /// The shard for `key` if it is open right now (never opens one: no I/O).
    pub fn get_open(&self, key: &Key) -> Option<Arc<Shard>> {
        let mut st = self.state.lock();
        if let Some(s) = st.open.get(key) {
            return Some(s.clone());
        }
        st.live.get(key).and_then(Weak::upgrade)
    }

    /// Shards currently held open by the pool.
    pub fn open_count(&self) -> usize {
        self.state.lock().open.len()
    }

    /// Closes every shard the pool holds (in-flight users keep theirs until they finish).
    pub fn close_all(&self) {
        let drained: Vec<Arc<Shard>> = {
            let mut st = self.state.lock();
            let mut out = Vec::new();
            while let Some((_, s)) = st.open.pop_lru() {
                out.push(s);
            }
            out
        };
        drop(drained);
    }
}
