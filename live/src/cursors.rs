//! Where each device is: its last pulled (or pushed) seq and when it was last seen — the "who is
//! behind" view of a project.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::change::ProjectKey;

/// Devices remembered per project; beyond it the longest unseen is forgotten (a td without a
/// stable device id invents one per command).
pub const DEVICES_PER_PROJECT: usize = 1_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub device_id: String,
    pub last_seq: i64,
    pub last_seen: DateTime<Utc>,
}

impl Cursor {
    /// The later of two views of one device: the higher seq, the later time.
    pub fn merge(&mut self, other: &Cursor) {
        self.last_seq = self.last_seq.max(other.last_seq);
        self.last_seen = self.last_seen.max(other.last_seen);
    }
}

#[derive(Default)]
pub struct LocalCursors {
    projects: Mutex<HashMap<ProjectKey, HashMap<String, Cursor>>>,
}

impl LocalCursors {
    pub fn record(&self, key: &ProjectKey, cursor: &Cursor) {
        let mut projects = self.projects.lock();
        let devices = projects.entry(key.clone()).or_default();
        match devices.get_mut(&cursor.device_id) {
            Some(known) => known.merge(cursor),
            None => {
                if devices.len() >= DEVICES_PER_PROJECT
                    && let Some(oldest) = devices
                        .values()
                        .min_by_key(|c| c.last_seen)
                        .map(|c| c.device_id.clone())
                {
                    devices.remove(&oldest);
                }
                devices.insert(cursor.device_id.clone(), cursor.clone());
            }
        }
    }

    /// The project's devices, by device id.
    pub fn list(&self, key: &ProjectKey) -> Vec<Cursor> {
        let mut out: Vec<Cursor> = self
            .projects
            .lock()
            .get(key)
            .map(|d| d.values().cloned().collect())
            .unwrap_or_default();
        out.sort_by(|a, b| a.device_id.cmp(&b.device_id));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;
    use tdsync_protocol::ids::{ProjectId, TenantId};

    #[test]
    fn a_device_keeps_its_highest_seq_and_latest_time_and_the_list_is_bounded() {
        let key = ProjectKey::new(
            &TenantId::parse("t").unwrap(),
            &ProjectId::parse("p").unwrap(),
        );
        let cursors = LocalCursors::default();
        let t0 = Utc::now();
        let at = |device: &str, seq, secs| Cursor {
            device_id: device.into(),
            last_seq: seq,
            last_seen: t0 + TimeDelta::seconds(secs),
        };
        cursors.record(&key, &at("b", 10, 1));
        cursors.record(&key, &at("b", 4, 2));
        cursors.record(&key, &at("a", 7, 0));
        assert_eq!(cursors.list(&key), vec![at("a", 7, 0), at("b", 10, 2)]);
        for i in 0..DEVICES_PER_PROJECT {
            cursors.record(&key, &at(&format!("d{i:04}"), 1, 10 + i as i64));
        }
        let listed = cursors.list(&key);
        assert_eq!(listed.len(), DEVICES_PER_PROJECT);
        assert!(
            !listed.iter().any(|c| c.device_id == "a"),
            "the longest unseen went"
        );
    }
}
