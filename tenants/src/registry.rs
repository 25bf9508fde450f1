//! Every project the store has been asked about since it opened, with what is known of it
//! without opening its shard: its head. One entry per project for the store's lifetime (a
//! project is never deleted; an entry is a few hundred bytes), so a status or a pull at the head
//! of any of thousands of projects is answered from memory. Each entry also carries the
//! project's own open lock: opening or creating one shard holds up only that project.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Weak},
};

use parking_lot::{Mutex, RwLock};

use crate::{
    ProjectId, TenantId,
    shard::{Head, Shard, SharedHead},
};

pub(crate) type Key = (TenantId, ProjectId);

pub(crate) struct Entry {
    pub key: Key,
    pub path: PathBuf,
    pub head: SharedHead,
    /// The project's shard while one is open anywhere in this process. Locked while it is
    /// opened, created or its head is read from disk.
    pub shard: Mutex<Weak<Shard>>,
    /// Why the project is out of service (its shard found damaged), while it is.
    pub out_of_service: RwLock<Option<String>>,
}

impl Entry {
    /// The head, if known (no I/O).
    pub fn cached_head(&self) -> Option<Head> {
        self.head.read().clone()
    }
}

/// The file beside a shard that keeps its project out of service across restarts (its shard
/// was moved aside and not yet recovered); it holds the reason.
pub(crate) fn out_of_service_marker(shard: &std::path::Path) -> PathBuf {
    shard.with_extension("db.out-of-service")
}

#[derive(Default)]
pub(crate) struct Registry {
    // Two levels so a lookup borrows the request's ids instead of building a key.
    tenants: RwLock<HashMap<TenantId, HashMap<ProjectId, Arc<Entry>>>>,
}

impl Registry {
    /// The entry of `tenant`/`project`, made on first use with the shard file at `path()`.
    pub fn entry(
        &self,
        tenant: &TenantId,
        project: &ProjectId,
        path: impl FnOnce() -> PathBuf,
    ) -> Arc<Entry> {
        if let Some(e) = self
            .tenants
            .read()
            .get(tenant)
            .and_then(|projects| projects.get(project))
        {
            return e.clone();
        }
        self.tenants
            .write()
            .entry(tenant.clone())
            .or_default()
            .entry(project.clone())
            .or_insert_with(|| {
                let path = path();
                // A project left out of service by an earlier process stays out of it.
                let out_of_service = std::fs::read_to_string(out_of_service_marker(&path)).ok();
                Arc::new(Entry {
                    key: (tenant.clone(), project.clone()),
                    path,
                    head: SharedHead::default(),
                    shard: Mutex::new(Weak::new()),
                    out_of_service: RwLock::new(out_of_service),
                })
            })
            .clone()
    }

    /// Every project whose head is known, with its head seq.
    pub fn heads(&self) -> Vec<(TenantId, ProjectId, i64)> {
        let tenants = self.tenants.read();
        let mut out = Vec::new();
        for entry in tenants.values().flat_map(HashMap::values) {
            if let Some(head) = entry.head.read().as_ref() {
                out.push((entry.key.0.clone(), entry.key.1.clone(), head.last_seq));
            }
        }
        out
    }

    /// Projects with an entry.
    pub fn len(&self) -> usize {
        self.tenants.read().values().map(HashMap::len).sum()
    }
}
