//! The files of an install: directories, the system user, the binary, the environment file and
//! the service definition.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::config::{Backup, Service};
use crate::files;
use crate::plan::{Check, Context, Failure, Step};

fn io_failure(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure::new(
        format!("{what}: {e}"),
        "fix the permissions (or run as root), then run tdsync deploy again",
    )
}

pub struct Directories;

impl Directories {
    fn wanted(cx: &Context) -> Vec<PathBuf> {
        let mut dirs = vec![
            cx.layout.etc(),
            cx.layout.bin_dir(),
            cx.config.data_dir.clone(),
            cx.layout.log_dir(),
            cx.layout.run_dir(),
        ];
        if let Backup::Dir(dir) = &cx.config.backup {
            dirs.push(dir.clone());
        }
        dirs
    }
}

impl Step for Directories {
    fn title(&self) -> String {
        "directories".into()
    }

    fn plan(&self, cx: &Context) -> String {
        let dirs: Vec<String> = Self::wanted(cx)
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        format!("create {}", dirs.join(", "))
    }

    fn check(&self, cx: &mut Context) -> Result<Check, Failure> {
        let wanted = Self::wanted(cx);
        if let Some(file) = wanted.iter().find(|d| d.exists() && !d.is_dir()) {
            return Err(Failure::new(
                format!("{} is a file, not a directory", file.display()),
                "move it away or answer another path, then run tdsync deploy again",
            ));
        }
        let missing: Vec<String> = wanted
            .iter()
            .filter(|d| !d.is_dir())
            .map(|d| d.display().to_string())
            .collect();
        Ok(if missing.is_empty() {
            Check::Done(format!("{} directories in place", wanted.len()))
        } else {
            Check::Todo(format!("create {}", missing.join(", ")))
        })
    }

    fn apply(&self, cx: &mut Context) -> Result<(), Failure> {
        for dir in Self::wanted(cx) {
            std::fs::create_dir_all(&dir)
                .map_err(|e| io_failure(&format!("cannot create {}", dir.display()), e))?;
        }
        if let (true, Some(user)) = (cx.reach.host_as_root(), &cx.config.user) {
            for dir in [
                &cx.config.data_dir,
                &cx.layout.log_dir(),
                &cx.layout.run_dir(),
            ] {
                run_command(
                    Command::new("chown")
                        .arg("-R")
                        .arg(format!("{user}:"))
                        .arg(dir),
                )?;
            }
        }
        Ok(())
    }
}

/// Runs a host command; its failure names the command and what it printed.
pub fn run_command(command: &mut Command) -> Result<String, Failure> {
    let shown = format!("{command:?}").replace('"', "");
    let output = command
        .output()
        .map_err(|e| io_failure(&format!("cannot run {shown}"), e))?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(Failure::new(
        format!("{shown} failed: {}", stderr.trim()),
        "fix what it says, then run tdsync deploy again",
    ))
}

/// The system user the server runs as (only when installing on the host as root).
pub struct SystemUser;

impl Step for SystemUser {
    fn title(&self) -> String {
        "system user".into()
    }

    fn plan(&self, cx: &Context) -> String {
        match &cx.config.user {
            Some(user) => format!("create the system user {user} (useradd --system)"),
            None => "none: the server runs as the user running tdsync deploy".into(),
        }
    }

    fn check(&self, cx: &mut Context) -> Result<Check, Failure> {
        let Some(user) = &cx.config.user else {
            return Ok(Check::Done(
                "the server runs as the user running tdsync deploy".into(),
            ));
        };
        let exists = Command::new("id")
            .arg("-u")
            .arg(user)
            .output()
            .is_ok_and(|o| o.status.success());
        Ok(if exists {
            Check::Done(format!("user {user} exists"))
        } else {
            Check::Todo(format!("create the system user {user}"))
        })
    }

    fn apply(&self, cx: &mut Context) -> Result<(), Failure> {
        let user = cx
            .config
            .user
            .as_deref()
            .expect("checked: a user is wanted");
        run_command(
            Command::new("useradd")
                .args([
                    "--system",
                    "--user-group",
                    "--shell",
                    "/usr/sbin/nologin",
                    "--home-dir",
                ])
                .arg(&cx.config.data_dir)
                .arg(user),
        )
        .map(drop)
    }
}

fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A file's SHA-256, or `None` when it cannot be read.
pub fn file_digest(path: &Path) -> Option<String> {
    std::fs::read(path).ok().map(|b| digest(&b))
}

/// The binary running the deploy, installed where the service runs it; on an upgrade the one it
/// replaces is kept for `--rollback`.
pub struct Binary;

impl Step for Binary {
    fn title(&self) -> String {
        "tdsync binary".into()
    }

    fn plan(&self, cx: &Context) -> String {
        format!(
            "install {} as {} (an older one is kept as {})",
            cx.exe.display(),
            cx.layout.binary().display(),
            cx.layout.previous_binary().display()
        )
    }

    fn check(&self, cx: &mut Context) -> Result<Check, Failure> {
        let want = file_digest(&cx.exe)
            .ok_or_else(|| io_failure("cannot read the running binary", cx.exe.display()))?;
        let short = &want[..12];
        Ok(match file_digest(&cx.layout.binary()) {
            Some(have) if have == want => Check::Done(format!(
                "{} (sha256 {short}…)",
                cx.layout.binary().display()
            )),
            Some(have) => Check::Todo(format!(
                "upgrade {} (sha256 {}… → {short}…), keeping the old one as {}",
                cx.layout.binary().display(),
                &have[..12],
                cx.layout.previous_binary().display()
            )),
            None => Check::Todo(format!("install {}", cx.layout.binary().display())),
        })
    }

    fn apply(&self, cx: &mut Context) -> Result<(), Failure> {
        let installed = cx.layout.binary();
        let bytes = std::fs::read(&cx.exe)
            .map_err(|e| io_failure(&format!("cannot read {}", cx.exe.display()), e))?;
        if installed.exists() {
            std::fs::rename(&installed, cx.layout.previous_binary())
                .map_err(|e| io_failure("cannot keep the previous binary", e))?;
        }
        files::write_bytes_atomic(&installed, &bytes, 0o755)
            .map_err(|e| io_failure("cannot install the binary", e))
    }
}

/// The server's environment file (0600: it may hold passwords and keys).
pub struct Environment;

impl Step for Environment {
    fn title(&self) -> String {
        "server settings".into()
    }

    fn plan(&self, cx: &Context) -> String {
        let keys: Vec<&str> = cx.config.environment().iter().map(|(k, _)| *k).collect();
        format!(
            "write {} (0600): {}",
            cx.layout.env_file().display(),
            keys.join(", ")
        )
    }

    fn check(&self, cx: &mut Context) -> Result<Check, Failure> {
        let path = cx.layout.env_file();
        let content = cx.config.environment_file();
        Ok(if files::same(&path, content.as_bytes(), 0o600) {
            Check::Done(path.display().to_string())
        } else if path.exists() {
            Check::Todo(format!("rewrite {} with the answers", path.display()))
        } else {
            Check::Todo(format!("write {}", path.display()))
        })
    }

    fn apply(&self, cx: &mut Context) -> Result<(), Failure> {
        files::write_atomic(&cx.layout.env_file(), &cx.config.environment_file(), 0o600)
            .map_err(|e| io_failure("cannot write the settings", e))
    }
}

/// The systemd unit, or the run script.
pub struct ServiceDefinition;

impl ServiceDefinition {
    pub fn path(cx: &Context) -> (PathBuf, u32) {
        match cx.config.service {
            Service::Systemd => (cx.layout.systemd_unit(), 0o644),
            Service::Script => (cx.layout.run_script(), 0o755),
        }
    }

    pub fn content(cx: &Context) -> String {
        let env = cx.layout.env_file();
        let local = cx.layout.local_env_file();
        let bin = cx.layout.binary();
        match cx.config.service {
            Service::Systemd => format!(
                "# Written by tdsync deploy.\n\
                 [Unit]\n\
                 Description=tdsync, a sync server for td\n\
                 After=network-online.target\n\
                 Wants=network-online.target\n\n\
                 [Service]\n\
                 EnvironmentFile={env}\n\
                 EnvironmentFile=-{local}\n\
                 ExecStart={bin} serve\n\
                 User={user}\n\
                 Restart=on-failure\n\
                 RestartSec=2\n\n\
                 [Install]\n\
                 WantedBy=multi-user.target\n",
                env = env.display(),
                local = local.display(),
                bin = bin.display(),
                user = cx.config.user.as_deref().unwrap_or("root"),
            ),
            Service::Script => format!(
                "#!/bin/sh\n\
                 # Written by tdsync deploy: the server in the foreground, with its settings.\n\
                 # Run it yourself under any supervisor, or let tdsync deploy start it.\n\
                 set -a\n\
                 . '{env}'\n\
                 if [ -f '{local}' ]; then . '{local}'; fi\n\
                 set +a\n\
                 echo $$ > '{pid}.tmp' && mv '{pid}.tmp' '{pid}'\n\
                 exec '{bin}' serve \"$@\"\n",
                env = env.display(),
                local = local.display(),
                pid = cx.layout.pid_file().display(),
                bin = bin.display(),
            ),
        }
    }
}

impl Step for ServiceDefinition {
    fn title(&self) -> String {
        "service definition".into()
    }

    fn plan(&self, cx: &Context) -> String {
        let (path, _) = Self::path(cx);
        match cx.config.service {
            Service::Systemd => format!("write {} and enable it", path.display()),
            Service::Script => format!("write the run script {}", path.display()),
        }
    }

    fn check(&self, cx: &mut Context) -> Result<Check, Failure> {
        let (path, mode) = Self::path(cx);
        Ok(if files::same(&path, Self::content(cx).as_bytes(), mode) {
            Check::Done(path.display().to_string())
        } else {
            Check::Todo(format!("write {}", path.display()))
        })
    }

    fn apply(&self, cx: &mut Context) -> Result<(), Failure> {
        let (path, mode) = Self::path(cx);
        files::write_atomic(&path, &Self::content(cx), mode)
            .map_err(|e| io_failure("cannot write the service definition", e))?;
        if cx.config.service == Service::Systemd {
            run_command(Command::new("systemctl").arg("daemon-reload"))?;
            run_command(Command::new("systemctl").args(["enable", "tdsync"]))?;
        }
        Ok(())
    }
}
