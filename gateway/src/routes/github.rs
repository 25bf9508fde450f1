//! GitHub sign-in for projects linked to a repository (`tdsync project link-github`): whoever
//! can read the repository on GitHub gets a read-only token for the project (write, when the
//! link allows it and they can push), checked with their own GitHub token, without an admin.
//!
//! - the browser: `GET /login/github?project=P` sends the browser to GitHub (web flow, PKCE, a
//!   sealed state and a nonce cookie, see `people::github`); `GET /login/github/callback`
//!   answers a page showing the token once with the lines to paste, or a page saying why not;
//! - a terminal (`tdsync login github`): `POST /v1/auth/github/device/start` and
//!   `POST /v1/auth/github/device/poll`, GitHub's device flow relayed, JSON.
//!
//! Nothing of a sign-in is kept on the server until the token is minted: any gateway can answer
//! any step.

use axum::{
    Json,
    body::Bytes,
    extract::{Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use tdsync_acl::{GithubAccount, GithubLink, IssuedToken, Project, ProjectId};
use tdsync_github::{AccessToken, DevicePoll, GithubError, RepoAccess, RepoName, Url};
use utoipa::ToSchema;

use crate::{
    error::ApiError,
    limits::ClientAddress,
    people::{
        People,
        github::{
            BlobError, CALLBACK_PATH, COOKIE, COOKIE_PATH, GithubSignIn, WEB_STATE_TTL,
            open_device, open_web, seal_device, setup_lines,
        },
        pages,
    },
    routes::login,
    state::AppState,
};

/// `tdsync login github`'s start request.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct GithubDeviceStart {
    /// The project's id (`p_…`); the project must be linked to a GitHub repository.
    pub project: String,
}

/// What to show the person, and what to poll with.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GithubDeviceStarted {
    /// Poll with it (sealed by this server: any of its processes can answer the poll).
    pub device_code: String,
    /// What the person enters at `verification_uri`.
    pub user_code: String,
    /// GitHub's device page.
    pub verification_uri: String,
    /// Seconds until the codes expire.
    pub expires_in: u64,
    /// Seconds to wait between polls.
    pub interval: u64,
}

/// A poll.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct GithubDevicePoll {
    /// The start's `device_code`.
    pub device_code: String,
}

/// `pending`, `slow_down` (wait `interval` seconds between polls from now on), or `complete`
/// with the token.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GithubPollAnswer {
    /// `pending`, `slow_down` or `complete`.
    pub status: String,
    /// With `slow_down`: the new interval in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<u64>,
    /// With `complete`: the token (`TD_AUTH_KEY`), shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// What `td sync-project join` takes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_name: Option<String>,
    /// `["read"]`, or `["write"]` when the link allows it and the person can push.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// RFC 3339, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// This server's public URL (`TD_SYNC_URL`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_url: Option<String>,
}

impl GithubPollAnswer {
    fn status(status: &str) -> GithubPollAnswer {
        GithubPollAnswer {
            status: status.into(),
            interval: None,
            api_key: None,
            project_id: None,
            project_name: None,
            scopes: None,
            expires_at: None,
            sync_url: None,
        }
    }
}

/// Why a sign-in ends without a token. Every refusal names its cause; none carries a secret.
#[derive(Debug)]
enum Refusal {
    /// `--github-client-id` (or, for the browser, `--github-client-secret`) is not given.
    NotConfigured {
        browser: bool,
    },
    /// No `?project=` / `"project"`.
    NoProject,
    /// No such project, or it is not linked (answered alike: no project name leaks).
    NotLinked(String),
    NoAccess {
        login: String,
        repo: String,
    },
    /// The person said no on GitHub.
    Declined,
    /// GitHub refused the authorization code (or sent an error to the callback).
    CodeRefused(String),
    /// The callback has no state.
    MissingState,
    /// The state does not open, or has expired.
    State(BlobError),
    /// The state's nonce is not this browser's cookie: replayed, or started elsewhere.
    Replayed,
    /// A device code that was not made by this server.
    BadDeviceCode,
    DeviceExpired,
    /// GitHub says the device code was already used (or never existed).
    DeviceUsed(String),
    Unavailable(String),
    /// GitHub answered something that cannot work (configuration, protocol).
    BadGateway(String),
    /// The control plane's answer (unavailable, …).
    Api(ApiError),
}

impl Refusal {
    /// Status, td's error code, a title for pages, and the message.
    fn parts(&self) -> (StatusCode, &'static str, &'static str, String) {
        use tdsync_protocol::wire::error_code as code;
        match self {
            Refusal::NotConfigured { browser } => (
                StatusCode::NOT_FOUND,
                code::NOT_FOUND,
                "GitHub sign-in is not configured",
                if *browser {
                    "GitHub sign-in in the browser is not configured on this server \
                     (--github-client-id and --github-client-secret)"
                        .into()
                } else {
                    "GitHub sign-in is not configured on this server (--github-client-id)".into()
                },
            ),
            Refusal::NoProject => (
                StatusCode::BAD_REQUEST,
                code::BAD_REQUEST,
                "Which project?",
                "say which project to sign in to: ?project=<project id> (p_…)".into(),
            ),
            Refusal::NotLinked(project) => (
                StatusCode::NOT_FOUND,
                code::NOT_FOUND,
                "This project is not linked to GitHub",
                format!(
                    "project {project} does not exist here or is not linked to a GitHub \
                     repository (an admin links it with `tdsync project link-github`)"
                ),
            ),
            Refusal::NoAccess { login, repo } => (
                StatusCode::FORBIDDEN,
                code::FORBIDDEN,
                "No access to the repository",
                format!(
                    "your GitHub account {login} cannot read {repo}: ask its owners for access, \
                     then sign in again"
                ),
            ),
            Refusal::Declined => (
                StatusCode::FORBIDDEN,
                code::FORBIDDEN,
                "Sign-in declined",
                "the sign-in was declined on GitHub: no token was made".into(),
            ),
            Refusal::CodeRefused(why) => (
                StatusCode::BAD_REQUEST,
                code::BAD_REQUEST,
                "GitHub refused the sign-in",
                format!("GitHub refused the sign-in code: {why}. Start again."),
            ),
            Refusal::MissingState => (
                StatusCode::BAD_REQUEST,
                code::BAD_REQUEST,
                "This sign-in is not valid",
                "the callback carries no state: start again from /login/github".into(),
            ),
            Refusal::State(BlobError::Expired) => (
                StatusCode::BAD_REQUEST,
                code::BAD_REQUEST,
                "This sign-in has expired",
                format!(
                    "a sign-in must finish within {} minutes of starting: start again",
                    WEB_STATE_TTL.num_minutes()
                ),
            ),
            Refusal::State(BlobError::Unreadable) => (
                StatusCode::BAD_REQUEST,
                code::BAD_REQUEST,
                "This sign-in is not valid",
                "the state is unknown to this server (was it copied, or the server's key \
                 changed?): start again"
                    .into(),
            ),
            Refusal::Replayed => (
                StatusCode::BAD_REQUEST,
                code::BAD_REQUEST,
                "This sign-in was already used",
                "this sign-in was already used, or started in another browser: start again \
                 from this browser"
                    .into(),
            ),
            Refusal::BadDeviceCode => (
                StatusCode::BAD_REQUEST,
                code::BAD_REQUEST,
                "Unknown device code",
                "this device_code was not made by this server (or its key changed): run \
                 `tdsync login github` again"
                    .into(),
            ),
            Refusal::DeviceExpired => (
                StatusCode::GONE,
                "expired",
                "The device code expired",
                "the GitHub device code expired before it was approved: run `tdsync login \
                 github` again"
                    .into(),
            ),
            Refusal::DeviceUsed(why) => (
                StatusCode::GONE,
                "expired",
                "The device code was used",
                format!(
                    "GitHub no longer accepts this device code ({why}): it was already used; run \
                     `tdsync login github` again"
                ),
            ),
            Refusal::Unavailable(why) => (
                StatusCode::SERVICE_UNAVAILABLE,
                code::INTERNAL,
                "GitHub is unavailable",
                format!("GitHub could not be asked right now ({why}): try again in a minute"),
            ),
            Refusal::BadGateway(why) => (
                StatusCode::BAD_GATEWAY,
                "bad_gateway",
                "GitHub sign-in failed",
                format!("the sign-in with GitHub failed: {why}"),
            ),
            Refusal::Api(e) => (e.status, e.code, "Something went wrong", e.message.clone()),
        }
    }

    fn page(self) -> Response {
        let (status, _, title, message) = self.parts();
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), message = %message, "GitHub sign-in failed");
        }
        login::secure(pages::message(status, title, &message))
    }

    fn api(self) -> ApiError {
        if let Refusal::Api(e) = self {
            return e;
        }
        let (status, code, _, message) = self.parts();
        let retry = matches!(self, Refusal::Unavailable(_)).then_some(30);
        let error = ApiError::new(status, code, message);
        match retry {
            Some(secs) => error.with_retry_after(secs),
            None => error,
        }
    }
}

impl From<tdsync_acl::AclError> for Refusal {
    fn from(e: tdsync_acl::AclError) -> Refusal {
        Refusal::Api(ApiError::from(e))
    }
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Refusal {
        Refusal::Api(e)
    }
}

/// A failure of a call to GitHub, by what it means for the person.
fn github_failure(e: GithubError) -> Refusal {
    if e.is_transient() {
        Refusal::Unavailable(e.to_string())
    } else {
        Refusal::BadGateway(e.to_string())
    }
}

/// GitHub sign-in, or 404 naming the missing setting.
fn configured(people: &People, browser: bool) -> Result<&GithubSignIn, Refusal> {
    people
        .github()
        .filter(|g| !browser || g.web_flow())
        .ok_or(Refusal::NotConfigured { browser })
}

/// The project and its link; a missing project answers like an unlinked one.
async fn linked(state: &AppState, raw: &str) -> Result<(Project, GithubLink), Refusal> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(Refusal::NoProject);
    }
    let shown: String = raw.chars().filter(|c| !c.is_control()).take(80).collect();
    let not_linked = || Refusal::NotLinked(shown.clone());
    let id = ProjectId::parse(raw).map_err(|_| not_linked())?;
    let project = state.acl().project(&id).await?.ok_or_else(not_linked)?;
    let link = state.acl().github_link(&id).await?.ok_or_else(not_linked)?;
    Ok((project, link))
}

/// The one way a GitHub token becomes a tdsync token: the person's account, their access to
/// the linked repository (asked with their own token), then the grant (read; write only with
/// push access on a link that allows it). Their GitHub token is kept sealed for the re-check.
async fn grant(
    state: &AppState,
    github: &GithubSignIn,
    project: &Project,
    link: &GithubLink,
    token: &AccessToken,
) -> Result<(IssuedToken, String), Refusal> {
    let repo: RepoName = link.repo.parse().map_err(|e| {
        Refusal::Api(ApiError::internal(format!(
            "project {} is linked to {:?}, which is not a repository: {e}",
            project.id, link.repo
        )))
    })?;
    let user = github.client().user(token).await.map_err(github_failure)?;
    let access = github
        .client()
        .repo_access(token, &repo)
        .await
        .map_err(github_failure)?;
    if access == RepoAccess::None {
        return Err(Refusal::NoAccess {
            login: user.login,
            repo: repo.to_string(),
        });
    }
    let account = GithubAccount {
        id: user.id,
        login: user.login,
    };
    let sealed = state.people().sealer().seal(token.secret());
    let write = access == RepoAccess::Write && link.allow_write;
    let issued = state
        .acl()
        .grant_github(project, link, &account, &sealed, write)
        .await?;
    tracing::info!(
        github_login = %account.login,
        project = %project.id,
        repo = %repo,
        token = %issued.record.id,
        scopes = %issued.record.scopes,
        "GitHub sign-in granted a token"
    );
    Ok((issued, account.login))
}

fn callback_url(people: &People) -> Result<Url, Refusal> {
    let raw = format!("{}{CALLBACK_PATH}", people.public_url());
    Url::parse(&raw).map_err(|e| {
        Refusal::Api(ApiError::internal(format!(
            "the callback URL {raw:?} (from --public-url) does not parse: {e}"
        )))
    })
}

/// The nonce cookie: set at the start, cleared (`max_age` 0) by the callback.
fn nonce_cookie(value: &str, max_age: i64, https: bool) -> Option<HeaderValue> {
    let secure = if https { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Max-Age={max_age}; Path={COOKIE_PATH}; HttpOnly; SameSite=Lax{secure}"
    ))
    .ok()
}

/// This browser's nonce, from any `Cookie` header.
fn cookie_nonce(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_string())
}

#[derive(Debug, Deserialize)]
pub struct StartQuery {
    #[serde(default)]
    project: String,
}

/// `GET /login/github?project=P`: to GitHub, with the sealed state and the nonce cookie.
pub async fn web_start(State(state): State<AppState>, Query(q): Query<StartQuery>) -> Response {
    let people = state.people();
    let started = async {
        let github = configured(people, true)?;
        let (project, _) = linked(&state, &q.project).await?;
        let redirect = callback_url(people)?;
        Ok::<_, Refusal>(github.start_web(
            people.sealer(),
            &project.id,
            &redirect,
            state.acl().now(),
        ))
    }
    .await;
    let start = match started {
        Ok(start) => start,
        Err(refusal) => return refusal.page(),
    };
    let max_age = WEB_STATE_TTL.num_seconds();
    let (Ok(location), Some(cookie)) = (
        HeaderValue::from_str(start.url.as_str()),
        nonce_cookie(&start.nonce, max_age, people.public_https()),
    ) else {
        return Refusal::Api(ApiError::internal(
            "the GitHub authorize URL is not a header value",
        ))
        .page();
    };
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, location);
    headers.insert(header::SET_COOKIE, cookie);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /login/github/callback?code&state`: the token page, or why not. The nonce cookie is
/// cleared either way: a state works once per start.
pub async fn web_callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let people = state.people();
    let mut response = match callback(&state, &headers, q).await {
        Ok((project, issued, login)) => {
            login::secure(token_page(people, &project, &issued, &login))
        }
        Err(refusal) => refusal.page(),
    };
    if let Some(clear) = nonce_cookie("", 0, people.public_https()) {
        response.headers_mut().append(header::SET_COOKIE, clear);
    }
    response
}

async fn callback(
    state: &AppState,
    headers: &HeaderMap,
    q: CallbackQuery,
) -> Result<(Project, IssuedToken, String), Refusal> {
    let people = state.people();
    let github = configured(people, true)?;
    let sealed = q
        .state
        .filter(|s| !s.is_empty())
        .ok_or(Refusal::MissingState)?;
    let web = open_web(people.sealer(), &sealed, state.acl().now()).map_err(Refusal::State)?;
    if cookie_nonce(headers).as_deref() != Some(web.nonce.as_str()) {
        return Err(Refusal::Replayed);
    }
    if let Some(error) = q.error {
        if error == "access_denied" {
            return Err(Refusal::Declined);
        }
        let clip = |s: &str| {
            s.chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect::<String>()
        };
        let why = match q.error_description {
            Some(d) => format!("{} ({})", clip(&error), clip(&d)),
            None => clip(&error),
        };
        return Err(Refusal::CodeRefused(why));
    }
    let code = q
        .code
        .filter(|c| !c.is_empty())
        .ok_or_else(|| Refusal::CodeRefused("the callback carries no code".into()))?;
    let (project, link) = linked(state, web.project.as_str()).await?;
    let redirect = callback_url(people)?;
    let token = github
        .client()
        .exchange(&code, &web.pkce_verifier, &redirect)
        .await
        .map_err(|e| match e {
            GithubError::OAuth { .. } => Refusal::CodeRefused(e.to_string()),
            e => github_failure(e),
        })?;
    let (issued, login) = grant(state, github, &project, &link, &token).await?;
    Ok((project, issued, login))
}

/// The token, shown once, with the lines that put td on it.
fn token_page(
    people: &People,
    project: &Project,
    issued: &IssuedToken,
    login: &str,
) -> (StatusCode, Html<String>) {
    let access = if issued.record.scopes.grants(tdsync_acl::Scope::Write) {
        "read and write"
    } else {
        "read-only"
    };
    let expires = issued
        .record
        .expires_at
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| "never".into());
    let lines = setup_lines(people.public_url(), issued.token.expose(), &project.name);
    let body = format!(
        "<p>Signed in with GitHub as <strong>{login}</strong>. This token gives {access} access \
         to the project <strong>{name}</strong> until {expires}; signing in again renews it.</p>\
         <p>It is shown only this once: copy it now. In a terminal, in your td project \
         (td 0.62 or later):</p><pre>{lines}</pre>\
         <p>Keep the token secret: anyone who has it can read the project.</p>",
        login = pages::escape(login),
        name = pages::escape(&project.name),
        expires = pages::escape(&expires),
        lines = pages::escape(&lines),
    );
    (StatusCode::OK, pages::page("Signed in with GitHub", &body))
}

fn json<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid json body: {e}")))
}

/// `POST /v1/auth/github/device/start`
#[utoipa::path(
    post, path = "/v1/auth/github/device/start", tag = "auth",
    request_body = GithubDeviceStart,
    responses(
        (status = 200, description = "Started: show `user_code` and `verification_uri`, then poll with `device_code` every `interval` seconds", body = GithubDeviceStarted),
        (status = 400, description = "Bad JSON, or no project", body = tdsync_protocol::wire::ErrorBody),
        (status = 404, description = "GitHub sign-in is not configured on this server, or the project does not exist or is not linked to a GitHub repository", body = tdsync_protocol::wire::ErrorBody),
        (status = 502, description = "GitHub refused to start a device flow (the app's configuration)", body = tdsync_protocol::wire::ErrorBody),
        (status = 503, description = "GitHub or the control plane is unavailable: try again", body = tdsync_protocol::wire::ErrorBody),
    )
)]
pub async fn device_start(
    State(state): State<AppState>,
    client: ClientAddress,
    body: Bytes,
) -> Result<Json<GithubDeviceStarted>, ApiError> {
    let request: GithubDeviceStart = json(&body)?;
    state.admit_login(
        &format!("github-device-client:{}", client.key()),
        login::PER_CLIENT,
    )?;
    let people = state.people();
    let github = configured(people, false).map_err(Refusal::api)?;
    let (project, _) = linked(&state, &request.project)
        .await
        .map_err(Refusal::api)?;
    let started = github
        .client()
        .device_start()
        .await
        .map_err(|e| github_failure(e).api())?;
    let device_code = seal_device(
        people.sealer(),
        &project.id,
        &started.device_code,
        started.expires_in,
        state.acl().now(),
    );
    Ok(Json(GithubDeviceStarted {
        device_code,
        user_code: started.user_code,
        verification_uri: started.verification_uri.to_string(),
        expires_in: started.expires_in,
        interval: started.interval,
    }))
}

/// `POST /v1/auth/github/device/poll`
#[utoipa::path(
    post, path = "/v1/auth/github/device/poll", tag = "auth",
    request_body = GithubDevicePoll,
    responses(
        (status = 200, description = "`pending`; `slow_down` with the new `interval`; or, once, `complete` with a token for the project (read-only; write when the link allows it and the person can push)", body = GithubPollAnswer),
        (status = 400, description = "Bad JSON, or a device code this server did not make", body = tdsync_protocol::wire::ErrorBody),
        (status = 403, description = "The person declined on GitHub, or their GitHub account cannot read the linked repository", body = tdsync_protocol::wire::ErrorBody),
        (status = 404, description = "GitHub sign-in is not configured, or the project is no longer linked", body = tdsync_protocol::wire::ErrorBody),
        (status = 410, description = "The device code expired, or was already used (`expired`)", body = tdsync_protocol::wire::ErrorBody),
        (status = 502, description = "GitHub answered something unexpected", body = tdsync_protocol::wire::ErrorBody),
        (status = 503, description = "GitHub or the control plane is unavailable: poll again", body = tdsync_protocol::wire::ErrorBody),
    )
)]
pub async fn device_poll(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<GithubPollAnswer>, ApiError> {
    let request: GithubDevicePoll = json(&body)?;
    poll(&state, &request.device_code)
        .await
        .map(Json)
        .map_err(Refusal::api)
}

async fn poll(state: &AppState, device_code: &str) -> Result<GithubPollAnswer, Refusal> {
    let people = state.people();
    let github = configured(people, false)?;
    let device =
        open_device(people.sealer(), device_code, state.acl().now()).map_err(|e| match e {
            BlobError::Expired => Refusal::DeviceExpired,
            BlobError::Unreadable => Refusal::BadDeviceCode,
        })?;
    let token = match github.client().device_poll(&device.device_code).await {
        Ok(DevicePoll::Pending) => return Ok(GithubPollAnswer::status("pending")),
        Ok(DevicePoll::SlowDown { interval }) => {
            return Ok(GithubPollAnswer {
                interval: Some(interval),
                ..GithubPollAnswer::status("slow_down")
            });
        }
        Ok(DevicePoll::Expired) => return Err(Refusal::DeviceExpired),
        Ok(DevicePoll::Denied) => return Err(Refusal::Declined),
        Ok(DevicePoll::Authorized(token)) => token,
        Err(e)
            if matches!(
                e.oauth_error(),
                Some("bad_verification_code" | "incorrect_device_code")
            ) =>
        {
            return Err(Refusal::DeviceUsed(
                e.oauth_error().unwrap_or_default().to_string(),
            ));
        }
        Err(e) => return Err(github_failure(e)),
    };
    let (project, link) = linked(state, device.project.as_str()).await?;
    let (issued, _) = grant(state, github, &project, &link, &token).await?;
    Ok(GithubPollAnswer {
        api_key: Some(issued.token.expose().to_string()),
        project_id: Some(project.id.to_string()),
        project_name: Some(project.name.clone()),
        scopes: Some(
            issued
                .record
                .scopes
                .names()
                .into_iter()
                .map(str::to_string)
                .collect(),
        ),
        expires_at: issued
            .record
            .expires_at
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        sync_url: Some(people.public_url().to_string()),
        ..GithubPollAnswer::status("complete")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nonce_cookie_is_secure_behind_https_and_cleared_alike() {
        let set = nonce_cookie("abc", 600, true).unwrap();
        assert_eq!(
            set.to_str().unwrap(),
            "tdsync_github=abc; Max-Age=600; Path=/login/github; HttpOnly; SameSite=Lax; Secure"
        );
        let clear = nonce_cookie("", 0, false).unwrap();
        assert_eq!(
            clear.to_str().unwrap(),
            "tdsync_github=; Max-Age=0; Path=/login/github; HttpOnly; SameSite=Lax"
        );
    }

    #[test]
    fn the_nonce_is_read_from_any_cookie_header() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; b=2"));
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("x=y; tdsync_github=abc123"),
        );
        assert_eq!(cookie_nonce(&headers).as_deref(), Some("abc123"));
        assert_eq!(cookie_nonce(&HeaderMap::new()), None);
    }

    #[test]
    fn refusals_name_their_cause_and_status() {
        let no_access = Refusal::NoAccess {
            login: "octocat".into(),
            repo: "acme/widgets".into(),
        }
        .api();
        assert_eq!(no_access.status, StatusCode::FORBIDDEN);
        assert!(
            no_access
                .message
                .contains("your GitHub account octocat cannot read acme/widgets"),
            "{}",
            no_access.message
        );
        let off = Refusal::NotConfigured { browser: false }.api();
        assert_eq!(off.status, StatusCode::NOT_FOUND);
        assert!(off.message.contains("--github-client-id"));
        assert_eq!(Refusal::Unavailable("x".into()).api().retry_after, Some(30));
        assert_eq!(Refusal::DeviceExpired.api().status, StatusCode::GONE);
    }
}
