//! What wraps every request: duplicate slashes collapsed before routing (td builds URLs by
//! concatenation, so `TD_SYNC_URL` with a trailing slash yields `//v1/…`), a request id on every
//! response, a span and metrics per request (never the Authorization header), and errors from
//! outside the handlers (oversized bodies, unknown routes) in td's JSON envelope.

use std::time::Instant;

use axum::{
    body::Body,
    extract::{MatchedPath, Request, State},
    http::{HeaderValue, StatusCode, Uri, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use rand::RngCore;
use tracing::Instrument;

use crate::{error::ApiError, state::AppState};

/// Rewrites `//v1//projects` to `/v1/projects` (the query is kept as is).
pub fn collapse_slashes(mut req: Request) -> Request {
    let path = req.uri().path();
    if !path.contains("//") {
        return req;
    }
    let mut collapsed = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && collapsed.ends_with('/')) {
            collapsed.push(c);
        }
    }
    let rebuilt = match req.uri().query() {
        Some(q) => format!("{collapsed}?{q}"),
        None => collapsed,
    };
    if let Ok(uri) = rebuilt.parse::<Uri>() {
        *req.uri_mut() = uri;
    }
    req
}

/// Request id, span, metrics, and td's envelope for errors raised outside the handlers.
pub async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let id = request_id();
    let span = tracing::info_span!("request", request_id = %id, %method, %route);
    // Instrumented, never entered across the await: a guard held over an await leaks the
    // span into whatever else the worker thread polls meanwhile.
    let response = next.run(req).instrument(span.clone()).await;
    let mut response = envelope(response);
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    state.metrics().request(&route, &method, status, elapsed);
    tracing::info!(parent: &span, status, micros = elapsed.as_micros() as u64, "served");
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

/// 16 random bytes as hex, like td's server.
fn request_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Errors axum produces itself (a body over the limit, a wrong method) come as plain text;
/// td's clients read JSON, so they are rewritten in td's envelope. HTML is left alone: it is a
/// page made for a person (a login link's, the GitHub sign-in's), saying why in its own words.
fn envelope(response: Response) -> Response {
    let status = response.status();
    let kept = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    if !status.is_client_error() || kept {
        return response;
    }
    let err = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            status,
            tdsync_protocol::wire::error_code::PAYLOAD_TOO_LARGE,
            "request body is over the 16 MiB limit",
        ),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            status,
            "method_not_allowed",
            "method not allowed on this route",
        ),
        _ => ApiError::new(
            status,
            tdsync_protocol::wire::error_code::BAD_REQUEST,
            format!("request rejected ({status})"),
        ),
    };
    err.into_response()
}

/// Unknown routes: td's 404 envelope.
pub async fn not_found(req: Request<Body>) -> ApiError {
    ApiError::not_found(format!("no route {} {}", req.method(), req.uri().path()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_slashes_collapse_and_the_query_survives() {
        let req = Request::builder()
            .uri("//v1//projects/p_1///sync/pull?after_server_seq=3&exclude_client=a//b")
            .body(Body::empty())
            .unwrap();
        let out = collapse_slashes(req);
        assert_eq!(out.uri().path(), "/v1/projects/p_1/sync/pull");
        assert_eq!(
            out.uri().query(),
            Some("after_server_seq=3&exclude_client=a//b")
        );
    }
}
