//! The scale-out control plane: Postgres through sqlx, for several stateless gateways.
//!
//! **Revocations reach every node by `LISTEN/NOTIFY`.** A revoke bumps the generation row and
//! calls `pg_notify(tdsync_acl_revocations, <generation>)` in its transaction, so Postgres
//! announces it to every listening connection the moment it commits. Each store keeps one
//! listening connection (`feed.rs`) and holds the newest generation in an atomic, so
//! [`ControlPlaneStore::revocation_generation`] costs an atomic load (the revoking instance
//! advances its own copy at commit, without waiting for its notification). While the listener
//! is not connected (start-up, a dropped connection) the generation is *unknown* and the
//! [`crate::Acl`] service reads the token rows on every verification instead: slower, never
//! stale. A reconciliation read every second catches a notification lost on a connection that
//! died before the listener noticed.
//!
//! Writes take one transaction-scoped advisory lock, so token writes are serialized exactly as on
//! SQLite (`BEGIN IMMEDIATE`): a child can never be inserted under a parent whose revocation is
//! being committed. Each backend owns its migrations (`migrations/postgres`, sqlx's migrator,
//! which locks against concurrent start-ups).

mod feed;
mod people;
mod queries;

use std::{sync::Arc, time::Duration};

use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};

#[cfg(doc)]
use crate::store::ControlPlaneStore;
use crate::store::{ControlPlaneUrl, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// The channel revocations are announced on (per database, as all Postgres notifications).
pub(crate) const REVOCATION_CHANNEL: &str = "tdsync_acl_revocations";

/// The Postgres control-plane store. Cheap to clone (one pool, one listener).
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    feed: Arc<feed::Feed>,
    /// Stops the listener when the last clone is dropped.
    tasks: Arc<feed::Tasks>,
}

impl PostgresStore {
    /// Connects, runs the migrations and starts the revocation listener (which needs a tokio
    /// runtime: this is called from one).
    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        let options: PgConnectOptions =
            url.parse().map_err(|e: sqlx::Error| StoreError::BadUrl {
                url: ControlPlaneUrl::Postgres(url.into()).to_string(),
                why: e.to_string(),
            })?;
        let pool = PgPoolOptions::new()
            // One connection is the listener's; the control plane is otherwise light.
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(StoreError::Postgres)?;
        MIGRATOR.run(&pool).await.map_err(StoreError::Migrate)?;
        let feed = Arc::new(feed::Feed::default());
        let tasks = feed::start(pool.clone(), feed.clone());
        Ok(PostgresStore {
            pool,
            feed,
            tasks: Arc::new(tasks),
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Stops the listener and closes the connections politely (a short-lived process such as
    /// the CLI calls this before exiting). The store is unusable afterwards.
    pub async fn close(&self) {
        self.tasks.abort();
        // Aborted tasks hand their connections back when the runtime next polls them.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.pool.close()).await;
    }

    /// Waits until the listener is connected (tests and start-up checks; never required).
    pub async fn wait_listening(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if self.feed.current().is_some() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        false
    }
}

/// Maps sqlx errors; a unique violation that slipped past the explicit checks is a conflict.
pub(crate) fn pg_error(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.code().as_deref() == Some("23505")
    {
        return StoreError::Conflict(format!("already exists: {}", db.message()));
    }
    StoreError::Postgres(e)
}
