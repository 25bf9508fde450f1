//! A Server-Sent Events reader for tests: a thread reads the stream and hands each event over a
//! channel, so a test waits for the next event with a bound instead of sleeping.

use std::{
    io::{BufRead, BufReader},
    sync::mpsc,
    time::Duration,
};

/// One event as it came off the wire (comments such as `: ping` included, as `comment`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
    pub id: Option<String>,
    pub comment: Option<String>,
}

impl SseEvent {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("{e}: {:?}", self.data))
    }
}

pub struct SseStream {
    pub status: u16,
    pub content_type: String,
    events: mpsc::Receiver<SseEvent>,
}

impl SseStream {
    /// Opens `GET base+path` with `headers` and starts reading.
    pub fn open(url: &str, headers: &[(&str, &str)]) -> SseStream {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut request = agent.get(url);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let (tx, events) = mpsc::channel();
        let reader = BufReader::new(response.into_body().into_reader());
        std::thread::spawn(move || {
            let mut current = SseEvent::default();
            for line in reader.lines() {
                let Ok(line) = line else { return };
                if line.is_empty() {
                    if tx.send(std::mem::take(&mut current)).is_err() {
                        return;
                    }
                    continue;
                }
                let (field, value) = line.split_once(':').unwrap_or((line.as_str(), ""));
                let value = value.strip_prefix(' ').unwrap_or(value).to_string();
                match field {
                    "" => current.comment = Some(value),
                    "event" => current.event = value,
                    "data" => current.data.push_str(&value),
                    "id" => current.id = Some(value),
                    _ => {}
                }
            }
        });
        SseStream {
            status,
            content_type,
            events,
        }
    }

    /// The next event within `within`, skipping `: ping` comments.
    pub fn next(&self, within: Duration) -> Option<SseEvent> {
        let deadline = std::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.events.recv_timeout(left) {
                Ok(e) if e.comment.is_some() && e.event.is_empty() && e.data.is_empty() => {}
                Ok(e) => return Some(e),
                Err(_) => return None,
            }
        }
    }
}
