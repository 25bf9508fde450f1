//! What verification remembers between requests, so that steady state costs microseconds:
//! verified tokens (bounded LRU, keyed by the SHA-256 of the whole token, each stamped with the
//! revocation generation it was checked at), final refusals (so a wrong, revoked or expired token
//! presented again does not cost another argon2 run), and last-used times waiting to be written
//! in one batch.

use std::{collections::HashMap, num::NonZeroUsize, sync::Arc};

use chrono::{DateTime, Utc};
use lru::LruCache;
use parking_lot::Mutex;

use crate::{decision::TokenGrant, error::AuthError, ids::TokenId, secret::Digest32};

/// When a cached answer was known to be current: the store's revocation generation (`None`:
/// unknown, so always re-check) and this process's own revocation count, which makes a revoke
/// done here visible at once even before a backend's notification comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub store: Option<u64>,
    pub local: u64,
}

impl Stamp {
    /// Whether an entry checked at `self` is still current at `now`.
    pub fn still_current(self, now: Stamp) -> bool {
        self.store.is_some() && self == now
    }
}

#[derive(Clone)]
pub(crate) struct Verified {
    pub grant: Arc<TokenGrant>,
    pub stamp: Stamp,
}

pub(crate) struct VerifyCache {
    verified: Mutex<LruCache<Digest32, Verified>>,
    refused: Mutex<LruCache<Digest32, AuthError>>,
}

impl VerifyCache {
    pub fn new(verified: usize, refused: usize) -> VerifyCache {
        let cap = |n: usize| NonZeroUsize::new(n.max(1)).unwrap_or(NonZeroUsize::MIN);
        VerifyCache {
            verified: Mutex::new(LruCache::new(cap(verified))),
            refused: Mutex::new(LruCache::new(cap(refused))),
        }
    }

    pub fn get(&self, key: &Digest32) -> Option<Verified> {
        self.verified.lock().get(key).cloned()
    }

    pub fn put(&self, key: Digest32, entry: Verified) {
        self.verified.lock().put(key, entry);
    }

    /// Forgets a verified token and remembers why it is refused from now on (revocation and
    /// expiry are final, and so is a wrong secret).
    pub fn refuse(&self, key: Digest32, why: AuthError) {
        self.verified.lock().pop(&key);
        self.refused.lock().put(key, why);
    }

    pub fn refused(&self, key: &Digest32) -> Option<AuthError> {
        self.refused.lock().get(key).cloned()
    }

    #[cfg(feature = "test-support")]
    pub fn len(&self) -> usize {
        self.verified.lock().len()
    }
}

/// Last-used times since the last flush, one per token (the latest).
#[derive(Default)]
pub(crate) struct LastUsed(Mutex<HashMap<TokenId, DateTime<Utc>>>);

impl LastUsed {
    pub fn record(&self, id: &TokenId, at: DateTime<Utc>) {
        let mut map = self.0.lock();
        match map.get_mut(id) {
            Some(t) => *t = (*t).max(at),
            None => {
                map.insert(id.clone(), at);
            }
        }
    }

    pub fn take(&self) -> Vec<(TokenId, DateTime<Utc>)> {
        std::mem::take(&mut *self.0.lock()).into_iter().collect()
    }

    /// Puts back a batch that could not be written (keeping newer times recorded meanwhile).
    pub fn restore(&self, batch: Vec<(TokenId, DateTime<Utc>)>) {
        for (id, at) in batch {
            self.record(&id, at);
        }
    }

    #[cfg(feature = "test-support")]
    pub fn pending(&self) -> usize {
        self.0.lock().len()
    }
}

/// Projects by id, as found in the store. A project never changes tenant and is never deleted
/// or renamed (the store has no such operation), so a found project stays true forever; only
/// found ones are kept, so a project created later is seen at once. This takes the store off
/// the path of every sync request (`Acl::project` runs once per request).
pub(crate) struct ProjectCache {
    found: Mutex<LruCache<crate::ids::ProjectId, Arc<crate::model::Project>>>,
}

impl ProjectCache {
    pub fn new(capacity: usize) -> ProjectCache {
        let capacity = NonZeroUsize::new(capacity.max(1)).expect("at least 1");
        ProjectCache {
            found: Mutex::new(LruCache::new(capacity)),
        }
    }

    pub fn get(&self, id: &crate::ids::ProjectId) -> Option<Arc<crate::model::Project>> {
        self.found.lock().get(id).cloned()
    }

    pub fn insert(&self, project: Arc<crate::model::Project>) {
        self.found.lock().put(project.id.clone(), project);
    }
}
