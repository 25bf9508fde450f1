//! Per-tenant SQLite shards: the sync engine of tdsync.
//!
//! Each project of each tenant is one SQLite file, `<root>/tenants/<tenant>/<project>.db`,
//! holding the project's event log and its td-schema projection. A push is one transaction:
//! the events are logged (deduplicated on device, session and client action id), applied to the
//! projection with td's rules, conflicts are recorded and the head moves. Nothing here knows
//! about HTTP or tokens: the gateway checks who may call what, then calls [`Tenants`].

mod error;
mod ids;
mod pool;
mod shard;

use std::{
    fs::File,
    path::{Path, PathBuf},
    sync::Arc,
};

use tdsync_protocol::{
    EntityType,
    wire::{PullQuery, PullResponse, PushRequest, PushResponse, SyncStatus},
};

pub use error::StoreError;
pub use ids::{ProjectId, TenantId};
use pool::ShardPool;
use shard::Shard;
pub use shard::{
    Conflict, ConflictFilter, DeviceClock, HistoryEntry, RebuildReport, Restored, SERVER_DEVICE,
    Snapshot,
};

/// How hard a commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// WAL with `synchronous=NORMAL`: survives a crash of tdsync; the newest commits may be lost
    /// on power failure (SQLite's documented trade-off, vaultwarden's default).
    #[default]
    Normal,
    /// `synchronous=FULL`: every commit is on disk before the push is acknowledged.
    Full,
}

impl Durability {
    fn pragma(self) -> &'static str {
        match self {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        }
    }
}

/// Replays the log of the shard file at `path` into a scratch projection and compares it with
/// the file's own projection ([`Tenants::rebuild_check`]), opening the file read-only: for an
/// observer beside the process that owns the data directory (the harness judging a running
/// `tdsync serve`).
pub fn rebuild_check_file(path: &Path) -> Result<RebuildReport, StoreError> {
    let sql = |e| StoreError::sql(path, e);
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(sql)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sql)?;
    shard::check_against_replay(&conn, path)
}

/// Where shards live and how many stay open.
#[derive(Debug, Clone)]
pub struct TenantsConfig {
    pub root: PathBuf,
    pub max_open_shards: usize,
    pub durability: Durability,
}

impl TenantsConfig {
    pub fn new(root: impl Into<PathBuf>) -> TenantsConfig {
        TenantsConfig {
            root: root.into(),
            max_open_shards: 256,
            durability: Durability::Normal,
        }
    }
}

/// The shard store of one data directory.
pub struct Tenants {
    config: TenantsConfig,
    pool: ShardPool,
    // Held for the store's lifetime: one tdsync process per data directory, so the in-memory
    // heads are the truth.
    _dir_lock: File,
}

impl Tenants {
    /// Opens (creating if needed) the data directory and takes its lock.
    pub fn open(config: TenantsConfig) -> Result<Tenants, StoreError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        let dir = config.root.join("tenants");
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let lock_path = config.root.join(".tdsync.lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        lock.try_lock().map_err(|_| StoreError::DataDirBusy {
            path: config.root.clone(),
        })?;
        Ok(Tenants {
            pool: ShardPool::new(config.max_open_shards),
            config,
            _dir_lock: lock,
        })
    }

    pub fn root(&self) -> &Path {
        &self.config.root
    }

    /// The file of one project's shard.
    pub fn shard_path(&self, tenant: &TenantId, project: &ProjectId) -> PathBuf {
        self.config
            .root
            .join("tenants")
            .join(tenant.as_str())
            .join(format!("{}.db", project.as_str()))
    }

    fn shard(&self, tenant: &TenantId, project: &ProjectId) -> Result<Arc<Shard>, StoreError> {
        let key = (tenant.clone(), project.clone());
        self.pool.get(&key, || {
            Shard::open(
                &self.shard_path(tenant, project),
                tenant,
                project,
                self.config.durability,
            )
        })
    }

    /// Creates an empty project shard. Fails with `AlreadyExists` if it exists.
    pub fn create_project(&self, tenant: &TenantId, project: &ProjectId) -> Result<(), StoreError> {
        let key = (tenant.clone(), project.clone());
        let path = self.shard_path(tenant, project);
        if path.exists() {
            return Err(StoreError::AlreadyExists(format!("project {project}")));
        }
        self.pool.get(&key, || {
            Shard::create(&path, tenant, project, self.config.durability)
        })?;
        Ok(())
    }

    pub fn project_exists(&self, tenant: &TenantId, project: &ProjectId) -> bool {
        self.shard_path(tenant, project).is_file()
    }

    /// The projects of a tenant that have a shard, sorted.
    pub fn projects(&self, tenant: &TenantId) -> Result<Vec<ProjectId>, StoreError> {
        let dir = self.config.root.join("tenants").join(tenant.as_str());
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(StoreError::Io { path: dir, source }),
        };
        let mut out: Vec<ProjectId> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                ProjectId::parse(name.strip_suffix(".db")?).ok()
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Logs, deduplicates and applies a batch of events (td's push).
    pub fn push(
        &self,
        tenant: &TenantId,
        project: &ProjectId,
        req: &PushRequest,
    ) -> Result<PushResponse, StoreError> {
        self.shard(tenant, project)?.push(req, chrono::Utc::now())
    }

    /// A page of events after a cursor (td's pull).
    pub fn pull(
        &self,
        tenant: &TenantId,
        project: &ProjectId,
        query: &PullQuery,
    ) -> Result<PullResponse, StoreError> {
        self.shard(tenant, project)?.pull(query)
    }

    pub fn status(&self, tenant: &TenantId, project: &ProjectId) -> Result<SyncStatus, StoreError> {
        Ok(self.shard(tenant, project)?.status())
    }

    pub fn conflicts(
        &self,
        tenant: &TenantId,
        project: &ProjectId,
        filter: &ConflictFilter,
    ) -> Result<Vec<Conflict>, StoreError> {
        self.shard(tenant, project)?.conflicts(filter)
    }

    /// Writes the clobbered version of a conflict back as a new event.
    pub fn restore_conflict(
        &self,
        tenant: &TenantId,
        project: &ProjectId,
        conflict_id: i64,
    ) -> Result<Restored, StoreError> {
        self.shard(tenant, project)?
            .restore_conflict(conflict_id, chrono::Utc::now())
    }

    pub fn history(
        &self,
        tenant: &TenantId,
        project: &ProjectId,
        entity: EntityType,
        entity_id: &str,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        self.shard(tenant, project)?.history(entity, entity_id)
    }

    /// The entity's projected row as of `seq` (None if it did not exist then).
    pub fn state_at(
        &self,
        tenant: &TenantId,
        project: &ProjectId,
        entity: EntityType,
        entity_id: &str,
        seq: i64,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        self.shard(tenant, project)?
            .state_at(entity, entity_id, seq)
    }

    /// Replays the log into a scratch projection and compares it with the live one.
    pub fn rebuild_check(
        &self,
        tenant: &TenantId,
        project: &ProjectId,
    ) -> Result<RebuildReport, StoreError> {
        self.shard(tenant, project)?.rebuild_check()
    }

    /// Re-derives the live projection from the log.
    pub fn rebuild_in_place(
        &self,
        tenant: &TenantId,
        project: &ProjectId,
    ) -> Result<RebuildReport, StoreError> {
        self.shard(tenant, project)?.rebuild_in_place()
    }

    /// A td database (schema 38) holding the project's projection at its current head, for
    /// td's snapshot bootstrap; built once per head under `<root>/snapshots/`. None when the
    /// project has no events yet.
    pub fn snapshot(
        &self,
        tenant: &TenantId,
        project: &ProjectId,
    ) -> Result<Option<Snapshot>, StoreError> {
        let cache = self
            .config
            .root
            .join("snapshots")
            .join(tenant.as_str())
            .join(project.as_str());
        self.shard(tenant, project)?.snapshot(&cache)
    }

    pub fn device_clocks(
        &self,
        tenant: &TenantId,
        project: &ProjectId,
    ) -> Result<Vec<DeviceClock>, StoreError> {
        self.shard(tenant, project)?.device_clocks()
    }

    /// The head seq of a project whose shard is open right now, from memory (no I/O, never
    /// blocks): what a pull at the head needs. None when the shard is not open.
    pub fn open_head(&self, tenant: &TenantId, project: &ProjectId) -> Option<i64> {
        let key = (tenant.clone(), project.clone());
        self.pool.get_open(&key).map(|s| s.status().last_server_seq)
    }

    /// Shards currently open.
    pub fn open_shards(&self) -> usize {
        self.pool.open_count()
    }

    /// Closes every idle shard (each is checkpointed into one file).
    pub fn close_all(&self) {
        self.pool.close_all();
    }
}
