//! [`Project`]: one project of the store, the handle every caller goes through — the gateway's
//! handlers and the in-process transport alike. It owns finding, opening and creating the
//! project's shard (on first use, from the template) and answers what it can from memory: the
//! head, status and pulls at the head never open a shard.

use std::{path::Path, sync::Arc};

use tdsync_protocol::{
    EntityType,
    wire::{PullQuery, PullResponse, PushRequest, PushResponse, SyncStatus},
};

use crate::{
    ProjectId, Store, TenantId,
    error::StoreError,
    file::ShardFile,
    registry::{Entry, out_of_service_marker},
    shard::{
        Conflict, ConflictFilter, DeviceClock, Head, HistoryEntry, LoggedEvent, RebuildReport,
        Restored, Shard, Snapshot, page_limit, peek_head,
    },
};

/// Why a shard is moved aside ([`Project::move_aside`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aside {
    /// Found damaged: kept for salvage and inspection.
    Damaged,
    /// Replaced by a newer copy (a cluster node taking a project over restores it from the
    /// backup): kept for inspection.
    Superseded,
}

impl Aside {
    fn folder(self) -> &'static str {
        match self {
            Aside::Damaged => "damaged",
            Aside::Superseded => "superseded",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Aside::Damaged => "found damaged",
            Aside::Superseded => "superseded by a newer copy",
        }
    }
}

/// One project of a [`crate::Tenants`] store. Cheap to clone; holds no shard open by itself.
#[derive(Clone)]
pub struct Project {
    store: Arc<Store>,
    entry: Arc<Entry>,
}

impl Project {
    pub(crate) fn new(store: Arc<Store>, entry: Arc<Entry>) -> Project {
        Project { store, entry }
    }

    pub fn tenant(&self) -> &TenantId {
        &self.entry.key.0
    }

    pub fn id(&self) -> &ProjectId {
        &self.entry.key.1
    }

    /// The project's shard file (it exists once something was written).
    pub fn path(&self) -> &Path {
        &self.entry.path
    }

    /// Logs, deduplicates and applies a batch of events (td's push), creating the shard on the
    /// project's first push.
    pub fn push(&self, request: &PushRequest) -> Result<PushResponse, StoreError> {
        self.with_shard(|s| s.push(request, chrono::Utc::now()))
    }

    /// The answer to a pull when it is known without reading the log — at (or past) the head —
    /// or None. Never does I/O: the gateway calls it on its async workers.
    pub fn pull_cached(&self, query: &PullQuery) -> Result<Option<PullResponse>, StoreError> {
        page_limit(query)?;
        self.in_service()?;
        // Only the seq is needed: read it under the lock rather than clone the whole head.
        let last_seq = self.entry.head.read().as_ref().map(|h| h.last_seq);
        Ok(last_seq.and_then(|seq| at_head(query, seq)))
    }

    /// A page of events after a cursor (td's pull).
    pub fn pull(&self, query: &PullQuery) -> Result<PullResponse, StoreError> {
        page_limit(query)?;
        self.in_service()?;
        if let Some(page) = at_head(query, self.guard(self.head())?.last_seq) {
            return Ok(page);
        }
        self.with_shard(|s| s.pull(query))
    }

    /// Event count, head seq and the head's server time, if known without I/O.
    pub fn status_cached(&self) -> Option<SyncStatus> {
        self.in_service().ok()?;
        self.entry.cached_head().map(status_of)
    }

    /// Event count, head seq and the head's server time (td's status).
    pub fn status(&self) -> Result<SyncStatus, StoreError> {
        self.in_service()?;
        self.guard(self.head()).map(status_of)
    }

    pub fn conflicts(&self, filter: &ConflictFilter) -> Result<Vec<Conflict>, StoreError> {
        self.with_shard(|s| s.conflicts(filter))
    }

    /// Writes the clobbered version of a conflict back as a new event.
    pub fn restore_conflict(&self, conflict_id: i64) -> Result<Restored, StoreError> {
        self.with_shard(|s| s.restore_conflict(conflict_id, chrono::Utc::now()))
    }

    pub fn history(
        &self,
        entity: EntityType,
        entity_id: &str,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        self.with_shard(|s| s.history(entity, entity_id))
    }

    /// The entity's projected row as of `seq` (None if it did not exist then).
    pub fn state_at(
        &self,
        entity: EntityType,
        entity_id: &str,
        seq: i64,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        self.with_shard(|s| s.state_at(entity, entity_id, seq))
    }

    /// Replays the log into a scratch projection and compares it with the live one.
    pub fn rebuild_check(&self) -> Result<RebuildReport, StoreError> {
        self.with_shard(|s| s.rebuild_check())
    }

    /// Re-derives the live projection from the log.
    pub fn rebuild_in_place(&self) -> Result<RebuildReport, StoreError> {
        self.with_shard(|s| s.rebuild_in_place())
    }

    /// A td database (schema 38) holding the projection at the current head, for td's snapshot
    /// bootstrap; built once per head under `<root>/snapshots/`. None when the project has no
    /// events yet.
    pub fn snapshot(&self) -> Result<Option<Snapshot>, StoreError> {
        self.in_service()?;
        if self.head()?.last_seq == 0 {
            return Ok(None);
        }
        let cache = self
            .store
            .config
            .root
            .join("snapshots")
            .join(self.tenant().as_str())
            .join(self.id().as_str());
        self.with_shard(|s| s.snapshot(&cache))
    }

    /// Logs events another copy of this log holds, under their own seqs, and applies them (a
    /// restore: segments after a snapshot). Creates the shard if the project has none.
    pub fn append_logged(&self, events: &[LoggedEvent]) -> Result<i64, StoreError> {
        self.shard()?.append_logged(events)
    }

    /// Makes `copy` — a consistent copy of this project's shard, such as a backup's snapshot —
    /// the project's shard. Only for a project with no shard yet; the copy must be this
    /// project's and pass SQLite's quick check. Returns its head seq.
    pub fn install_copy(&self, copy: &Path) -> Result<i64, StoreError> {
        let slot = self.entry.shard.lock();
        let path = &self.entry.path;
        if slot.upgrade().is_some() || path.exists() {
            return Err(StoreError::AlreadyExists(format!(
                "shard file {}",
                path.display()
            )));
        }
        let file = ShardFile::open(copy)?;
        if file.tenant() != self.tenant() || file.project() != self.id() {
            return Err(StoreError::Foreign {
                path: copy.to_path_buf(),
                reason: format!("it belongs to {}/{}", file.tenant(), file.project()),
            });
        }
        let problems = file.quick_check()?;
        if !problems.is_empty() {
            return Err(StoreError::Corrupt {
                path: copy.to_path_buf(),
                reason: problems.join("; "),
            });
        }
        drop(file);
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(StoreError::io(dir))?;
        // Copied beside its final name, then renamed: a crash never leaves half a shard.
        let partial = path.with_extension("db.partial");
        std::fs::copy(copy, &partial).map_err(StoreError::io(&partial))?;
        std::fs::rename(&partial, path).map_err(StoreError::io(path))?;
        let (tenant, project) = &self.entry.key;
        let head = peek_head(path, tenant, project)?;
        let seq = head.last_seq;
        *self.entry.head.write() = Some(head);
        drop(slot);
        Ok(seq)
    }

    /// Clock skew of every device that pushed to the project.
    pub fn device_clocks(&self) -> Result<Vec<DeviceClock>, StoreError> {
        self.with_shard(|s| s.device_clocks())
    }

    /// Why the project is out of service, if it is.
    pub fn out_of_service(&self) -> Option<String> {
        self.entry.out_of_service.read().clone()
    }

    /// Takes the project out of service: every operation but the restore ones
    /// ([`Project::install_copy`], [`Project::append_logged`]) answers
    /// [`StoreError::OutOfService`] until [`Project::return_to_service`]. The store's damage
    /// handler is called when this is new.
    pub fn take_out_of_service(&self, reason: &str) {
        if self.suspend(reason) {
            tracing::error!(tenant = %self.tenant(), project = %self.id(), reason, "project taken out of service");
            if let Some(handler) = self.store.damage_handler.get() {
                handler(self.clone());
            }
        }
    }

    /// Takes the project out of service like [`Project::take_out_of_service`], without
    /// calling the damage handler (the caller replaces the shard itself: a takeover). Whether
    /// it was in service.
    pub fn suspend(&self, reason: &str) -> bool {
        let mut slot = self.entry.out_of_service.write();
        let newly = slot.is_none();
        if newly {
            *slot = Some(reason.to_string());
        }
        newly
    }

    pub fn return_to_service(&self) {
        let marker = out_of_service_marker(&self.entry.path);
        if let Err(e) = std::fs::remove_file(&marker)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %marker.display(), error = %e, "could not remove the out-of-service marker");
        }
        *self.entry.out_of_service.write() = None;
        tracing::info!(tenant = %self.tenant(), project = %self.id(), "project back in service");
    }

    /// Closes the shard (after the write in progress; none commits after it) and moves its file,
    /// WAL and all, to `<root>/<why>/<tenant>/<project>.<unix-ms>.db` (`damaged` or
    /// `superseded`), where it stays for salvage and inspection. Returns where it went (None:
    /// there was no file). The project must be out of service.
    pub fn move_aside(&self, why: Aside) -> Result<Option<std::path::PathBuf>, StoreError> {
        if self.out_of_service().is_none() {
            return Err(StoreError::BadRequest(format!(
                "project {}/{} is in service: take it out of service before moving its shard",
                self.tenant(),
                self.id()
            )));
        }
        let mut slot = self.entry.shard.lock();
        if let Some(shard) = slot.upgrade() {
            shard.retire();
        }
        *slot = std::sync::Weak::new();
        drop(self.store.pool.remove(&self.entry.key));
        *self.entry.head.write() = None;
        let path = &self.entry.path;
        if !path.exists() {
            return Ok(None);
        }
        let dir = self
            .store
            .config
            .root
            .join(why.folder())
            .join(self.tenant().as_str());
        std::fs::create_dir_all(&dir).map_err(StoreError::io(&dir))?;
        let stamp = chrono::Utc::now().timestamp_millis();
        let moved = dir.join(format!("{}.{stamp}.db", self.id()));
        // Written first: from here until recovery ends the project is out of service, even
        // across a restart (without it, a restarted server would take it for an empty one).
        let marker = out_of_service_marker(path);
        let reason = format!(
            "its shard was {} and moved to {}; it is not yet replaced",
            why.what(),
            moved.display()
        );
        std::fs::write(&marker, &reason).map_err(StoreError::io(&marker))?;
        for suffix in ["-wal", "-shm"] {
            let from = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
            if from.exists() {
                let to = std::path::PathBuf::from(format!("{}{suffix}", moved.display()));
                std::fs::rename(&from, &to).map_err(StoreError::io(&from))?;
            }
        }
        std::fs::rename(path, &moved).map_err(StoreError::io(path))?;
        drop(slot);
        Ok(Some(moved))
    }

    fn in_service(&self) -> Result<(), StoreError> {
        match self.entry.out_of_service.read().as_ref() {
            None => Ok(()),
            Some(reason) => Err(StoreError::OutOfService {
                project: format!("{}/{}", self.tenant(), self.id()),
                reason: reason.clone(),
            }),
        }
    }

    /// Runs `f` on the open shard of a project in service; damage found on the way (when the
    /// shard opens, or by a read or write) takes the project out of service.
    fn with_shard<T>(
        &self,
        f: impl FnOnce(&Shard) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.in_service()?;
        self.guard(self.shard().and_then(|shard| f(&shard)))
    }

    /// Passes `result` on; damage it reports takes the project out of service first.
    fn guard<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(StoreError::Corrupt { reason, .. }) = &result {
            self.take_out_of_service(&format!("its shard is damaged ({reason}); recovering"));
        }
        result
    }

    /// The head: from memory, or read from the file once (without opening the shard).
    fn head(&self) -> Result<Head, StoreError> {
        if let Some(head) = self.entry.cached_head() {
            return Ok(head);
        }
        let slot = self.entry.shard.lock();
        if let Some(shard) = slot.upgrade() {
            return Ok(shard.head());
        }
        // Holding the project's lock: nobody else can open the shard or read the head meanwhile,
        // and the head lock itself is not held across the read (readers of memory never wait).
        if let Some(head) = self.entry.cached_head() {
            return Ok(head);
        }
        let (tenant, project) = &self.entry.key;
        let head = peek_head(&self.entry.path, tenant, project)?;
        *self.entry.head.write() = Some(head.clone());
        Ok(head)
    }

    /// The open shard, opening it — or creating it from the template — under this project's
    /// own lock (other projects are never held up by it).
    fn shard(&self) -> Result<Arc<Shard>, StoreError> {
        let mut slot = self.entry.shard.lock();
        let shard = match slot.upgrade() {
            Some(shard) => shard,
            None => {
                let (tenant, project) = &self.entry.key;
                let path = &self.entry.path;
                if !path.exists() {
                    self.store.template.create(path, tenant, project)?;
                }
                let shard = Arc::new(Shard::open(
                    path,
                    tenant,
                    project,
                    self.store.config.durability,
                    self.entry.head.clone(),
                )?);
                *slot = Arc::downgrade(&shard);
                shard
            }
        };
        drop(slot);
        // Closing the evicted shard checkpoints it: done here, outside every lock.
        drop(self.store.pool.used(&self.entry.key, &shard));
        Ok(shard)
    }
}

/// The answer to a pull of a project whose head is `last_seq`, when the query is at (or past)
/// it; `None` when events must be read. Refuses what a pull refuses (a bad `limit`), so
/// whoever answers from a head it was told (a cluster's gateway) answers as the shard would.
pub fn pull_at_head(query: &PullQuery, last_seq: i64) -> Result<Option<PullResponse>, StoreError> {
    page_limit(query)?;
    Ok(at_head(query, last_seq))
}

fn at_head(query: &PullQuery, last_seq: i64) -> Option<PullResponse> {
    (query.after_server_seq >= last_seq).then(|| PullResponse {
        events: Vec::new(),
        last_server_seq: query.after_server_seq,
        has_more: false,
    })
}

fn status_of(head: Head) -> SyncStatus {
    SyncStatus {
        event_count: head.event_count,
        last_server_seq: head.last_seq,
        last_event_time: head.last_event_time,
    }
}
