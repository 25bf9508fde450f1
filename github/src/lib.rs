//! tdsync's whole conversation with GitHub.
//!
//! tdsync grants a person a read-only token for a project when they can read the project's linked
//! GitHub repository. This crate signs the person in with GitHub (the OAuth web flow with PKCE, or
//! the device flow for a terminal), asks GitHub who they are and whether their own token can read
//! a repository. It knows nothing of tdsync's tokens, HTTP server or database.
//!
//! Errors say what the caller must do: [`GithubError::Unauthorized`] (GitHub refused the token:
//! revoke what it granted) is never confused with [`GithubError::Unavailable`] (GitHub could not
//! answer: revoke nothing, try later).
//!
//! With feature `test-support`, [`testing::FakeGithub`] is a local GitHub speaking the same
//! protocol, for this crate's tests and tdsync's.

mod client;
mod error;
mod repo;

#[cfg(feature = "test-support")]
pub mod testing;

use std::fmt;

pub use client::Github;
pub use error::GithubError;
pub use repo::{RepoName, RepoNameError};
pub use url::Url;

/// The OAuth scope asked for. An OAuth app can read a private repository only with `repo` (GitHub
/// has no read-only variant); a GitHub App ignores scopes and uses its installation's permissions.
pub const SCOPE: &str = "repo";

/// Where GitHub is and who tdsync is to it.
#[derive(Clone)]
pub struct GithubConfig {
    /// The web host: sign-in pages and the OAuth endpoints (`https://github.com`).
    pub web_url: Url,
    /// The REST API (`https://api.github.com`; `https://HOST/api/v3` on GitHub Enterprise Server).
    pub api_url: Url,
    /// The OAuth app's (or GitHub App's) client id.
    pub client_id: String,
    /// The client secret: needed by the web flow, not by the device flow.
    pub client_secret: Option<String>,
}

impl GithubConfig {
    /// github.com with the given client.
    pub fn new(client_id: impl Into<String>, client_secret: Option<String>) -> GithubConfig {
        GithubConfig {
            web_url: Url::parse("https://github.com").expect("a literal URL parses"),
            api_url: Url::parse("https://api.github.com").expect("a literal URL parses"),
            client_id: client_id.into(),
            client_secret,
        }
    }
}

impl fmt::Debug for GithubConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GithubConfig")
            .field("web_url", &self.web_url.as_str())
            .field("api_url", &self.api_url.as_str())
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// A GitHub access token (`gho_…`, `ghu_…`): the person's own credential at GitHub.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    pub fn new(secret: impl Into<String>) -> AccessToken {
        AccessToken(secret.into())
    }

    /// The token itself, to store or to send. Never log it.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

/// Where to send the person's browser, and what to keep until GitHub sends them back.
#[derive(Clone)]
pub struct Authorization {
    /// GitHub's authorize page, with client id, redirect URI, state, PKCE challenge and scope.
    pub url: Url,
    /// The CSRF state: the callback must carry this exact value.
    pub state: String,
    /// The PKCE verifier, secret until the exchange: keep it server-side (or in an encrypted
    /// cookie) and pass it to [`Github::exchange`].
    pub pkce_verifier: String,
}

impl fmt::Debug for Authorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorization")
            .field("url", &self.url.as_str())
            .field("state", &self.state)
            .field("pkce_verifier", &"<redacted>")
            .finish()
    }
}

/// GitHub's answer to the start of a device flow: what to show the person, what to poll with.
#[derive(Clone)]
pub struct DeviceStart {
    /// Secret: whoever holds it can collect the token once the person approves.
    pub device_code: String,
    /// What the person types at `verification_uri` (`ABCD-1234`).
    pub user_code: String,
    pub verification_uri: Url,
    /// Seconds until the codes expire.
    pub expires_in: u64,
    /// Seconds to wait between polls.
    pub interval: u64,
}

impl fmt::Debug for DeviceStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceStart")
            .field("device_code", &"<redacted>")
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri.as_str())
            .field("expires_in", &self.expires_in)
            .field("interval", &self.interval)
            .finish()
    }
}

/// One poll of a device flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DevicePoll {
    /// The person has not answered yet: poll again after the interval.
    Pending,
    /// Polled too fast: wait `interval` seconds (GitHub's new minimum) between polls from now on.
    SlowDown { interval: u64 },
    /// The codes expired before the person answered: start again.
    Expired,
    /// The person refused.
    Denied,
    /// The person approved: their token.
    Authorized(AccessToken),
}

/// The person a token belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GithubUser {
    /// GitHub's stable id: logins can be renamed, ids cannot.
    pub id: u64,
    pub login: String,
    /// The public email, when the person shows one.
    pub email: Option<String>,
}

/// What a token may do with a repository, as far as tdsync cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RepoAccess {
    /// Cannot see it (404, or 403 for other reasons than a rate limit).
    None,
    /// `pull` or `triage`.
    Read,
    /// `push`, `maintain` or `admin`.
    Write,
}
