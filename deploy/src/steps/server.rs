//! The running server (started, or restarted when its binary or settings changed), the first
//! tenant with its admin token, and the health check through the public URL.

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::config::{Service, Tls};
use crate::files;
use crate::plan::{Check, Context, Failure, Step};
use crate::steps::caddy::Caddy;
use crate::steps::host::ServiceDefinition;
use crate::supervisor;

/// How long a started server (or the public URL) gets to answer `/healthz`.
const HEALTH_WAIT: Duration = Duration::from_secs(30);

/// `GET url`'s status, or why there was none. HTTPS is verified against the system's roots, or
/// only against the PEM certificates in `root` (Caddy's internal authority).
pub fn get_status(url: &str, root: Option<&Path>) -> Result<u16, String> {
    let mut config = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false);
    if let Some(root) = root {
        let pem = std::fs::read(root).map_err(|e| format!("{}: {e}", root.display()))?;
        let certs: Vec<_> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(cert)) => Some(cert),
                _ => None,
            })
            .collect();
        config = config.tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)))
                .build(),
        );
    }
    let agent: ureq::Agent = config.build().into();
    agent
        .get(url)
        .call()
        .map(|r| r.status().as_u16())
        .map_err(|e| e.to_string())
}

/// Waits until `url` answers 200, `alive` turns false, or the wait ends; the last error.
fn wait_healthy(url: &str, root: Option<&Path>, alive: impl Fn() -> bool) -> Result<(), String> {
    let spinner = indicatif::ProgressBar::new_spinner().with_message(format!("waiting for {url}"));
    spinner.enable_steady_tick(Duration::from_millis(120));
    let deadline = Instant::now() + HEALTH_WAIT;
    let outcome = loop {
        let last = match get_status(url, root) {
            Ok(200) => break Ok(()),
            Ok(status) => format!("it answered {status}"),
            Err(e) => e,
        };
        if !alive() {
            break Err(format!("the server exited ({last})"));
        }
        if Instant::now() >= deadline {
            break Err(format!(
                "no answer within {} s: {last}",
                HEALTH_WAIT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    spinner.finish_and_clear();
    outcome
}

/// The server process, running the installed binary with the current settings.
pub struct Server;

impl Server {
    /// The binary, settings (the deploy's and the administrator's) and service definition it
    /// must run with.
    fn fingerprint(cx: &Context) -> String {
        let mut hasher = Sha256::new();
        hasher.update(std::fs::read(cx.layout.binary()).unwrap_or_default());
        hasher.update(cx.config.environment_file());
        hasher.update(std::fs::read(cx.layout.local_env_file()).unwrap_or_default());
        hasher.update(ServiceDefinition::content(cx));
        hex::encode(hasher.finalize())
    }

    fn health_url(cx: &Context) -> String {
        format!("{}/healthz", cx.config.local_url())
    }

    fn log_tail(cx: &Context) -> String {
        let log = files::read_optional(&cx.layout.log_file())
            .ok()
            .flatten()
            .unwrap_or_default();
        let lines: Vec<&str> = log.lines().rev().take(5).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join("\n    ")
    }
}

impl Step for Server {
    fn title(&self) -> String {
        "server".into()
    }

    fn plan(&self, cx: &Context) -> String {
        let how = match cx.config.service {
            Service::Systemd => "systemctl restart tdsync".to_string(),
            Service::Script => format!(
                "{} in the background (log {})",
                cx.layout.run_script().display(),
                cx.layout.log_file().display()
            ),
        };
        format!(
            "start (or restart, when the binary or settings changed) with {how}; wait for {}",
            Self::health_url(cx)
        )
    }

    fn check(&self, cx: &mut Context) -> Result<Check, Failure> {
        let Some(how) = supervisor::running(&cx.layout, cx.config.service) else {
            return Ok(Check::Todo(format!(
                "start the server on {}",
                cx.config.listen
            )));
        };
        let started = files::read_optional(&cx.layout.started_file())
            .ok()
            .flatten()
            .unwrap_or_default();
        if started.trim() != Self::fingerprint(cx) {
            return Ok(Check::Todo(format!(
                "restart the server ({how}): its binary or settings changed"
            )));
        }
        Ok(match get_status(&Self::health_url(cx), None) {
            Ok(200) => Check::Done(format!(
                "running ({how}), healthy at {}",
                cx.config.local_url()
            )),
            _ => Check::Todo(format!(
                "restart the server ({how}): it does not answer {}",
                Self::health_url(cx)
            )),
        })
    }

    fn apply(&self, cx: &mut Context) -> Result<(), Failure> {
        let service = cx.config.service;
        let retry = "then run tdsync deploy again";
        supervisor::stop(&cx.layout, service)
            .map_err(|e| Failure::new(e.to_string(), format!("stop it by hand, {retry}")))?;
        if let Err(e) = TcpListener::bind(cx.config.listen) {
            return Err(Failure::new(
                format!("{} is taken: {e}", cx.config.listen),
                format!(
                    "stop the program using it (`ss -ltnp` shows which) or answer another listen \
                     address (listen in {}), {retry}",
                    cx.layout.answers().display()
                ),
            ));
        }
        supervisor::start(&cx.layout, service)
            .map_err(|e| Failure::new(e.to_string(), format!("fix the cause, {retry}")))?;
        let layout = cx.layout.clone();
        wait_healthy(&Self::health_url(cx), None, || {
            supervisor::alive(&layout, service)
        })
        .map_err(|reason| {
            let where_ = match service {
                Service::Systemd => "`journalctl -u tdsync` says why".to_string(),
                Service::Script => format!(
                    "its log ({}) ends with:\n    {}",
                    cx.layout.log_file().display(),
                    Self::log_tail(cx)
                ),
            };
            Failure::new(
                format!("the server did not become healthy: {reason}; {where_}"),
                format!("fix the cause, {retry}"),
            )
        })?;
        files::write_atomic(&cx.layout.started_file(), &Self::fingerprint(cx), 0o644)
            .map_err(|e| Failure::new(e.to_string(), format!("fix the cause, {retry}")))
    }
}

/// The first tenant and an admin token for it (minted once; its id is recorded, not the token).
pub struct Tenant;

#[derive(serde::Deserialize)]
struct Named {
    id: String,
    name: String,
}

#[derive(serde::Deserialize)]
struct TokenRow {
    id: String,
    state: String,
}

#[derive(serde::Deserialize)]
struct Minted {
    id: String,
    token: String,
}

impl Tenant {
    const NEXT: &str = "fix the cause, then run tdsync deploy again";

    fn find(cx: &Context) -> Result<Option<String>, Failure> {
        let listed = cx.run_tdsync(&["tenant", "list", "--json"], Self::NEXT)?;
        let tenants: Vec<Named> = serde_json::from_str(&listed)
            .map_err(|e| Failure::new(format!("tenant list: {e}"), Self::NEXT))?;
        Ok(tenants
            .into_iter()
            .find(|t| t.name == cx.config.tenant)
            .map(|t| t.id))
    }

    fn token_active(cx: &Context, tenant: &str, token: &str) -> Result<bool, Failure> {
        let listed = cx.run_tdsync(&["token", "list", "--tenant", tenant, "--json"], Self::NEXT)?;
        let tokens: Vec<TokenRow> = serde_json::from_str(&listed)
            .map_err(|e| Failure::new(format!("token list: {e}"), Self::NEXT))?;
        Ok(tokens.iter().any(|t| t.id == token && t.state == "active"))
    }
}

impl Step for Tenant {
    fn title(&self) -> String {
        "first tenant and admin token".into()
    }

    fn plan(&self, cx: &Context) -> String {
        format!(
            "create the tenant {:?} and mint an admin token for it (shown once)",
            cx.config.tenant
        )
    }

    fn check(&self, cx: &mut Context) -> Result<Check, Failure> {
        let name = &cx.config.tenant;
        let Some(tenant) = Self::find(cx)? else {
            return Ok(Check::Todo(format!(
                "create the tenant {name:?} and mint its admin token"
            )));
        };
        let recorded = cx
            .state
            .admin_token_id
            .clone()
            .filter(|_| cx.state.tenant_id.as_deref() == Some(&tenant));
        Ok(match recorded {
            Some(token) if Self::token_active(cx, &tenant, &token)? => Check::Done(format!(
                "tenant {name:?} ({tenant}) with admin token {token}"
            )),
            _ => Check::Todo(format!("mint an admin token for the tenant {name:?}")),
        })
    }

    fn apply(&self, cx: &mut Context) -> Result<(), Failure> {
        let tenant = match Self::find(cx)? {
            Some(id) => id,
            None => {
                let created = cx.run_tdsync(
                    &["tenant", "create", &cx.config.tenant, "--json"],
                    Self::NEXT,
                )?;
                serde_json::from_str::<Named>(&created)
                    .map_err(|e| Failure::new(format!("tenant create: {e}"), Self::NEXT))?
                    .id
            }
        };
        let minted = cx.run_tdsync(
            &[
                "token",
                "mint",
                "--tenant",
                &tenant,
                "--scope",
                "admin,mint",
                "--name",
                "deploy-admin",
                "--json",
            ],
            Self::NEXT,
        )?;
        let minted: Minted = serde_json::from_str(&minted)
            .map_err(|e| Failure::new(format!("token mint: {e}"), Self::NEXT))?;
        cx.state.tenant_id = Some(tenant);
        cx.state.admin_token_id = Some(minted.id);
        cx.minted_token = Some(minted.token);
        cx.state
            .save(&cx.layout)
            .map_err(|e| Failure::new(e.to_string(), Self::NEXT))
    }
}

/// `/healthz` through the public URL: what td users will reach.
pub struct Health;

impl Step for Health {
    fn title(&self) -> String {
        "health through the public URL".into()
    }

    fn plan(&self, cx: &Context) -> String {
        format!("GET {}/healthz answers 200", cx.config.public_url)
    }

    fn check(&self, cx: &mut Context) -> Result<Check, Failure> {
        let url = format!("{}/healthz", cx.config.public_url);
        // Caddy's internal authority is no one's root but its own: checked against it.
        let root =
            (cx.config.tls == (Tls::Caddy { internal: true })).then(|| Caddy::root_certificate(cx));
        wait_healthy(&url, root.as_deref(), || true).map_err(|reason| {
            Failure::new(
                format!(
                    "{url}: {reason} (the server itself answers at {})",
                    cx.config.local_url()
                ),
                format!(
                    "make {} reach this machine: its DNS name, the firewall, and your proxy \
                     forwarding to {}; then run tdsync deploy again",
                    cx.config.public_url, cx.config.listen
                ),
            )
        })?;
        Ok(Check::Done(format!("{url} answers 200")))
    }
}
