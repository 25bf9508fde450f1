//! The embedded control plane: one SQLite file (by default `<data-dir>/control-plane.db`).
//!
//! One writer connection behind a mutex serves every query (the control plane is small and
//! rarely written; verification in steady state never reaches it); calls run on tokio's blocking
//! pool so async callers never wait on SQLite. A second, read-only **watch** connection answers
//! [`ControlPlaneStore::revocation_generation`]: `PRAGMA data_version` changes whenever another
//! connection — in this process or another one, such as the admin CLI revoking while a server
//! runs — has committed, and only then is the generation row read again. Both calls take a few
//! microseconds, so a revocation is seen by the very next verification.

mod migrate;
mod people;
mod queries;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags};

#[cfg(doc)]
use crate::store::ControlPlaneStore;
use crate::store::StoreError;

/// The SQLite control-plane store. Cheap to clone (shared connections).
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    conn: Mutex<Connection>,
    watch: Mutex<Watch>,
}

/// The watch connection and what it saw last.
struct Watch {
    conn: Connection,
    data_version: i64,
    generation: u64,
}

/// A failure inside a blocking call: SQLite's own errors get the file path attached by `run`.
pub(crate) enum Failure {
    Sql(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        Failure::Sql(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

fn sql_error(path: &Path, source: rusqlite::Error) -> StoreError {
    StoreError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

impl SqliteStore {
    /// Opens the file, creating it (and its directory) and migrating it when needed.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || SqliteStore::open_blocking(&path))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// [`SqliteStore::open`] for callers outside a runtime.
    pub fn open_blocking(path: &Path) -> Result<SqliteStore, StoreError> {
        let io = |source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let fresh = !path.exists();
        let mut conn = Connection::open(path).map_err(|e| sql_error(path, e))?;
        if fresh {
            restrict_permissions(path).map_err(io)?;
        }
        // FULL: a revocation must survive a power cut; control-plane writes are rare.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = ON;
             PRAGMA busy_timeout = 5000;",
        )
        .map_err(|e| sql_error(path, e))?;
        migrate::migrate(&mut conn).map_err(|f| match f {
            migrate::MigrateFailure::Sql(e) => sql_error(path, e),
            migrate::MigrateFailure::Foreign(why) => StoreError::Foreign {
                location: path.display().to_string(),
                why,
            },
        })?;
        let watch = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| sql_error(path, e))?;
        watch
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| sql_error(path, e))?;
        let mut watch = Watch {
            conn: watch,
            data_version: -1,
            generation: 0,
        };
        watch.refresh().map_err(|e| sql_error(path, e))?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                conn: Mutex::new(conn),
                watch: Mutex::new(watch),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on the connection, on the blocking pool.
    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Failure> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = inner.conn.lock();
            f(&mut conn).map_err(|failure| match failure {
                Failure::Sql(e) => sql_error(&inner.path, e),
                Failure::Store(e) => e,
            })
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

impl Watch {
    /// Re-reads the generation if any other connection committed since the last look.
    fn refresh(&mut self) -> Result<u64, rusqlite::Error> {
        let version: i64 = self
            .conn
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |r| r.get(0))?;
        if version != self.data_version {
            let generation: i64 = self
                .conn
                .prepare_cached("SELECT generation FROM revocation_generation WHERE id = 1")?
                .query_row([], |r| r.get(0))?;
            self.data_version = version;
            self.generation = generation as u64;
        }
        Ok(self.generation)
    }
}

#[cfg(unix)]
fn restrict_permissions(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // Token hashes are not secrets, but nobody else needs to read them.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

impl SqliteStore {
    /// What [`ControlPlaneStore::revocation_generation`] answers (see the module docs).
    fn generation_now(&self) -> Result<u64, StoreError> {
        self.inner
            .watch
            .lock()
            .refresh()
            .map_err(|e| sql_error(&self.inner.path, e))
    }
}
