//! Where an install puts things. Every path is under the root (`/` on a real host, `--root DIR`
//! in a sandbox), so a test installs into a temporary directory exactly as a host would.

use std::path::{Path, PathBuf};

/// What the deploy may touch beyond its root: the host's users and services (installing on
/// `/`), and packages and system services (running as root).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reach {
    pub host: bool,
    pub root: bool,
}

impl Reach {
    pub fn of(layout: &Layout) -> Reach {
        Reach {
            host: layout.is_host(),
            root: rustix::process::geteuid().is_root(),
        }
    }

    /// System users, systemd units and ownership: the host itself, as root.
    pub fn host_as_root(self) -> bool {
        self.host && self.root
    }
}

#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: &Path) -> Layout {
        Layout {
            root: root.to_path_buf(),
        }
    }

    /// `/`, or the sandbox given with `--root`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether this is the host itself (system users, packages and systemd are then in reach).
    pub fn is_host(&self) -> bool {
        self.root == Path::new("/")
    }

    fn under(&self, absolute: &str) -> PathBuf {
        self.root.join(absolute.trim_start_matches('/'))
    }

    /// The deploy's own files: answers, secrets and what it recorded.
    pub fn etc(&self) -> PathBuf {
        self.under("/etc/tdsync")
    }

    pub fn answers(&self) -> PathBuf {
        self.etc().join("deploy.toml")
    }

    /// The answers that are secrets (URLs with passwords, S3 keys), 0600.
    pub fn secrets(&self) -> PathBuf {
        self.etc().join("deploy-secrets.toml")
    }

    /// Facts the deploy learned and must not ask again (the admin token's id), 0600.
    pub fn state(&self) -> PathBuf {
        self.etc().join("deploy-state.toml")
    }

    /// The server's environment (`TDSYNC_*`), read by the systemd unit or the run script; 0600.
    pub fn env_file(&self) -> PathBuf {
        self.etc().join("tdsync.env")
    }

    /// Settings of the administrator's own (`TDSYNC_SMTP_URL`, GitHub sign-in…), read after
    /// `tdsync.env`; the deploy never writes it.
    pub fn local_env_file(&self) -> PathBuf {
        self.etc().join("local.env")
    }

    pub fn bin_dir(&self) -> PathBuf {
        self.under("/opt/tdsync/bin")
    }

    /// The installed binary the service runs.
    pub fn binary(&self) -> PathBuf {
        self.bin_dir().join("tdsync")
    }

    /// The binary an upgrade replaced, for `--rollback`.
    pub fn previous_binary(&self) -> PathBuf {
        self.bin_dir().join("tdsync.previous")
    }

    /// The foreground run script (no systemd): loads the environment, then `exec tdsync serve`.
    pub fn run_script(&self) -> PathBuf {
        self.bin_dir().join("tdsync-run")
    }

    pub fn default_data_dir(&self) -> PathBuf {
        self.under("/var/lib/tdsync")
    }

    pub fn log_dir(&self) -> PathBuf {
        self.under("/var/log/tdsync")
    }

    /// The run script's output when the deploy starts it in the background.
    pub fn log_file(&self) -> PathBuf {
        self.log_dir().join("tdsync.log")
    }

    pub fn run_dir(&self) -> PathBuf {
        self.under("/run/tdsync")
    }

    /// The background server's pid (no systemd).
    pub fn pid_file(&self) -> PathBuf {
        self.run_dir().join("tdsync.pid")
    }

    /// The fingerprint (binary and environment) the running server was started with: a
    /// different one means it must be restarted.
    pub fn started_file(&self) -> PathBuf {
        self.run_dir().join("started")
    }

    pub fn systemd_unit(&self) -> PathBuf {
        self.under("/etc/systemd/system/tdsync.service")
    }

    /// Debian's caddy package reads this file.
    pub fn caddyfile(&self) -> PathBuf {
        self.under("/etc/caddy/Caddyfile")
    }

    /// Caddy's pid when the deploy runs it itself (no systemd).
    pub fn caddy_pid_file(&self) -> PathBuf {
        self.run_dir().join("caddy.pid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_is_under_the_root() {
        let layout = Layout::new(Path::new("/tmp/sandbox"));
        assert!(!layout.is_host());
        for path in [
            layout.answers(),
            layout.secrets(),
            layout.env_file(),
            layout.binary(),
            layout.run_script(),
            layout.default_data_dir(),
            layout.pid_file(),
            layout.systemd_unit(),
            layout.caddyfile(),
        ] {
            assert!(path.starts_with("/tmp/sandbox/"), "{}", path.display());
        }
        let host = Layout::new(Path::new("/"));
        assert!(host.is_host());
        assert_eq!(host.binary(), Path::new("/opt/tdsync/bin/tdsync"));
    }
}
