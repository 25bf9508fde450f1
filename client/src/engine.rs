//! One client's sync loop: push what is pending, then pull until caught up, as td does — with
//! the database lock taken only around local writes, never across a network call.

use std::{collections::BTreeSet, time::Duration};

use tdsync_protocol::{
    EntityType,
    wire::{CLIENT_PUSH_BATCH, DEFAULT_PULL_LIMIT, PullQuery, PushRequest, Rejection},
};

use crate::{
    tddb::{TdDatabase, TdDbError, acks_of},
    transport::{Cancel, Transport, TransportError},
};

/// Who the client is on the wire: td's device id (stable per installation) and the session id
/// it pushes under. A stable session keeps re-pushes after a crash deduplicated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub device_id: String,
    pub session_id: String,
}

/// Batch sizes and pull mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncOptions {
    /// Events per push request (td sends 500).
    pub push_batch: usize,
    /// Events per pull page (td asks for 1000).
    pub pull_limit: i64,
    /// Ask the server to leave out this device's own events (td's autosync does; a manual
    /// `td sync` does not, to replay them in server order).
    pub exclude_own: bool,
}

impl Default for SyncOptions {
    fn default() -> SyncOptions {
        SyncOptions {
            push_batch: CLIENT_PUSH_BATCH,
            pull_limit: DEFAULT_PULL_LIMIT,
            exclude_own: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Db(#[from] TdDbError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("the td database is not linked to a project (sync_state is empty)")]
    NotLinked,
}

/// What a push did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PushReport {
    /// Events sent (over all requests).
    pub sent: usize,
    /// Events the server stored for the first time.
    pub accepted: usize,
    /// Events it already had (a repeated push): marked synced all the same.
    pub duplicates: usize,
    /// Rejections other than duplicates; their rows stay pending.
    pub rejected: Vec<Rejection>,
    /// Pending rows that can never be sent (unknown entity type, no id, …).
    pub unsendable: usize,
    /// Synthetic rows written by td's first-sync backfill.
    pub backfilled: usize,
}

/// What a pull did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PullReport {
    pub pulled: usize,
    pub applied: usize,
    pub skipped: usize,
    pub conflicts: usize,
    /// Entities whose rows changed: what a UI re-renders.
    pub changed: BTreeSet<(EntityType, String)>,
    /// The cursor after the pull.
    pub cursor: i64,
}

/// A push followed by a pull.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncReport {
    pub push: PushReport,
    pub pull: PullReport,
}

impl SyncReport {
    /// Whether the sync moved anything in either direction.
    pub fn changed_anything(&self) -> bool {
        self.push.accepted > 0 || self.pull.pulled > 0
    }
}

/// A td database bound to a server.
pub struct SyncClient<T: Transport> {
    db: TdDatabase,
    transport: T,
    identity: Identity,
    options: SyncOptions,
}

impl<T: Transport> SyncClient<T> {
    pub fn new(db: TdDatabase, transport: T, identity: Identity) -> SyncClient<T> {
        SyncClient::with_options(db, transport, identity, SyncOptions::default())
    }

    pub fn with_options(
        db: TdDatabase,
        transport: T,
        identity: Identity,
        options: SyncOptions,
    ) -> SyncClient<T> {
        SyncClient {
            db,
            transport,
            identity,
            options,
        }
    }

    pub fn db(&self) -> &TdDatabase {
        &self.db
    }

    pub fn transport(&self) -> &T {
        &self.transport
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Sends every pending event, a batch at a time, marking each batch's acks (and duplicates
    /// that carry their original seq) synced as soon as the server answers it.
    pub fn push(&self) -> Result<PushReport, SyncError> {
        let batch = self.options.push_batch.max(1);
        let mut report = PushReport::default();
        // The first page runs td's first-sync backfill; later pages page past rows the server
        // rejected (which stay pending) instead of resending them in a loop.
        let mut pending = self.db.pending(&self.identity.session_id, batch)?;
        report.backfilled = pending.backfilled;
        loop {
            report.unsendable += pending.unsendable.len();
            let Some(last) = pending.events.last().map(|e| e.client_action_id) else {
                break;
            };
            let request = PushRequest {
                device_id: self.identity.device_id.clone(),
                session_id: self.identity.session_id.clone(),
                events: std::mem::take(&mut pending.events),
            };
            report.sent += request.events.len();
            let response = self.transport.push(&request)?;
            let acks = acks_of(&response);
            report.accepted += response.accepted.max(0) as usize;
            report.duplicates += acks.len() - response.acks.len();
            report.rejected.extend(
                response
                    .rejected
                    .iter()
                    .filter(|r| r.as_ack().is_none())
                    .cloned(),
            );
            self.db.mark_pushed(&acks, &self.identity.device_id)?;
            if !pending.has_more {
                break;
            }
            pending = self.db.pending_after(last, batch)?;
        }
        Ok(report)
    }

    /// Pulls pages from the cursor until the server has nothing newer, applying each page in
    /// one local transaction. A transient apply failure stops with the cursor where it was.
    pub fn pull(&self) -> Result<PullReport, SyncError> {
        self.pull_limited(usize::MAX, self.options.pull_limit, None)
    }

    /// [`pull`](Self::pull), whose first request waits at the head up to `wait` for new events
    /// (a long poll, where the transport has them); the pages after it are asked at once. A
    /// cancel ends the wait with [`TransportError::Cancelled`], nothing applied.
    pub fn pull_waiting(&self, wait: Duration, cancel: &Cancel) -> Result<PullReport, SyncError> {
        self.pull_limited(usize::MAX, self.options.pull_limit, Some((wait, cancel)))
    }

    /// Pulls at most `max_pages` pages of `page_size` events and stops, caught up or not (what
    /// a process that dies in the middle of a pull has done).
    pub fn pull_pages(&self, max_pages: usize, page_size: i64) -> Result<PullReport, SyncError> {
        self.pull_limited(max_pages, page_size, None)
    }

    fn pull_limited(
        &self,
        max_pages: usize,
        page_size: i64,
        mut wait: Option<(Duration, &Cancel)>,
    ) -> Result<PullReport, SyncError> {
        let mut report = PullReport::default();
        let exclude = self
            .options
            .exclude_own
            .then(|| self.identity.device_id.clone());
        // td judges conflicts against the last sync before this pull, not one moved by its
        // own earlier pages.
        let last_sync = self
            .db
            .sync_state()?
            .ok_or(SyncError::NotLinked)?
            .last_sync_time();
        for _ in 0..max_pages {
            let cursor = self
                .db
                .sync_state()?
                .ok_or(SyncError::NotLinked)?
                .last_pulled_server_seq;
            report.cursor = cursor;
            let query = PullQuery {
                after_server_seq: cursor,
                limit: Some(page_size),
                exclude_client: exclude.clone(),
            };
            let page = match wait.take() {
                Some((wait, cancel)) => self.transport.pull_wait(&query, wait, cancel)?,
                None => self.transport.pull(&query)?,
            };
            if page.events.is_empty() {
                break;
            }
            let outcome = self.db.apply_page_since(
                &page.events,
                page.last_server_seq,
                &self.identity.device_id,
                last_sync,
            )?;
            report.pulled += page.events.len();
            report.applied += outcome.applied;
            report.skipped += outcome.skipped.len();
            report.conflicts += outcome.conflicts;
            report.changed.extend(outcome.changed);
            report.cursor = outcome.cursor;
            if !page.has_more {
                break;
            }
        }
        Ok(report)
    }

    /// Push, then pull — td's order. A failed push skips the pull, as td's autosync does.
    pub fn sync(&self) -> Result<SyncReport, SyncError> {
        let push = self.push()?;
        let pull = self.pull()?;
        Ok(SyncReport { push, pull })
    }

    /// Rows still waiting to be pushed (td's count).
    pub fn pending_count(&self) -> Result<i64, SyncError> {
        Ok(self.db.pending_count()?)
    }

    pub fn into_parts(self) -> (TdDatabase, T) {
        (self.db, self.transport)
    }
}
