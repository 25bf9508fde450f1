//! The open-shard budget: at most `cap` shards kept open, least recently used closed first.
//! The pool only keeps shards alive; finding or opening a project's shard is the registry's job
//! (one lock per project, so opening a cold shard never holds up other projects). A shard still
//! in use when evicted stays alive for its users and is found again through the registry, so
//! one file never has two writers in this process.

use std::{num::NonZeroUsize, sync::Arc};

use lru::LruCache;
use parking_lot::Mutex;

use crate::{registry::Key, shard::Shard};

pub(crate) struct ShardPool {
    open: Mutex<LruCache<Key, Arc<Shard>>>,
}

impl ShardPool {
    pub fn new(cap: usize) -> ShardPool {
        let cap = NonZeroUsize::new(cap.max(1)).unwrap_or(NonZeroUsize::MIN);
        ShardPool {
            open: Mutex::new(LruCache::new(cap)),
        }
    }

    /// Marks `key`'s shard as just used, keeping (or putting back) `shard` in the budget. The
    /// shard this evicts is returned, to be dropped (closing it checkpoints) outside every lock.
    #[must_use = "drop the evicted shard outside any lock"]
    pub fn used(&self, key: &Key, shard: &Arc<Shard>) -> Option<Arc<Shard>> {
        let mut open = self.open.lock();
        if open.get(key).is_some() {
            return None;
        }
        open.push(key.clone(), shard.clone())
            .filter(|(evicted, _)| evicted != key)
            .map(|(_, s)| s)
    }

    /// Takes `key`'s shard out of the budget (to be dropped outside every lock).
    #[must_use = "drop the shard outside any lock"]
    pub fn remove(&self, key: &Key) -> Option<Arc<Shard>> {
        self.open.lock().pop(key)
    }

    /// Shards currently held open by the pool.
    pub fn open_count(&self) -> usize {
        self.open.lock().len()
    }

    /// Closes every shard the pool holds (in-flight users keep theirs until they finish).
    pub fn close_all(&self) {
        let drained: Vec<Arc<Shard>> = {
            let mut open = self.open.lock();
            let mut out = Vec::with_capacity(open.len());
            while let Some((_, s)) = open.pop_lru() {
                out.push(s);
            }
            out
        };
        drop(drained);
    }
}
