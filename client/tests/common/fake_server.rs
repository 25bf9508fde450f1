//! A minimal td-sync stand-in for driving the real td binary in tests: it stores pushed
//! events with increasing seqs and serves them back on pull, like td's server, over plain
//! HTTP/1.1 with one request per connection.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::{Value, json};

#[derive(Default)]
pub struct Log {
    /// Raw push request bodies and the responses sent, in order.
    pub pushes: Vec<(String, String)>,
    /// The event log served on pull (objects with every pull field).
    pub events: Vec<Value>,
    next_seq: i64,
}

impl Log {
    /// Appends an event the way the server would store a push of it.
    pub fn append(&mut self, mut event: Value) -> i64 {
        self.next_seq += 1;
        event["server_seq"] = json!(self.next_seq);
        self.events.push(event);
        self.next_seq
    }
}

pub struct FakeServer {
    pub url: String,
    pub log: Arc<Mutex<Log>>,
}

pub fn start() -> FakeServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Log {
        next_seq: 100,
        ..Log::default()
    }));
    let shared = Arc::clone(&log);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = handle(stream, &shared);
        }
    });
    FakeServer { url, log }
}

fn handle(stream: TcpStream, log: &Mutex<Log>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let body = String::from_utf8_lossy(&body).into_owned();
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("");
    let target = parts.next().unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));

    let (status, response) = if method == "POST" && path.ends_with("/sync/push") {
        (200, push(log, &body))
    } else if method == "GET" && path.ends_with("/sync/pull") {
        (200, pull(log, query))
    } else if method == "GET" && path.ends_with("/sync/status") {
        let log = log.lock().unwrap();
        let last = log
            .events
            .last()
            .map_or(0, |e| e["server_seq"].as_i64().unwrap_or(0));
        (
            200,
            json!({"event_count": log.events.len(), "last_server_seq": last}).to_string(),
        )
    } else {
        (
            404,
            json!({"code": "not_found", "message": path}).to_string(),
        )
    };
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{response}",
        response.len()
    )?;
    out.flush()
}

fn push(log: &Mutex<Log>, body: &str) -> String {
    let req: Value = serde_json::from_str(body).unwrap();
    let mut log = log.lock().unwrap();
    let mut acks = Vec::new();
    for ev in req["events"].as_array().unwrap() {
        let mut stored = ev.clone();
        stored["device_id"] = req["device_id"].clone();
        stored["session_id"] = req["session_id"].clone();
        let seq = log.append(stored);
        acks.push(json!({"client_action_id": ev["client_action_id"], "server_seq": seq}));
    }
    let response = json!({"accepted": acks.len(), "acks": acks}).to_string();
    log.pushes.push((body.to_string(), response.clone()));
    response
}

fn pull(log: &Mutex<Log>, query: &str) -> String {
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .map(str::to_string)
    };
    let after: i64 = param("after_server_seq")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let limit: usize = param("limit").and_then(|v| v.parse().ok()).unwrap_or(1000);
    let exclude = param("exclude_client").unwrap_or_default();
    let log = log.lock().unwrap();
    let events: Vec<&Value> = log
        .events
        .iter()
        .filter(|e| e["server_seq"].as_i64().unwrap_or(0) > after)
        .filter(|e| exclude.is_empty() || e["device_id"] != exclude.as_str())
        .take(limit)
        .collect();
    let last = events
        .last()
        .map_or(after, |e| e["server_seq"].as_i64().unwrap_or(after));
    json!({"events": events, "last_server_seq": last, "has_more": events.len() == limit})
        .to_string()
}
