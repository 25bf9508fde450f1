//! What the server needs to let people in by themselves (`td auth login`, invitations, GitHub):
//! its public URL (links in emails), a mailer, the key that seals GitHub tokens at rest, and
//! GitHub's settings when a GitHub app is configured. The rules themselves are `acl`'s
//! (`tdsync_acl::onboarding`); this module only carries them to people.

pub mod github;
pub mod login_cli;
pub mod pages;
pub mod recheck;
pub mod seal;

use std::{path::PathBuf, sync::OnceLock};

use anyhow::Context;
use tdsync_mail::{Email, Mailer, MailerConfig};

pub use seal::Sealer;

/// `serve`'s people settings, resolved.
#[derive(Debug, Clone, Default)]
pub struct PeopleSettings {
    /// Where people reach this server (links in emails); None: `http://<bound address>`.
    pub public_url: Option<String>,
    /// None: no SMTP, links go to the server log.
    pub smtp_url: Option<String>,
    /// The From of emails; None: `tdsync <noreply@HOST>` of the public URL.
    pub mail_from: Option<String>,
    /// 64 hex digits; None: the key file.
    pub secret_key: Option<String>,
    /// None: `<data-dir>/secret.key`.
    pub secret_key_file: Option<PathBuf>,
    /// None: GitHub sign-in is off.
    pub github: Option<GithubSettings>,
}

/// The GitHub app and the re-check's pace (`--github-*`).
#[derive(Clone)]
pub struct GithubSettings {
    pub client_id: String,
    /// None: only the device flow works (the web flow's exchange needs the secret).
    pub client_secret: Option<String>,
    pub web_url: String,
    pub api_url: String,
    /// Between rounds of the re-check.
    pub recheck_every: std::time::Duration,
    /// A grant is checked again once its last check is this old.
    pub recheck_age: std::time::Duration,
}

impl std::fmt::Debug for GithubSettings {
    /// Without the client secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubSettings")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("web_url", &self.web_url)
            .field("api_url", &self.api_url)
            .field("recheck_every", &self.recheck_every)
            .field("recheck_age", &self.recheck_age)
            .finish()
    }
}

/// Shared by every request. Cheap to reach through `AppState::people`.
pub struct People {
    public_url: OnceLock<String>,
    mailer: Mailer,
    sealer: Sealer,
    /// GitHub sign-in, when `--github-client-id` is given.
    github: Option<github::GithubSignIn>,
}

impl People {
    pub fn open(settings: &PeopleSettings, data_dir: &std::path::Path) -> anyhow::Result<People> {
        let public_url = OnceLock::new();
        if let Some(url) = &settings.public_url {
            let url = url.trim().trim_end_matches('/');
            if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() < 10 {
                anyhow::bail!("--public-url must be an http:// or https:// URL, got {url:?}");
            }
            let _ = public_url.set(url.to_string());
        }
        let sealer = match (&settings.secret_key, &settings.secret_key_file) {
            (Some(hex), _) => Sealer::from_hex(hex).context("TDSYNC_SECRET_KEY")?,
            (None, Some(path)) => Sealer::from_file(path)?,
            (None, None) => Sealer::from_file(&data_dir.join("secret.key"))?,
        };
        let mailer = match &settings.smtp_url {
            None => Mailer::new(MailerConfig::Log)?,
            Some(url) => {
                let from = match &settings.mail_from {
                    Some(from) => from.clone(),
                    None => format!("tdsync <noreply@{}>", mail_host(settings)),
                };
                let from = from
                    .parse()
                    .with_context(|| format!("--mail-from {from:?} is not a mailbox"))?;
                Mailer::new(MailerConfig::Smtp {
                    url: url.clone(),
                    from,
                })?
            }
        };
        tracing::info!(mail = %mailer.describe(), "people: login and invitation emails");
        let github = settings
            .github
            .as_ref()
            .map(github::GithubSignIn::new)
            .transpose()?;
        Ok(People {
            public_url,
            mailer,
            sealer,
            github,
        })
    }

    /// Called once the listener is bound: the public URL defaults to its address.
    pub fn bound(&self, addr: std::net::SocketAddr) {
        let _ = self.public_url.set(format!("http://{addr}"));
    }

    pub fn public_url(&self) -> &str {
        self.public_url
            .get()
            .map_or("http://127.0.0.1:8080", String::as_str)
    }

    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    /// GitHub sign-in, if configured.
    pub fn github(&self) -> Option<&github::GithubSignIn> {
        self.github.as_ref()
    }

    /// Whether the public URL is https (cookies are then `Secure`).
    pub fn public_https(&self) -> bool {
        self.public_url().starts_with("https://")
    }

    /// Sends one email. Errors are the caller's to report: nothing was sent.
    pub async fn send(&self, to: &str, subject: String, text: String) -> anyhow::Result<()> {
        let email = Email {
            to: to.to_string(),
            subject,
            text,
        };
        self.mailer
            .send(&email)
            .await
            .with_context(|| format!("sending email to {to} through {}", self.mailer.describe()))
    }

    /// The approval email of a `td auth login`.
    pub fn login_email(&self, device_name: &str, token: &str) -> (String, String) {
        let link = format!("{}/auth/device/approve?token={token}", self.public_url());
        let subject = format!("Approve the td login on {device_name}");
        let text = format!(
            "Someone asked to log in to the tdsync server at {server} from {device_name}.\n\
             \n\
             If it was you, open this link and click Approve (it works once, for 15 minutes):\n\
             \n\
             {link}\n\
             \n\
             If it was not you, ignore this email: nothing happens without the click.\n",
            server = self.public_url(),
        );
        (subject, text)
    }

    /// The email of a new invitation.
    pub fn invitation_email(
        &self,
        project_name: &str,
        role: &str,
        inviter: &str,
        email: &str,
        expires: &str,
    ) -> (String, String) {
        let subject = format!("You are invited to {project_name} on tdsync");
        let text = format!(
            "{inviter} invited you to the td project {project_name:?} as {role}.\n\
             \n\
             To join with td (it needs TD_FEATURE_SYNC_CLI=1 in the environment):\n\
             \n\
             export TD_SYNC_URL={server}\n\
             td auth login                # enter {email}, then approve the emailed link\n\
             td sync-project join {project_name:?}\n\
             \n\
             The invitation expires at {expires}.\n",
            server = self.public_url(),
        );
        (subject, text)
    }
}

/// The host of the public URL, for the default From address.
fn mail_host(settings: &PeopleSettings) -> String {
    settings
        .public_url
        .as_deref()
        .and_then(|u| u.split_once("://"))
        .map(|(_, rest)| rest.split(['/', ':']).next().unwrap_or("localhost"))
        .filter(|h| !h.is_empty())
        .unwrap_or("localhost")
        .to_string()
}
