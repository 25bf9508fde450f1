//! The revocation feed of the Postgres backend: a `LISTEN` connection that keeps the newest
//! revocation generation in an atomic, and a slow reconciliation read beside it.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use sqlx::{PgPool, postgres::PgListener};
use tokio::task::JoinHandle;

use super::REVOCATION_CHANNEL;

/// How often the generation row is read even without a notification: the bound on staleness if
/// a notification is lost on a connection that died before the listener noticed. One tiny query
/// a second per node.
const RECONCILE_EVERY: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The newest generation seen, and whether the listener is connected right now.
#[derive(Default)]
pub(super) struct Feed {
    generation: AtomicU64,
    listening: AtomicBool,
}

impl Feed {
    /// The generation, or `None` while nobody listens (callers must then read the rows).
    pub(super) fn current(&self) -> Option<u64> {
        if self.listening.load(Ordering::Acquire) {
            Some(self.generation.load(Ordering::Acquire))
        } else {
            None
        }
    }

    pub(super) fn advance(&self, generation: u64) {
        self.generation.fetch_max(generation, Ordering::AcqRel);
    }

    fn set_listening(&self, on: bool) {
        self.listening.store(on, Ordering::Release);
    }
}

/// The listener and reconciliation tasks, aborted on drop.
pub(super) struct Tasks(Vec<JoinHandle<()>>);

impl Tasks {
    pub(super) fn abort(&self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        self.abort();
    }
}

pub(super) fn start(pool: PgPool, feed: Arc<Feed>) -> Tasks {
    let listener = tokio::spawn(listen_forever(pool.clone(), feed.clone()));
    let reconcile = tokio::spawn(async move {
        loop {
            tokio::time::sleep(RECONCILE_EVERY).await;
            if let Ok(g) = read_generation(&pool).await {
                feed.advance(g);
            }
        }
    });
    Tasks(vec![listener, reconcile])
}

pub(super) async fn read_generation(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let g: i64 = sqlx::query_scalar("SELECT generation FROM revocation_generation WHERE id = 1")
        .fetch_one(pool)
        .await?;
    Ok(g as u64)
}

async fn listen_forever(pool: PgPool, feed: Arc<Feed>) {
    const FIRST_BACKOFF: Duration = Duration::from_millis(50);
    let mut backoff = FIRST_BACKOFF;
    loop {
        let mut reached = false;
        let outcome = listen(&pool, &feed, &mut reached).await;
        feed.set_listening(false);
        // A session that got as far as listening starts the backoff afresh.
        if reached {
            backoff = FIRST_BACKOFF;
        }
        let error = outcome.err().map(|e| e.to_string());
        tracing::warn!(
            error = error.as_deref().unwrap_or("connection closed"),
            "control-plane revocation listener lost; verifications read the database until it is back"
        );
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Listens until the connection fails. `LISTEN` comes before the read of the generation, so a
/// revocation committed in between is either in the read or notified.
async fn listen(pool: &PgPool, feed: &Feed, reached: &mut bool) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    // Report a lost connection at once instead of reconnecting first: until the generation is
    // read again after a new LISTEN, the feed must say "unknown" (the caller rebuilds).
    listener.eager_reconnect(false);
    listener.listen(REVOCATION_CHANNEL).await?;
    feed.advance(read_generation(pool).await?);
    feed.set_listening(true);
    *reached = true;
    loop {
        match listener.try_recv().await? {
            Some(note) => match note.payload().parse::<u64>() {
                Ok(g) => feed.advance(g),
                Err(_) => feed.advance(read_generation(pool).await?),
            },
            // The connection dropped: anything announced from now on is lost.
            None => {
                feed.set_listening(false);
                return Ok(());
            }
        }
    }
}
