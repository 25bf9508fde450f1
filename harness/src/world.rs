//! A run's world: one in-process server and the simulated td clients, each its own td database
//! on disk, and the executor that carries out a plan's actions against them, recording a
//! timeline as it goes.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use tdsync_client::{
    Identity, SyncClient, SyncError, SyncOptions, Transport, TransportError,
    engine::SyncReport,
    tddb::TdDatabase,
    transport::in_process::{FaultCounts, Faults, Faulty, Local, LocalServer},
};
use tdsync_tenants::{ProjectId, TenantId, Tenants, TenantsConfig};

use crate::{
    fixtures,
    plan::{Action, ClientSpec, NetworkFaults, Plan},
    remote::{Backend, Remote, RemoteServer, cluster::Cluster},
    td_writer::TdWriter,
    writes::{self, Names},
};

/// A simulated client's connection: the in-process store, or a `tdsync serve` or a cluster's
/// gateway over HTTP, behind the same fault model.
pub type SimTransport = Faulty<Box<dyn Transport>>;

/// What went wrong building or driving the world (not a divergence: those are the oracle's).
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    #[error("setting up the run: {0}")]
    Setup(String),
    #[error("client {client}: {message}")]
    Client { client: usize, message: String },
    /// A server in processes did not come back, or (a cluster) did not fail over.
    #[error("the server: {0}")]
    Server(String),
}

/// One line of a run's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub step: usize,
    pub at_ms: u64,
    pub client: Option<usize>,
    pub action: String,
    /// `ok`, `refused: …` (td itself would refuse), or `error: …`.
    pub outcome: String,
    /// Server head after the step.
    pub head: i64,
}

/// What one client's syncs did over a run (td's chaos report calls these sync stats), for
/// reports and for tests that check a scenario really exercised its subject.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientStats {
    /// Push, pull and sync steps that succeeded, and that failed.
    pub ok: u64,
    pub failed: u64,
    /// Events the server stored for the first time.
    pub accepted: u64,
    /// Events the server answered as already stored (a re-push after a lost reply).
    pub duplicates: u64,
    pub pulled: u64,
    /// Pulled events this client stepped over (quarantined, orphaned, cycle losers).
    pub skipped: u64,
    /// Times the client's process died and its database was opened again.
    pub reopened: u64,
    /// Transport faults, over every connection the client had.
    pub lost_requests: u64,
    pub lost_replies: u64,
    pub duplicate_deliveries: u64,
    pub server_errors: u64,
    pub offline_refusals: u64,
}

impl ClientStats {
    fn add_faults(&mut self, c: &FaultCounts) {
        use std::sync::atomic::Ordering::Relaxed;
        self.lost_requests += c.lost_requests.load(Relaxed);
        self.lost_replies += c.lost_replies.load(Relaxed);
        self.duplicate_deliveries += c.duplicates.load(Relaxed);
        self.server_errors += c.server_errors.load(Relaxed);
        self.offline_refusals += c.offline_refusals.load(Relaxed);
    }

    fn add_report(&mut self, r: &SyncReport) {
        self.ok += 1;
        self.accepted += r.push.accepted as u64;
        self.duplicates += r.push.duplicates as u64;
        self.pulled += r.pull.pulled as u64;
        self.skipped += r.pull.skipped as u64;
    }
}

/// One simulated td installation.
pub struct SimClient {
    pub spec: ClientSpec,
    pub db_path: PathBuf,
    pub identity: Identity,
    client: Option<SyncClient<SimTransport>>,
    active_work_session: Option<String>,
    /// Issues this client created (for read-your-writes).
    pub created_issues: Vec<String>,
    writes: u64,
    /// Stats so far; fault counts of connections already closed are folded in.
    stats: ClientStats,
}

impl SimClient {
    pub fn sync(&self) -> &SyncClient<SimTransport> {
        self.client
            .as_ref()
            .expect("a client is only None while it is being reopened")
    }

    /// This client's stats, the current connection's fault counts included.
    pub fn stats(&self) -> ClientStats {
        let mut out = self.stats.clone();
        if let Some(c) = &self.client {
            out.add_faults(c.transport().counts());
        }
        out
    }

    /// Closes the current connection (keeping its fault counts) and returns it.
    fn disconnect(&mut self) -> Option<SyncClient<SimTransport>> {
        let old = self.client.take();
        if let Some(c) = &old {
            self.stats.add_faults(c.transport().counts());
        }
        old
    }
}

/// Gives `db` a wrong apply rule (see [`ClientSpec::wrong_apply_rule`]).
#[cfg(feature = "fault-injection")]
fn break_apply_rule(db: &TdDatabase) -> Result<(), String> {
    db.inject_apply_fault(Some(
        tdsync_projection::ApplyFault::MergeIgnoresPreviousData,
    ));
    Ok(())
}

#[cfg(not(feature = "fault-injection"))]
fn break_apply_rule(_: &TdDatabase) -> Result<(), String> {
    Err(
        "the plan asks for a wrong apply rule, which only a harness built with its \
         `fault-injection` feature has"
            .into(),
    )
}

pub struct World {
    /// Over HTTP: the `tdsync serve` process, or the cluster's, and the run's tenant, token and
    /// project (declared first, so the processes stop before their directory is removed).
    pub remote: Option<Box<dyn RemoteServer>>,
    pub dir: tempfile::TempDir,
    /// In-process: the server's store (stopped, unused, over HTTP).
    pub server: LocalServer,
    pub tenant: TenantId,
    pub project: ProjectId,
    pub clients: Vec<SimClient>,
    pub timeline: Vec<TimelineEntry>,
    network: NetworkFaults,
    seed: u64,
    started: Instant,
    /// Failures that are not divergence but still bugs (an unexpected error from a sync).
    pub unexpected: Vec<String>,
    /// Rows created under a name, for later actions of any client (see `Pick::Named`).
    pub names: Names,
}

impl World {
    pub fn new(plan: &Plan, fixtures_dir: &Path) -> Result<World, WorldError> {
        World::new_on(plan, fixtures_dir, &Backend::InProcess)
    }

    /// A world whose clients sync through `backend`.
    pub fn new_on(
        plan: &Plan,
        fixtures_dir: &Path,
        backend: &Backend,
    ) -> Result<World, WorldError> {
        let setup = |e: &dyn std::fmt::Display| WorldError::Setup(e.to_string());
        let dir = tempfile::Builder::new()
            .prefix("tdsync-run-")
            .tempdir_in(scratch_dir())
            .map_err(|e| setup(&e))?;
        let (server, remote, tenant, project) = match backend {
            Backend::InProcess => {
                let store = open_store(dir.path())?;
                let tenant = TenantId::parse("harness").map_err(|e| setup(&e))?;
                let project = ProjectId::parse("p_harness").map_err(|e| setup(&e))?;
                (LocalServer::new(store), None, tenant, project)
            }
            Backend::Http { server_bin } => {
                let remote = Remote::start(
                    server_bin,
                    &dir.path().join("server"),
                    &dir.path().join("server.log"),
                )
                .map_err(|e| setup(&e))?;
                remote_parts(Box::new(remote))
            }
            Backend::Cluster(config) => {
                let cluster = Cluster::start(config, dir.path()).map_err(|e| setup(&e))?;
                remote_parts(Box::new(cluster))
            }
        };
        let mut world = World {
            remote,
            dir,
            server,
            tenant,
            project,
            clients: Vec::new(),
            timeline: Vec::new(),
            network: plan.network.clone(),
            seed: plan.seed,
            started: Instant::now(),
            unexpected: Vec::new(),
            names: Names::new(),
        };
        for (i, spec) in plan.clients.iter().enumerate() {
            let db_path = world.dir.path().join(format!("client{i}/.todos/issues.db"));
            fixtures::empty_td_database(spec.schema, &db_path, fixtures_dir).map_err(|e| {
                WorldError::Client {
                    client: i,
                    message: e,
                }
            })?;
            let identity = Identity {
                device_id: format!(
                    "{:032x}",
                    plan.seed.wrapping_mul(31).wrapping_add(i as u64 + 1)
                ),
                session_id: format!("ses_{i:06x}"),
            };
            let mut sim = SimClient {
                spec: spec.clone(),
                db_path,
                identity,
                client: None,
                active_work_session: None,
                created_issues: Vec::new(),
                writes: 0,
                stats: ClientStats::default(),
            };
            sim.client = Some(world.connect(i, &sim, true)?);
            world.clients.push(sim);
        }
        Ok(world)
    }

    /// A sync client for `sim`'s database through a transport with the plan's faults.
    fn connect(
        &self,
        i: usize,
        sim: &SimClient,
        faulty: bool,
    ) -> Result<SyncClient<SimTransport>, WorldError> {
        let db = TdDatabase::open(&sim.db_path).map_err(|e| WorldError::Client {
            client: i,
            message: e.to_string(),
        })?;
        db.link(self.project.as_str())
            .map_err(|e| WorldError::Client {
                client: i,
                message: e.to_string(),
            })?;
        if sim.spec.wrong_apply_rule {
            break_apply_rule(&db).map_err(|message| WorldError::Client { client: i, message })?;
        }
        let n = &self.network;
        let faults = if faulty {
            Faults {
                latency: Duration::from_millis(n.latency_ms),
                jitter: Duration::from_millis(n.jitter_ms),
                lose_request: n.lose_request,
                lose_reply: n.lose_reply,
                duplicate: n.duplicate,
                server_error: n.server_error,
            }
        } else {
            Faults::default()
        };
        let inner: Box<dyn Transport> = match &self.remote {
            None => Box::new(Local::new(
                self.server.clone(),
                self.tenant.clone(),
                self.project.clone(),
            )),
            Some(remote) => Box::new(remote.transport(i).map_err(|e| WorldError::Client {
                client: i,
                message: e,
            })?),
        };
        let transport = Faulty::wrap(
            inner,
            faults,
            self.seed ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9),
        );
        let options = SyncOptions {
            exclude_own: sim.spec.exclude_own,
            ..SyncOptions::default()
        };
        Ok(SyncClient::with_options(
            db,
            transport,
            sim.identity.clone(),
            options,
        ))
    }

    /// Replaces every client's transport with a fault-free one (the network heals) and
    /// reconnects partitioned clients.
    pub fn heal(&mut self) -> Result<(), WorldError> {
        for i in 0..self.clients.len() {
            self.clients[i].disconnect();
            let fresh = self.connect(i, &self.clients[i], false)?;
            self.clients[i].client = Some(fresh);
        }
        self.server_up()
    }

    /// Starts the server on its data directory unless it is running.
    fn server_up(&mut self) -> Result<(), WorldError> {
        if let Some(remote) = &mut self.remote {
            return remote.start().map_err(WorldError::Server);
        }
        if self.server.get().is_none() {
            self.server.start(open_store(self.dir.path())?);
        }
        Ok(())
    }

    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Stops the server (an HTTP run's process exits, calls fail as to an unreachable host; a
    /// cluster's owner of the project exits, and another node takes the project over).
    fn server_down(&mut self) -> Result<(), WorldError> {
        match &mut self.remote {
            Some(remote) => remote.stop().map_err(WorldError::Server),
            None => {
                self.server.stop();
                Ok(())
            }
        }
    }

    /// Stops the server and starts it again at once.
    fn restart_server(&mut self) -> Result<(), WorldError> {
        match &mut self.remote {
            Some(remote) => remote.restart().map_err(WorldError::Server),
            None => {
                self.server.stop();
                self.server_up()
            }
        }
    }

    pub fn head(&self) -> i64 {
        if let Some(remote) = &self.remote {
            return remote.status().map_or(0, |s| s.last_server_seq);
        }
        self.server
            .get()
            .and_then(|s| s.project(&self.tenant, &self.project).status().ok())
            .map_or(0, |s| s.last_server_seq)
    }

    /// Carries out one action and records it in the timeline.
    pub fn execute(&mut self, step: usize, action: &Action) -> Result<(), WorldError> {
        let outcome = match self.perform(step, action) {
            Ok(()) => "ok".to_string(),
            Err(Outcome::Refused(why)) => format!("refused: {why}"),
            Err(Outcome::Failed(why)) => format!("error: {why}"),
            Err(Outcome::Broken(e)) => return Err(e),
        };
        self.timeline.push(TimelineEntry {
            step,
            at_ms: self.elapsed_ms(),
            client: action.client(),
            action: action.label(),
            outcome,
            head: self.head(),
        });
        Ok(())
    }

    fn perform(&mut self, step: usize, action: &Action) -> Result<(), Outcome> {
        let n = self.clients.len();
        let named: Vec<usize> = match action {
            Action::SyncTogether { clients } => clients.clone(),
            other => other.client().into_iter().collect(),
        };
        if let Some(c) = named.into_iter().find(|c| *c >= n) {
            return Err(Outcome::Broken(WorldError::Setup(format!(
                "action {step} names client {c}, the plan has {n}"
            ))));
        }
        match action {
            Action::Write { client, op } => self.write(*client, step, op),
            Action::Push { client } => self.sync_step(*client, SyncKind::Push),
            Action::Pull { client } => self.sync_step(*client, SyncKind::Pull),
            Action::Sync { client } => self.sync_step(*client, SyncKind::Sync),
            Action::Offline { client, offline } => {
                self.clients[*client]
                    .sync()
                    .transport()
                    .set_offline(*offline);
                Ok(())
            }
            Action::LoseNextReply { client } => {
                self.clients[*client]
                    .sync()
                    .transport()
                    .lose_next_push_reply();
                Ok(())
            }
            Action::RestartServer => self.restart_server().map_err(Outcome::Broken),
            Action::ServerDown => self.server_down().map_err(Outcome::Broken),
            Action::ServerUp => self.server_up().map_err(Outcome::Broken),
            Action::SetClockSkew { client, secs } => {
                self.clients[*client].spec.clock_skew_secs = *secs;
                Ok(())
            }
            Action::CrashDuringPull { client, pages } => self.crash_during_pull(*client, *pages),
            Action::ConcurrentSync { client, syncs } => self.concurrent_sync(*client, *syncs),
            Action::SyncTogether { clients } => self.sync_together(clients),
            Action::ImportHistory { client, events } => self.import_history(*client, *events),
        }
    }

    fn write(&mut self, i: usize, step: usize, op: &crate::plan::WriteOp) -> Result<(), Outcome> {
        let sim = &mut self.clients[i];
        sim.writes += 1;
        let seed = self.seed ^ (step as u64).wrapping_mul(0x2545_f491_4f6c_dd1d) ^ sim.writes;
        let session = sim.identity.session_id.clone();
        let db = sim.client.as_ref().map(SyncClient::db).ok_or_else(|| {
            Outcome::Broken(WorldError::Client {
                client: i,
                message: "no database".into(),
            })
        })?;
        let mut writer = TdWriter::new(db, &session, seed)
            .with_clock_skew(chrono::Duration::seconds(sim.spec.clock_skew_secs))
            .with_active_work_session(sim.active_work_session.clone());
        let result = writes::perform(&mut writer, op, &mut self.names);
        let active = writer.active_work_session().map(str::to_string);
        sim.active_work_session = active;
        match result {
            Ok(Some(created)) => {
                sim.created_issues.push(created);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) if e.is_expected() => Err(Outcome::Refused(e.to_string())),
            Err(e) => Err(Outcome::Broken(WorldError::Client {
                client: i,
                message: format!("write failed: {e}"),
            })),
        }
    }

    fn sync_step(&mut self, i: usize, kind: SyncKind) -> Result<(), Outcome> {
        let result = kind.run(self.clients[i].sync());
        self.record(i, "", result)
    }

    /// Counts a sync step's outcome in the client's stats; an error that no fault explains
    /// is kept as unexpected.
    fn record(
        &mut self,
        i: usize,
        context: &str,
        result: Result<SyncReport, SyncError>,
    ) -> Result<(), Outcome> {
        let stats = &mut self.clients[i].stats;
        match result {
            Ok(report) => {
                stats.add_report(&report);
                Ok(())
            }
            Err(e) => {
                stats.failed += 1;
                if !expected_sync_error(&e) {
                    self.unexpected.push(format!("client {i}{context}: {e}"));
                }
                Err(Outcome::Failed(e.to_string()))
            }
        }
    }

    /// Pulls up to `pages` one-event pages, then drops the client (its process died) and
    /// reopens the database from disk, as td does on its next command.
    fn crash_during_pull(&mut self, i: usize, pages: u32) -> Result<(), Outcome> {
        let sim = &mut self.clients[i];
        let pulled = sim.client.as_ref().map(|c| c.pull_pages(pages as usize, 1));
        sim.disconnect();
        sim.stats.reopened += 1;
        let fresh = self
            .connect(i, &self.clients[i], true)
            .map_err(Outcome::Broken)?;
        self.clients[i].client = Some(fresh);
        match pulled {
            Some(Ok(_)) | None => Ok(()),
            Some(Err(e)) => Err(Outcome::Failed(e.to_string())),
        }
    }

    /// `syncs` syncs of one database at once, each with its own connection (td processes).
    fn concurrent_sync(&mut self, i: usize, syncs: u32) -> Result<(), Outcome> {
        let others = (1..syncs.max(2))
            .map(|_| self.connect(i, &self.clients[i], true))
            .collect::<Result<Vec<_>, _>>()
            .map_err(Outcome::Broken)?;
        let first = self.clients[i].sync();
        // A connection is Send but not Sync: each thread owns its own and hands it back.
        let (mine, theirs) = std::thread::scope(|s| {
            let handles: Vec<_> = others
                .into_iter()
                .map(|c| {
                    s.spawn(move || {
                        let r = c.sync();
                        (c, r)
                    })
                })
                .collect();
            let mine = first.sync();
            (
                mine,
                handles.into_iter().map(|h| h.join()).collect::<Vec<_>>(),
            )
        });
        let mut outcome = self.record(i, " (concurrent sync)", mine);
        for joined in theirs {
            let (c, r) = joined.map_err(|_| panicked(i, "a concurrent sync"))?;
            self.clients[i].stats.add_faults(c.transport().counts());
            outcome = outcome.and(self.record(i, " (concurrent sync)", r));
        }
        outcome
    }

    /// Every listed client syncs at the same moment, each on its own thread (a client is
    /// moved to its thread and back: one td process each).
    fn sync_together(&mut self, clients: &[usize]) -> Result<(), Outcome> {
        let mut order: Vec<usize> = clients.to_vec();
        order.sort_unstable();
        order.dedup();
        let taken: Vec<(usize, SyncClient<SimTransport>)> = order
            .iter()
            .filter_map(|&i| self.clients[i].client.take().map(|c| (i, c)))
            .collect();
        // Released together once every thread is up, so the syncs really overlap.
        let barrier = std::sync::Barrier::new(taken.len());
        let done = std::thread::scope(|s| {
            let handles: Vec<_> = taken
                .into_iter()
                .map(|(i, c)| {
                    let barrier = &barrier;
                    let handle = s.spawn(move || {
                        barrier.wait();
                        let r = c.sync();
                        (c, r)
                    });
                    (i, handle)
                })
                .collect();
            handles
                .into_iter()
                .map(|(i, h)| (i, h.join()))
                .collect::<Vec<_>>()
        });
        let mut outcome = Ok(());
        for (i, joined) in done {
            let (c, r) = joined.map_err(|_| panicked(i, "a herd sync"))?;
            self.clients[i].client = Some(c);
            outcome = outcome.and(self.record(i, " (herd)", r));
        }
        outcome
    }
}

fn panicked(i: usize, what: &str) -> Outcome {
    Outcome::Broken(WorldError::Client {
        client: i,
        message: format!("{what} thread panicked"),
    })
}

/// A td sync call: push, pull, or both.
#[derive(Clone, Copy)]
enum SyncKind {
    Push,
    Pull,
    Sync,
}

impl SyncKind {
    fn run(self, c: &SyncClient<SimTransport>) -> Result<SyncReport, SyncError> {
        Ok(match self {
            SyncKind::Push => SyncReport {
                push: c.push()?,
                ..SyncReport::default()
            },
            SyncKind::Pull => SyncReport {
                pull: c.pull()?,
                ..SyncReport::default()
            },
            SyncKind::Sync => c.sync()?,
        })
    }
}

impl World {
    /// Writes `events` td-shaped issue events straight into a client's action log, as an old
    /// project being onboarded has them (one transaction under td's lock).
    fn import_history(&mut self, i: usize, events: u32) -> Result<(), Outcome> {
        let sim = &self.clients[i];
        let db = sim.sync().db();
        let broken = |e: &dyn std::fmt::Display| {
            Outcome::Broken(WorldError::Client {
                client: i,
                message: format!("importing history: {e}"),
            })
        };
        let prefix = format!("{i}");
        let history = crate::workload::issue_events(events as usize, &prefix);
        let _lock = db.write_lock().acquire().map_err(|e| broken(&e))?;
        let conn = db.connection();
        let tx =
            rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)
                .map_err(|e| broken(&e))?;
        {
            let mut insert = tx
                .prepare(
                    "INSERT INTO action_log (id, session_id, action_type, entity_type, entity_id, \
                     previous_data, new_data, timestamp, undone) VALUES (?1, ?2, ?3, 'issue', ?4, ?5, ?6, ?7, 0)",
                )
                .map_err(|e| broken(&e))?;
            for (n, ev) in history.iter().enumerate() {
                let env: serde_json::Value =
                    serde_json::from_str(ev.payload.get()).map_err(|e| broken(&e))?;
                let prev = match &env["previous_data"] {
                    serde_json::Value::Object(m) if m.is_empty() => String::new(),
                    other => other.to_string(),
                };
                insert
                    .execute(rusqlite::params![
                        format!("al-{i:02x}{n:06x}"),
                        sim.identity.session_id,
                        ev.action_type,
                        ev.entity_id,
                        prev,
                        env["new_data"].to_string(),
                        "2026-03-01T10:00:00Z",
                    ])
                    .map_err(|e| broken(&e))?;
            }
        }
        tx.commit().map_err(|e| broken(&e))?;
        Ok(())
    }
}

/// A server in processes of its own, and the tenant and project of the run, for a new world.
fn remote_parts(
    remote: Box<dyn RemoteServer>,
) -> (
    LocalServer,
    Option<Box<dyn RemoteServer>>,
    TenantId,
    ProjectId,
) {
    let p = remote.run_project();
    let (tenant, project) = (p.tenant.clone(), p.project.clone());
    (LocalServer::stopped(), Some(remote), tenant, project)
}

enum Outcome {
    Refused(String),
    Failed(String),
    Broken(WorldError),
}

/// Errors a faulty network, a server restart or a busy database explain; anything else is a bug.
fn expected_sync_error(e: &SyncError) -> bool {
    match e {
        SyncError::Transport(t) => {
            matches!(t, TransportError::Network(_) | TransportError::Server(_))
        }
        SyncError::Db(d) => d.is_transient(),
        SyncError::NotLinked => false,
    }
}

/// Where runs keep their databases: `TDSYNC_HARNESS_TMP`, else `/dev/shm` where there is one
/// (a run's files are thrown away, and a restart or crash here is a process's, never a power
/// loss, so fsyncs buy nothing — on tmpfs they cost nothing), else the system's temp dir.
pub fn scratch_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("TDSYNC_HARNESS_TMP") {
            return PathBuf::from(dir);
        }
        let shm = Path::new("/dev/shm");
        if shm.is_dir() && tempfile::tempdir_in(shm).is_ok() {
            return shm.to_path_buf();
        }
        std::env::temp_dir()
    })
    .clone()
}

fn open_store(dir: &Path) -> Result<Tenants, WorldError> {
    Tenants::open(TenantsConfig::new(dir.join("server")))
        .map_err(|e| WorldError::Setup(format!("opening the server's data directory: {e}")))
}
