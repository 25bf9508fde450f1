//! The harness against a cluster (`--transport cluster`): three shard nodes (`tdsync serve
//! --role shard`) and two gateways (`--role gateway`), processes of the built binary on
//! loopback, sharing the Postgres control plane and the Redis the run is given (under a key
//! prefix of the run's own) and a `file://` backup directory in the run's directory. The tenant
//! and the token are made with the admin commands against Postgres, the project through a
//! gateway; client `i` syncs through gateway `i % 2`, so both gateways carry traffic.
//!
//! A server fault hits the project's owner, the node the placement store names: a restart is a
//! stop (SIGTERM) and a start of that node on its own data directory and port. Its lease runs out
//! meanwhile, so another node may take the project over from the backup (`--durability
//! replicated`: nothing acknowledged is lost); the oracle judges the shard of whichever node
//! holds the project when it looks.
//!
//! A run needs its Postgres database to itself while it runs: nodes take over every project
//! whose lease ran out, another live run's too, and would serve it from their own backup, which
//! lacks it. Earlier runs' projects (their nodes gone) are taken over harmlessly.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use super::{RemoteServer, RunProject, ServeProcess};

/// Shard nodes and gateways a run starts.
pub const SHARD_NODES: usize = 3;
pub const GATEWAYS: usize = 2;
/// Short leases: a stopped owner's project moves within seconds, not the default ten.
const LEASE_SECS: &str = "2";
/// How long the project may take to be served again after a start: a takeover waits out the
/// stopped owner's lease, then restores the project from the backup.
const SERVED_DEADLINE: Duration = Duration::from_secs(60);
/// How long the oracle waits for the placement store to name one live owner.
const OWNER_DEADLINE: Duration = Duration::from_secs(15);
/// Between two looks at something that is settling.
const POLL: Duration = Duration::from_millis(100);

/// What a cluster run is given: the binary and the services its processes share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub server_bin: PathBuf,
    /// `postgres://…`: the control plane (tenants, tokens) and the placement store.
    pub control_plane: String,
    /// `redis://…`: the live layer's shared state.
    pub redis: String,
}

/// Why a cluster run could not be set up or read.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("--transport cluster needs {option}: {what}")]
    Missing {
        option: &'static str,
        what: &'static str,
    },
    #[error(
        "--transport cluster needs a Postgres control plane (the placement store lives there), \
         not {0}: give --control-plane postgres://…"
    )]
    NotPostgres(String),
    #[error("starting the cluster: {0}")]
    Start(String),
    #[error("reading the placement store (tdsync cluster status): {0}")]
    Placement(String),
    #[error("project {project}: no node of the run holds it ({placed})")]
    NoOwner { project: String, placed: String },
    #[error("project {project} not served through {gateway} within {within:?}: {last}")]
    NotServed {
        project: String,
        gateway: String,
        within: Duration,
        last: String,
    },
}

impl ClusterConfig {
    /// The options `--transport cluster` needs, checked.
    pub fn new(
        server_bin: PathBuf,
        control_plane: Option<String>,
        redis: Option<String>,
    ) -> Result<ClusterConfig, ClusterError> {
        let given = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        let control_plane = given(control_plane).ok_or(ClusterError::Missing {
            option: "--control-plane postgres://…",
            what: "the Postgres database its shard nodes and gateways share (tenants, tokens, \
                   placement), one the run has to itself",
        })?;
        if !(control_plane.starts_with("postgres://") || control_plane.starts_with("postgresql://"))
        {
            return Err(ClusterError::NotPostgres(redact(&control_plane)));
        }
        let redis = given(redis).ok_or(ClusterError::Missing {
            option: "--redis redis://…",
            what: "the Redis its shard nodes and gateways share",
        })?;
        Ok(ClusterConfig {
            server_bin,
            control_plane,
            redis,
        })
    }

    /// `--control-plane … --redis …`, passwords redacted (repro lines end up in reports).
    pub fn repro_options(&self) -> String {
        format!(
            "--control-plane {} --redis {}",
            redact(&self.control_plane),
            redact(&self.redis)
        )
    }
}

/// `url` with the password of its user info (if any) replaced.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:REDACTED@{host}{path}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

fn node_id(n: usize) -> String {
    format!("node-{n}")
}

/// A run's cluster: its processes, and the tenant, token and project made for the run.
pub struct Cluster {
    config: ClusterConfig,
    dir: PathBuf,
    nodes: Vec<ServeProcess>,
    gateways: Vec<ServeProcess>,
    project: RunProject,
}

/// Where the placement store has the project.
#[derive(Debug)]
struct Placed {
    node: String,
    lease_left_secs: f64,
    moving_to: Option<String>,
}

impl Cluster {
    /// Starts the nodes and gateways in `dir`, makes the tenant and token against Postgres and
    /// creates the project through a gateway.
    pub fn start(config: &ClusterConfig, dir: &Path) -> Result<Cluster, ClusterError> {
        // Names of the run's own on the shared services: the Redis keys and the tenant.
        let tag = format!("{:012x}", rand::random::<u64>() >> 16);
        let prefix = format!("tdsync-harness-{tag}:");
        let backup = format!("file://{}", dir.join("backup").display());
        let (pg, redis) = (config.control_plane.as_str(), config.redis.as_str());
        let shared = [
            "--control-plane",
            pg,
            "--redis",
            redis,
            "--redis-prefix",
            &prefix,
            // A run's devices share one token and one address.
            "--rate-limits",
            "off",
        ];
        let process = |name: &str, role: &[&str]| {
            let args: Vec<&str> = shared.iter().chain(role).copied().collect();
            ServeProcess::new(
                &config.server_bin,
                &dir.join(name),
                &dir.join(format!("{name}.log")),
            )
            .with_serve_args(&args)
        };
        let mut nodes: Vec<ServeProcess> = (0..SHARD_NODES)
            .map(|n| {
                let id = node_id(n);
                process(
                    &id,
                    &[
                        "--role",
                        "shard",
                        "--node-id",
                        &id,
                        "--backup-to",
                        &backup,
                        "--backup-interval",
                        "1",
                        "--durability",
                        "replicated",
                        "--lease-secs",
                        LEASE_SECS,
                    ],
                )
            })
            .collect();
        let mut gateways: Vec<ServeProcess> = (0..GATEWAYS)
            .map(|g| process(&format!("gateway-{g}"), &["--role", "gateway"]))
            .collect();
        start_stopped(nodes.iter_mut().chain(gateways.iter_mut()))?;
        let (tenant, token) = RunProject::tenant_and_token(
            |args| admin(&nodes[0], pg, args),
            &format!("harness-{tag}"),
        )
        .map_err(ClusterError::Start)?;
        let project = RunProject::create(&gateways[0].base_url(), &tenant, token)
            .map_err(ClusterError::Start)?;
        Ok(Cluster {
            config: config.clone(),
            dir: dir.to_path_buf(),
            nodes,
            gateways,
            project,
        })
    }

    /// Where the placement store has the project now; None before its first sync.
    fn placed(&self) -> Result<Option<Placed>, ClusterError> {
        let out = admin(
            &self.nodes[0],
            &self.config.control_plane,
            &["cluster", "status", "--json"],
        )
        .map_err(ClusterError::Placement)?;
        let status: serde_json::Value = serde_json::from_str(&out)
            .map_err(|e| ClusterError::Placement(format!("{e}: {out}")))?;
        let project = self.project.project.as_str();
        let Some(p) = status["projects"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["project"] == project)
        else {
            return Ok(None);
        };
        Ok(Some(Placed {
            node: p["node"].as_str().unwrap_or_default().to_string(),
            lease_left_secs: p["lease_left_secs"].as_f64().unwrap_or(0.0),
            moving_to: p["moving_to"].as_str().map(str::to_string),
        }))
    }

    /// The index of the node the placement store names for the project.
    fn index_of(&self, placed: &Placed) -> Option<usize> {
        (0..self.nodes.len()).find(|&n| node_id(n) == placed.node)
    }

    /// The node that holds the project: a live lease, no move under way. Waits for the
    /// placement to settle (a takeover in progress) up to [`OWNER_DEADLINE`].
    fn owner(&self) -> Result<usize, ClusterError> {
        let deadline = Instant::now() + OWNER_DEADLINE;
        loop {
            let placed = self.placed()?;
            if let Some(p) = &placed
                && p.lease_left_secs > 0.0
                && p.moving_to.is_none()
                && let Some(n) = self.index_of(p)
            {
                return Ok(n);
            }
            if Instant::now() > deadline {
                return Err(ClusterError::NoOwner {
                    project: self.project.project.to_string(),
                    placed: placed.map_or_else(|| "not placed".into(), |p| format!("{p:?}")),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// The node the placement store names for the project. Before the project's first sync
    /// nobody owns it, and it is node 0: a restart still restarts a process.
    fn owner_index(&self) -> usize {
        self.placed()
            .ok()
            .flatten()
            .and_then(|p| self.index_of(&p))
            .unwrap_or(0)
    }

    fn stop_owner(&mut self) {
        let owner = self.owner_index();
        self.nodes[owner].stop();
    }

    /// Returns once the project's owner answers through every gateway.
    fn wait_served(&self) -> Result<(), ClusterError> {
        let deadline = Instant::now() + SERVED_DEADLINE;
        for gateway in &self.gateways {
            let url = gateway.base_url();
            while let Err(last) = self.project.served(&url) {
                if Instant::now() > deadline {
                    return Err(ClusterError::NotServed {
                        project: self.project.project.to_string(),
                        gateway: url,
                        within: SERVED_DEADLINE,
                        last,
                    });
                }
                std::thread::sleep(POLL);
            }
        }
        Ok(())
    }
}

/// Runs an admin command (`tenant create`, `cluster status`, …) against the control plane at
/// `pg`; `process` only lends its binary (these commands touch no data directory).
fn admin(process: &ServeProcess, pg: &str, args: &[&str]) -> Result<String, String> {
    let full: Vec<&str> = ["--control-plane", pg]
        .iter()
        .chain(args)
        .copied()
        .collect();
    process.admin(&full)
}

/// Starts every process of `processes` that is not running, at once (each waits for its own
/// `/healthz`; one after another, a run would spend seconds starting five debug binaries).
fn start_stopped<'a>(
    processes: impl Iterator<Item = &'a mut ServeProcess>,
) -> Result<(), ClusterError> {
    let stopped: Vec<&mut ServeProcess> = processes
        .filter_map(|p| (!p.is_running()).then_some(p))
        .collect();
    let outcomes: Vec<Result<(), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = stopped
            .into_iter()
            .map(|p| s.spawn(move || p.start()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("a start panicked".into())))
            .collect()
    });
    outcomes
        .into_iter()
        .collect::<Result<Vec<()>, String>>()
        .map(drop)
        .map_err(ClusterError::Start)
}

impl RemoteServer for Cluster {
    fn run_project(&self) -> &RunProject {
        &self.project
    }

    fn url_for(&self, client: usize) -> String {
        self.gateways[client % self.gateways.len()].base_url()
    }

    fn shard_path(&self) -> Result<PathBuf, String> {
        let owner = self.owner().map_err(|e| e.to_string())?;
        Ok(self.project.shard_in(&self.dir.join(node_id(owner))))
    }

    /// Kills the project's owner (SIGKILL: a crash, not a shutdown); the other nodes carry on,
    /// and one of them takes the project over from the backup once the dead owner's lease runs
    /// out. With `--durability replicated` nothing it acknowledged is lost, which the oracle
    /// checks at the end of the run.
    fn stop(&mut self) -> Result<(), String> {
        let owner = self.owner_index();
        self.nodes[owner].kill();
        self.wait_served().map_err(|e| e.to_string())
    }

    /// Starts every stopped process again and waits until the project is served through each
    /// gateway (by its old owner, or by a node that took it over meanwhile).
    fn start(&mut self) -> Result<(), String> {
        start_stopped(self.nodes.iter_mut().chain(self.gateways.iter_mut()))
            .and_then(|()| self.wait_served())
            .map_err(|e| e.to_string())
    }

    /// Stops the owner and starts it again at once, usually before its lease runs out: it may
    /// serve the project on (its own copy, current for the lease's epoch), or lose it to
    /// another node.
    fn restart(&mut self) -> Result<(), String> {
        self.stop_owner();
        self.start()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_and_nothing_else() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db?sslmode=disable"),
            "postgres://u:REDACTED@h:5432/db?sslmode=disable"
        );
        assert_eq!(
            redact("redis://:pw@127.0.0.1:6379/0"),
            "redis://:REDACTED@127.0.0.1:6379/0"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1:5432/x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }

    #[test]
    fn a_missing_or_wrong_option_is_named() {
        let bin = PathBuf::from("tdsync");
        let pg = Some("postgres://u@h/db".to_string());
        let redis = Some("redis://h:6379".to_string());
        let err = ClusterConfig::new(bin.clone(), None, redis.clone()).unwrap_err();
        assert!(err.to_string().contains("--control-plane"), "{err}");
        let err = ClusterConfig::new(bin.clone(), pg.clone(), Some(" ".into())).unwrap_err();
        assert!(err.to_string().contains("--redis"), "{err}");
        let sqlite = Some("sqlite:///tmp/cp.db".to_string());
        let err = ClusterConfig::new(bin.clone(), sqlite, redis.clone()).unwrap_err();
        assert!(err.to_string().contains("Postgres"), "{err}");
        let ok = ClusterConfig::new(bin, pg, redis).unwrap();
        assert_eq!(
            ok.repro_options(),
            "--control-plane postgres://u@h/db --redis redis://h:6379"
        );
    }
}
