//! New shards are copies of one prepared empty shard, built once when the store opens: creating
//! a project writes a few dozen KB and stamps its owner, instead of running td's whole schema
//! (dozens of statements and a schema parse per project).
//!
//! Shards use 1 KiB pages. An empty shard is about fifty b-trees (the log, td's twelve tables,
//! their indexes, the bookkeeping) and every b-tree takes at least one page, so the page size
//! sets the floor of what a project costs on disk: ~50 KB instead of ~200 KB at SQLite's 4 KiB
//! default. A hosted service holds thousands of small projects; big ones lose little (see
//! BENCHMARKS.md for push and pull measured both ways).

use std::path::Path;

use rusqlite::Connection;

use crate::{
    Durability, ProjectId, TenantId,
    error::StoreError,
    shard::{FORMAT, SHARD_SQL, compact_ddl, create_projection},
};

/// Page size of new shards (set before the first table; fixed for the file's life in WAL mode).
pub(crate) const SHARD_PAGE_SIZE: u32 = 1024;

pub(crate) struct Template {
    bytes: Vec<u8>,
    durability: Durability,
}

impl Template {
    /// Builds the empty shard in a scratch file under `dir` and keeps its bytes.
    pub fn build(dir: &Path, durability: Durability) -> Result<Template, StoreError> {
        let scratch = dir.join(".shard-template.db");
        let sql = |e| StoreError::sql(&scratch, e);
        remove_if_exists(&scratch)?;
        {
            let mut conn = Connection::open(&scratch).map_err(sql)?;
            conn.pragma_update(None, "page_size", SHARD_PAGE_SIZE)
                .map_err(sql)?;
            conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
                .map_err(sql)?;
            let tx = conn.transaction().map_err(sql)?;
            tx.execute_batch(&compact_ddl(SHARD_SQL, &[]))
                .map_err(sql)?;
            create_projection(&tx).map_err(sql)?;
            tx.execute(
                "INSERT INTO shard_meta (key, value) VALUES ('format', ?1)",
                [FORMAT],
            )
            .map_err(sql)?;
            tx.commit().map_err(sql)?;
            // Closing the only connection folds the WAL into the file.
        }
        let bytes = std::fs::read(&scratch).map_err(|source| StoreError::Io {
            path: scratch.clone(),
            source,
        })?;
        remove_if_exists(&scratch)?;
        Ok(Template { bytes, durability })
    }

    /// Creates the shard of `tenant`/`project` at `path`, which must not exist: the template is
    /// written beside it, stamped with its owner, and renamed into place, so a crash never
    /// leaves a half-made shard under the real name.
    pub fn create(
        &self,
        path: &Path,
        tenant: &TenantId,
        project: &ProjectId,
    ) -> Result<(), StoreError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(StoreError::io(dir))?;
        let partial = path.with_extension("db.partial");
        std::fs::write(&partial, &self.bytes).map_err(StoreError::io(&partial))?;
        {
            let sql = |e| StoreError::sql(&partial, e);
            let mut conn = Connection::open(&partial).map_err(sql)?;
            let tx = conn.transaction().map_err(sql)?;
            let created = tdsync_protocol::timestamp::format_server(&chrono::Utc::now());
            for (k, v) in [
                ("tenant", tenant.as_str()),
                ("project", project.as_str()),
                ("created_at", created.as_str()),
            ] {
                tx.execute(
                    "INSERT INTO shard_meta (key, value) VALUES (?1, ?2)",
                    [k, v],
                )
                .map_err(sql)?;
            }
            tx.commit().map_err(sql)?;
        }
        std::fs::rename(&partial, path).map_err(StoreError::io(path))?;
        if self.durability == Durability::Full {
            // The new name must survive a power loss before the first push is acknowledged.
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(StoreError::io(dir))?;
        }
        Ok(())
    }
}

fn remove_if_exists(path: &Path) -> Result<(), StoreError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StoreError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}
