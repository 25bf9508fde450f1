//! HTTP errors. Every error body carries both shapes td's readers use —
//! `{"code","message","error":{"code","message"}}` — so td's client recognises 401/403/404
//! (it reads the top level) and tools written for td's server keep working (they read the
//! nested object). Codes are td's (`../shared/reference/td-wire-protocol.md` §1.3).

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use tdsync_protocol::wire::{ErrorBody, error_code};

/// Where a shard node's 421 says the project is served.
pub const OWNER_HEADER: &str = "x-tdsync-owner";

/// An error answer: status, td's code, and a message that says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Sent as `Retry-After` (seconds): when a retry may succeed.
    pub retry_after: Option<u64>,
    /// Sent as `X-Tdsync-Owner`: the node that serves the project (a 421 of a shard node).
    pub owner: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
            owner: None,
        }
    }

    /// `421 not_owner`: another shard node serves the project (at `url`, when known).
    pub fn not_owner(message: impl Into<String>, url: Option<String>) -> ApiError {
        ApiError {
            owner: url,
            ..ApiError::new(StatusCode::MISDIRECTED_REQUEST, "not_owner", message)
        }
    }

    pub fn with_retry_after(mut self, secs: u64) -> ApiError {
        self.retry_after = Some(secs);
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, error_code::BAD_REQUEST, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, error_code::UNAUTHORIZED, message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            error_code::INSUFFICIENT_SCOPE,
            message,
        )
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, error_code::NOT_FOUND, message)
    }

    /// A project this token cannot see answers exactly like one that does not exist, so project
    /// ids of other tenants do not leak.
    pub fn no_such_project(id: &str) -> ApiError {
        ApiError::not_found(format!("project {id} not found"))
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            error_code::INTERNAL,
            message,
        )
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            error_code::INTERNAL,
            message,
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = self.status.as_u16(), code = self.code, message = %self.message, "request failed");
        }
        let mut response =
            (self.status, Json(ErrorBody::new(self.code, self.message))).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        if let Some(url) = self
            .owner
            .and_then(|u| axum::http::HeaderValue::from_str(&u).ok())
        {
            response.headers_mut().insert(OWNER_HEADER, url);
        }
        response
    }
}

impl From<tdsync_tenants::StoreError> for ApiError {
    fn from(e: tdsync_tenants::StoreError) -> ApiError {
        use tdsync_tenants::StoreError as E;
        match e {
            E::BadRequest(m) => ApiError::bad_request(m),
            E::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            E::AlreadyExists(what) => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("{what} already exists"),
            ),
            E::ApplyFailed { .. } | E::DataDirBusy { .. } => ApiError::unavailable(e.to_string()),
            // Damage takes the project out of service at once and starts its recovery: answer
            // "later", never with what a damaged file holds.
            E::OutOfService { .. } | E::Corrupt { .. } => {
                ApiError::unavailable(e.to_string()).with_retry_after(5)
            }
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl From<tdsync_acl::AuthError> for ApiError {
    fn from(e: tdsync_acl::AuthError) -> ApiError {
        use tdsync_acl::AuthError as E;
        match e {
            E::Unavailable(_) => ApiError::unavailable(e.to_string()),
            E::Malformed | E::Invalid | E::Expired { .. } | E::Revoked { .. } => {
                ApiError::unauthorized(e.to_string())
            }
        }
    }
}

impl From<tdsync_acl::Denied> for ApiError {
    fn from(e: tdsync_acl::Denied) -> ApiError {
        match e {
            tdsync_acl::Denied::Expired { .. } => ApiError::unauthorized(e.to_string()),
            other => ApiError::forbidden(other.to_string()),
        }
    }
}

impl From<tdsync_acl::AclError> for ApiError {
    fn from(e: tdsync_acl::AclError) -> ApiError {
        use tdsync_acl::{AclError as E, StoreError as S};
        match e {
            E::Auth(e) => ApiError::from(e),
            E::Denied(e) => ApiError::from(e),
            E::Mint(e) => ApiError::forbidden(e.to_string()),
            E::Login(e) => {
                use tdsync_acl::LoginError as L;
                let message = e.to_string();
                match e {
                    L::BadEmail(_) | L::BadChallenge(_) | L::BadLink => {
                        ApiError::bad_request(message)
                    }
                    L::Expired | L::Used => ApiError::new(StatusCode::GONE, "expired", message),
                    L::WrongVerifier => {
                        ApiError::new(StatusCode::UNAUTHORIZED, "invalid_verifier", message)
                    }
                    L::NoAccess(_) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", message),
                }
            }
            E::Expired(m) => ApiError::new(StatusCode::GONE, "expired", m),
            E::Invalid(m) => ApiError::bad_request(m),
            E::NotFound(m) => ApiError::not_found(m),
            E::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            // The control plane could not be reached or failed to answer: try again later.
            E::Store(
                e
                @ (S::Sqlite { .. } | S::Postgres(_) | S::Io { .. } | S::FeedDown(_) | S::Task(_)),
            ) => ApiError::unavailable(format!("the control plane is unavailable: {e}")),
            other @ (E::Store(_) | E::Hash(_)) => ApiError::internal(other.to_string()),
        }
    }
}
