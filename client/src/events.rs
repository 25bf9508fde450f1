//! A project's live changes over Server-Sent Events (`GET /v1/projects/{id}/events` of a tdsync
//! server, or td-sync's stream): what lets a UI or an agent react the moment someone pushes. A
//! background thread reads the stream and hands each event over a channel, so callers wait for
//! the next one with a bound.

use std::{
    io::{BufRead, BufReader},
    sync::mpsc,
    time::{Duration, Instant},
};

use crate::transport::TransportError;

/// One event off the stream. `change` events carry the head seq in `id` and a JSON body with
/// `head`, `first` and the entities touched; td-sync's `issue.upserted`, `issue.deleted` and
/// `refresh` carry `{type, issue_id, change_token, timestamp}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamEvent {
    pub event: String,
    pub data: String,
    pub id: Option<String>,
}

impl StreamEvent {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap_or_default()
    }
}

/// An open stream. Dropping it stops reading (the connection closes when the reader notices).
pub struct EventStream {
    events: mpsc::Receiver<StreamEvent>,
}

impl EventStream {
    /// Opens the stream of `project_id` on `base_url` (as td's `TD_SYNC_URL`) with `token`;
    /// with `last_event_id` (the `id` of the last event seen) the server starts with what was
    /// missed since.
    pub fn open(
        base_url: &str,
        project_id: &str,
        token: &str,
        last_event_id: Option<&str>,
    ) -> Result<EventStream, TransportError> {
        let url = format!(
            "{}/v1/projects/{project_id}/events",
            base_url.trim().trim_end_matches('/')
        );
        // No overall timeout: the stream lasts as long as the caller reads it.
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut request = agent
            .get(&url)
            .header("Authorization", format!("Bearer {token}"))
            .header("Accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let mut response = request
            .call()
            .map_err(|e| TransportError::Network(format!("GET {url}: {e}")))?;
        let status = response.status().as_u16();
        if status != 200 {
            let message = response.body_mut().read_to_string().unwrap_or_default();
            return Err(TransportError::Rejected { status, message });
        }
        let (tx, events) = mpsc::channel();
        let reader = BufReader::new(response.into_body().into_reader());
        std::thread::spawn(move || read_events(reader, &tx));
        Ok(EventStream { events })
    }

    /// The next event within `within` (`: ping` comments are skipped); None when none came or
    /// the stream ended.
    pub fn next(&self, within: Duration) -> Option<StreamEvent> {
        let deadline = Instant::now() + within;
        self.events
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .ok()
    }
}

/// Parses the `text/event-stream` format line by line until the stream ends or the receiver
/// is gone.
fn read_events(reader: impl BufRead, tx: &mpsc::Sender<StreamEvent>) {
    let mut current = StreamEvent::default();
    let mut any = false;
    for line in reader.lines() {
        let Ok(line) = line else { return };
        if line.is_empty() {
            if any && tx.send(std::mem::take(&mut current)).is_err() {
                return;
            }
            any = false;
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line.as_str(), ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => current.event = value.to_string(),
            "data" => {
                if !current.data.is_empty() {
                    current.data.push('\n');
                }
                current.data.push_str(value);
            }
            "id" => current.id = Some(value.to_string()),
            // A comment (`: ping`) or an unknown field.
            _ => continue,
        }
        any = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_format_is_read_into_events_and_pings_are_skipped() {
        let wire = ": ping\n\nevent: change\ndata: {\"head\":3}\nid: 3\n\n\
                    event: refresh\ndata: a\ndata: b\n\n";
        let (tx, rx) = mpsc::channel();
        read_events(wire.as_bytes(), &tx);
        let got: Vec<StreamEvent> = rx.try_iter().collect();
        assert_eq!(
            got,
            vec![
                StreamEvent {
                    event: "change".into(),
                    data: "{\"head\":3}".into(),
                    id: Some("3".into())
                },
                StreamEvent {
                    event: "refresh".into(),
                    data: "a\nb".into(),
                    id: None
                },
            ]
        );
        assert_eq!(got[0].json()["head"], 3);
    }
}
