//! td's v1 sync calls over HTTP(S), as td's own client makes them: `Authorization: Bearer`,
//! JSON bodies, the pull query in td's parameter order, and both error envelopes understood
//! (`{"code","message"}` at the top level, or nested under `error`).

use std::time::Duration;

use serde::de::DeserializeOwned;
use tdsync_protocol::wire::{PullQuery, PullResponse, PushRequest, PushResponse, SyncStatus};

use super::{Transport, TransportError};

/// td's client gives every call 30 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// One project on one tdsync (or td-sync) server, with the caller's token.
pub struct Http {
    agent: ureq::Agent,
    project_url: String,
    token: Option<String>,
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
            agent,
            project_url: format!("{base}/v1/projects/{project_id}"),
            token: token.filter(|t| !t.is_empty()).map(str::to_string),
        })
    }

    fn finish<T: DeserializeOwned>(
        &self,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
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
        serde_json::from_str(&body).map_err(|e| {
            TransportError::Server(format!(
                "unreadable reply (HTTP {status}): {e}: {}",
                short(&body)
            ))
        })
    }

    fn authorize<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(t) => req.header("Authorization", format!("Bearer {t}")),
            None => req,
        }
    }
}

impl Transport for Http {
    fn push(&self, request: &PushRequest) -> Result<PushResponse, TransportError> {
        let body = serde_json::to_vec(request).map_err(|e| TransportError::Rejected {
            status: 0,
            message: e.to_string(),
        })?;
        let req = self
            .agent
            .post(format!("{}/sync/push", self.project_url))
            .header("Content-Type", "application/json");
        self.finish(self.authorize(req).send(&body[..]))
    }

    fn pull(&self, query: &PullQuery) -> Result<PullResponse, TransportError> {
        // td's order: after_server_seq, exclude_client (only when set), limit.
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
        self.finish(self.authorize(self.agent.get(url)).call())
    }

    fn status(&self) -> Result<SyncStatus, TransportError> {
        let url = format!("{}/sync/status", self.project_url);
        self.finish(self.authorize(self.agent.get(url)).call())
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
        assert!(Http::new("host:8080", "p_1", None).is_err());
        assert!(Http::new("http://h", "a/b", None).is_err());
        assert_eq!(percent_encode("ab-9 /+"), "ab-9%20%2F%2B");
    }
}
