//! A segment: a run of the log, immutable once written. gzip of one header line (owner, seq
//! range, event count, SHA-256 of the event lines) and one JSON line per event, byte for byte as
//! logged. gzip's CRC catches damage in transit; the header's checksum and range catch a
//! segment that is not what its name says.

use std::io::{BufRead, BufReader, Read, Write};

use bytes::Bytes;
use flate2::{Compression, read::GzDecoder, write::GzEncoder};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tdsync_tenants::LoggedEvent;

use crate::layout::ProjectKey;

const FORMAT: &str = "tdsync-segment-1";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Header {
    pub format: String,
    pub tenant: String,
    pub project: String,
    /// The range the segment covers: every logged seq in first..=last is in it.
    pub first: i64,
    pub last: i64,
    pub events: usize,
    pub sha256: String,
}

/// Encodes `events` (every logged event with seq in first..=last) as a segment.
pub fn encode(project: &ProjectKey, first: i64, last: i64, events: &[LoggedEvent]) -> Bytes {
    let mut body = Vec::with_capacity(events.len() * 256);
    for ev in events {
        serde_json::to_writer(&mut body, ev).expect("a logged event serializes");
        body.push(b'\n');
    }
    let header = Header {
        format: FORMAT.into(),
        tenant: project.tenant.to_string(),
        project: project.project.to_string(),
        first,
        last,
        events: events.len(),
        sha256: hex::encode(Sha256::digest(&body)),
    };
    let mut gz = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
    let mut line = serde_json::to_vec(&header).expect("a header serializes");
    line.push(b'\n');
    gz.write_all(&line)
        .and_then(|()| gz.write_all(&body))
        .expect("writing to memory");
    Bytes::from(gz.finish().expect("writing to memory"))
}

/// Decodes a segment, checking everything it says about itself against `expected` (its
/// owner and range, from its name). The error says what does not hold.
pub fn decode(
    bytes: &[u8],
    project: &ProjectKey,
    first: i64,
    last: i64,
) -> Result<Vec<LoggedEvent>, String> {
    let mut text = Vec::new();
    GzDecoder::new(bytes)
        .read_to_end(&mut text)
        .map_err(|e| format!("not a readable gzip stream: {e}"))?;
    let mut reader = BufReader::new(text.as_slice());
    let mut line = Vec::new();
    reader
        .read_until(b'\n', &mut line)
        .map_err(|e| e.to_string())?;
    let header: Header =
        serde_json::from_slice(&line).map_err(|e| format!("unreadable header: {e}"))?;
    if header.format != FORMAT {
        return Err(format!(
            "format {:?}, this tdsync reads {FORMAT:?}",
            header.format
        ));
    }
    if header.tenant != project.tenant.as_str() || header.project != project.project.as_str() {
        return Err(format!(
            "it holds {}/{}, its name says {project}",
            header.tenant, header.project
        ));
    }
    if (header.first, header.last) != (first, last) {
        return Err(format!(
            "it covers seqs {}..={}, its name says {first}..={last}",
            header.first, header.last
        ));
    }
    let body = &text[line.len()..];
    let sum = hex::encode(Sha256::digest(body));
    if sum != header.sha256 {
        return Err(format!(
            "checksum mismatch: its events hash to {sum}, its header says {}",
            header.sha256
        ));
    }
    let events: Vec<LoggedEvent> = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(serde_json::from_slice)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("unreadable event: {e}"))?;
    if events.len() != header.events {
        return Err(format!(
            "{} events, its header says {}",
            events.len(),
            header.events
        ));
    }
    let mut previous = first - 1;
    for ev in &events {
        if ev.server_seq <= previous || ev.server_seq > last {
            return Err(format!(
                "event seq {} out of order or outside {first}..={last}",
                ev.server_seq
            ));
        }
        previous = ev.server_seq;
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tdsync_tenants::{ProjectId, TenantId};

    fn event(seq: i64) -> LoggedEvent {
        LoggedEvent {
            server_seq: seq,
            device_id: "dev".into(),
            session_id: "s".into(),
            client_action_id: seq,
            action_type: "create".into(),
            entity_type: "issues".into(),
            entity_id: format!("td-{seq}"),
            payload: r#"{"schema_version":1,"new_data":{"title":"x"}}"#.into(),
            client_timestamp: "2026-12-05T10:00:00Z".into(),
            server_timestamp: "2026-12-05T10:00:01Z".into(),
        }
    }

    fn project() -> ProjectKey {
        ProjectKey {
            tenant: TenantId::parse("t").unwrap(),
            project: ProjectId::parse("p").unwrap(),
        }
    }

    #[test]
    fn a_segment_decodes_to_its_events() {
        let events: Vec<_> = [3, 4, 6].into_iter().map(event).collect();
        let bytes = encode(&project(), 3, 7, &events);
        assert_eq!(decode(&bytes, &project(), 3, 7).unwrap(), events);
    }

    #[test]
    fn a_segment_that_is_not_what_its_name_says_is_refused() {
        let events: Vec<_> = [1, 2].into_iter().map(event).collect();
        let bytes = encode(&project(), 1, 2, &events);
        let err = decode(&bytes, &project(), 1, 3).unwrap_err();
        assert!(err.contains("its name says 1..=3"), "{err}");
        let other = ProjectKey {
            tenant: TenantId::parse("t").unwrap(),
            project: ProjectId::parse("q").unwrap(),
        };
        assert!(decode(&bytes, &other, 1, 2).unwrap_err().contains("t/p"));
        let mut flipped = bytes.to_vec();
        let middle = flipped.len() / 2;
        flipped[middle] ^= 0x40;
        assert!(decode(&flipped, &project(), 1, 2).is_err());
    }
}
