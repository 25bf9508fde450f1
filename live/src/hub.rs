//! In-process fan-out: one broadcast channel per project that has subscribers. A subscriber that
//! falls [`SLOTS`] changes behind is told it lagged (an SSE stream then sends `refresh`, as
//! td-sync does) instead of slowing the publisher or the others down.

use std::{collections::HashMap, sync::Arc};

use parking_lot::RwLock;
use tokio::sync::broadcast;

use crate::change::{Change, ChangeKind, ProjectKey};

/// Changes a subscriber may have unread before it is told it lagged.
pub const SLOTS: usize = 16;

pub type Subscription = broadcast::Receiver<Arc<Change>>;

#[derive(Default)]
pub struct Hubs {
    hubs: RwLock<HashMap<ProjectKey, broadcast::Sender<Arc<Change>>>>,
}

impl Hubs {
    /// Changes to `key` from now on.
    pub fn subscribe(&self, key: &ProjectKey) -> Subscription {
        if let Some(tx) = self.hubs.read().get(key) {
            return tx.subscribe();
        }
        self.hubs
            .write()
            .entry(key.clone())
            .or_insert_with(|| broadcast::channel(SLOTS).0)
            .subscribe()
    }

    /// Hands `change` to every subscriber of `key` in this process; returns how many. A project
    /// whose subscribers are all gone loses its channel.
    pub fn deliver(&self, key: &ProjectKey, change: Arc<Change>) -> usize {
        let sent = match self.hubs.read().get(key) {
            None => return 0,
            Some(tx) => tx.send(change).unwrap_or(0),
        };
        if sent == 0 {
            let mut hubs = self.hubs.write();
            if hubs.get(key).is_some_and(|tx| tx.receiver_count() == 0) {
                hubs.remove(key);
            }
        }
        sent
    }

    /// Tells every subscriber that changes may have been missed ([`ChangeKind::Missed`]).
    pub fn missed_all(&self) {
        let missed = Arc::new(Change {
            kind: ChangeKind::Missed,
            head: 0,
            first: 0,
            touched: Vec::new(),
            at: chrono::Utc::now(),
        });
        for tx in self.hubs.read().values() {
            let _ = tx.send(missed.clone());
        }
    }

    /// Subscribers in this process, over every project.
    pub fn subscribers(&self) -> usize {
        self.hubs
            .read()
            .values()
            .map(broadcast::Sender::receiver_count)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tdsync_protocol::ids::{ProjectId, TenantId};

    fn key(p: &str) -> ProjectKey {
        ProjectKey::new(
            &TenantId::parse("t").unwrap(),
            &ProjectId::parse(p).unwrap(),
        )
    }

    fn change(head: i64) -> Arc<Change> {
        Arc::new(Change {
            kind: ChangeKind::Push,
            head,
            first: head,
            touched: Vec::new(),
            at: chrono::Utc::now(),
        })
    }

    #[tokio::test]
    async fn subscribers_get_their_projects_changes_and_a_slow_one_is_told_it_lagged() {
        let hubs = Hubs::default();
        let mut a = hubs.subscribe(&key("a"));
        let mut slow = hubs.subscribe(&key("a"));
        let mut b = hubs.subscribe(&key("b"));
        assert_eq!(hubs.deliver(&key("a"), change(1)), 2);
        assert_eq!(a.recv().await.unwrap().head, 1);
        assert!(b.try_recv().is_err(), "another project's change");
        for head in 2..=(SLOTS as i64 + 5) {
            hubs.deliver(&key("a"), change(head));
        }
        assert!(matches!(
            slow.recv().await,
            Err(broadcast::error::RecvError::Lagged(_))
        ));
        drop((a, slow));
        assert_eq!(hubs.deliver(&key("a"), change(99)), 0);
        assert_eq!(hubs.subscribers(), 1, "project a's channel is gone");
    }
}
