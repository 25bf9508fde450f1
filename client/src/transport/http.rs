//! td's v1 sync calls over HTTP(S), as td's own client makes them: `Authorization: Bearer`,
//! JSON bodies, the pull query in td's parameter order, and both error envelopes understood
//! (`{"code","message"}` at the top level, or nested under `error`).

use std::{
    sync::{Arc, Mutex, mpsc},
    time::Duration,
};

use serde::de::DeserializeOwned;
use tdsync_protocol::wire::{PullQuery, PullResponse, PushRequest, PushResponse, SyncStatus};

use super::{Advice, Cancel, Transport, TransportError};

/// td's client gives every call 30 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// tdsync's offer of long polls, on every pull answer: the longest `wait` (seconds).
pub const LONG_POLL_HEADER: &str = "x-tdsync-long-poll";
/// tdsync's advice on pulls and status at the head: seconds until it is worth asking again.
pub const POLL_INTERVAL_HEADER: &str = "x-poll-interval";

/// One project on one tdsync (or td-sync) server, with the caller's token.
pub struct Http {
    client: Client,
    project_url: String,
    timeout: Duration,
}

/// What a call needs, cheap to clone onto the thread that runs a long poll.
#[derive(Clone)]
struct Client {
    agent: ureq::Agent,
    token: Option<String>,
    /// What the server's last answers advised.
    advice: Arc<Mutex<Advice>>,
}

/// Which advice an answer carries: a pull's (the long-poll offer and the poll interval) or a
/// status's (the poll interval).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Advises {
    Nothing,
    PollInterval,
    Both,
}

impl Http {
    /// `base_url` as td's `TD_SYNC_URL` (a trailing slash or a path prefix is fine).
    pub fn new(
        base_url: &str,
        project_id: &str,
        token: Option<&str>,
    ) -> Result<Http, TransportError> {
        Http::with_timeout(base_url, project_id, token, DEFAULT_TIMEOUT)
    }

    /// `timeout` bounds every call; a long poll gets its wait on top.
    pub fn with_timeout(
        base_url: &str,
        project_id: &str,
        token: Option<&str>,
        timeout: Duration,
    ) -> Result<Http, TransportError> {
        let base = base_url.trim().trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(TransportError::Rejected {
                status: 0,
                message: format!("server URL {base_url:?} must start with http:// or https://"),
            });
        }
        if project_id.is_empty() || project_id.contains(['/', '?', '#']) {
            return Err(TransportError::Rejected {
                status: 0,
                message: format!("project id {project_id:?} cannot be used in a URL"),
            });
        }
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Http {
            client: Client {
                agent,
                token: token.filter(|t| !t.is_empty()).map(str::to_string),
                advice: Arc::default(),
            },
            project_url: format!("{base}/v1/projects/{project_id}"),
            timeout,
        })
    }

    /// td's pull URL: after_server_seq, exclude_client (only when set), limit — td's order.
    fn pull_url(&self, query: &PullQuery) -> String {
        let mut url = format!(
            "{}/sync/pull?after_server_seq={}",
            self.project_url, query.after_server_seq
        );
        if let Some(device) = query.exclude_client.as_deref().filter(|d| !d.is_empty()) {
            url.push_str("&exclude_client=");
            url.push_str(&percent_encode(device));
        }
        if let Some(limit) = query.limit {
            url.push_str(&format!("&limit={limit}"));
        }
        url
    }
}

impl Client {
    fn authorize<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(t) => req.header("Authorization", format!("Bearer {t}")),
            None => req,
        }
    }

    /// A GET, its answer read, its advice noted.
    fn get<T: DeserializeOwned>(
        &self,
        url: &str,
        timeout: Option<Duration>,
        advises: Advises,
    ) -> Result<T, TransportError> {
        let mut req = self.agent.get(url);
        if let Some(timeout) = timeout {
            req = req.config().timeout_global(Some(timeout)).build();
        }
        self.finish(self.authorize(req).call(), advises)
    }

    fn finish<T: DeserializeOwned>(
        &self,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
        advises: Advises,
    ) -> Result<T, TransportError> {
        let mut response = result.map_err(|e| TransportError::Network(e.to_string()))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|e| TransportError::Network(format!("reading the reply: {e}")))?;
        if status >= 400 {
            return Err(classify(status, &body));
        }
        let value = serde_json::from_str(&body).map_err(|e| {
            TransportError::Server(format!(
                "unreadable reply (HTTP {status}): {e}: {}",
                short(&body)
            ))
        })?;
        if advises != Advises::Nothing {
            let headers = response.headers();
            let mut advice = self.advice.lock().unwrap_or_else(|e| e.into_inner());
            advice.poll_interval = seconds(headers.get(POLL_INTERVAL_HEADER));
            if advises == Advises::Both {
                advice.long_poll = seconds(headers.get(LONG_POLL_HEADER)).filter(|d| !d.is_zero());
            }
        }
        Ok(value)
    }
}

/// A header of whole seconds; anything else is no advice.
fn seconds(value: Option<&ureq::http::HeaderValue>) -> Option<Duration> {
    let secs: u64 = value?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs))
}

impl Transport for Http {
    fn push(&self, request: &PushRequest) -> Result<PushResponse, TransportError> {
        let body = serde_json::to_vec(request).map_err(|e| TransportError::Rejected {
            status: 0,
            message: e.to_string(),
        })?;
        let req = self
            .client
            .agent
            .post(format!("{}/sync/push", self.project_url))
            .header("Content-Type", "application/json");
        self.client
            .finish(self.client.authorize(req).send(&body[..]), Advises::Nothing)
    }

    fn pull(&self, query: &PullQuery) -> Result<PullResponse, TransportError> {
        self.client.get(&self.pull_url(query), None, Advises::Both)
    }

    fn status(&self) -> Result<SyncStatus, TransportError> {
        let url = format!("{}/sync/status", self.project_url);
        self.client.get(&url, None, Advises::PollInterval)
    }

    /// `wait=S` (whole seconds, rounded up), sent whether or not the server offers it (td-sync
    /// ignores it). The call runs on a thread of its own so that a cancel returns at once; the
    /// request itself is then left to end at the server's deadline (or the next event), its
    /// answer dropped.
    fn pull_wait(
        &self,
        query: &PullQuery,
        wait: Duration,
        cancel: &Cancel,
    ) -> Result<PullResponse, TransportError> {
        if wait.is_zero() {
            return self.pull(query);
        }
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let url = format!("{}&wait={secs}", self.pull_url(query));
        let timeout = self.timeout + Duration::from_secs(secs);
        if cancel.is_cancelled() {
            return Err(TransportError::Cancelled);
        }
        let (tx, rx) = mpsc::channel();
        let (client, answered) = (self.client.clone(), tx.clone());
        let spawned = std::thread::Builder::new()
            .name("tdsync-long-poll".into())
            .spawn(move || {
                let _ = answered.send(Some(client.get(&url, Some(timeout), Advises::Both)));
            });
        if let Err(e) = spawned {
            return Err(TransportError::Network(format!(
                "starting the long poll's thread: {e}"
            )));
        }
        cancel.on_cancel(move || {
            let _ = tx.send(None);
        });
        match rx.recv() {
            Ok(Some(answer)) => answer,
            Ok(None) => Err(TransportError::Cancelled),
            Err(_) => Err(TransportError::Network(
                "the long poll ended without an answer".into(),
            )),
        }
    }

    fn advice(&self) -> Advice {
        *self.client.advice.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An error reply in the class td's client gives it, with the server's message.
fn classify(status: u16, body: &str) -> TransportError {
    let message = error_message(body).unwrap_or_else(|| format!("HTTP {status}: {}", short(body)));
    match status {
        401 => TransportError::Unauthorized(message),
        403 => TransportError::Forbidden(message),
        404 => TransportError::NotFound(message),
        400..=499 => TransportError::Rejected { status, message },
        _ => TransportError::Server(format!("HTTP {status}: {message}")),
    }
}

/// `code: message` from either error envelope.
fn error_message(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let obj = if v.get("code").is_some() {
        &v
    } else {
        v.get("error")?
    };
    let code = obj.get("code")?.as_str()?;
    let message = obj.get("message").and_then(|m| m.as_str()).unwrap_or("");
    Some(format!("{code}: {message}"))
}

fn short(text: &str) -> String {
    let s: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        format!("{s}…")
    } else {
        s
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classed_like_tds_client_and_read_from_either_envelope() {
        let top = r#"{"code":"unauthorized","message":"bad token","error":{"code":"unauthorized","message":"bad token"}}"#;
        assert_eq!(
            classify(401, top),
            TransportError::Unauthorized("unauthorized: bad token".into())
        );
        let nested = r#"{"error":{"code":"forbidden","message":"read-only token"}}"#;
        assert_eq!(
            classify(403, nested),
            TransportError::Forbidden("forbidden: read-only token".into())
        );
        assert!(matches!(
            classify(413, "too big"),
            TransportError::Rejected { status: 413, .. }
        ));
        assert!(classify(503, "").is_retryable());
    }

    #[test]
    fn urls_follow_td() {
        let h = Http::new("http://host:8080/", "p_1", Some("tds_x")).unwrap();
        assert_eq!(h.project_url, "http://host:8080/v1/projects/p_1");
        let query = PullQuery {
            after_server_seq: 7,
            limit: Some(10),
            exclude_client: Some("dev 1".into()),
        };
        assert_eq!(
            h.pull_url(&query),
            "http://host:8080/v1/projects/p_1/sync/pull?after_server_seq=7&exclude_client=dev%201&limit=10"
        );
        assert!(Http::new("host:8080", "p_1", None).is_err());
        assert!(Http::new("http://h", "a/b", None).is_err());
        assert_eq!(percent_encode("ab-9 /+"), "ab-9%20%2F%2B");
    }

    #[test]
    fn advice_headers_are_whole_seconds_or_nothing() {
        let header = |v: &str| ureq::http::HeaderValue::from_str(v).unwrap();
        assert_eq!(seconds(Some(&header("25"))), Some(Duration::from_secs(25)));
        assert_eq!(seconds(Some(&header(" 3 "))), Some(Duration::from_secs(3)));
        for bad in ["", "-1", "1.5", "soon"] {
            assert_eq!(seconds(Some(&header(bad))), None, "{bad:?}");
        }
        assert_eq!(seconds(None), None);
    }
}
