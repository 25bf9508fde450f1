//! The live layer's shared state in Redis ([`RedisShared`], a [`SharedState`]): what lets
//! several `tdsync serve` processes act as one for wake-ups, cursors and rate limits.
//!
//! What Redis holds, under a configurable prefix (default `tdsync:`):
//!
//! | key | type | what |
//! |---|---|---|
//! | `{prefix}heads` | hash | `tenant/project` → `epoch:seq:count:writer:time`, the newest head (a newer epoch wins, then a higher seq) and the process that wrote it |
//! | `{prefix}alive` | hash | process id → until when (ms) it counts as heard from; a head is read only while its writer is |
//! | `{prefix}cursors:{tenant}/{project}` | hash | device id → `seq:millis` (highest seq, latest time); expires 30 days after its last write |
//! | `{prefix}rate:{window}:{bucket hash}` | counter | requests in one rate-limit minute over every process; expires after 2 minutes |
//! | `{prefix}changes` | channel | every committed change, for the other processes' subscribers, and every project that moved between shard nodes |
//!
//! All of it is derivable from the shards or harmless to lose (a lost wake-up costs a
//! long-poll its deadline; a lost counter restarts a minute's count; a lost head sends a pull
//! to the shard node; the processes serving projects write their heads back when their
//! heartbeat finds their entry gone), so Redis runs without persistence and a flushed or
//! restarted one loses nothing. Rate-limit buckets are hashed
//! into key names: whatever a caller names a bucket with never appears in Redis.
//!
//! Every call is bounded by a short timeout ([`RedisConfig::call_timeout`]) so a dead Redis
//! never holds a request; the connection manager reconnects on the next call after a failure,
//! and the pub/sub listener reconnects with backoff forever.

mod url;

#[cfg(feature = "test-support")]
pub mod testing;

use std::{future::Future, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use parking_lot::Mutex;
use redis::{
    Client, Script,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tdsync_live::{
    Cursor, Head, Inbox, Notice, ProjectKey, SharedError, SharedFuture, SharedState,
};
use tdsync_protocol::wire::SyncStatus;
use tokio::task::AbortHandle;

pub use url::{BadRedisUrl, RedisUrl};

/// How the backend talks to Redis.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub url: RedisUrl,
    /// Put before every key and channel name (several deployments can share one Redis).
    pub prefix: String,
    /// The longest any one call may take before it counts as failed.
    pub call_timeout: Duration,
}

impl RedisConfig {
    pub const DEFAULT_PREFIX: &str = "tdsync:";
    pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_millis(250);

    pub fn new(url: RedisUrl) -> RedisConfig {
        RedisConfig {
            url,
            prefix: RedisConfig::DEFAULT_PREFIX.to_string(),
            call_timeout: RedisConfig::DEFAULT_CALL_TIMEOUT,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Redis(#[from] redis::RedisError),
}

impl From<RedisError> for SharedError {
    fn from(e: RedisError) -> SharedError {
        SharedError {
            backend: NAME,
            message: e.to_string(),
        }
    }
}

const NAME: &str = "redis";
/// A device's cursor is forgotten this long after any process last recorded it.
const CURSOR_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// A rate-limit minute's counters outlive it by one minute (a late process's additions).
const COUNT_TTL_SECS: i64 = 120;
/// The pub/sub listener's reconnection backoff.
const LISTEN_BACKOFF_MIN: Duration = Duration::from_millis(50);
const LISTEN_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// How long a process counts as heard from after its heartbeat (they beat every second).
const ALIVE_FOR: Duration = Duration::from_secs(3);
/// A process not heard from for this long is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// Records heads, each if it is newer than the one there (a newer epoch, or the same epoch
/// and no lower seq: a restarted writer takes over its own head), then publishes a message,
/// in one round trip. KEYS[1] heads hash; ARGV[1] channel ('' publishes nothing), ARGV[2]
/// message, then per head: project path, epoch, seq, value.
const RECORD_HEADS: &str = r"
for i = 3, #ARGV, 4 do
  local epoch, seq = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local newer = true
  local old = redis.call('HGET', KEYS[1], ARGV[i])
  if old then
    local e, s = string.match(old, '^(%-?%d+):(%-?%d+):')
    if e then
      e, s = tonumber(e), tonumber(s)
      newer = epoch > e or (epoch == e and seq >= s)
    end
  end
  if newer then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 3]) end
end
if ARGV[1] ~= '' then redis.call('PUBLISH', ARGV[1], ARGV[2]) end
return 1
";

/// A project's head, if its writer is heard from. KEYS[1] heads hash, KEYS[2] alive hash;
/// ARGV[1] project path.
const READ_HEAD: &str = r"
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return false end
local writer = string.match(v, '^%-?%d+:%-?%d+:%-?%d+:([^:]*):')
if not writer then return false end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(redis.call('HGET', KEYS[2], writer) or '0') < now then return false end
return v
";

/// A process's heartbeat: KEYS[1] alive hash; ARGV[1] process id, ARGV[2] how long it counts
/// as heard from (ms), ARGV[3] after how long a silent process is forgotten (ms). Answers 1
/// when it was still heard from (no break, nothing lost), else 0.
const HEARTBEAT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ms = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
redis.call('HSET', KEYS[1], ARGV[1], string.format('%.0f', now + tonumber(ARGV[2])))
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if tonumber(all[i + 1]) + tonumber(ARGV[3]) < now then redis.call('HDEL', KEYS[1], all[i]) end
end
if until_ms >= now then return 1 end
return 0
";

/// Merges cursors: KEYS[i] is the project hash of entry i, ARGV[3i-2..3i] its device, seq and
/// time (ms); the last ARGV is the hashes' time to live (ms). Keeps the higher seq and the later
/// time of what is there and what comes.
const RECORD_CURSORS: &str = r"
local ttl = ARGV[#ARGV]
for i, key in ipairs(KEYS) do
  local device = ARGV[3 * i - 2]
  local seq = tonumber(ARGV[3 * i - 1])
  local ms = tonumber(ARGV[3 * i])
  local old = redis.call('HGET', key, device)
  if old then
    local s, m = string.match(old, '^(%-?%d+):(%d+)$')
    if s then
      seq = math.max(seq, tonumber(s))
      ms = math.max(ms, tonumber(m))
    end
  end
  redis.call('HSET', key, device, string.format('%.0f:%.0f', seq, ms))
  redis.call('PEXPIRE', key, ttl)
end
return #KEYS
";

/// What travels on the channel: who sent it (a process skips its own), the project and the
/// notice.
#[derive(Serialize, Deserialize)]
struct Message {
    origin: String,
    project: String,
    notice: Notice,
}

/// A head as the heads hash holds it.
fn encode_head(head: &Head, writer: &str) -> String {
    format!(
        "{}:{}:{}:{writer}:{}",
        head.epoch,
        head.status.last_server_seq,
        head.status.event_count,
        head.status.last_event_time.as_deref().unwrap_or_default()
    )
}

/// The inverse of [`encode_head`]; `None` for anything else (skipped: the shards hold the
/// truth).
fn decode_head(value: &str) -> Option<Head> {
    let mut parts = value.splitn(5, ':');
    let epoch = parts.next()?.parse().ok()?;
    let last_server_seq = parts.next()?.parse().ok()?;
    let event_count = parts.next()?.parse().ok()?;
    let _writer = parts.next()?;
    let time = parts.next()?;
    Some(Head {
        epoch,
        status: SyncStatus {
            event_count,
            last_server_seq,
            last_event_time: (!time.is_empty()).then(|| time.to_string()),
        },
    })
}

/// The Redis backend of [`tdsync_live::Live`]. Cheap to share (`Arc`); its listener stops when
/// it is dropped.
pub struct RedisShared {
    client: Client,
    manager: ConnectionManager,
    config: RedisConfig,
    /// This process's id on the channel.
    origin: String,
    record_heads: Script,
    read_head: Script,
    heartbeat: Script,
    record_cursors: Script,
    /// The listener task, stopped with the backend.
    listener: Mutex<Option<AbortHandle>>,
}

impl RedisShared {
    /// Prepares the backend without connecting: the first call connects, so a server starts
    /// (degraded) while Redis is unreachable and picks it up when it answers.
    pub fn new(config: RedisConfig) -> Result<RedisShared, RedisError> {
        let client = Client::open(config.url.secret())?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.call_timeout))
            .set_response_timeout(Some(config.call_timeout))
            // A failed connection is retried by the next call, not held open by backoff.
            .set_number_of_retries(0);
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)?;
        Ok(RedisShared {
            client,
            manager,
            config,
            origin: tdsync_protocol::ids::random_chars(b"0123456789abcdefghijklmnopqrstuvwxyz", 16),
            record_heads: Script::new(RECORD_HEADS),
            read_head: Script::new(READ_HEAD),
            heartbeat: Script::new(HEARTBEAT),
            record_cursors: Script::new(RECORD_CURSORS),
            listener: Mutex::default(),
        })
    }

    fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.config.prefix)
    }

    fn channel(&self) -> String {
        self.key("changes")
    }

    fn cursors_key(&self, project: &ProjectKey) -> String {
        self.key(&format!("cursors:{}", project.path()))
    }

    /// A head's arguments to [`RECORD_HEADS`].
    fn head_args(&self, call: &mut redis::ScriptInvocation<'_>, key: &ProjectKey, head: &Head) {
        call.arg(key.path())
            .arg(head.epoch)
            .arg(head.status.last_server_seq)
            .arg(encode_head(head, &self.origin));
    }

    fn count_key(&self, window: u64, bucket: &str) -> String {
        let digest = Sha256::digest(bucket.as_bytes());
        self.key(&format!("rate:{window}:{}", hex::encode(&digest[..16])))
    }

    /// Runs `call` within the call timeout.
    async fn timed<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, SharedError> {
        match tokio::time::timeout(self.config.call_timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(RedisError::Redis(e).into()),
            Err(_) => Err(RedisError::Timeout(self.config.call_timeout).into()),
        }
    }
}

impl Drop for RedisShared {
    fn drop(&mut self) {
        if let Some(listener) = self.listener.lock().take() {
            listener.abort();
        }
    }
}

impl SharedState for RedisShared {
    fn name(&self) -> &'static str {
        NAME
    }

    fn publish<'a>(
        &'a self,
        key: &'a ProjectKey,
        head: Option<&'a Head>,
        notice: &'a Notice,
    ) -> SharedFuture<'a, ()> {
        Box::pin(async move {
            let message = Message {
                origin: self.origin.clone(),
                project: key.path(),
                notice: notice.clone(),
            };
            let payload = serde_json::to_string(&message).map_err(|e| SharedError {
                backend: NAME,
                message: format!("encoding a notice: {e}"),
            })?;
            let mut call = self.record_heads.key(self.key("heads"));
            call.arg(self.channel()).arg(payload);
            if let Some(head) = head {
                self.head_args(&mut call, key, head);
            }
            let mut con = self.manager.clone();
            self.timed(call.invoke_async::<i64>(&mut con)).await?;
            Ok(())
        })
    }

    fn record_heads<'a>(&'a self, heads: &'a [(ProjectKey, Head)]) -> SharedFuture<'a, ()> {
        Box::pin(async move {
            if heads.is_empty() {
                return Ok(());
            }
            let mut call = self.record_heads.key(self.key("heads"));
            call.arg("").arg("");
            for (key, head) in heads {
                self.head_args(&mut call, key, head);
            }
            let mut con = self.manager.clone();
            self.timed(call.invoke_async::<i64>(&mut con)).await?;
            Ok(())
        })
    }

    fn head<'a>(&'a self, key: &'a ProjectKey) -> SharedFuture<'a, Option<Head>> {
        Box::pin(async move {
            let mut call = self.read_head.key(self.key("heads"));
            call.key(self.key("alive")).arg(key.path());
            let mut con = self.manager.clone();
            let value: Option<String> = self.timed(call.invoke_async(&mut con)).await?;
            Ok(value.as_deref().and_then(decode_head))
        })
    }

    fn record_cursors<'a>(&'a self, batch: &'a [(ProjectKey, Cursor)]) -> SharedFuture<'a, ()> {
        Box::pin(async move {
            if batch.is_empty() {
                return Ok(());
            }
            let mut call = self.record_cursors.prepare_invoke();
            for (key, cursor) in batch {
                call.key(self.cursors_key(key))
                    .arg(&cursor.device_id)
                    .arg(cursor.last_seq)
                    .arg(cursor.last_seen.timestamp_millis());
            }
            call.arg(CURSOR_TTL.as_millis() as u64);
            let mut con = self.manager.clone();
            self.timed(call.invoke_async::<i64>(&mut con)).await?;
            Ok(())
        })
    }

    fn cursors<'a>(&'a self, key: &'a ProjectKey) -> SharedFuture<'a, Vec<Cursor>> {
        Box::pin(async move {
            let mut con = self.manager.clone();
            let fields: Vec<(String, String)> = self
                .timed(
                    redis::cmd("HGETALL")
                        .arg(self.cursors_key(key))
                        .query_async(&mut con),
                )
                .await?;
            let mut out: Vec<Cursor> = fields
                .into_iter()
                .filter_map(|(device, value)| parse_cursor(device, &value))
                .collect();
            out.sort_by(|a, b| a.device_id.cmp(&b.device_id));
            Ok(out)
        })
    }

    fn add_counts<'a>(
        &'a self,
        window: u64,
        deltas: &'a [(String, u64)],
    ) -> SharedFuture<'a, Vec<u64>> {
        Box::pin(async move {
            if deltas.is_empty() {
                return Ok(Vec::new());
            }
            let mut pipe = redis::pipe();
            for (bucket, delta) in deltas {
                let key = self.count_key(window, bucket);
                pipe.incr(&key, *delta)
                    .expire(&key, COUNT_TTL_SECS)
                    .ignore();
            }
            let mut con = self.manager.clone();
            self.timed(pipe.query_async::<Vec<u64>>(&mut con)).await
        })
    }

    fn heartbeat(&self) -> SharedFuture<'_, bool> {
        Box::pin(async move {
            let mut call = self.heartbeat.key(self.key("alive"));
            call.arg(&self.origin)
                .arg(ALIVE_FOR.as_millis() as u64)
                .arg(FORGET_AFTER.as_millis() as u64);
            let mut con = self.manager.clone();
            let heard: i64 = self.timed(call.invoke_async(&mut con)).await?;
            Ok(heard == 1)
        })
    }

    fn listen(&self, inbox: Arc<dyn Inbox>) {
        let listener = Listener {
            client: self.client.clone(),
            channel: self.channel(),
            origin: self.origin.clone(),
            timeout: self.config.call_timeout,
            redacted: self.config.url.redacted(),
        };
        let task = tokio::spawn(listener.run(inbox));
        if let Some(previous) = self.listener.lock().replace(task.abort_handle()) {
            previous.abort();
        }
    }
}

/// A `seq:millis` hash value; `None` for anything else (a foreign or damaged field is skipped,
/// not fatal: the shards hold the truth).
fn parse_cursor(device_id: String, value: &str) -> Option<Cursor> {
    let (seq, ms) = value.split_once(':')?;
    Some(Cursor {
        device_id,
        last_seq: seq.parse().ok()?,
        last_seen: DateTime::<Utc>::from_timestamp_millis(ms.parse().ok()?)?,
    })
}

/// The task that receives the other processes' changes on a connection of its own.
struct Listener {
    client: Client,
    channel: String,
    origin: String,
    timeout: Duration,
    redacted: String,
}

impl Listener {
    async fn run(self, inbox: Arc<dyn Inbox>) {
        let mut backoff = LISTEN_BACKOFF_MIN;
        let mut was_listening = false;
        let mut listened = false;
        loop {
            match self.subscribe().await {
                Ok(pubsub) => {
                    backoff = LISTEN_BACKOFF_MIN;
                    if listened {
                        // What was published while the connection was down never came.
                        inbox.resumed();
                    }
                    listened = true;
                    tracing::debug!(redis = %self.redacted, channel = %self.channel, "listening for other processes' changes");
                    was_listening = true;
                    let mut messages = pubsub.into_on_message();
                    while let Some(msg) = messages.next().await {
                        self.handle(msg.get_payload_bytes(), inbox.as_ref());
                    }
                    tracing::debug!(redis = %self.redacted, "change listener disconnected; reconnecting");
                }
                Err(e) => {
                    if was_listening {
                        // Logged once per outage: `Live` reports the outage itself.
                        tracing::debug!(redis = %self.redacted, error = %e, "change listener cannot reconnect yet");
                        was_listening = false;
                    }
                }
            }
            // Waiting out a reconnection backoff, not a condition.
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(LISTEN_BACKOFF_MAX);
        }
    }

    async fn subscribe(&self) -> Result<redis::aio::PubSub, RedisError> {
        let connect = async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(&self.channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        match tokio::time::timeout(self.timeout, connect).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(RedisError::Timeout(self.timeout)),
        }
    }

    fn handle(&self, payload: &[u8], inbox: &dyn Inbox) {
        let message: Message = match serde_json::from_slice(payload) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(channel = %self.channel, error = %e, "skipping a message that is not a notice");
                return;
            }
        };
        if message.origin == self.origin {
            return;
        }
        match ProjectKey::parse_path(&message.project) {
            Some(key) => inbox.deliver(key, message.notice),
            None => {
                tracing::warn!(channel = %self.channel, "skipping a notice for a project that is not one")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_round_trip_and_anything_else_is_skipped() {
        let head = Head {
            epoch: 3,
            status: SyncStatus {
                event_count: 7,
                last_server_seq: 9,
                last_event_time: Some("2026-12-05T10:00:00.123Z".into()),
            },
        };
        let value = encode_head(&head, "w1");
        assert_eq!(value, "3:9:7:w1:2026-12-05T10:00:00.123Z");
        assert_eq!(decode_head(&value), Some(head));
        let empty = decode_head("0:0:0:w1:").unwrap();
        assert_eq!(empty.status.last_event_time, None);
        for bad in ["", "7", "1:2:3", "x:2:3:w:", "1:2:y:w:t"] {
            assert!(decode_head(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn cursor_values_parse_and_anything_else_is_skipped() {
        let c = parse_cursor("d".into(), "42:1700000000123").unwrap();
        assert_eq!(c.last_seq, 42);
        assert_eq!(c.last_seen.timestamp_millis(), 1_700_000_000_123);
        for bad in ["", "42", "x:1", "1:y", "1:2:3"] {
            assert!(parse_cursor("d".into(), bad).is_none(), "{bad}");
        }
    }
}
