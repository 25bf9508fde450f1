//! A fake GitHub for tests: a small axum server on 127.0.0.1 speaking GitHub's OAuth (web flow
//! with PKCE, device flow) and the two REST routes tdsync uses, closely enough that both
//! [`Github`] and a real browser work against it. People, repositories, grants and sessions are
//! set by the test while it runs.
//!
//! The methods a test calls panic on a test's own mistakes (an unknown login, a repository name
//! that cannot exist); nothing a request sends can make the server panic.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, HeaderName, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use parking_lot::Mutex;
use rand::Rng as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use url::Url;

use crate::{AccessToken, Github, GithubConfig, RepoName};

/// GitHub's lifetime of an authorization code.
const CODE_LIFETIME: Duration = Duration::from_secs(600);
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const DOCS: &str = "https://docs.github.com/rest";

/// A person's role on a repository, GitHub's five.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Perm {
    Read,
    Triage,
    Write,
    Maintain,
    Admin,
}

/// A person known to the fake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeUser {
    pub id: u64,
    pub login: String,
}

/// The fake GitHub. Stops accepting connections when dropped.
pub struct FakeGithub {
    state: Arc<Mutex<Fake>>,
    web_url: Url,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGithub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

struct Fake {
    client_id: String,
    client_secret: String,
    callback: Url,
    web_url: Url,
    /// By lower-cased login: GitHub's logins are case-insensitive.
    users: HashMap<String, UserRecord>,
    next_user_id: u64,
    /// By lower-cased full name.
    repos: HashMap<String, RepoRecord>,
    next_repo_id: u64,
    /// Token → lower-cased login.
    tokens: HashMap<String, String>,
    signed_in: Option<String>,
    codes: HashMap<String, CodeGrant>,
    codes_issued: usize,
    devices: HashMap<String, DeviceGrant>,
    device_interval: u64,
    device_expires_in: Duration,
    api_calls: HashMap<String, usize>,
    /// Every route answers 503, as GitHub does in an outage.
    unavailable: bool,
    /// The API answers 403 with an exhausted rate limit.
    rate_limited: bool,
}

struct UserRecord {
    id: u64,
    login: String,
    email: Option<String>,
}

struct RepoRecord {
    id: u64,
    name: RepoName,
    /// Lower-cased login → role.
    access: HashMap<String, Perm>,
}

struct CodeGrant {
    login: String,
    /// The redirect URI the code was sent to, and whether the client named it (then the token
    /// request must name it too).
    redirect_uri: Url,
    redirect_given: bool,
    challenge: Option<String>,
    scope: String,
    issued: Instant,
}

struct DeviceGrant {
    user_code: String,
    scope: String,
    issued: Instant,
    expires_in: Duration,
    interval: u64,
    last_poll: Option<Instant>,
    status: DeviceStatus,
}

#[derive(Clone, PartialEq, Eq)]
enum DeviceStatus {
    Pending,
    Approved(String),
    Denied,
    /// The token was collected.
    Used,
}

type Shared = Arc<Mutex<Fake>>;

impl FakeGithub {
    /// Starts the fake on a free port of 127.0.0.1, with one registered OAuth app.
    pub async fn start(
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        callback: Url,
    ) -> FakeGithub {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("FakeGithub: bind 127.0.0.1:0");
        let port = listener
            .local_addr()
            .expect("FakeGithub: local address")
            .port();
        let web_url =
            Url::parse(&format!("http://127.0.0.1:{port}/")).expect("FakeGithub: web URL");
        let state = Arc::new(Mutex::new(Fake {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            callback,
            web_url: web_url.clone(),
            users: HashMap::new(),
            next_user_id: 1001,
            repos: HashMap::new(),
            next_repo_id: 500_001,
            tokens: HashMap::new(),
            signed_in: None,
            codes: HashMap::new(),
            codes_issued: 0,
            devices: HashMap::new(),
            device_interval: 0,
            device_expires_in: Duration::from_secs(900),
            api_calls: HashMap::new(),
            unavailable: false,
            rate_limited: false,
        }));
        let router = Router::new()
            .route(
                "/login/oauth/authorize",
                get(authorize_page).post(authorize_submit),
            )
            .route("/login/oauth/access_token", post(access_token))
            .route("/login/device/code", post(device_code))
            .route("/login/device", get(device_page))
            .route("/api/user", get(api_user))
            .route("/api/repos/{owner}/{name}", get(api_repo))
            .fallback(not_found)
            .layer(axum::middleware::from_fn_with_state(state.clone(), outage))
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        FakeGithub {
            state,
            web_url,
            server,
        }
    }

    /// `http://127.0.0.1:PORT/`
    pub fn web_url(&self) -> Url {
        self.web_url.clone()
    }

    /// `http://127.0.0.1:PORT/api/`
    pub fn api_url(&self) -> Url {
        self.web_url.join("api/").expect("FakeGithub: API URL")
    }

    /// A configuration of [`Github`] pointing at this fake, with its app's credentials.
    pub fn config(&self) -> GithubConfig {
        let fake = self.state.lock();
        GithubConfig {
            web_url: self.web_url(),
            api_url: self.api_url(),
            client_id: fake.client_id.clone(),
            client_secret: Some(fake.client_secret.clone()),
        }
    }

    /// A client for this fake.
    pub fn github(&self) -> Github {
        Github::new(self.config()).expect("FakeGithub: client")
    }

    /// Adds a person. Panics if the login is taken.
    pub fn add_user(&self, login: &str) -> FakeUser {
        let mut fake = self.state.lock();
        let key = login.to_ascii_lowercase();
        assert!(
            !fake.users.contains_key(&key),
            "FakeGithub: user {login} already exists"
        );
        let id = fake.next_user_id;
        fake.next_user_id += 1;
        fake.users.insert(
            key,
            UserRecord {
                id,
                login: login.to_owned(),
                email: None,
            },
        );
        FakeUser {
            id,
            login: login.to_owned(),
        }
    }

    /// The person with this login, if added.
    pub fn user(&self, login: &str) -> Option<FakeUser> {
        let fake = self.state.lock();
        fake.users
            .get(&login.to_ascii_lowercase())
            .map(|u| FakeUser {
                id: u.id,
                login: u.login.clone(),
            })
    }

    /// Sets the public email `GET /user` shows.
    pub fn set_email(&self, login: &str, email: Option<&str>) {
        let mut fake = self.state.lock();
        let key = fake.user_key(login);
        if let Some(user) = fake.users.get_mut(&key) {
            user.email = email.map(str::to_owned);
        }
    }

    /// Gives (or with `None` takes away) a person's role on a repository. Repositories are
    /// private: without a role, GitHub answers 404.
    pub fn set_access(&self, login: &str, repo: &str, perm: Option<Perm>) {
        let name: RepoName = repo
            .parse()
            .unwrap_or_else(|e| panic!("FakeGithub: repository {repo:?}: {e}"));
        let mut fake = self.state.lock();
        let user = fake.user_key(login);
        let key = repo.to_ascii_lowercase();
        if !fake.repos.contains_key(&key) {
            let id = fake.next_repo_id;
            fake.next_repo_id += 1;
            fake.repos.insert(
                key.clone(),
                RepoRecord {
                    id,
                    name,
                    access: HashMap::new(),
                },
            );
        }
        let record = fake.repos.get_mut(&key).expect("inserted above");
        match perm {
            Some(perm) => record.access.insert(user, perm),
            None => record.access.remove(&user),
        };
    }

    /// Revokes every token of the person: GitHub answers 401 "Bad credentials" to them.
    pub fn revoke_tokens(&self, login: &str) {
        let mut fake = self.state.lock();
        let user = fake.user_key(login);
        fake.tokens.retain(|_, owner| *owner != user);
    }

    /// Makes `login` the person signed in to the browser's GitHub session: the authorize page
    /// acts as them.
    pub fn sign_in(&self, login: &str) {
        let mut fake = self.state.lock();
        let user = fake.user_key(login);
        fake.signed_in = Some(user);
    }

    pub fn sign_out(&self) {
        self.state.lock().signed_in = None;
    }

    /// A token for the person without any flow, as if they had signed in earlier.
    pub fn issue_token(&self, login: &str) -> AccessToken {
        let mut fake = self.state.lock();
        let user = fake.user_key(login);
        AccessToken::new(fake.issue_token(&user))
    }

    /// The person types `user_code` at the device page and approves. Panics if no pending
    /// device flow has that code.
    pub fn approve_device(&self, user_code: &str, login: &str) {
        let mut fake = self.state.lock();
        let user = fake.user_key(login);
        fake.pending_device(user_code).status = DeviceStatus::Approved(user);
    }

    /// The person types `user_code` and refuses.
    pub fn deny_device(&self, user_code: &str) {
        let mut fake = self.state.lock();
        fake.pending_device(user_code).status = DeviceStatus::Denied;
    }

    /// The polling interval (seconds) given to device flows started from now on; 0 (the
    /// default) lets tests poll at will, GitHub's is 5.
    pub fn set_device_interval(&self, seconds: u64) {
        self.state.lock().device_interval = seconds;
    }

    /// How long device flows started from now on live (GitHub's: 15 minutes).
    pub fn set_device_expires_in(&self, lifetime: Duration) {
        self.state.lock().device_expires_in = lifetime;
    }

    /// How many API requests reached `path`, relative to the API root (`/user`,
    /// `/repos/OWNER/NAME`; a leading `/api` is accepted too), whatever their answer.
    pub fn api_calls(&self, path: &str) -> usize {
        let path = path.strip_prefix("/api").unwrap_or(path);
        let path = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        self.state.lock().api_calls.get(&path).copied().unwrap_or(0)
    }

    /// While on, every route answers 503 (GitHub down): callers must treat it as transient.
    pub fn set_unavailable(&self, on: bool) {
        self.state.lock().unavailable = on;
    }

    /// While on, the API answers 403 with `x-ratelimit-remaining: 0` (GitHub's rate limit),
    /// which is not a refusal of access.
    pub fn set_rate_limited(&self, on: bool) {
        self.state.lock().rate_limited = on;
    }

    /// How many authorization codes the authorize endpoint has handed out.
    pub fn codes_issued(&self) -> usize {
        self.state.lock().codes_issued
    }
}

impl Fake {
    fn user_key(&self, login: &str) -> String {
        let key = login.to_ascii_lowercase();
        assert!(
            self.users.contains_key(&key),
            "FakeGithub: no user {login} (add_user first)"
        );
        key
    }

    fn pending_device(&mut self, user_code: &str) -> &mut DeviceGrant {
        let wanted = normalise_user_code(user_code);
        self.devices
            .values_mut()
            .find(|d| {
                normalise_user_code(&d.user_code) == wanted && d.status == DeviceStatus::Pending
            })
            .unwrap_or_else(|| panic!("FakeGithub: no pending device flow with code {user_code}"))
    }

    fn issue_token(&mut self, user: &str) -> String {
        let token = format!("gho_{}", random_alphanumeric(36));
        self.tokens.insert(token.clone(), user.to_owned());
        token
    }

    /// GitHub's rule: same scheme, host and port as the callback, and a path under its path.
    fn redirect_allowed(&self, redirect: &Url) -> bool {
        let callback = &self.callback;
        if redirect.scheme() != callback.scheme()
            || redirect.host_str() != callback.host_str()
            || redirect.port_or_known_default() != callback.port_or_known_default()
            || redirect.fragment().is_some()
        {
            return false;
        }
        let base = callback.path();
        let path = redirect.path();
        if base.ends_with('/') {
            path.starts_with(base)
        } else {
            path == base
                || path
                    .strip_prefix(base)
                    .is_some_and(|rest| rest.starts_with('/'))
        }
    }

    /// Checks an authorize request (page or form): the redirect URI to use, or the page to show.
    fn check_authorize(&self, params: &Params) -> Result<Authorize, ErrorPage> {
        if params.get("client_id") != Some(self.client_id.as_str()) {
            return Err(ErrorPage(
                StatusCode::NOT_FOUND,
                "Not Found",
                "<p>No OAuth application has this client_id.</p>",
            ));
        }
        let (redirect_uri, redirect_given) = match params.get("redirect_uri") {
            None | Some("") => (self.callback.clone(), false),
            Some(given) => match Url::parse(given) {
                Ok(url) if self.redirect_allowed(&url) => (url, true),
                _ => {
                    return Err(ErrorPage(
                        StatusCode::OK,
                        "Redirect URI mismatch",
                        "<p>The redirect_uri is not associated with this application.</p>",
                    ));
                }
            },
        };
        if params.get("response_type").is_some_and(|t| t != "code") {
            return Err(ErrorPage(
                StatusCode::OK,
                "Unsupported response type",
                "<p>Only response_type=code is supported.</p>",
            ));
        }
        let challenge = match (
            params.get("code_challenge"),
            params.get("code_challenge_method"),
        ) {
            (None, _) => None,
            (Some(challenge), Some("S256")) if is_s256_challenge(challenge) => {
                Some(challenge.to_owned())
            }
            _ => {
                return Err(ErrorPage(
                    StatusCode::OK,
                    "Invalid PKCE challenge",
                    "<p>code_challenge must be a SHA-256 challenge with code_challenge_method=S256.</p>",
                ));
            }
        };
        Ok(Authorize {
            redirect_uri,
            redirect_given,
            challenge,
            state: params.get("state").map(str::to_owned),
            scope: params.get("scope").unwrap_or("").to_owned(),
        })
    }
}

/// A page that ends an authorize request: status, title, HTML body.
struct ErrorPage(StatusCode, &'static str, &'static str);

impl ErrorPage {
    fn render(self) -> Response {
        page(self.0, self.1, self.2)
    }
}

struct Authorize {
    redirect_uri: Url,
    redirect_given: bool,
    challenge: Option<String>,
    state: Option<String>,
    scope: String,
}

/// Query or form pairs; the first of a repeated name wins.
struct Params(HashMap<String, String>);

impl Params {
    fn from_form(bytes: &[u8]) -> Params {
        let mut map = HashMap::new();
        for (key, value) in url::form_urlencoded::parse(bytes) {
            map.entry(key.into_owned()).or_insert(value.into_owned());
        }
        Params(map)
    }

    /// A JSON object's string (and number) members; anything else is ignored.
    fn from_json(bytes: &[u8]) -> Params {
        let mut map = HashMap::new();
        if let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(bytes) {
            for (key, value) in object {
                match value {
                    Value::String(s) => {
                        map.insert(key, s);
                    }
                    Value::Number(n) => {
                        map.insert(key, n.to_string());
                    }
                    _ => {}
                }
            }
        }
        Params(map)
    }

    /// A body as GitHub reads it: JSON when it says so, else a form.
    fn from_body(headers: &HeaderMap, body: &[u8]) -> Params {
        let json = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.to_ascii_lowercase().starts_with("application/json"));
        if json {
            Params::from_json(body)
        } else {
            Params::from_form(body)
        }
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
}

async fn authorize_page(State(state): State<Shared>, RawQuery(query): RawQuery) -> Response {
    let params = Params::from_form(query.unwrap_or_default().as_bytes());
    let fake = state.lock();
    let request = match fake.check_authorize(&params) {
        Ok(request) => request,
        Err(refusal) => return refusal.render(),
    };
    let Some(login) = fake.signed_in.as_ref().and_then(|u| fake.users.get(u)) else {
        return page(
            StatusCode::OK,
            "Sign in to GitHub",
            "<p>Sign in to GitHub to continue to the application.</p>",
        );
    };
    let mut fields = vec![
        ("client_id", fake.client_id.clone()),
        ("redirect_uri", request.redirect_uri.to_string()),
        ("scope", request.scope.clone()),
        ("authorize", "1".to_owned()),
    ];
    if !request.redirect_given {
        fields.retain(|(k, _)| *k != "redirect_uri");
    }
    if let Some(state) = &request.state {
        fields.push(("state", state.clone()));
    }
    if let Some(challenge) = &request.challenge {
        fields.push(("code_challenge", challenge.clone()));
        fields.push(("code_challenge_method", "S256".to_owned()));
    }
    let inputs: String = fields
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
                escape(k),
                escape(v)
            )
        })
        .collect();
    // `form.submit()` sends no submitter, hence `authorize` as a hidden field.
    let body = format!(
        "<p>Signed in as <strong>{login}</strong>.</p>\n\
         <form method=\"post\" action=\"/login/oauth/authorize\">\n{inputs}\
         <button type=\"submit\">Authorize</button>\n</form>\n\
         <script>document.forms[0].submit()</script>",
        login = escape(&login.login),
    );
    page(
        StatusCode::OK,
        &format!("Authorize {}", escape(&fake.client_id)),
        &body,
    )
}

async fn authorize_submit(State(state): State<Shared>, body: Bytes) -> Response {
    let params = Params::from_form(&body);
    let mut fake = state.lock();
    let request = match fake.check_authorize(&params) {
        Ok(request) => request,
        Err(refusal) => return refusal.render(),
    };
    let Some(login) = fake.signed_in.clone() else {
        return page(
            StatusCode::OK,
            "Sign in to GitHub",
            "<p>Sign in to GitHub to continue to the application.</p>",
        );
    };
    let mut location = request.redirect_uri.clone();
    if params.get("authorize") == Some("1") {
        let code = random_hex(20);
        fake.codes.insert(
            code.clone(),
            CodeGrant {
                login,
                redirect_uri: request.redirect_uri,
                redirect_given: request.redirect_given,
                challenge: request.challenge,
                scope: request.scope,
                issued: Instant::now(),
            },
        );
        fake.codes_issued += 1;
        location.query_pairs_mut().append_pair("code", &code);
    } else {
        location
            .query_pairs_mut()
            .append_pair("error", "access_denied")
            .append_pair(
                "error_description",
                "The user has denied your application access.",
            );
    }
    if let Some(state) = &request.state {
        location.query_pairs_mut().append_pair("state", state);
    }
    (StatusCode::FOUND, [(LOCATION, location.to_string())]).into_response()
}

async fn access_token(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let params = Params::from_body(&headers, &body);
    let reply = OauthReply::for_request(&headers);
    let mut fake = state.lock();
    match params.get("grant_type") {
        // GitHub's web flow does not require grant_type.
        None | Some("authorization_code") => code_grant(&mut fake, &headers, &params, reply),
        Some(DEVICE_GRANT) => device_grant(&mut fake, &params, reply),
        Some(_) => reply.error(
            "unsupported_grant_type",
            "The grant type is not supported.",
            &[],
        ),
    }
}

fn code_grant(
    fake: &mut Fake,
    headers: &HeaderMap,
    params: &Params,
    reply: OauthReply,
) -> Response {
    let (client_id, client_secret) = match basic_credentials(headers) {
        Some((id, secret)) => (Some(id), Some(secret)),
        None => (
            params.get("client_id").map(str::to_owned),
            params.get("client_secret").map(str::to_owned),
        ),
    };
    if client_id.as_deref() != Some(fake.client_id.as_str())
        || client_secret.as_deref() != Some(fake.client_secret.as_str())
    {
        return reply.error(
            "incorrect_client_credentials",
            "The client_id and/or client_secret passed are incorrect.",
            &[],
        );
    }
    let bad_code = |reply: OauthReply| {
        reply.error(
            "bad_verification_code",
            "The code passed is incorrect or expired.",
            &[],
        )
    };
    // Single use: any attempt spends the code.
    let Some(grant) = params.get("code").and_then(|c| fake.codes.remove(c)) else {
        return bad_code(reply);
    };
    if grant.issued.elapsed() > CODE_LIFETIME {
        return bad_code(reply);
    }
    let redirect_ok = match params.get("redirect_uri") {
        None => !grant.redirect_given,
        Some(given) => Url::parse(given).is_ok_and(|u| u == grant.redirect_uri),
    };
    if !redirect_ok {
        return reply.error(
            "redirect_uri_mismatch",
            "The redirect_uri MUST match the registered callback URL for this application.",
            &[],
        );
    }
    if let Some(challenge) = &grant.challenge {
        let verified = params
            .get("code_verifier")
            .is_some_and(|v| URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes())) == *challenge);
        if !verified {
            return bad_code(reply);
        }
    }
    let token = fake.issue_token(&grant.login);
    reply.token(&token, &grant.scope)
}

fn device_grant(fake: &mut Fake, params: &Params, reply: OauthReply) -> Response {
    if params.get("client_id") != Some(fake.client_id.as_str()) {
        return reply.error(
            "incorrect_client_credentials",
            "The client_id and/or client_secret passed are incorrect.",
            &[],
        );
    }
    let Some(device) = params
        .get("device_code")
        .and_then(|code| fake.devices.get_mut(code))
    else {
        return reply.error(
            "incorrect_device_code",
            "The device_code provided is not valid.",
            &[],
        );
    };
    if device.status == DeviceStatus::Used {
        return reply.error(
            "bad_verification_code",
            "The device_code has already been used.",
            &[],
        );
    }
    let now = Instant::now();
    if now.duration_since(device.issued) >= device.expires_in {
        return reply.error("expired_token", "The device_code has expired.", &[]);
    }
    let since = now.duration_since(device.last_poll.unwrap_or(device.issued));
    device.last_poll = Some(now);
    if since < Duration::from_secs(device.interval) {
        // RFC 8628 §3.5: every slow_down adds 5 seconds to the interval.
        device.interval += 5;
        let interval = device.interval;
        return reply.error(
            "slow_down",
            "Too many requests have been made in the same timeframe.",
            &[("interval", json!(interval))],
        );
    }
    match device.status.clone() {
        DeviceStatus::Pending => reply.error(
            "authorization_pending",
            "The authorization request is still pending.",
            &[],
        ),
        DeviceStatus::Denied => reply.error(
            "access_denied",
            "The authorization request was denied.",
            &[],
        ),
        DeviceStatus::Approved(login) => {
            device.status = DeviceStatus::Used;
            let scope = device.scope.clone();
            let token = fake.issue_token(&login);
            reply.token(&token, &scope)
        }
        DeviceStatus::Used => reply.error(
            "bad_verification_code",
            "The device_code has already been used.",
            &[],
        ),
    }
}

async fn device_code(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let params = Params::from_body(&headers, &body);
    let reply = OauthReply::for_request(&headers);
    let mut fake = state.lock();
    if params.get("client_id") != Some(fake.client_id.as_str()) {
        return reply.error(
            "incorrect_client_credentials",
            "The client_id and/or client_secret passed are incorrect.",
            &[],
        );
    }
    let device_code = random_hex(40);
    let user_code = format!(
        "{}-{}",
        random_from(b"ABCDEFGHJKLMNPQRSTUVWXYZ", 4),
        random_from(b"0123456789", 4)
    );
    let expires_in = fake.device_expires_in;
    let interval = fake.device_interval;
    fake.devices.insert(
        device_code.clone(),
        DeviceGrant {
            user_code: user_code.clone(),
            scope: params.get("scope").unwrap_or("").to_owned(),
            issued: Instant::now(),
            expires_in,
            interval,
            last_poll: None,
            status: DeviceStatus::Pending,
        },
    );
    let verification_uri = fake
        .web_url
        .join("login/device")
        .map(|u| u.to_string())
        .unwrap_or_default();
    // Whole seconds, rounded up: a lifetime under a second still reads as one.
    let expires_secs = expires_in.as_secs() + u64::from(expires_in.subsec_nanos() > 0);
    reply.ok(&[
        ("device_code", json!(device_code)),
        ("user_code", json!(user_code)),
        ("verification_uri", json!(verification_uri)),
        ("expires_in", json!(expires_secs)),
        ("interval", json!(interval)),
    ])
}

async fn outage(
    State(state): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (unavailable, rate_limited) = {
        let fake = state.lock();
        (fake.unavailable, fake.rate_limited)
    };
    if unavailable {
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unicorn!",
            "<p>No server is currently available to service your request.</p>",
        );
    }
    let api = request.uri().path().starts_with("/api/");
    // GitHub refuses API requests that do not say who is asking.
    if api
        && !request
            .headers()
            .contains_key(axum::http::header::USER_AGENT)
    {
        let body = json!({ "message": "Request forbidden by administrative rules. Please make sure your request has a User-Agent header." });
        return (
            StatusCode::FORBIDDEN,
            [(CONTENT_TYPE, "application/json; charset=utf-8")],
            body.to_string(),
        )
            .into_response();
    }
    if rate_limited && api {
        let body =
            json!({ "message": "API rate limit exceeded for user.", "documentation_url": DOCS });
        return (
            StatusCode::FORBIDDEN,
            [
                (CONTENT_TYPE, "application/json; charset=utf-8"),
                (HeaderName::from_static("x-ratelimit-remaining"), "0"),
                (HeaderName::from_static("x-ratelimit-reset"), "1700000000"),
            ],
            body.to_string(),
        )
            .into_response();
    }
    next.run(request).await
}

async fn device_page() -> Response {
    page(
        StatusCode::OK,
        "Device activation",
        "<p>Enter the code displayed on your device.</p>",
    )
}

/// Counts the call; the token's owner, if the token is live.
fn api_caller(fake: &mut Fake, uri: &Uri, headers: &HeaderMap) -> Option<String> {
    let path = uri.path().strip_prefix("/api").unwrap_or(uri.path());
    *fake.api_calls.entry(path.to_owned()).or_default() += 1;
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| {
            scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token")
        })
        .map(|(_, token)| token.trim());
    token.and_then(|t| fake.tokens.get(t)).cloned()
}

async fn api_user(State(state): State<Shared>, uri: Uri, headers: HeaderMap) -> Response {
    let mut fake = state.lock();
    let Some(user) = api_caller(&mut fake, &uri, &headers) else {
        return api_error(StatusCode::UNAUTHORIZED, "Bad credentials");
    };
    let Some(record) = fake.users.get(&user) else {
        return api_error(StatusCode::UNAUTHORIZED, "Bad credentials");
    };
    api_json(json!({
        "login": record.login,
        "id": record.id,
        "node_id": format!("U_{}", record.id),
        "type": "User",
        "site_admin": false,
        "name": null,
        "email": record.email,
    }))
}

async fn api_repo(
    State(state): State<Shared>,
    Path((owner, name)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let mut fake = state.lock();
    let Some(user) = api_caller(&mut fake, &uri, &headers) else {
        return api_error(StatusCode::UNAUTHORIZED, "Bad credentials");
    };
    let key = format!("{owner}/{name}").to_ascii_lowercase();
    let Some(repo) = fake.repos.get(&key) else {
        return api_error(StatusCode::NOT_FOUND, "Not Found");
    };
    let Some(perm) = repo.access.get(&user).copied() else {
        return api_error(StatusCode::NOT_FOUND, "Not Found");
    };
    let owner_id = fake
        .users
        .get(&repo.name.owner().to_ascii_lowercase())
        .map_or(repo.id + 1_000_000, |u| u.id);
    let at_least = |p: Perm| rank(perm) >= rank(p);
    api_json(json!({
        "id": repo.id,
        "node_id": format!("R_{}", repo.id),
        "name": repo.name.name(),
        "full_name": repo.name.to_string(),
        "private": true,
        "owner": { "login": repo.name.owner(), "id": owner_id },
        "permissions": {
            "admin": at_least(Perm::Admin),
            "maintain": at_least(Perm::Maintain),
            "push": at_least(Perm::Write),
            "triage": at_least(Perm::Triage),
            "pull": true,
        },
    }))
}

async fn not_found() -> Response {
    api_error(StatusCode::NOT_FOUND, "Not Found")
}

fn rank(perm: Perm) -> u8 {
    match perm {
        Perm::Read => 0,
        Perm::Triage => 1,
        Perm::Write => 2,
        Perm::Maintain => 3,
        Perm::Admin => 4,
    }
}

fn api_json(body: Value) -> Response {
    (
        StatusCode::OK,
        [
            (CONTENT_TYPE, "application/json; charset=utf-8"),
            (HeaderName::from_static("x-ratelimit-remaining"), "4999"),
        ],
        body.to_string(),
    )
        .into_response()
}

fn api_error(status: StatusCode, message: &str) -> Response {
    let body = json!({ "message": message, "documentation_url": DOCS, "status": status.as_u16().to_string() });
    (
        status,
        [(CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

/// How an OAuth endpoint answers: JSON when asked for, else a form like GitHub's default.
#[derive(Clone, Copy)]
struct OauthReply {
    json: bool,
}

impl OauthReply {
    fn for_request(headers: &HeaderMap) -> OauthReply {
        let json = headers
            .get(ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("application/json"));
        OauthReply { json }
    }

    fn ok(self, fields: &[(&str, Value)]) -> Response {
        if self.json {
            let object: serde_json::Map<String, Value> = fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect();
            (
                StatusCode::OK,
                [(CONTENT_TYPE, "application/json; charset=utf-8")],
                Value::Object(object).to_string(),
            )
                .into_response()
        } else {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            for (key, value) in fields {
                match value {
                    Value::String(s) => form.append_pair(key, s),
                    other => form.append_pair(key, &other.to_string()),
                };
            }
            (
                StatusCode::OK,
                [(
                    CONTENT_TYPE,
                    "application/x-www-form-urlencoded; charset=utf-8",
                )],
                form.finish(),
            )
                .into_response()
        }
    }

    /// GitHub's OAuth errors: HTTP 200 with an `error` field.
    fn error(self, error: &str, description: &str, extra: &[(&str, Value)]) -> Response {
        let mut fields = vec![
            ("error", json!(error)),
            ("error_description", json!(description)),
            (
                "error_uri",
                json!(
                    "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors"
                ),
            ),
        ];
        fields.extend(extra.iter().cloned());
        self.ok(&fields)
    }

    fn token(self, token: &str, scope: &str) -> Response {
        self.ok(&[
            ("access_token", json!(token)),
            ("token_type", json!("bearer")),
            ("scope", json!(scope)),
        ])
    }
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    // RFC 6749 §2.3.1: both parts are form-encoded before being joined.
    let unform = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unform(id), unform(secret)))
}

/// An HTML page like GitHub's: a title and a body that is already HTML.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
         <body><h1>{title}</h1>\n{body}\n</body></html>\n"
    );
    (status, Html(html)).into_response()
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// RFC 7636: BASE64URL(SHA256(verifier)) without padding is 43 characters.
fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn normalise_user_code(code: &str) -> String {
    code.chars()
        .filter(|c| *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

fn random_alphanumeric(len: usize) -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

fn random_from(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
        .collect()
}

fn random_hex(len: usize) -> String {
    random_from(b"0123456789abcdef", len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(callback: &str) -> Fake {
        Fake {
            client_id: "id".into(),
            client_secret: "secret".into(),
            callback: Url::parse(callback).unwrap(),
            web_url: Url::parse("http://127.0.0.1:1/").unwrap(),
            users: HashMap::new(),
            next_user_id: 1,
            repos: HashMap::new(),
            next_repo_id: 1,
            tokens: HashMap::new(),
            signed_in: None,
            codes: HashMap::new(),
            codes_issued: 0,
            devices: HashMap::new(),
            device_interval: 0,
            device_expires_in: Duration::from_secs(1),
            api_calls: HashMap::new(),
            unavailable: false,
            rate_limited: false,
        }
    }

    #[test]
    fn redirect_uris_follow_githubs_rule() {
        let f = fake("http://127.0.0.1:8080/auth/github");
        let ok = |u: &str| f.redirect_allowed(&Url::parse(u).unwrap());
        assert!(ok("http://127.0.0.1:8080/auth/github"));
        assert!(ok("http://127.0.0.1:8080/auth/github/done?x=1"));
        assert!(!ok("http://127.0.0.1:8080/auth/githubx"));
        assert!(!ok("http://127.0.0.1:8080/auth"));
        assert!(!ok("http://127.0.0.1:8081/auth/github"));
        assert!(!ok("https://127.0.0.1:8080/auth/github"));
        assert!(!ok("http://localhost:8080/auth/github"));
        // Dot segments are resolved by the URL parser before the check.
        assert!(!ok("http://127.0.0.1:8080/auth/github/../other"));
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let mut headers = HeaderMap::new();
        let value = format!("Basic {}", STANDARD.encode("my%20id:s%3Acret"));
        headers.insert(AUTHORIZATION, value.parse().unwrap());
        assert_eq!(
            basic_credentials(&headers),
            Some(("my id".to_owned(), "s:cret".to_owned()))
        );
    }
}
