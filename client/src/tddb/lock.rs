//! td's cross-process writer lock: an exclusive `flock` on `.todos/db.lock`, next to
//! `issues.db`.
//!
//! td serialises all of its writers through this file (SQLite's own locking alone let
//! concurrent CLI processes race), so every write tdsync makes to a td database goes through it
//! too. Like td, the holder writes who it is into the file, so a stuck lock can be traced to a
//! process; the OS drops the lock when the holder dies, however it dies.

use std::{
    fs::{File, OpenOptions},
    io::{Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use super::error::TdDbError;

/// The lock file's name inside `.todos/`.
pub const LOCK_FILE_NAME: &str = "db.lock";
/// How long a writer waits for the lock by default (td waits as long).
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(5);

// td's retry schedule: short first, then capped, so a waiter notices a release quickly without
// spinning.
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_millis(50);

/// The lock of one td database.
#[derive(Debug, Clone)]
pub struct WriteLock {
    path: PathBuf,
    timeout: Duration,
}

/// Holding td's writer lock. Dropping it clears the holder info and releases the lock.
#[derive(Debug)]
pub struct LockGuard {
    file: File,
}

impl WriteLock {
    /// The lock guarding the td database at `db_path` (`.todos/issues.db` → `.todos/db.lock`).
    pub fn for_database(db_path: &Path, timeout: Duration) -> WriteLock {
        let dir = db_path.parent().unwrap_or(Path::new("."));
        WriteLock {
            path: dir.join(LOCK_FILE_NAME),
            timeout,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Takes the lock, retrying with backoff until the timeout; the error names the lock file
    /// and whoever holds it.
    pub fn acquire(&self) -> Result<LockGuard, TdDbError> {
        let mut options = OpenOptions::new();
        options.create(true).read(true).write(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            // td creates the file owner-only; keep it that way when we are first.
            options.mode(0o600);
        }
        let file = options.open(&self.path).map_err(|source| TdDbError::Io {
            path: self.path.clone(),
            op: "open td lock file",
            source,
        })?;

        let deadline = Instant::now() + self.timeout;
        let mut backoff = FIRST_BACKOFF;
        loop {
            match file.try_lock() {
                Ok(()) => {
                    let mut guard = LockGuard { file };
                    guard.write_holder();
                    return Ok(guard);
                }
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(source)) => {
                    return Err(TdDbError::Io {
                        path: self.path.clone(),
                        op: "lock td lock file",
                        source,
                    });
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(TdDbError::LockTimeout {
                    path: self.path.clone(),
                    timeout: self.timeout,
                    holder: read_holder(&self.path),
                });
            }
            std::thread::sleep(backoff.min(deadline - now));
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

impl LockGuard {
    /// td's holder format (`pid:` and `time:` lines, which td's own diagnostics read), plus a
    /// line saying it is tdsync and not a td process.
    fn write_holder(&mut self) {
        let text = format!(
            "pid:{}\ntime:{}\nholder:tdsync-client {}\n",
            std::process::id(),
            chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            env!("CARGO_PKG_VERSION"),
        );
        // Holder info is a debugging aid; failing to write it must not fail the write it guards.
        let _ = self.file.set_len(0);
        let _ = self.file.seek(SeekFrom::Start(0));
        let _ = self.file.write_all(text.as_bytes());
        let _ = self.file.sync_data();
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

/// Who holds the lock, as td reports it: `pid:N since T`, marked stale when that process is
/// gone, or `unknown`.
fn read_holder(path: &Path) -> String {
    let Ok(text) = std::fs::read_to_string(path) else {
        return "unknown".into();
    };
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let Some(pid) = field("pid:") else {
        return "unknown".into();
    };
    let since = field("time:").unwrap_or("?");
    let mut out = format!("pid:{pid} since {since}");
    if let Some(who) = field("holder:") {
        out.push_str(&format!(" ({who})"));
    }
    if process_is_gone(pid) {
        out.push_str(" (STALE - process dead)");
    }
    out
}

/// Only answers where `/proc` can tell; elsewhere a holder is never called stale.
fn process_is_gone(pid: &str) -> bool {
    let proc_root = Path::new("/proc");
    proc_root.join("self").exists() && !proc_root.join(pid).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_writes_holder_and_clears_it_on_release() {
        let dir = tempfile::tempdir().unwrap();
        let lock = WriteLock::for_database(&dir.path().join("issues.db"), Duration::from_secs(1));
        assert_eq!(lock.path(), dir.path().join("db.lock"));
        let guard = lock.acquire().unwrap();
        let text = std::fs::read_to_string(lock.path()).unwrap();
        assert!(
            text.starts_with(&format!("pid:{}\n", std::process::id())),
            "{text}"
        );
        assert!(
            text.contains("time:") && text.contains("tdsync-client"),
            "{text}"
        );
        drop(guard);
        assert_eq!(std::fs::read_to_string(lock.path()).unwrap(), "");
        // Released: a second taker gets it at once.
        let started = Instant::now();
        let _again = lock.acquire().unwrap();
        assert!(started.elapsed() < Duration::from_millis(500));
    }

    #[test]
    fn contention_times_out_naming_file_and_holder() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("issues.db");
        let holder = WriteLock::for_database(&db, Duration::from_secs(1))
            .acquire()
            .unwrap();
        let waiter = WriteLock::for_database(&db, Duration::from_millis(150));
        let started = Instant::now();
        let err = waiter.acquire().unwrap_err();
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(150), "{waited:?}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");
        assert!(err.is_transient());
        let msg = err.to_string();
        assert!(
            msg.contains(&dir.path().join("db.lock").display().to_string()),
            "{msg}"
        );
        assert!(
            msg.contains(&format!("pid:{}", std::process::id())),
            "{msg}"
        );
        drop(holder);
        assert!(waiter.acquire().is_ok());
    }

    #[test]
    fn a_dead_holder_is_reported_stale() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.lock");
        // No process has pid 2^31-2 on Linux (pid_max is at most 2^22).
        std::fs::write(&path, "pid:2147483646\ntime:2026-01-01T00:00:00Z\n").unwrap();
        let holder = read_holder(&path);
        assert!(
            holder.starts_with("pid:2147483646 since 2026-01-01T00:00:00Z"),
            "{holder}"
        );
        if Path::new("/proc/self").exists() {
            assert!(holder.contains("STALE"), "{holder}");
        }
        std::fs::write(&path, "").unwrap();
        assert_eq!(read_holder(&path), "unknown");
    }
}
