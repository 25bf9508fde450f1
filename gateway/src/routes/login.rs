//! `td auth login` against tdsync, unmodified: td's email + PKCE device flow
//! (`POST /v1/auth/device/start`, `POST /v1/auth/device/poll`) and the page the emailed link
//! opens (`GET /auth/device/approve` shows what is being approved; only its form's `POST`
//! approves, so a mail scanner that fetches links approves nothing). The rules are
//! `tdsync_acl::onboarding`'s; td reads only `200 {"status":"pending"}` as "keep waiting" and
//! ends the login on any other answer.

use axum::{
    Form, Json,
    body::Bytes,
    extract::{Query, State},
    http::{HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use tdsync_acl::{AclError, LoginError, LoginPoll, LoginStatus};
use tdsync_live::Rate;
use utoipa::ToSchema;

use crate::{error::ApiError, limits::ClientAddress, people::pages, state::AppState};

/// td's start request.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct DeviceStart {
    /// The address to send the approval link to (td reads it from stdin).
    #[schema(value_type = crate::openapi::schemas::EmailSchema)]
    pub email: String,
    #[schema(value_type = crate::openapi::schemas::CodeChallengeSchema)]
    pub code_challenge: String,
    #[schema(value_type = crate::openapi::schemas::ChallengeMethodSchema)]
    pub code_challenge_method: String,
    /// `td-cli@<hostname>`: shown on the approval page.
    #[serde(default)]
    pub device_name: String,
}

/// The answer to every well-formed start, whether or not the email is known.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeviceStarted {
    /// Poll with it; it completes once.
    pub device_code: String,
    /// Seconds until the login expires (900).
    pub expires_in: u64,
    /// Seconds between polls (5).
    pub interval: u64,
    /// Always true: the answer is the same for every address, so addresses cannot be probed.
    pub email_sent: bool,
}

/// td's poll request.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct DevicePoll {
    #[schema(value_type = crate::openapi::schemas::NonEmptySchema)]
    pub device_code: String,
    /// The PKCE verifier whose S256 is the start's challenge.
    #[schema(value_type = crate::openapi::schemas::NonEmptySchema)]
    pub code_verifier: String,
}

/// `pending`, or `complete` with the token td saves in `~/.config/td/auth.json`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PollAnswer {
    /// `pending` or `complete`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// RFC 3339, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// Logins one address may start a minute (each sends an email).
pub const PER_EMAIL: Rate = Rate {
    per_minute: 3,
    burst: 3,
};
/// Logins one client address may start a minute.
pub const PER_CLIENT: Rate = Rate {
    per_minute: 20,
    burst: 10,
};

fn json<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid json body: {e}")))
}

/// `POST /v1/auth/device/start`. Besides the limits every route has, at most 3 starts a minute
/// per address and 20 per client (the 429 every route documents).
#[utoipa::path(
    post, path = "/v1/auth/device/start", tag = "auth",
    request_body = DeviceStart,
    responses(
        (status = 200, description = "Started. A known address (a member, or someone with a pending invitation) is emailed the approval link; any other gets the same answer and no email", body = DeviceStarted),
        (status = 400, description = "Bad JSON, an email that is not an address, or a challenge that is not S256", body = tdsync_protocol::wire::ErrorBody),
        (status = 503, description = "The approval email could not be sent; nothing to approve", body = tdsync_protocol::wire::ErrorBody),
    )
)]
pub async fn start(
    State(state): State<AppState>,
    client: ClientAddress,
    body: Bytes,
) -> Result<Json<DeviceStarted>, ApiError> {
    let request: DeviceStart = json(&body)?;
    let email = tdsync_acl::clean_email(&request.email).map_err(AclError::from)?;
    let email_bucket = format!("login-email:{}", crate::limits::hashed(&email));
    state.admit_login(&format!("login-client:{}", client.key()), PER_CLIENT)?;
    state.admit_login(&email_bucket, PER_EMAIL)?;
    let started = state
        .acl()
        .start_login(
            &email,
            &request.code_challenge,
            &request.code_challenge_method,
            &request.device_name,
        )
        .await?;
    if let Some(link) = &started.approval {
        let people = state.people();
        let (subject, text) = people.login_email(&link.device_name, &link.token);
        if let Err(e) = people.send(&link.email, subject, text).await {
            tracing::error!(error = %format!("{e:#}"), "login email not sent");
            return Err(ApiError::unavailable(
                "the approval email could not be sent: try again later",
            )
            .with_retry_after(30));
        }
    }
    Ok(Json(DeviceStarted {
        device_code: started.device_code,
        expires_in: started.expires_in,
        interval: started.interval,
        email_sent: true,
    }))
}

/// `POST /v1/auth/device/poll`
#[utoipa::path(
    post, path = "/v1/auth/device/poll", tag = "auth",
    request_body = DevicePoll,
    responses(
        (status = 200, description = "`pending` until the link is approved; then, once, `complete` with a token for the person's membership", body = PollAnswer),
        (status = 400, description = "Bad JSON or a missing field", body = tdsync_protocol::wire::ErrorBody),
        (status = 401, description = "The verifier does not match the challenge (`invalid_verifier`): it never completes", body = tdsync_protocol::wire::ErrorBody),
        (status = 403, description = "Approved, but the person has no access to any project (no invitation accepted)", body = tdsync_protocol::wire::ErrorBody),
        (status = 410, description = "Expired, unknown, or already completed (`expired`)", body = tdsync_protocol::wire::ErrorBody),
    )
)]
pub async fn poll(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<PollAnswer>, ApiError> {
    let request: DevicePoll = json(&body)?;
    if request.device_code.is_empty() || request.code_verifier.is_empty() {
        return Err(ApiError::bad_request(
            "device_code and code_verifier are required",
        ));
    }
    let outcome = state
        .acl()
        .poll_login(&request.device_code, &request.code_verifier)
        .await?;
    Ok(Json(match outcome {
        LoginPoll::Pending => PollAnswer {
            status: "pending".into(),
            api_key: None,
            user_id: None,
            email: None,
            expires_at: None,
        },
        LoginPoll::Complete { issued, user } => {
            tracing::info!(user = %user.id, token = %issued.record.id, "login completed");
            PollAnswer {
                status: "complete".into(),
                api_key: Some(issued.token.expose().to_string()),
                user_id: Some(user.id.to_string()),
                email: user.email,
                expires_at: issued
                    .record
                    .expires_at
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            }
        }
    }))
}

#[derive(Debug, Deserialize)]
pub struct LinkQuery {
    #[serde(default)]
    token: String,
}

/// `GET /auth/device/approve?token=…`: what would be approved, and the button.
pub async fn approve_page(State(state): State<AppState>, Query(q): Query<LinkQuery>) -> Response {
    let now = state.acl().now();
    let page = match state.acl().login_for_link(&q.token).await {
        Ok(login) => match login.status {
            LoginStatus::Pending if login.expires_at > now => {
                pages::approve_form(&login.email, &login.device_name, &q.token)
            }
            LoginStatus::Pending => pages::message(
                StatusCode::GONE,
                "This link has expired",
                "Run td auth login again to get a new one.",
            ),
            LoginStatus::Approved | LoginStatus::Consumed => pages::message(
                StatusCode::GONE,
                "This link was already used",
                "The login it was for is approved. Run td auth login again if you need another.",
            ),
        },
        Err(e) => error_page(e),
    };
    secure(page)
}

#[derive(Debug, Deserialize)]
pub struct ApproveForm {
    #[serde(default)]
    token: String,
}

/// `POST /auth/device/approve` (the form's button): approves, accepting the person's pending
/// invitations.
pub async fn approve(State(state): State<AppState>, Form(form): Form<ApproveForm>) -> Response {
    let page = match state.acl().approve_login(&form.token).await {
        Ok(approved) => pages::approved(&approved),
        Err(e) => error_page(e),
    };
    secure(page)
}

fn error_page(e: AclError) -> (StatusCode, Html<String>) {
    match e {
        AclError::Login(LoginError::BadLink) => pages::message(
            StatusCode::BAD_REQUEST,
            "This link is not valid",
            "Copy the whole link from the email, or run td auth login again.",
        ),
        AclError::Login(LoginError::Expired) => pages::message(
            StatusCode::GONE,
            "This link has expired",
            "Run td auth login again to get a new one.",
        ),
        AclError::Login(LoginError::Used) => pages::message(
            StatusCode::GONE,
            "This link was already used",
            "Run td auth login again if you need another login.",
        ),
        other => {
            let api = ApiError::from(other);
            tracing::warn!(status = api.status().as_u16(), "approval page failed");
            pages::message(
                api.status(),
                "Something went wrong",
                "The server could not approve this login right now. Try the link again in a minute.",
            )
        }
    }
}

/// Pages with a secret in their URL or form: not cached, not framed (no clickjacking of the
/// button), no referrer.
pub(crate) fn secure(page: (StatusCode, Html<String>)) -> Response {
    let mut response = page.into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
