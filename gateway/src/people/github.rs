//! GitHub sign-in's server side, apart from HTTP: the client, and the sealed blobs that carry a
//! sign-in through GitHub without anything kept on the server (a cluster has many stateless
//! gateways; any of them may receive the callback or the next poll).
//!
//! - the web flow's `state` is `seal({project, PKCE verifier, nonce, expiry})`; the nonce is
//!   also in a cookie of the browser that started, so a state replayed without it (another
//!   browser, or the same one after the callback cleared it) is refused;
//! - the device flow's `device_code` given to `tdsync login github` is
//!   `seal({GitHub's device code, project, expiry})`.
//!
//! Each blob names its kind, so one can never be passed off as the other, nor as a sealed GitHub
//! token (those are sealed plain strings, not JSON).

use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use tdsync_acl::ProjectId;
use tdsync_github::{Github, GithubConfig, Url};

use super::{GithubSettings, Sealer};

/// How long a browser sign-in may take between `/login/github` and the callback.
pub const WEB_STATE_TTL: TimeDelta = TimeDelta::minutes(10);
/// The cookie holding the web flow's nonce.
pub const COOKIE: &str = "tdsync_github";
/// The path the cookie is scoped to: both browser routes, nothing else.
pub const COOKIE_PATH: &str = "/login/github";
/// The callback, under the public URL; register it as the GitHub app's callback URL.
pub const CALLBACK_PATH: &str = "/login/github/callback";
/// A device flow never outlives this, whatever GitHub says (GitHub's own: 15 minutes).
const DEVICE_TTL_CAP: u64 = 30 * 60;

/// The configured GitHub app and the re-check's pace.
pub struct GithubSignIn {
    client: Github,
    web_flow: bool,
    recheck_every: Duration,
    recheck_age: Duration,
}

impl GithubSignIn {
    pub fn new(settings: &GithubSettings) -> anyhow::Result<GithubSignIn> {
        let url = |raw: &str, flag: &str| {
            Url::parse(raw).with_context(|| format!("{flag} {raw:?} is not a URL"))
        };
        let config = GithubConfig {
            web_url: url(&settings.web_url, "--github-url")?,
            api_url: url(&settings.api_url, "--github-api-url")?,
            client_id: settings.client_id.clone(),
            client_secret: settings.client_secret.clone(),
        };
        let client = Github::new(config).context("GitHub sign-in (--github-client-id)")?;
        let web_flow = settings.client_secret.is_some();
        tracing::info!(
            github = %settings.web_url,
            api = %settings.api_url,
            client_id = %settings.client_id,
            browser_sign_in = web_flow,
            recheck_every_s = settings.recheck_every.as_secs(),
            recheck_age_s = settings.recheck_age.as_secs(),
            "people: GitHub sign-in for linked projects"
        );
        Ok(GithubSignIn {
            client,
            web_flow,
            recheck_every: settings.recheck_every,
            recheck_age: settings.recheck_age,
        })
    }

    pub fn client(&self) -> &Github {
        &self.client
    }

    /// Whether the browser sign-in can work (the exchange needs the client secret).
    pub fn web_flow(&self) -> bool {
        self.web_flow
    }

    pub fn recheck_every(&self) -> Duration {
        self.recheck_every
    }

    pub fn recheck_age(&self) -> Duration {
        self.recheck_age
    }

    /// Starts a browser sign-in for `project`: GitHub's authorize URL carrying the sealed state,
    /// and the nonce to set as the cookie.
    pub fn start_web(
        &self,
        sealer: &Sealer,
        project: &ProjectId,
        redirect_uri: &Url,
        now: DateTime<Utc>,
    ) -> WebStart {
        let authorization = self.client.authorize(redirect_uri);
        let web = WebState {
            project: project.clone(),
            pkce_verifier: authorization.pkce_verifier,
            nonce: hex::encode(rand::random::<[u8; 16]>()),
            expires_at: now + WEB_STATE_TTL,
        };
        let sealed = seal(sealer, &Blob::from_web(&web));
        // `authorize` made its own random state; ours replaces it: the sealed blob is what
        // GitHub hands back to the callback.
        let mut url = authorization.url;
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "state" {
                    sealed.clone()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
        WebStart {
            url,
            nonce: web.nonce,
        }
    }
}

/// Where to send the browser, and the cookie's value.
pub struct WebStart {
    pub url: Url,
    pub nonce: String,
}

/// What a browser sign-in carries through GitHub.
pub struct WebState {
    pub project: ProjectId,
    pub pkce_verifier: String,
    /// Equal to the cookie of the browser that started.
    pub nonce: String,
    pub expires_at: DateTime<Utc>,
}

/// What `tdsync login github` polls with.
pub struct DeviceState {
    pub project: ProjectId,
    /// GitHub's device code: secret (whoever holds it collects the person's GitHub token).
    pub device_code: String,
    pub expires_at: DateTime<Utc>,
}

/// Why a sealed blob is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    #[error("it was not made by this server (or the server's secret key changed)")]
    Unreadable,
    #[error("it has expired")]
    Expired,
}

/// A device flow's blob for GitHub's `DeviceStart`.
pub fn seal_device(
    sealer: &Sealer,
    project: &ProjectId,
    device_code: &str,
    expires_in: u64,
    now: DateTime<Utc>,
) -> String {
    let secs = expires_in.min(DEVICE_TTL_CAP) as i64;
    let blob = Blob::Device {
        project: project.to_string(),
        device_code: device_code.to_string(),
        expires: (now + TimeDelta::seconds(secs)).timestamp(),
    };
    seal(sealer, &blob)
}

pub fn open_web(sealer: &Sealer, sealed: &str, now: DateTime<Utc>) -> Result<WebState, BlobError> {
    match open(sealer, sealed)? {
        Blob::Web {
            project,
            verifier,
            nonce,
            expires,
        } => {
            let expires_at = expiry(expires, now)?;
            Ok(WebState {
                project: ProjectId::parse(&project).map_err(|_| BlobError::Unreadable)?,
                pkce_verifier: verifier,
                nonce,
                expires_at,
            })
        }
        Blob::Device { .. } => Err(BlobError::Unreadable),
    }
}

pub fn open_device(
    sealer: &Sealer,
    sealed: &str,
    now: DateTime<Utc>,
) -> Result<DeviceState, BlobError> {
    match open(sealer, sealed)? {
        Blob::Device {
            project,
            device_code,
            expires,
        } => {
            let expires_at = expiry(expires, now)?;
            Ok(DeviceState {
                project: ProjectId::parse(&project).map_err(|_| BlobError::Unreadable)?,
                device_code,
                expires_at,
            })
        }
        Blob::Web { .. } => Err(BlobError::Unreadable),
    }
}

/// What to paste: td's sync switches, the server, the token, and the join.
pub fn setup_lines(sync_url: &str, token: &str, project_name: &str) -> String {
    format!(
        "{}\ntd sync-project join {}",
        export_lines(sync_url, token),
        shell_word(project_name)
    )
}

/// The environment td syncs with: its sync commands switched on, the server, the token.
pub fn export_lines(sync_url: &str, token: &str) -> String {
    format!(
        "export TD_FEATURE_SYNC_CLI=1\nexport TD_SYNC_URL={}\nexport TD_AUTH_KEY={}",
        shell_word(sync_url),
        shell_word(token),
    )
}

/// `raw` as one shell word: as is when it is plainly safe, else single-quoted.
pub fn shell_word(raw: &str) -> String {
    let plain = !raw.is_empty()
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:@%+=,".contains(&b));
    if plain {
        raw.to_string()
    } else {
        format!("'{}'", raw.replace('\'', "'\\''"))
    }
}

/// The sealed JSON; `kind` keeps the two apart.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
enum Blob {
    #[serde(rename = "github-web")]
    Web {
        project: String,
        verifier: String,
        nonce: String,
        /// Unix seconds.
        expires: i64,
    },
    #[serde(rename = "github-device")]
    Device {
        project: String,
        device_code: String,
        expires: i64,
    },
}

impl Blob {
    fn from_web(web: &WebState) -> Blob {
        Blob::Web {
            project: web.project.to_string(),
            verifier: web.pkce_verifier.clone(),
            nonce: web.nonce.clone(),
            expires: web.expires_at.timestamp(),
        }
    }
}

fn seal(sealer: &Sealer, blob: &Blob) -> String {
    // Serialising a struct of strings and integers cannot fail.
    let json = serde_json::to_string(blob).unwrap_or_default();
    sealer.seal(&json)
}

fn open(sealer: &Sealer, sealed: &str) -> Result<Blob, BlobError> {
    let json = sealer.open(sealed).map_err(|_| BlobError::Unreadable)?;
    serde_json::from_str(&json).map_err(|_| BlobError::Unreadable)
}

fn expiry(unix: i64, now: DateTime<Utc>) -> Result<DateTime<Utc>, BlobError> {
    let at = DateTime::from_timestamp(unix, 0).ok_or(BlobError::Unreadable)?;
    if at <= now {
        return Err(BlobError::Expired);
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> Sealer {
        Sealer::from_hex(&"42".repeat(32)).unwrap()
    }

    fn project() -> ProjectId {
        ProjectId::parse("p_abcdefghijkl").unwrap()
    }

    #[test]
    fn shell_words_quote_what_needs_it() {
        assert_eq!(shell_word("roadmap"), "roadmap");
        assert_eq!(
            shell_word("http://td.example:8080"),
            "http://td.example:8080"
        );
        assert_eq!(shell_word("Q3 plan"), "'Q3 plan'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(shell_word("$(rm -rf ~)"), "'$(rm -rf ~)'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn blobs_open_only_as_their_own_kind_and_until_they_expire() {
        let s = sealer();
        let now = Utc::now();
        let device = seal_device(&s, &project(), "dc123", 900, now);
        assert!(!device.contains("dc123"));
        let opened = open_device(&s, &device, now).unwrap();
        assert_eq!(
            (opened.project, opened.device_code.as_str()),
            (project(), "dc123")
        );
        assert_eq!(
            open_web(&s, &device, now).err(),
            Some(BlobError::Unreadable),
            "a device code is not a state"
        );
        assert_eq!(
            open_device(&s, &device, now + TimeDelta::seconds(901)).err(),
            Some(BlobError::Expired)
        );
        // GitHub's lifetime is capped.
        assert!(
            open_device(&s, &seal_device(&s, &project(), "x", 1 << 40, now), now)
                .unwrap()
                .expires_at
                <= now + TimeDelta::seconds(DEVICE_TTL_CAP as i64)
        );
        // A sealed GitHub token (a plain string) is neither.
        let token = s.seal("gho_abc");
        assert_eq!(
            open_device(&s, &token, now).err(),
            Some(BlobError::Unreadable)
        );
        assert_eq!(
            open_web(&s, "v1:garbage", now).err(),
            Some(BlobError::Unreadable)
        );
    }

    #[test]
    fn the_authorize_url_carries_the_sealed_state() {
        let settings = GithubSettings {
            client_id: "Iv1.client".into(),
            client_secret: Some("secret".into()),
            web_url: "https://github.example".into(),
            api_url: "https://api.github.example".into(),
            recheck_every: Duration::from_secs(3600),
            recheck_age: Duration::from_secs(86400),
        };
        let github = GithubSignIn::new(&settings).unwrap();
        let s = sealer();
        let now = Utc::now();
        let redirect = Url::parse("https://td.example/login/github/callback").unwrap();
        let start = github.start_web(&s, &project(), &redirect, now);
        let state: Vec<String> = start
            .url
            .query_pairs()
            .filter(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned())
            .collect();
        assert_eq!(state.len(), 1, "{}", start.url);
        let web = open_web(&s, &state[0], now).unwrap();
        assert_eq!(web.project, project());
        assert_eq!(web.nonce, start.nonce);
        assert_eq!(
            web.expires_at.timestamp(),
            (now + WEB_STATE_TTL).timestamp()
        );
        assert!(
            start
                .url
                .as_str()
                .starts_with("https://github.example/login/oauth/authorize?")
        );
        assert!(start.url.query_pairs().any(|(k, _)| k == "code_challenge"));
        assert_eq!(
            open_web(&s, &state[0], now + WEB_STATE_TTL).err(),
            Some(BlobError::Expired)
        );
    }
}
