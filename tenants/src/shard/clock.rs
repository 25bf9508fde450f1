//! Per-device clock skew. The server's clock is the time source; a device's skew is estimated
//! from each push as (newest client timestamp in the push) − (server time at receipt). Events
//! queued offline make a sample more negative, never more positive, so a positive estimate is a
//! clock running ahead by at least that much.

use chrono::{DateTime, FixedOffset, Utc};
use rusqlite::{Connection, Transaction, params};
use serde::Serialize;
use tdsync_protocol::timestamp;

/// What the shard knows about one device's clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceClock {
    pub device_id: String,
    /// Latest estimate in milliseconds: positive = the device's clock is ahead of the server's.
    pub skew_ms: i64,
    pub samples: i64,
    /// Server time of the device's latest push.
    pub last_seen: String,
}

pub(super) fn sample(
    tx: &Transaction<'_>,
    device_id: &str,
    newest_client_time: DateTime<FixedOffset>,
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    let skew_ms = (newest_client_time.with_timezone(&Utc) - now).num_milliseconds();
    tx.prepare_cached(
        "INSERT INTO device_clocks (device_id, skew_ms, samples, last_seen) VALUES (?1, ?2, 1, ?3) \
         ON CONFLICT (device_id) DO UPDATE SET skew_ms = excluded.skew_ms, \
         samples = samples + 1, last_seen = excluded.last_seen",
    )?
    .execute(params![device_id, skew_ms, timestamp::format_server(&now)])?;
    Ok(())
}

pub(super) fn list(conn: &Connection) -> rusqlite::Result<Vec<DeviceClock>> {
    let mut stmt = conn.prepare(
        "SELECT device_id, skew_ms, samples, last_seen FROM device_clocks ORDER BY device_id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(DeviceClock {
            device_id: r.get(0)?,
            skew_ms: r.get(1)?,
            samples: r.get(2)?,
            last_seen: r.get(3)?,
        })
    })?;
    rows.collect()
}
