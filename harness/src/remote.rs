//! The harness against a real server: a `tdsync serve` subprocess (`--transport http`) — the
//! built binary — on a free loopback port with the run's own data directory; a tenant and a
//! token made with the binary's admin commands and the project created through the HTTP API;
//! and what the oracle reads from it (the shard file, opened read-only, and the HTTP API).
//! A restart is a stop (SIGTERM: the server finishes requests in flight and closes its shards;
//! SIGKILL if it does not exit in time) and a start of a new process on the same data
//! directory and port. [`cluster`] runs the same against shard nodes behind gateways
//! (`--transport cluster`); both are a [`RemoteServer`] to the world and the oracle.

pub mod cluster;

use std::{
    fs::File,
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use tdsync_client::transport::http::Http;
use tdsync_protocol::wire::{PullQuery, PullResponse, SyncStatus};
use tdsync_tenants::{Conflict, ProjectId, RebuildReport, TenantId};

pub use self::cluster::ClusterConfig;
use crate::oracle::ServerView;

/// Where a run's clients sync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Backend {
    /// The server's store in this process (`--transport inproc`).
    #[default]
    InProcess,
    /// A `tdsync serve` subprocess of this binary, over HTTP (`--transport http`).
    Http {
        /// The `tdsync` binary to run as the server.
        server_bin: PathBuf,
    },
    /// Shard nodes and gateways of this binary sharing a Postgres control plane and Redis
    /// (`--transport cluster`).
    Cluster(ClusterConfig),
}

impl Backend {
    /// Over HTTP, with [`server_binary`] as the server.
    pub fn http() -> Result<Backend, String> {
        Ok(Backend::Http {
            server_bin: server_binary()?,
        })
    }

    /// `inproc`, `http` or `cluster`, as reports and `--transport` name them.
    pub fn label(&self) -> &'static str {
        match self {
            Backend::InProcess => "inproc",
            Backend::Http { .. } => "http",
            Backend::Cluster(_) => "cluster",
        }
    }

    /// The `tdsync harness run` options that choose this backend again (for repro lines).
    pub fn repro_options(&self) -> String {
        match self {
            Backend::InProcess => String::new(),
            Backend::Http { .. } => " --transport http".into(),
            Backend::Cluster(c) => format!(" --transport cluster {}", c.repro_options()),
        }
    }
}

/// The `tdsync` binary that serves runs over HTTP and in a cluster: this executable when the
/// harness runs inside `tdsync`, else `$TDSYNC_BIN`.
pub fn server_binary() -> Result<PathBuf, String> {
    if let Ok(exe) = std::env::current_exe()
        && exe.file_stem().and_then(|s| s.to_str()) == Some("tdsync")
    {
        return Ok(exe);
    }
    match std::env::var_os("TDSYNC_BIN") {
        Some(bin) if Path::new(&bin).is_file() => Ok(PathBuf::from(bin)),
        Some(bin) => Err(format!(
            "TDSYNC_BIN={} is not a file (build it with `cargo build -p tdsync-gateway`)",
            Path::new(&bin).display()
        )),
        None => Err(
            "--transport http and cluster run the tdsync binary as their servers: run the \
             harness as `tdsync harness run … --transport http`, or set TDSYNC_BIN to a built \
             tdsync (such as target/debug/tdsync)"
                .into(),
        ),
    }
}

/// How long a starting server may take to answer `/healthz`.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long a stopping server may take to exit before it is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// A `tdsync serve` process on one data directory; it keeps its port across restarts (clients
/// keep their URL).
pub struct ServeProcess {
    bin: PathBuf,
    data_dir: PathBuf,
    log_path: PathBuf,
    addr: Option<SocketAddr>,
    child: Option<Child>,
    /// More `tdsync serve` options (`--rate-limit-push 20`, …).
    serve_args: Vec<String>,
    /// Environment variables set for every start (`AWS_ACCESS_KEY_ID`, …).
    env: Vec<(String, String)>,
}

impl ServeProcess {
    pub fn new(bin: &Path, data_dir: &Path, log_path: &Path) -> ServeProcess {
        ServeProcess {
            bin: bin.to_path_buf(),
            data_dir: data_dir.to_path_buf(),
            log_path: log_path.to_path_buf(),
            addr: None,
            child: None,
            serve_args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Starts `tdsync serve` with `args` too, on every start.
    pub fn with_serve_args(mut self, args: &[&str]) -> ServeProcess {
        self.serve_args = args.iter().map(|a| a.to_string()).collect();
        self
    }

    /// Starts `tdsync serve` with these environment variables set too, on every start.
    pub fn with_env(mut self, vars: &[(&str, &str)]) -> ServeProcess {
        self.env = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self
    }

    /// `tdsync --data-dir DIR …`, with nothing of the caller's tdsync settings.
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        for (var, _) in std::env::vars_os() {
            if var.to_string_lossy().starts_with("TDSYNC_") {
                cmd.env_remove(var);
            }
        }
        cmd.arg("--data-dir").arg(&self.data_dir);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Runs an admin command (`tenant create …`, `token mint …`) and returns its output, trimmed.
    pub fn admin(&self, args: &[&str]) -> Result<String, String> {
        let out = self
            .command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running {} {}: {e}", self.bin.display(), args.join(" ")))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!(
                "tdsync {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(stdout.trim().to_string())
    }

    pub fn base_url(&self) -> String {
        match self.addr {
            Some(a) => format!("http://{a}"),
            None => "http://127.0.0.1:0".into(),
        }
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Starts the server (on a free port the first time, on the same port after) and waits
    /// until it answers `/healthz`.
    pub fn start(&mut self) -> Result<(), String> {
        if self.is_running() {
            return Ok(());
        }
        let mut last_error = String::new();
        for _ in 0..3 {
            let addr = match self.addr {
                Some(a) => a,
                None => free_port()?,
            };
            match self.start_on(addr) {
                Ok(()) => {
                    self.addr = Some(addr);
                    return Ok(());
                }
                Err(e) => last_error = e,
            }
            // A first start may lose its port to another process: try another.
            if self.addr.is_some() {
                // The port is the clients' URL: it cannot change after the first start.
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        Err(last_error)
    }

    fn start_on(&mut self, addr: SocketAddr) -> Result<(), String> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|e| format!("opening {}: {e}", self.log_path.display()))?;
        let log2 = log
            .try_clone()
            .map_err(|e| format!("opening {}: {e}", self.log_path.display()))?;
        let mut child = self
            .command()
            .arg("serve")
            .arg("--listen")
            .arg(addr.to_string())
            .args(&self.serve_args)
            .env("TDSYNC_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("starting {} serve: {e}", self.bin.display()))?;
        let agent = agent(Duration::from_secs(2));
        let url = format!("http://{addr}/healthz");
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "tdsync serve on {addr} exited at start ({status}); its log:\n{}",
                    self.log_tail()
                ));
            }
            if let Ok(r) = agent.get(&url).call()
                && r.status().as_u16() == 200
            {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "tdsync serve on {addr} did not answer /healthz within {START_DEADLINE:?}; its log:\n{}",
                    self.log_tail()
                ));
            }
            // Polling a readiness condition, with the deadline above.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    /// Kills the server outright (SIGKILL): nothing is flushed, as when a machine dies.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server: SIGTERM (in-flight requests finish, shards close), then SIGKILL if it
    /// has not exited in time.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + STOP_DEADLINE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The end of the server's log (for errors).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A loopback address nothing listens on right now.
fn free_port() -> Result<SocketAddr, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("finding a free port: {e}"))?;
    l.local_addr()
        .map_err(|e| format!("finding a free port: {e}"))
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into()
}

/// Every rate limit of the run's server at 10^9: a run's simulated devices share one token and
/// one address and make far more requests than any real token; a run checks convergence, and
/// limits have tests of their own.
const LIMITS_OUT_OF_REACH: &[&str] = &[
    "--rate-limit-push",
    "1000000000",
    "--rate-limit-push-burst",
    "1000000000",
    "--rate-limit-pull",
    "1000000000",
    "--rate-limit-pull-burst",
    "1000000000",
    "--rate-limit-other",
    "1000000000",
    "--rate-limit-other-burst",
    "1000000000",
    "--rate-limit-ip",
    "1000000000",
    "--rate-limit-ip-burst",
    "1000000000",
    "--rate-limit-auth-failures",
    "1000000000",
    "--rate-limit-auth-failures-burst",
    "1000000000",
];

/// A run's server in processes of its own, as the world drives it and the oracle reads it: one
/// `tdsync serve` ([`Remote`], `--transport http`) or a cluster ([`cluster::Cluster`]).
pub trait RemoteServer {
    /// The run's tenant, token and project.
    fn run_project(&self) -> &RunProject;
    /// The base URL client `i` syncs through.
    fn url_for(&self, client: usize) -> String;
    /// The project's shard file, on the server that holds it now.
    fn shard_path(&self) -> Result<PathBuf, String>;
    /// The server goes down for a while (a scenario's `server-down`): a process stops (SIGTERM,
    /// SIGKILL if it does not exit in time). A cluster carries on: this returns once another
    /// node serves the project.
    fn stop(&mut self) -> Result<(), String>;
    /// Whatever is down starts again, on its own data directory and port; returns once the
    /// project is served.
    fn start(&mut self) -> Result<(), String>;
    /// Down and straight up again (a scenario's `restart-server`).
    fn restart(&mut self) -> Result<(), String>;

    /// Client `i`'s connection to the run's project (the faults are added around it).
    fn transport(&self, client: usize) -> Result<Http, String> {
        self.run_project().transport(&self.url_for(client))
    }

    /// The project's sync status, as client 0 gets it.
    fn status(&self) -> Result<SyncStatus, String> {
        use tdsync_client::Transport;
        self.transport(0)?.status().map_err(|e| e.to_string())
    }
}

/// The oracle reads a server in processes as td's clients do (the log and the conflicts over
/// HTTP, through client 0's URL), and the projection from the shard file of whoever holds it.
impl ServerView for dyn RemoteServer + '_ {
    fn pull(&self, query: &PullQuery) -> Result<PullResponse, String> {
        use tdsync_client::Transport;
        self.transport(0)?.pull(query).map_err(|e| e.to_string())
    }

    fn shard_path(&self) -> Result<PathBuf, String> {
        RemoteServer::shard_path(self)
    }

    fn rebuild_check(&self) -> Result<RebuildReport, String> {
        let path = RemoteServer::shard_path(self)?;
        tdsync_tenants::rebuild_check_file(&path).map_err(|e| e.to_string())
    }

    fn conflicts(&self) -> Result<Vec<Conflict>, String> {
        self.run_project().conflicts(&self.url_for(0))
    }
}

/// A run's tenant, admin token and project, made as an operator and td make them: the tenant and
/// the token with the binary's admin commands, the project through `POST /v1/projects`.
pub struct RunProject {
    pub tenant: TenantId,
    pub project: ProjectId,
    token: String,
    agent: ureq::Agent,
}

impl RunProject {
    /// A tenant named `name` and an admin token of it; `admin` runs one admin command against
    /// the run's control plane and returns what it printed. Returns the tenant id and the token.
    pub fn tenant_and_token(
        admin: impl Fn(&[&str]) -> Result<String, String>,
        name: &str,
    ) -> Result<(String, String), String> {
        let tenant = admin(&["tenant", "create", name])?;
        let token = admin(&[
            "token", "mint", "--tenant", &tenant, "--scope", "admin", "--name", "harness",
        ])?;
        if !token.starts_with("tds_") {
            return Err(format!("token mint printed {token:?}, not a token"));
        }
        Ok((tenant, token))
    }

    /// Creates the run's project through the server at `base_url`.
    pub fn create(base_url: &str, tenant: &str, token: String) -> Result<RunProject, String> {
        let agent = agent(Duration::from_secs(30));
        let url = format!("{base_url}/v1/projects");
        let body = br#"{"name":"harness","description":""}"#;
        let (status, text) = read(
            agent
                .post(&url)
                .header("Authorization", format!("Bearer {token}"))
                .header("Content-Type", "application/json")
                .send(&body[..]),
        )?;
        if status != 201 {
            return Err(format!("POST /v1/projects answered {status}: {text}"));
        }
        let created: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("POST /v1/projects: {e}: {text}"))?;
        let project = created["id"].as_str().unwrap_or_default();
        Ok(RunProject {
            tenant: TenantId::parse(tenant).map_err(|e| format!("tenant id {tenant:?}: {e}"))?,
            project: ProjectId::parse(project)
                .map_err(|e| format!("project id {project:?}: {e}"))?,
            token,
            agent,
        })
    }

    /// A connection to the project through the server at `base_url`.
    pub fn transport(&self, base_url: &str) -> Result<Http, String> {
        Http::new(base_url, self.project.as_str(), Some(&self.token)).map_err(|e| e.to_string())
    }

    /// The project's shard file under a server's data directory.
    pub fn shard_in(&self, data_dir: &Path) -> PathBuf {
        data_dir
            .join("tenants")
            .join(self.tenant.as_str())
            .join(format!("{}.db", self.project.as_str()))
    }

    /// A GET with the run's token: its status and body.
    fn get(&self, url: &str) -> Result<(u16, String), String> {
        read(
            self.agent
                .get(url)
                .header("Authorization", format!("Bearer {}", self.token))
                .call(),
        )
    }

    /// Whether the server at `base_url` serves the project: a call that only the project's
    /// owner answers (a gateway may answer a status, or a pull at the head, from the head shared
    /// through Redis; the conflicts it always forwards).
    pub fn served(&self, base_url: &str) -> Result<(), String> {
        let url = format!(
            "{base_url}/v1/projects/{}/conflicts?after=0&limit=1",
            self.project
        );
        let (status, text) = self.get(&url)?;
        match status {
            200 => Ok(()),
            _ => Err(format!("GET conflicts answered {status}: {text}")),
        }
    }

    /// `GET /v1/projects/{id}/conflicts` at `base_url`, every page.
    pub fn conflicts(&self, base_url: &str) -> Result<Vec<Conflict>, String> {
        let mut out: Vec<Conflict> = Vec::new();
        loop {
            let after = out.last().map_or(0, |c| c.id);
            let url = format!(
                "{base_url}/v1/projects/{}/conflicts?after={after}&limit=10000",
                self.project
            );
            let (status, text) = self.get(&url)?;
            if status != 200 {
                return Err(format!("GET conflicts answered {status}: {text}"));
            }
            let page: Vec<Conflict> =
                serde_json::from_str(&text).map_err(|e| format!("GET conflicts: {e}: {text}"))?;
            if page.is_empty() {
                return Ok(out);
            }
            out.extend(page);
        }
    }
}

fn read(
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<(u16, String), String> {
    let mut r = result.map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().map_err(|e| e.to_string())?;
    Ok((status, text))
}

/// A run's server over HTTP (`--transport http`): one `tdsync serve` process with its own data
/// directory and SQLite control plane.
pub struct Remote {
    pub process: ServeProcess,
    pub data_dir: PathBuf,
    pub project: RunProject,
}

impl Remote {
    /// Makes a tenant and a token with the admin commands, starts `tdsync serve` on `data_dir`,
    /// and creates the run's project through `POST /v1/projects`.
    pub fn start(bin: &Path, data_dir: &Path, log_path: &Path) -> Result<Remote, String> {
        let mut process =
            ServeProcess::new(bin, data_dir, log_path).with_serve_args(LIMITS_OUT_OF_REACH);
        let (tenant, token) = RunProject::tenant_and_token(|args| process.admin(args), "harness")?;
        process.start()?;
        let project = RunProject::create(&process.base_url(), &tenant, token)?;
        Ok(Remote {
            process,
            data_dir: data_dir.to_path_buf(),
            project,
        })
    }
}

impl RemoteServer for Remote {
    fn run_project(&self) -> &RunProject {
        &self.project
    }

    fn url_for(&self, _client: usize) -> String {
        self.process.base_url()
    }

    fn shard_path(&self) -> Result<PathBuf, String> {
        Ok(self.project.shard_in(&self.data_dir))
    }

    fn stop(&mut self) -> Result<(), String> {
        self.process.stop();
        Ok(())
    }

    fn start(&mut self) -> Result<(), String> {
        self.process.start()
    }

    fn restart(&mut self) -> Result<(), String> {
        self.process.stop();
        self.process.start()
    }
}
