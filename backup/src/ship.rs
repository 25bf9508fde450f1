//! Shipping: each project's log to its target as segments (the events after what the target
//! already holds, at most `segment_events` per segment), and a snapshot of its shard every so
//! many segments or bytes. Used by `tdsync serve --backup-to` (every interval, and at once for
//! a replicated push) and by the one-off `tdsync backup`; both are incremental against what
//! the target holds, read from it when the shipper opens.

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
    sync::Arc,
};

use serde::Serialize;
use sha2::{Digest, Sha256};
use tdsync_tenants::ShardFile;

use crate::{
    catalog::{Catalog, EpochStart},
    compress::gzip_file,
    error::BackupError,
    layout::{MANIFEST, Object, ProjectKey},
    segment,
    target::Target,
};

/// When to cut segments and take snapshots.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Most events in one segment.
    pub segment_events: usize,
    /// A snapshot after this many segments since the last one…
    pub snapshot_every_segments: u32,
    /// …or this many segment bytes, whichever comes first.
    pub snapshot_every_bytes: u64,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            segment_events: 5_000,
            // Replicated pushes cut a segment per shipment: many small ones. A restore fetches
            // each, so their number is bounded too, but mostly the bytes replayed are.
            snapshot_every_segments: 1_000,
            snapshot_every_bytes: 32 << 20,
        }
    }
}

/// What the target holds of one project, as this shipper knows it.
#[derive(Debug, Clone, Default)]
struct ProjectState {
    /// The epoch this shipper writes under (the newest that began; 0 on a single node).
    epoch: i64,
    shipped_seq: i64,
    snapshot_seq: Option<i64>,
    segments_since_snapshot: u32,
    bytes_since_snapshot: u64,
}

/// What one call to [`Shipper::ship`] sent.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Shipped {
    pub segments: usize,
    pub events: usize,
    pub bytes: u64,
    pub snapshot_seq: Option<i64>,
    /// The newest seq the target holds afterwards.
    pub shipped_seq: i64,
}

pub struct Shipper {
    target: Target,
    policy: Policy,
    projects: parking_lot::Mutex<HashMap<ProjectKey, Arc<tokio::sync::Mutex<ProjectState>>>>,
    /// Each project's shipped seq, readable while a shipment of it is in progress.
    shipped: parking_lot::Mutex<HashMap<ProjectKey, i64>>,
    control_plane_sha: parking_lot::Mutex<Option<String>>,
}

impl Shipper {
    /// A shipper for `target`, knowing what it already holds.
    pub async fn open(target: Target, policy: Policy) -> Result<Shipper, BackupError> {
        let catalog = Catalog::read(&target).await?;
        let shipped = catalog
            .projects
            .iter()
            .map(|(key, p)| (key.clone(), p.shipped_seq()))
            .collect();
        let projects = catalog
            .projects
            .iter()
            .map(|(key, p)| {
                let snapshot_seq = p.trusted_snapshots().last().map(|s| s.seq);
                let since: Vec<_> = p
                    .chain()
                    .into_iter()
                    .map(|l| l.segment)
                    .filter(|s| s.first > snapshot_seq.unwrap_or(0))
                    .collect();
                let state = ProjectState {
                    epoch: p.epoch(),
                    shipped_seq: p.shipped_seq(),
                    snapshot_seq,
                    segments_since_snapshot: since.len() as u32,
                    bytes_since_snapshot: since.iter().map(|s| s.bytes).sum(),
                };
                (key.clone(), Arc::new(tokio::sync::Mutex::new(state)))
            })
            .collect();
        Ok(Shipper {
            target,
            policy,
            projects: parking_lot::Mutex::new(projects),
            shipped: parking_lot::Mutex::new(shipped),
            control_plane_sha: parking_lot::Mutex::new(None),
        })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    fn state(&self, key: &ProjectKey) -> Arc<tokio::sync::Mutex<ProjectState>> {
        self.projects.lock().entry(key.clone()).or_default().clone()
    }

    /// The newest seq of `key` the target holds (0 when it holds nothing of it).
    pub fn shipped_seq(&self, key: &ProjectKey) -> i64 {
        self.shipped.lock().get(key).copied().unwrap_or(0)
    }

    /// Ships what `shard` (the project's file) logged after what the target holds, then a
    /// snapshot if one is due. A failure leaves what was already sent counted: the next call
    /// goes on from there.
    pub async fn ship(&self, key: &ProjectKey, shard: &Path) -> Result<Shipped, BackupError> {
        let mut out = self.ship_log(key, shard).await?;
        if let Some((seq, size)) = self.snapshot_if_due(key, shard).await? {
            out.snapshot_seq = Some(seq);
            out.bytes += size;
        }
        Ok(out)
    }

    /// Ships the events `shard` logged after what the target holds, as segments.
    pub async fn ship_log(&self, key: &ProjectKey, shard: &Path) -> Result<Shipped, BackupError> {
        let state = self.state(key);
        let mut state = state.lock().await;
        let mut out = Shipped {
            shipped_seq: state.shipped_seq,
            ..Shipped::default()
        };
        if !shard.exists() {
            return Ok(out);
        }
        loop {
            let (after, limit, path) = (
                state.shipped_seq,
                self.policy.segment_events,
                shard.to_path_buf(),
            );
            let owner = key.clone();
            let encoded = tokio::task::spawn_blocking(move || {
                let file = ShardFile::open(&path)?;
                let events = file.events_after(after, limit)?;
                let Some(newest) = events.last() else {
                    return Ok::<_, BackupError>(None);
                };
                let last = newest.server_seq;
                let bytes = segment::encode(&owner, after + 1, last, &events);
                Ok(Some((last, events.len(), bytes)))
            })
            .await
            .expect("segment encoding does not panic")?;
            let Some((last, events, bytes)) = encoded else {
                break;
            };
            let object = Object::Segment {
                project: key.clone(),
                first: state.shipped_seq + 1,
                last,
                epoch: state.epoch,
            };
            let size = bytes.len() as u64;
            self.target.put(&object.key(), bytes).await?;
            state.shipped_seq = last;
            self.shipped.lock().insert(key.clone(), last);
            state.segments_since_snapshot += 1;
            state.bytes_since_snapshot += size;
            out.segments += 1;
            out.events += events;
            out.bytes += size;
            out.shipped_seq = last;
            if events < self.policy.segment_events {
                break;
            }
        }
        Ok(out)
    }

    /// Uploads a snapshot of the shard when the policy says one is due; its seq and compressed
    /// size.
    pub async fn snapshot_if_due(
        &self,
        key: &ProjectKey,
        shard: &Path,
    ) -> Result<Option<(i64, u64)>, BackupError> {
        let state = self.state(key);
        let (segments, bytes, epoch) = {
            let state = state.lock().await;
            let due = state.segments_since_snapshot >= self.policy.snapshot_every_segments
                || state.bytes_since_snapshot >= self.policy.snapshot_every_bytes;
            if !due || !shard.exists() || state.shipped_seq == 0 {
                return Ok(None);
            }
            (
                state.segments_since_snapshot,
                state.bytes_since_snapshot,
                state.epoch,
            )
        };
        // Not under the project's lock: its log keeps shipping while the copy is made.
        let (seq, size) = self.snapshot(key, shard, epoch).await?;
        let mut state = state.lock().await;
        state.snapshot_seq = state.snapshot_seq.max(Some(seq));
        state.segments_since_snapshot -= segments;
        state.bytes_since_snapshot -= bytes;
        Ok(Some((seq, size)))
    }

    /// Uploads a consistent copy of the shard; returns its seq and compressed size.
    async fn snapshot(
        &self,
        key: &ProjectKey,
        shard: &Path,
        epoch: i64,
    ) -> Result<(i64, u64), BackupError> {
        let path = shard.to_path_buf();
        let ((seq, time), bytes) = tokio::task::spawn_blocking(move || {
            let dir = tempfile::tempdir().map_err(BackupError::io("making a scratch directory"))?;
            let copy = dir.path().join("snapshot.db");
            let head = ShardFile::open(&path)?.copy_into(&copy)?;
            Ok::<_, BackupError>((head, gzip_file(&copy)?))
        })
        .await
        .expect("snapshotting does not panic")?;
        let size = bytes.len() as u64;
        let object = Object::Snapshot {
            project: key.clone(),
            seq,
            unix_ms: time.as_deref().map_or(0, unix_ms),
            epoch,
        };
        self.target.put(&object.key(), bytes).await?;
        tracing::info!(project = %key, seq, bytes = size, "shard snapshot shipped");
        Ok((seq, size))
    }

    /// Begins `epoch` for `key` (its owner took it over and restored it up to `first_seq - 1`):
    /// writes the epoch's marker, create-only, before anything else of that epoch. From then
    /// on nothing an older epoch writes at or after `first_seq` is restored. Refused for an
    /// epoch that is not newer than the one this shipper knows, or a marker that says
    /// otherwise.
    pub async fn begin_epoch(
        &self,
        key: &ProjectKey,
        epoch: i64,
        first_seq: i64,
    ) -> Result<(), BackupError> {
        let state = self.state(key);
        let mut state = state.lock().await;
        if epoch <= state.epoch {
            return Err(BackupError::Refused(format!(
                "{key}: epoch {epoch} is not newer than epoch {}, which began already",
                state.epoch
            )));
        }
        let start = EpochStart { epoch, first_seq };
        let body = serde_json::to_vec(&start).expect("a marker serializes");
        let object = Object::Epoch {
            project: key.clone(),
            epoch,
        };
        if !self.target.put_new(&object.key(), body.into()).await? {
            let held = self.target.get(&object.key()).await?;
            let theirs: Option<EpochStart> = serde_json::from_slice(&held).ok();
            if theirs != Some(start) {
                return Err(BackupError::Refused(format!(
                    "{key}: epoch {epoch} began already, at {theirs:?}: another owner holds it"
                )));
            }
        }
        state.epoch = epoch;
        state.shipped_seq = first_seq - 1;
        self.shipped.lock().insert(key.clone(), first_seq - 1);
        Ok(())
    }

    /// Uploads a copy of the SQLite control plane at `db` if it changed since the last one this
    /// shipper sent. Returns the snapshot's time when one was sent.
    pub async fn ship_control_plane(&self, db: &Path) -> Result<Option<i64>, BackupError> {
        let path = db.to_path_buf();
        let (sha, bytes) = tokio::task::spawn_blocking(move || {
            let dir = tempfile::tempdir().map_err(BackupError::io("making a scratch directory"))?;
            let copy = dir.path().join("control-plane.db");
            copy_sqlite(&path, &copy)?;
            let raw = std::fs::read(&copy).map_err(BackupError::io("reading the copy"))?;
            Ok::<_, BackupError>((hex::encode(Sha256::digest(&raw)), gzip_file(&copy)?))
        })
        .await
        .expect("copying the control plane does not panic")?;
        if self.control_plane_sha.lock().as_deref() == Some(sha.as_str()) {
            return Ok(None);
        }
        let unix_ms = chrono::Utc::now().timestamp_millis();
        self.target
            .put(&Object::ControlPlane { unix_ms }.key(), bytes)
            .await?;
        *self.control_plane_sha.lock() = Some(sha);
        Ok(Some(unix_ms))
    }

    /// Rewrites `manifest.json`: per project the seq the target holds and its newest snapshot.
    pub async fn write_manifest(&self) -> Result<(), BackupError> {
        let states: Vec<_> = self
            .projects
            .lock()
            .iter()
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect();
        let mut projects = BTreeMap::new();
        for (key, state) in states {
            let state = state.lock().await;
            projects.insert(
                key.to_string(),
                serde_json::json!({
                    "shipped_seq": state.shipped_seq,
                    "snapshot_seq": state.snapshot_seq,
                }),
            );
        }
        let manifest = serde_json::json!({
            "format": "tdsync-backup-1",
            "updated_at": chrono::Utc::now().to_rfc3339(),
            "layout": "projects/<tenant>/<project>/segments/<first>-<last>.jsonl.gz, \
                       projects/<tenant>/<project>/snapshots/<seq>.db.gz, \
                       control-plane/<unix-ms>.db.gz",
            "projects": projects,
        });
        let body = serde_json::to_vec_pretty(&manifest).expect("a manifest serializes");
        self.target
            .put(&object_store::path::Path::from(MANIFEST), body.into())
            .await
    }
}

/// A server timestamp (RFC 3339) in unix milliseconds; 0 when unreadable (never written so).
pub(crate) fn unix_ms(server_time: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(server_time).map_or(0, |t| t.timestamp_millis())
}

/// A consistent copy of the SQLite database at `src` (`VACUUM INTO`, one read transaction).
pub(crate) fn copy_sqlite(src: &Path, dest: &Path) -> Result<(), BackupError> {
    let sql = |e: rusqlite::Error| BackupError::Io {
        context: format!("copying {}", src.display()),
        source: std::io::Error::other(e),
    };
    let conn =
        rusqlite::Connection::open_with_flags(src, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(sql)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sql)?;
    let dest = dest
        .to_str()
        .ok_or_else(|| BackupError::Refused(format!("{} is not a UTF-8 path", dest.display())))?;
    conn.execute("VACUUM INTO ?1", [dest]).map_err(sql)?;
    Ok(())
}
