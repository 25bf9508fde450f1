//! A run's world: one in-process server and the simulated td clients, each its own td database
//! on disk, and the executor that carries out a plan's actions against them, recording a
//! timeline as it goes.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use tdsync_client::{
    Identity, SyncClient, SyncError, SyncOptions, TransportError,
    tddb::TdDatabase,
    transport::in_process::{Faults, InProcess, LocalServer},
};
use tdsync_tenants::{ProjectId, TenantId, Tenants, TenantsConfig};

use crate::{
    fixtures,
    plan::{Action, ClientSpec, NetworkFaults, Plan},
    td_writer::TdWriter,
    writes,
};

/// What went wrong building or driving the world (not a divergence: those are the oracle's).
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    #[error("setting up the run: {0}")]
    Setup(String),
    #[error("client {client}: {message}")]
    Client { client: usize, message: String },
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

/// One simulated td installation.
pub struct SimClient {
    pub spec: ClientSpec,
    pub db_path: PathBuf,
    pub identity: Identity,
    client: Option<SyncClient<InProcess>>,
    active_work_session: Option<String>,
    /// Issues this client created (for read-your-writes).
    pub created_issues: Vec<String>,
    writes: u64,
}

impl SimClient {
    pub fn sync(&self) -> &SyncClient<InProcess> {
        self.client
            .as_ref()
            .expect("a client is only None while it is being reopened")
    }
}

pub struct World {
    pub dir: tempfile::TempDir,
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
}

impl World {
    pub fn new(plan: &Plan, fixtures_dir: &Path) -> Result<World, WorldError> {
        let setup = |e: &dyn std::fmt::Display| WorldError::Setup(e.to_string());
        let dir = tempfile::tempdir().map_err(|e| setup(&e))?;
        let store = open_store(dir.path())?;
        let tenant = TenantId::parse("harness").map_err(|e| setup(&e))?;
        let project = ProjectId::parse("p_harness").map_err(|e| setup(&e))?;
        store
            .create_project(&tenant, &project)
            .map_err(|e| setup(&e))?;
        let server = LocalServer::new(store);
        let mut world = World {
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
    ) -> Result<SyncClient<InProcess>, WorldError> {
        let db = TdDatabase::open(&sim.db_path).map_err(|e| WorldError::Client {
            client: i,
            message: e.to_string(),
        })?;
        db.link(self.project.as_str())
            .map_err(|e| WorldError::Client {
                client: i,
                message: e.to_string(),
            })?;
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
        let transport = InProcess::with_faults(
            self.server.clone(),
            self.tenant.clone(),
            self.project.clone(),
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
            self.clients[i].client = None;
            let fresh = self.connect(i, &self.clients[i], false)?;
            self.clients[i].client = Some(fresh);
        }
        if self.server.get().is_none() {
            self.server.start(open_store(self.dir.path())?);
        }
        Ok(())
    }

    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub fn head(&self) -> i64 {
        self.server
            .get()
            .and_then(|s| s.status(&self.tenant, &self.project).ok())
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
        if let Some(c) = action.client().filter(|c| *c >= n) {
            return Err(Outcome::Broken(WorldError::Setup(format!(
                "action {step} names client {c}, the plan has {n}"
            ))));
        }
        match action {
            Action::Write { client, op } => self.write(*client, step, op),
            Action::Push { client } => self.sync_step(*client, |c| c.push().map(drop)),
            Action::Pull { client } => self.sync_step(*client, |c| c.pull().map(drop)),
            Action::Sync { client } => self.sync_step(*client, |c| c.sync().map(drop)),
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
            Action::RestartServer => {
                self.server.stop();
                let store = open_store(self.dir.path()).map_err(Outcome::Broken)?;
                self.server.start(store);
                Ok(())
            }
            Action::CrashDuringPull { client, pages } => self.crash_during_pull(*client, *pages),
            Action::ConcurrentSync { client } => self.concurrent_sync(*client),
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
        let result = writes::perform(&mut writer, op);
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

    fn sync_step(
        &mut self,
        i: usize,
        f: impl FnOnce(&SyncClient<InProcess>) -> Result<(), SyncError>,
    ) -> Result<(), Outcome> {
        match f(self.clients[i].sync()) {
            Ok(()) => Ok(()),
            Err(e) if expected_sync_error(&e) => Err(Outcome::Failed(e.to_string())),
            Err(e) => {
                self.unexpected.push(format!("client {i}: {e}"));
                Err(Outcome::Failed(e.to_string()))
            }
        }
    }

    /// Pulls up to `pages` one-event pages, then drops the client (its process died) and
    /// reopens the database from disk, as td does on its next command.
    fn crash_during_pull(&mut self, i: usize, pages: u32) -> Result<(), Outcome> {
        let sim = &mut self.clients[i];
        let pulled = sim.client.as_ref().map(|c| c.pull_pages(pages as usize, 1));
        sim.client = None;
        let fresh = self
            .connect(i, &self.clients[i], true)
            .map_err(Outcome::Broken)?;
        self.clients[i].client = Some(fresh);
        match pulled {
            Some(Ok(_)) | None => Ok(()),
            Some(Err(e)) => Err(Outcome::Failed(e.to_string())),
        }
    }

    /// Two syncs of one database at once, each with its own connection (two td processes).
    fn concurrent_sync(&mut self, i: usize) -> Result<(), Outcome> {
        let second = self
            .connect(i, &self.clients[i], true)
            .map_err(Outcome::Broken)?;
        let first = self.clients[i].sync();
        let (a, b) = std::thread::scope(|s| {
            let other = s.spawn(move || second.sync().map(drop));
            let mine = first.sync().map(drop);
            (mine, other.join())
        });
        let b = b.map_err(|_| {
            Outcome::Broken(WorldError::Client {
                client: i,
                message: "concurrent sync thread panicked".into(),
            })
        })?;
        for r in [a, b] {
            if let Err(e) = r {
                if !expected_sync_error(&e) {
                    self.unexpected
                        .push(format!("client {i} (concurrent sync): {e}"));
                }
                return Err(Outcome::Failed(e.to_string()));
            }
        }
        Ok(())
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

fn open_store(dir: &Path) -> Result<Tenants, WorldError> {
    Tenants::open(TenantsConfig::new(dir.join("server")))
        .map_err(|e| WorldError::Setup(format!("opening the server's data directory: {e}")))
}
