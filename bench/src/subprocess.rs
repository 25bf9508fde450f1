//! A tdsync server in a process of its own — for figures the load generator's own memory would
//! pollute (the server's resident memory per idle connection): `tdsync serve` run from this very
//! binary on a fresh temporary data directory with a SQLite control plane, a tenant and a write
//! token made with the admin commands, on a free loopback port. Also what opening thousands of
//! connections needs: enough file descriptors.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use anyhow::{Context, anyhow, bail};

/// File descriptors the bench and a server keep besides the connections they are asked for.
const SPARE_FDS: u64 = 256;

/// `tdsync serve` in a child process, killed (and its data removed) when dropped.
pub struct Spawned {
    pub url: String,
    pub token: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Spawned {
    pub fn start() -> anyhow::Result<Spawned> {
        let exe = tdsync_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("tdsync-bench-serve-")
            .tempdir()
            .context("creating a temporary data directory")?;
        let admin = |args: &[&str]| -> anyhow::Result<String> {
            let out = command(&exe, &dir.path().to_path_buf())
                .args(args)
                .stdin(Stdio::null())
                .output()
                .with_context(|| format!("running tdsync {}", args.join(" ")))?;
            if !out.status.success() {
                bail!(
                    "tdsync {} failed: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        };
        let tenant = admin(&["tenant", "create", "bench"])?;
        let token = admin(&[
            "token",
            "mint",
            "--tenant",
            &tenant,
            "--scope",
            "write",
            "--name",
            "tdsync bench",
        ])?;
        let mut child = command(&exe, &dir.path().to_path_buf())
            .args(["serve", "--listen", "127.0.0.1:0", "--log", "warn"])
            // Every stream and every baseline connection is one token or one address.
            .args(["--rate-limits", "off"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting tdsync serve")?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, rx) = mpsc::channel();
        // Reads the server's stderr to its end, so a chatty server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut said = Vec::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("tdsync: serving on ") {
                    let url = rest.split_whitespace().next().unwrap_or("").to_string();
                    let _ = tx.send(Ok(url));
                } else if said.len() < 20 {
                    said.push(line);
                }
            }
            let _ = tx.send(Err(said.join("\n")));
        });
        let url = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(url)) if url.starts_with("http://") => url,
            Ok(Ok(other)) => bail!("tdsync serve said it serves on {other:?}"),
            Ok(Err(said)) => {
                let _ = child.wait();
                bail!("tdsync serve ended before serving: {said}")
            }
            Err(_) => {
                let _ = child.kill();
                bail!("tdsync serve did not say where it serves within 30 s")
            }
        };
        Ok(Spawned {
            url,
            token,
            child,
            _dir: dir,
        })
    }

    /// The server's resident memory (`VmRSS`), in bytes.
    pub fn rss(&self) -> anyhow::Result<u64> {
        rss_of(&format!("/proc/{}/status", self.child.id()))
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        // A throwaway server: its data goes with it, nothing to drain.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `VmRSS` of a `/proc/…/status` file, in bytes.
pub fn rss_of(status: &str) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(status).with_context(|| format!("reading {status}"))?;
    let kb: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| anyhow!("no VmRSS in {status}"))?;
    Ok(kb * 1024)
}

/// This program, when it is the tdsync binary (`tdsync bench` runs `tdsync serve` beside it).
fn tdsync_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("finding this program")?;
    let version = Command::new(&exe)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} --version", exe.display()))?;
    if !String::from_utf8_lossy(&version.stdout).starts_with("tdsync ") {
        bail!(
            "the server's memory is measured on `tdsync serve` run as a separate process, and \
             this program ({}) is not the tdsync binary",
            exe.display()
        );
    }
    Ok(exe)
}

/// `tdsync --data-dir DIR …` without the caller's TDSYNC_* settings (its control plane, its
/// listen address): the child uses only what it is given.
fn command(exe: &PathBuf, dir: &PathBuf) -> Command {
    let mut cmd = Command::new(exe);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TDSYNC_") {
            cmd.env_remove(key);
        }
    }
    cmd.arg("--data-dir").arg(dir);
    cmd
}

/// Makes sure this process (and the servers it starts, which inherit the limit) may open
/// `connections` more files: raises the soft `RLIMIT_NOFILE` up to the hard limit when needed,
/// or says what to do. Returns the soft limit now in force.
pub fn ensure_fds(connections: usize, flag: &str) -> anyhow::Result<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let need = connections as u64 + SPARE_FDS;
    let limit = getrlimit(Resource::Nofile);
    let soft = limit.current.unwrap_or(u64::MAX);
    if soft >= need {
        return Ok(soft);
    }
    let hard = limit.maximum.unwrap_or(u64::MAX);
    if hard < need {
        bail!(
            "{flag} {connections} needs about {need} open files, and this process may open at \
             most {hard} (soft limit {soft}): raise the limit (e.g. `ulimit -n {need}` in the \
             shell that runs tdsync bench, as root or within the hard limit) or lower {flag}"
        );
    }
    let raised = rustix::process::Rlimit {
        current: Some(need.max(soft)),
        maximum: limit.maximum,
    };
    setrlimit(Resource::Nofile, raised).with_context(|| {
        format!("raising the open-files limit from {soft} to {need} (try `ulimit -n {need}`)")
    })?;
    eprintln!("bench: raised the open-files limit from {soft} to {need} for {flag} {connections}");
    Ok(need)
}
