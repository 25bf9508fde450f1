//! Service routes: health, metrics and the OpenAPI document.

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `error` when the control plane cannot be read.
    #[schema(value_type = HealthStatus)]
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Where live state (heads, cursors, rate limits, wake-ups) is kept: `in-process`, or the
    /// shared backend and whether it answers (`redis: up`; `redis: down, serving from this
    /// process's state`). The service is up either way.
    pub live: String,
    /// With `--backup-to`: the target and whether shipping keeps up (`… behind: N events
    /// waiting S s`, with the last error, once a change waited longer than
    /// `--backup-max-lag`). The service is up either way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // the document's vocabulary of `Health::status`
enum HealthStatus {
    Ok,
    Error,
}

/// `GET /healthz` (no auth): 200 `{"status":"ok"}`, or 503 when the control plane is down.
#[utoipa::path(get, path = "/healthz", tag = "service",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn health(State(state): State<AppState>) -> Response {
    let live = state.live().health();
    let live = match live.shared_up {
        None => live.backend.to_string(),
        Some(true) => format!("{}: up", live.backend),
        Some(false) => format!("{}: down, serving from this process's state", live.backend),
    };
    let backup = state.backup().map(|b| {
        let s = b.stats();
        if s.behind {
            format!(
                "{}: behind: {} events waiting {:.0} s (last error: {})",
                s.target,
                s.backlog_events,
                s.lag_seconds,
                s.last_error.as_deref().unwrap_or("none")
            )
        } else {
            format!(
                "{}: shipping, {} events waiting",
                s.target, s.backlog_events
            )
        }
    });
    match state.acl().store_health().await {
        Ok(()) => Json(Health {
            status: "ok".into(),
            detail: None,
            live,
            backup,
        })
        .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "error".into(),
                detail: Some(format!("control plane unreachable: {e}")),
                live,
                backup,
            }),
        )
            .into_response(),
    }
}

/// `GET /metrics`: Prometheus text format (aggregates only; no tenant or token data).
#[utoipa::path(get, path = "/metrics", tag = "service",
    responses((status = 200, description = "Prometheus exposition text", content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let tenants = state.tenants();
    let body = state.metrics().render(crate::metrics::StoreGauges {
        open_shards: tenants.open_shards(),
        known_projects: tenants.known_projects(),
        live: state.live().health(),
        backup: state.backup().map(|b| b.stats()),
        shard: state.ownership().map(|o| o.gauges()),
        gateway: state.proxy().map(|p| p.gauges()),
    });
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        body,
    )
        .into_response()
}

/// `GET /openapi.json`: this server's API contract.
#[utoipa::path(get, path = "/openapi.json", tag = "service",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object)))]
pub async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        crate::openapi::document_json(),
    )
        .into_response()
}
