//! The client: OAuth web flow (through `oauth2`), device flow and REST calls (by hand).

use std::sync::Arc;
use std::time::Duration;

use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope,
    TokenResponse, TokenUrl,
};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::{Map, Value};
use url::Url;

use crate::error::clip;
use crate::{
    AccessToken, Authorization, DevicePoll, DeviceStart, GithubConfig, GithubError, GithubUser,
    RepoAccess, RepoName, SCOPE,
};

const TIMEOUT: Duration = Duration::from_secs(10);
/// GitHub's answers are a few KiB; anything far larger is not GitHub answering.
const MAX_BODY: usize = 1 << 20;
const API_VERSION: &str = "2022-11-28";
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

const EP_TOKEN: &str = "POST /login/oauth/access_token";
const EP_DEVICE: &str = "POST /login/device/code";
const EP_USER: &str = "GET /user";

type OauthClient =
    BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// tdsync's client for GitHub. Cheap to clone: clones share connections.
#[derive(Clone)]
pub struct Github {
    inner: Arc<Inner>,
}

struct Inner {
    authorize_url: Url,
    token_url: Url,
    device_code_url: Url,
    api_url: Url,
    client_id: String,
    client_secret: Option<String>,
    /// OAuth endpoints: never follows redirects (a token request must go where it was meant to).
    oauth_http: reqwest::Client,
    /// The REST API: follows GitHub's redirects for renamed repositories (reqwest drops the
    /// Authorization header when a redirect leaves the host).
    api_http: reqwest::Client,
}

impl std::fmt::Debug for Github {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Github")
            .field("authorize_url", &self.inner.authorize_url.as_str())
            .field("api_url", &self.inner.api_url.as_str())
            .field("client_id", &self.inner.client_id)
            .finish_non_exhaustive()
    }
}

impl Github {
    pub fn new(config: GithubConfig) -> Result<Github, GithubError> {
        if config.client_id.trim().is_empty() {
            return Err(GithubError::Config("the client id is empty".into()));
        }
        let web = base_url(config.web_url, "web URL")?;
        let api = base_url(config.api_url, "API URL")?;
        let join = |path: &str| {
            web.join(path)
                .map_err(|e| GithubError::Config(format!("web URL + {path}: {e}")))
        };
        let builder = || {
            reqwest::Client::builder()
                .user_agent("tdsync")
                .timeout(TIMEOUT)
                .connect_timeout(TIMEOUT)
        };
        let tls = |e: reqwest::Error| GithubError::Config(format!("HTTP client: {}", chain(&e)));
        Ok(Github {
            inner: Arc::new(Inner {
                authorize_url: join("login/oauth/authorize")?,
                token_url: join("login/oauth/access_token")?,
                device_code_url: join("login/device/code")?,
                api_url: api,
                client_id: config.client_id,
                client_secret: config.client_secret,
                oauth_http: builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(tls)?,
                api_http: builder()
                    .redirect(reqwest::redirect::Policy::limited(5))
                    .build()
                    .map_err(tls)?,
            }),
        })
    }

    /// Starts the web flow: the URL to send the browser to, with a fresh CSRF state and PKCE
    /// (S256) challenge. `redirect_uri` must be under the OAuth app's registered callback URL.
    pub fn authorize(&self, redirect_uri: &Url) -> Authorization {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state) = self
            .oauth_client()
            .set_redirect_uri(RedirectUrl::from_url(redirect_uri.clone()))
            .authorize_url(CsrfToken::new_random)
            .add_scope(Scope::new(SCOPE.into()))
            .set_pkce_challenge(challenge)
            .url();
        Authorization {
            url,
            state: state.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        }
    }

    /// Ends the web flow: trades the callback's `code` for the person's token. The caller has
    /// already checked the callback's `state` against [`Authorization::state`].
    pub async fn exchange(
        &self,
        code: &str,
        pkce_verifier: &str,
        redirect_uri: &Url,
    ) -> Result<AccessToken, GithubError> {
        let http = self.inner.oauth_http.clone();
        let send = move |request: oauth2::HttpRequest| {
            let http = http.clone();
            async move { oauth_send(&http, request).await }
        };
        let answer = self
            .oauth_client()
            .set_redirect_uri(RedirectUrl::from_url(redirect_uri.clone()))
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&send)
            .await;
        match answer {
            Ok(response) => {
                let token = response.access_token().secret();
                if token.is_empty() {
                    return Err(protocol(EP_TOKEN, "the access_token is empty"));
                }
                Ok(AccessToken::new(token.clone()))
            }
            Err(RequestTokenError::ServerResponse(refusal)) => Err(GithubError::OAuth {
                endpoint: EP_TOKEN.into(),
                error: clip(refusal.error().as_ref()),
                description: refusal.error_description().map(|d| clip(d)),
            }),
            Err(RequestTokenError::Request(e)) => Err(e),
            // The path names the field; the serde message and the body might hold a token.
            Err(RequestTokenError::Parse(e, _body)) => Err(protocol(
                EP_TOKEN,
                &format!("the token answer is not understood (at `{}`)", e.path()),
            )),
            Err(RequestTokenError::Other(message)) => Err(protocol(EP_TOKEN, &clip(&message))),
        }
    }

    /// Starts a device flow: the codes to show the person and to poll with.
    pub async fn device_start(&self) -> Result<DeviceStart, GithubError> {
        let request = self
            .inner
            .oauth_http
            .post(self.inner.device_code_url.clone())
            .header(ACCEPT, "application/json")
            .form(&[
                ("client_id", self.inner.client_id.as_str()),
                ("scope", SCOPE),
            ]);
        let reply = send(request, EP_DEVICE).await?;
        let body = oauth_body(&reply, EP_DEVICE)?;
        if let Some(refusal) = oauth_refusal(&body, EP_DEVICE) {
            return Err(refusal);
        }
        if reply.status != StatusCode::OK {
            return Err(unexpected_status(EP_DEVICE, reply.status));
        }
        let verification_uri = required_str(&body, "verification_uri", EP_DEVICE)?;
        Ok(DeviceStart {
            device_code: required_str(&body, "device_code", EP_DEVICE)?.to_owned(),
            user_code: required_str(&body, "user_code", EP_DEVICE)?.to_owned(),
            verification_uri: Url::parse(verification_uri)
                .map_err(|e| protocol(EP_DEVICE, &format!("verification_uri is not a URL: {e}")))?,
            expires_in: required_u64(&body, "expires_in", EP_DEVICE)?,
            interval: optional_u64(&body, "interval", EP_DEVICE)?.unwrap_or(5),
        })
    }

    /// Polls a device flow once. Wait [`DeviceStart::interval`] seconds between polls (or the
    /// interval a [`DevicePoll::SlowDown`] gave).
    pub async fn device_poll(&self, device_code: &str) -> Result<DevicePoll, GithubError> {
        let request = self
            .inner
            .oauth_http
            .post(self.inner.token_url.clone())
            .header(ACCEPT, "application/json")
            .form(&[
                ("client_id", self.inner.client_id.as_str()),
                ("device_code", device_code),
                ("grant_type", DEVICE_GRANT),
            ]);
        let reply = send(request, EP_TOKEN).await?;
        let body = oauth_body(&reply, EP_TOKEN)?;
        // GitHub answers the flow's states with 200 and an `error` field; others answer 400.
        match body.get("error").and_then(Value::as_str) {
            Some("authorization_pending") => return Ok(DevicePoll::Pending),
            Some("slow_down") => {
                // RFC 8628 §3.5: without a new interval, add 5 s to GitHub's default 5 s.
                let interval = optional_u64(&body, "interval", EP_TOKEN)?.unwrap_or(10);
                return Ok(DevicePoll::SlowDown { interval });
            }
            Some("expired_token") => return Ok(DevicePoll::Expired),
            Some("access_denied") => return Ok(DevicePoll::Denied),
            _ => {}
        }
        if let Some(refusal) = oauth_refusal(&body, EP_TOKEN) {
            return Err(refusal);
        }
        if reply.status != StatusCode::OK {
            return Err(unexpected_status(EP_TOKEN, reply.status));
        }
        let token = required_str(&body, "access_token", EP_TOKEN)?;
        if token.is_empty() {
            return Err(protocol(EP_TOKEN, "the access_token is empty"));
        }
        Ok(DevicePoll::Authorized(AccessToken::new(token)))
    }

    /// Who the token belongs to.
    pub async fn user(&self, token: &AccessToken) -> Result<GithubUser, GithubError> {
        let url = self.api_endpoint(&["user"]);
        let reply = send(self.api_get(url, token, EP_USER)?, EP_USER).await?;
        match reply.status {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED => return Err(unauthorized(EP_USER, &reply)),
            status => return Err(api_failure(EP_USER, status, &reply)),
        }
        let body = json_object(&reply.body, EP_USER)?;
        Ok(GithubUser {
            id: required_u64(&body, "id", EP_USER)?,
            login: required_str(&body, "login", EP_USER)?.to_owned(),
            email: match body.get("email") {
                None | Some(Value::Null) => None,
                Some(Value::String(email)) => Some(email.clone()),
                Some(_) => return Err(protocol(EP_USER, "field `email` is not a string")),
            },
        })
    }

    /// What the token may do with the repository.
    pub async fn repo_access(
        &self,
        token: &AccessToken,
        repo: &RepoName,
    ) -> Result<RepoAccess, GithubError> {
        let endpoint = format!("GET /repos/{repo}");
        let url = self.api_endpoint(&["repos", repo.owner(), repo.name()]);
        let reply = send(self.api_get(url, token, &endpoint)?, &endpoint).await?;
        match reply.status {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED => return Err(unauthorized(&endpoint, &reply)),
            // GitHub hides a private repository from those who cannot see it with a 404.
            StatusCode::NOT_FOUND => return Ok(RepoAccess::None),
            StatusCode::FORBIDDEN if !rate_limited(&reply) => return Ok(RepoAccess::None),
            status => return Err(api_failure(&endpoint, status, &reply)),
        }
        let body = json_object(&reply.body, &endpoint)?;
        let permissions = match body.get("permissions") {
            Some(Value::Object(p)) => p,
            // Without `permissions`, a public repository is still readable by anyone.
            None if body.get("private") == Some(&Value::Bool(false)) => {
                return Ok(RepoAccess::Read);
            }
            _ => {
                return Err(protocol(
                    &endpoint,
                    "field `permissions` missing or not an object",
                ));
            }
        };
        let has = |key: &str| permissions.get(key) == Some(&Value::Bool(true));
        Ok(if has("admin") || has("maintain") || has("push") {
            RepoAccess::Write
        } else if has("pull") || has("triage") {
            RepoAccess::Read
        } else {
            RepoAccess::None
        })
    }

    fn oauth_client(&self) -> OauthClient {
        let mut client = BasicClient::new(ClientId::new(self.inner.client_id.clone()))
            .set_auth_uri(AuthUrl::from_url(self.inner.authorize_url.clone()))
            .set_token_uri(TokenUrl::from_url(self.inner.token_url.clone()))
            // GitHub documents the credentials as form fields.
            .set_auth_type(AuthType::RequestBody);
        if let Some(secret) = &self.inner.client_secret {
            client = client.set_client_secret(ClientSecret::new(secret.clone()));
        }
        client
    }

    fn api_endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.inner.api_url.clone();
        // The base was checked to be a base URL in `new`; segments are escaped by `url`.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn api_get(
        &self,
        url: Url,
        token: &AccessToken,
        endpoint: &str,
    ) -> Result<reqwest::RequestBuilder, GithubError> {
        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", token.secret()))
            .ok()
            .filter(|_| well_formed(token.secret()))
            .ok_or_else(|| GithubError::Unauthorized {
                endpoint: endpoint.to_owned(),
                message: "the token is not a well-formed GitHub token (not sent)".into(),
            })?;
        authorization.set_sensitive(true);
        Ok(self
            .inner
            .api_http
            .get(url)
            .header(reqwest::header::AUTHORIZATION, authorization)
            .header(ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", API_VERSION))
    }
}

/// GitHub's tokens are short and printable; anything else cannot be one.
fn well_formed(token: &str) -> bool {
    !token.is_empty() && token.len() <= 1024 && token.bytes().all(|b| b.is_ascii_graphic())
}

fn base_url(mut url: Url, what: &str) -> Result<Url, GithubError> {
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(GithubError::Config(format!(
            "the {what} {url} is not an http(s) URL with a host"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(GithubError::Config(format!(
            "the {what} {url} has a query or fragment"
        )));
    }
    // `join` replaces the last segment unless the path ends with `/`.
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// A reply read whole (up to [`MAX_BODY`]).
pub(crate) struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

async fn send(request: reqwest::RequestBuilder, endpoint: &str) -> Result<Reply, GithubError> {
    let mut response = request
        .send()
        .await
        .map_err(|e| transport_error(e, endpoint))?;
    let status = response.status();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(e, endpoint))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(protocol(
                endpoint,
                &format!("the answer is larger than {MAX_BODY} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        return Err(GithubError::Unavailable {
            endpoint: endpoint.to_owned(),
            reason: format!("HTTP {status}"),
        });
    }
    Ok(Reply {
        status,
        headers,
        body,
    })
}

fn transport_error(error: reqwest::Error, endpoint: &str) -> GithubError {
    // Without the URL: ours carry no secret, but the endpoint name says enough.
    let error = error.without_url();
    if error.is_builder() {
        return GithubError::Config(format!("request to {endpoint}: {}", chain(&error)));
    }
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "the exchange failed"
    };
    GithubError::Unavailable {
        endpoint: endpoint.to_owned(),
        reason: format!("{what}: {}", chain(&error)),
    }
}

/// An error and its sources on one line (reqwest's own message omits the cause).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The oauth2 crate's HTTP client: our reqwest, with GitHub's 200-with-`error` answers turned
/// into the 400 that RFC 6749 §5.2 prescribes so that oauth2 parses them as refusals.
async fn oauth_send(
    http: &reqwest::Client,
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, GithubError> {
    let (parts, body) = request.into_parts();
    let url = parts.uri.to_string();
    let request = http
        .request(parts.method, url)
        .headers(parts.headers)
        .body(body);
    let reply = send(request, EP_TOKEN).await?;
    let mut status = reply.status;
    if status == StatusCode::OK
        && let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&reply.body)
        && body.get("error").is_some_and(Value::is_string)
    {
        status = StatusCode::BAD_REQUEST;
    }
    let mut response = oauth2::http::Response::new(reply.body);
    *response.status_mut() = status;
    if let Some(content_type) = reply.headers.get(CONTENT_TYPE) {
        response
            .headers_mut()
            .insert(CONTENT_TYPE, content_type.clone());
    }
    Ok(response)
}

/// The JSON object an OAuth endpoint answers with, whatever its status.
fn oauth_body(reply: &Reply, endpoint: &str) -> Result<Map<String, Value>, GithubError> {
    json_object(&reply.body, endpoint).map_err(|e| {
        if reply.status.is_success() {
            e
        } else {
            unexpected_status(endpoint, reply.status)
        }
    })
}

fn oauth_refusal(body: &Map<String, Value>, endpoint: &str) -> Option<GithubError> {
    let error = body.get("error")?.as_str()?;
    Some(GithubError::OAuth {
        endpoint: endpoint.to_owned(),
        error: clip(error),
        description: body
            .get("error_description")
            .and_then(Value::as_str)
            .map(clip),
    })
}

fn json_object(body: &[u8], endpoint: &str) -> Result<Map<String, Value>, GithubError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(protocol(endpoint, "the answer is JSON but not an object")),
        // Category and position only: serde's message may quote the body.
        Err(e) => Err(protocol(
            endpoint,
            &format!(
                "the answer is not JSON ({:?} error at line {} column {})",
                e.classify(),
                e.line(),
                e.column()
            ),
        )),
    }
}

fn required_str<'a>(
    body: &'a Map<String, Value>,
    key: &str,
    endpoint: &str,
) -> Result<&'a str, GithubError> {
    body.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| protocol(endpoint, &format!("field `{key}` missing or not a string")))
}

fn required_u64(body: &Map<String, Value>, key: &str, endpoint: &str) -> Result<u64, GithubError> {
    optional_u64(body, key, endpoint)?
        .ok_or_else(|| protocol(endpoint, &format!("field `{key}` missing")))
}

fn optional_u64(
    body: &Map<String, Value>,
    key: &str,
    endpoint: &str,
) -> Result<Option<u64>, GithubError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value.as_u64().map(Some).ok_or_else(|| {
            protocol(
                endpoint,
                &format!("field `{key}` is not a non-negative integer"),
            )
        }),
    }
}

fn protocol(endpoint: &str, detail: &str) -> GithubError {
    GithubError::Protocol {
        endpoint: endpoint.to_owned(),
        detail: detail.to_owned(),
    }
}

fn unexpected_status(endpoint: &str, status: StatusCode) -> GithubError {
    protocol(endpoint, &format!("unexpected status {status}"))
}

/// GitHub's `message` field, when the body has one.
fn message(reply: &Reply) -> Option<String> {
    let body: Value = serde_json::from_slice(&reply.body).ok()?;
    body.get("message")?.as_str().map(clip)
}

fn unauthorized(endpoint: &str, reply: &Reply) -> GithubError {
    GithubError::Unauthorized {
        endpoint: endpoint.to_owned(),
        message: message(reply).unwrap_or_else(|| "401 Unauthorized".into()),
    }
}

/// A 403 that is GitHub's rate limit (primary or secondary) rather than a refusal.
fn rate_limited(reply: &Reply) -> bool {
    let header = |name: &str| reply.headers.get(name).and_then(|v| v.to_str().ok());
    header("x-ratelimit-remaining") == Some("0")
        || header("retry-after").is_some()
        || message(reply).is_some_and(|m| m.to_ascii_lowercase().contains("rate limit"))
}

/// An API status other than 200 and 401 that the call has no meaning for.
fn api_failure(endpoint: &str, status: StatusCode, reply: &Reply) -> GithubError {
    if status == StatusCode::FORBIDDEN && rate_limited(reply) {
        let reset = reply
            .headers
            .get("x-ratelimit-reset")
            .and_then(|v| v.to_str().ok())
            .map(|t| format!(", resets at unix time {}", clip(t)))
            .unwrap_or_default();
        return GithubError::Unavailable {
            endpoint: endpoint.to_owned(),
            reason: format!("rate limited (HTTP {status}{reset})"),
        };
    }
    let detail = match message(reply) {
        Some(m) => format!("unexpected status {status}: {m}"),
        None => format!("unexpected status {status}"),
    };
    protocol(endpoint, &detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_end_with_a_slash() {
        let url = base_url(Url::parse("https://ghe.example/api/v3").unwrap(), "API URL").unwrap();
        assert_eq!(url.as_str(), "https://ghe.example/api/v3/");
        assert!(base_url(Url::parse("ftp://x/").unwrap(), "web URL").is_err());
    }

    #[test]
    fn api_endpoints_keep_the_base_path() {
        let mut config = GithubConfig::new("id", None);
        config.api_url = Url::parse("https://ghe.example/api/v3").unwrap();
        let github = Github::new(config).unwrap();
        assert_eq!(
            github.api_endpoint(&["repos", "o", "n.x"]).as_str(),
            "https://ghe.example/api/v3/repos/o/n.x"
        );
        assert_eq!(
            github.inner.token_url.as_str(),
            "https://github.com/login/oauth/access_token"
        );
    }

    #[test]
    fn malformed_tokens_are_not_sent() {
        assert!(well_formed("gho_abc"));
        assert!(!well_formed("gho abc"));
        assert!(!well_formed("gho\nabc"));
        assert!(!well_formed(""));
    }

    #[test]
    fn json_errors_do_not_quote_the_body() {
        let e = json_object(b"{\"access_token\": gho_secret}", EP_TOKEN).unwrap_err();
        assert!(!e.to_string().contains("gho_secret"), "{e}");
    }
}
