//! TLS by a local Caddy (Debian's package): automatic certificates for a public name, or Caddy's
//! own internal authority. Under systemd Debian's unit runs it; otherwise the deploy runs it in
//! the background, as it does the server.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::config::{Service, Tls};
use crate::files;
use crate::plan::{Check, Context, Failure, Step};
use crate::steps::host::{file_digest, run_command};
use crate::supervisor;

pub struct Caddy;

impl Caddy {
    /// Where Caddy keeps its data: inside the install when the deploy runs it, Debian's
    /// service's home otherwise.
    fn data_dir(cx: &Context) -> PathBuf {
        match cx.config.service {
            Service::Script => cx.layout.root().join("var/lib/caddy"),
            Service::Systemd => PathBuf::from("/var/lib/caddy/.local/share"),
        }
    }

    /// The root certificate of Caddy's internal authority (`tls internal`): what td's machines
    /// must trust (`SSL_CERT_FILE`, or the system's store).
    pub fn root_certificate(cx: &Context) -> PathBuf {
        Self::data_dir(cx).join("caddy/pki/authorities/local/root.crt")
    }

    fn site(cx: &Context) -> String {
        // The public URL without its scheme: Caddy's site address (host, and port if any).
        let url = url::Url::parse(&cx.config.public_url).expect("checked when answered");
        match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        }
    }

    fn caddyfile(cx: &Context) -> String {
        let internal = cx.config.tls == (Tls::Caddy { internal: true });
        // Run by the deploy (no systemd), Caddy keeps to the site's port: no admin endpoint, no
        // port-80 redirects, no changes to the system's trust store.
        let global = match cx.config.service {
            Service::Script => {
                "{\n\tadmin off\n\tauto_https disable_redirects\n\tskip_install_trust\n}\n\n"
            }
            Service::Systemd => "",
        };
        format!(
            "# Written by tdsync deploy.\n{global}{site} {{\n{tls}\treverse_proxy {upstream}\n}}\n",
            site = Self::site(cx),
            tls = if internal { "\ttls internal\n" } else { "" },
            upstream = cx.config.local_url().trim_start_matches("http://"),
        )
    }

    fn installed() -> bool {
        Command::new("caddy")
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// What the running Caddy was started with (a digest of its Caddyfile).
    fn started(cx: &Context) -> Option<String> {
        files::read_optional(&cx.layout.run_dir().join("caddy.started"))
            .ok()
            .flatten()
    }

    fn running(cx: &Context) -> bool {
        match cx.config.service {
            Service::Systemd => Command::new("systemctl")
                .args(["is-active", "--quiet", "caddy"])
                .status()
                .is_ok_and(|s| s.success()),
            Service::Script => {
                supervisor::live_pid_of(&cx.layout.caddy_pid_file(), "caddy").is_some()
            }
        }
    }
}

impl Step for Caddy {
    fn title(&self) -> String {
        "TLS (Caddy)".into()
    }

    fn plan(&self, cx: &Context) -> String {
        match cx.config.tls {
            Tls::None => "none: plain HTTP, or a reverse proxy you run".into(),
            Tls::Caddy { .. } => format!(
                "install Debian's caddy package if missing; write {} serving {} to {}; (re)start Caddy",
                cx.layout.caddyfile().display(),
                Self::site(cx),
                cx.config.listen
            ),
        }
    }

    fn check(&self, cx: &mut Context) -> Result<Check, Failure> {
        if cx.config.tls == Tls::None {
            return Ok(Check::Done(format!(
                "none here: {} is served as is, or by your proxy",
                cx.config.public_url
            )));
        }
        if !Self::installed() {
            return Ok(Check::Todo("install Debian's caddy package".into()));
        }
        let path = cx.layout.caddyfile();
        if !files::same(&path, Self::caddyfile(cx).as_bytes(), 0o644) {
            return Ok(Check::Todo(format!("write {}", path.display())));
        }
        if !Self::running(cx) || Self::started(cx) != file_digest(&path) {
            return Ok(Check::Todo("(re)start Caddy with it".into()));
        }
        Ok(Check::Done(format!(
            "Caddy serves {} ({})",
            Self::site(cx),
            path.display()
        )))
    }

    fn apply(&self, cx: &mut Context) -> Result<(), Failure> {
        if !Self::installed() {
            if !cx.reach.root {
                return Err(Failure::new(
                    "installing Caddy needs root",
                    "run tdsync deploy as root, install it yourself (apt-get install caddy), or \
                     answer tls = none",
                ));
            }
            run_command(
                Command::new("apt-get")
                    .args(["install", "-y", "-q", "caddy"])
                    .env("DEBIAN_FRONTEND", "noninteractive"),
            )?;
        }
        let path = cx.layout.caddyfile();
        files::write_atomic(&path, &Self::caddyfile(cx), 0o644).map_err(|e| {
            Failure::new(
                e.to_string(),
                "fix the permissions, then run tdsync deploy again",
            )
        })?;
        match cx.config.service {
            Service::Systemd => {
                run_command(Command::new("systemctl").args(["reload-or-restart", "caddy"]))?;
            }
            Service::Script => {
                supervisor::stop_pid(&cx.layout.caddy_pid_file(), "caddy").map_err(|e| {
                    Failure::new(
                        e.to_string(),
                        "stop Caddy by hand, then run tdsync deploy again",
                    )
                })?;
                let log = cx.layout.log_dir().join("caddy.log");
                supervisor::spawn_recorded(
                    Command::new("caddy")
                        .args(["run", "--adapter", "caddyfile", "--config"])
                        .arg(&path)
                        // Its certificates and keys stay inside the install.
                        .env("XDG_DATA_HOME", Self::data_dir(cx))
                        .env("XDG_CONFIG_HOME", cx.layout.root().join("etc/caddy")),
                    &log,
                    &cx.layout.caddy_pid_file(),
                )
                .map_err(|e| {
                    Failure::new(e.to_string(), "fix the cause, then run tdsync deploy again")
                })?;
            }
        }
        let digest = file_digest(&path).unwrap_or_default();
        files::write_atomic(&cx.layout.run_dir().join("caddy.started"), &digest, 0o644)
            .map_err(|e| Failure::new(e.to_string(), "run tdsync deploy again"))
    }
}
