//! Where replays happen: an in-process server and N fresh clients that outlive one step, so a
//! series replays each file on top of the last; each step brings its own source (a working
//! copy of the file replayed).

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use tdsync_client::{
    Identity, SyncClient,
    tddb::TdDatabase,
    transport::in_process::{InProcess, LocalServer},
};
use tdsync_tenants::{ProjectId, TenantId, Tenants, TenantsConfig};

use super::{
    DamageWarning, ReplayFigures, ReplayOptions, ReplayReport,
    progress::{Progress, Reporting},
    source::{self, InputError},
};
use crate::{
    oracle::{self, Failure, Replica, Subject, failure},
    report::{ConflictView, RunReport},
    world::TimelineEntry,
};

/// One session for every push: re-pushed rows must keep their dedup key (device, session, rowid).
const SESSION: &str = "ses_replay";
const SOURCE_DEVICE: &str = "replay-source";

/// What a replay tolerates beyond the scenarios' oracle, named for reports.
const TOLERATED: &str = "action_log rows td itself never sends (no id, unknown or never-synced entity type, unreadable payload) stay pending on the source, as in td";

/// How a step is named in its report.
pub(super) struct Label {
    pub seed: u64,
    /// (step, steps) of a series.
    pub step: Option<(usize, usize)>,
    pub repro: String,
}

pub(super) struct Stage<'a> {
    dir: tempfile::TempDir,
    server: LocalServer,
    store: Tenants,
    tenant: TenantId,
    project: ProjectId,
    fresh: Vec<SyncClient<Reporting<'a>>>,
    progress: Progress<'a>,
    progress_every: Duration,
    /// The previous step's working copy, which the next step continues.
    previous: Option<PathBuf>,
    /// Events in the log after the previous step: what the fresh clients already hold.
    known: i64,
}

impl<'a> Stage<'a> {
    pub fn new(opts: &ReplayOptions<'a>) -> Result<Stage<'a>, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("creating a scratch directory: {e}"))?;
        let store = Tenants::open(TenantsConfig::new(dir.path().join("server")))
            .map_err(|e| format!("opening the replay server: {e}"))?;
        let tenant = TenantId::parse("replay").map_err(|e| e.to_string())?;
        let project = ProjectId::parse("p_replay").map_err(|e| e.to_string())?;
        let server = LocalServer::new(store);
        let store = server.get().ok_or("the replay server did not start")?;
        let mut stage = Stage {
            dir,
            server,
            store,
            tenant,
            project,
            fresh: Vec::new(),
            progress: opts.progress,
            progress_every: opts.progress_every,
            previous: None,
            known: 0,
        };
        for i in 1..=opts.clients {
            let path = stage.dir.path().join(format!("fresh-{i}/.todos/issues.db"));
            let db = TdDatabase::create(&path).map_err(|e| e.to_string())?;
            let client = stage
                .client(db, format!("replay-fresh-{i}"))
                .map_err(|e| format!("fresh client {i}: {e}"))?;
            stage.fresh.push(client);
        }
        Ok(stage)
    }

    fn client(
        &self,
        db: TdDatabase,
        device_id: String,
    ) -> Result<SyncClient<Reporting<'a>>, String> {
        db.link(self.project.as_str()).map_err(|e| e.to_string())?;
        let transport = InProcess::new(
            self.server.clone(),
            self.tenant.clone(),
            self.project.clone(),
        );
        Ok(SyncClient::new(
            db,
            Reporting::new(transport, self.progress, self.progress_every),
            Identity {
                device_id,
                session_id: SESSION.into(),
            },
        ))
    }

    fn head(&self) -> (i64, i64) {
        self.store
            .project(&self.tenant, &self.project)
            .status()
            .map_or((0, 0), |s| (s.event_count, s.last_server_seq))
    }

    /// Replays `input` on top of what earlier steps synced.
    pub fn step(&mut self, input: &Path, label: Label) -> Result<ReplayReport, InputError> {
        let started = Instant::now();
        let n = label.step.map_or(1, |(k, _)| k);
        let copy = self.dir.path().join(format!("source-{n}/.todos/issues.db"));
        let prepared = self.prepare(input, &copy)?;
        let mut run = StepRun::new(started, &file_name(input));
        let source = self
            .client(prepared.db, SOURCE_DEVICE.into())
            .map_err(|e| InputError::new(input, format!("linking the copy: {e}")))?;
        let mut figures = ReplayFigures {
            file: input.display().to_string(),
            step: label.step.map(|(k, _)| k),
            steps: label.step.map(|(_, n)| n),
            td_schema: source.db().schema_version(),
            action_log_rows: prepared.rows,
            pending_rows: source.pending_count().map_or(0, |n| n.max(0) as usize),
            dropped_rows: prepared.dropped,
            integrity_warnings: prepared.warnings,
            ..ReplayFigures::default()
        };
        let pushed = self.push(&source, &mut run, &mut figures, prepared.returning);
        // A push that failed explains every check after it; the report keeps just that.
        let (rounds, conflicts) = if pushed {
            self.pull(&source, &mut run, &mut figures);
            self.settle_and_check(&source, &prepared.issues, &mut run)
        } else {
            (0, Vec::new())
        };
        figures.conflicts = conflicts.len();
        figures.unsendable = source
            .db()
            .pending_after(0, usize::MAX)
            .map_or(0, |p| p.unsendable.len());
        // Messages about the working copy name the input: that is the file the user knows.
        let (ours, theirs) = (copy.display().to_string(), input.display().to_string());
        for f in &mut run.failures {
            f.message = f.message.replace(&ours, &theirs);
        }
        let schemas = std::iter::once(figures.td_schema)
            .chain(self.fresh.iter().map(|c| c.db().schema_version()))
            .collect();
        // The next step continues this copy; the one before is no longer needed.
        drop(source);
        if let Some(old) = self.previous.replace(copy) {
            let _ = std::fs::remove_dir_all(old.parent().and_then(Path::parent).unwrap_or(&old));
        }
        let report = self.report(run, label, schemas, prepared.rows, rounds, conflicts);
        Ok(ReplayReport {
            run: report,
            replay: figures,
        })
    }

    /// The step's run report, in the scenarios' form.
    fn report(
        &mut self,
        run: StepRun,
        label: Label,
        client_schemas: Vec<i64>,
        rows: i64,
        quiescence_rounds: usize,
        conflicts: Vec<ConflictView>,
    ) -> RunReport {
        let (events, _) = self.head();
        let new_events = events - self.known;
        self.known = events;
        let duration_ms = run.started.elapsed().as_millis() as u64;
        let mut tolerances = oracle::tolerances().1;
        tolerances.push(TOLERATED.into());
        RunReport {
            scenario: format!("replay:{}", run.name),
            seed: label.seed,
            clients: client_schemas.len(),
            client_schemas,
            actions: rows.max(0) as usize,
            transport: "inproc".into(),
            faults: Vec::new(),
            passed: run.failures.is_empty(),
            duration_ms,
            events,
            events_per_sec: new_events as f64 / (duration_ms as f64 / 1000.0).max(1e-3),
            quiescence_rounds,
            timeline: run.timeline,
            conflicts,
            failures: run.failures,
            tolerances,
            repro: label.repro,
            shrunk_actions: None,
        }
    }

    /// The working copy of `input`, ready to push.
    fn prepare(&self, input: &Path, copy: &Path) -> Result<Prepared, InputError> {
        source::copy_input(input, copy)?;
        let db = source::open_copy(copy, input)?;
        let broken = |what: &str, e: &dyn std::fmt::Display| {
            InputError::new(input, format!("preparing the copy ({what}): {e}"))
        };
        let dropped = source::mark_pending(&db).map_err(|e| broken("marking it pending", &e))?;
        let returning = match &self.previous {
            Some(previous) => source::continue_from(&db, previous)
                .map_err(|e| broken("continuing the previous step", &e))?,
            None => 0,
        };
        let issues = source::issue_ids(&db).map_err(|e| broken("reading its issues", &e))?;
        let rows = source::action_log_rows(&db).map_err(|e| broken("counting its log", &e))?;
        let warnings = db
            .integrity_warnings()
            .iter()
            .map(|w| DamageWarning::about(input, w))
            .collect();
        Ok(Prepared {
            warnings,
            db,
            dropped,
            returning,
            issues,
            rows,
        })
    }

    fn push(
        &self,
        source: &SyncClient<Reporting<'a>>,
        run: &mut StepRun,
        figures: &mut ReplayFigures,
        returning: usize,
    ) -> bool {
        let pending = source.pending_count().ok().map(|n| n.max(0) as usize);
        source
            .transport()
            .begin(format!("{}: source", run.label), pending);
        let started = Instant::now();
        let result = source.push();
        let outcome = match &result {
            Ok(p) => {
                figures.sent = p.sent;
                figures.accepted = p.accepted;
                figures.duplicates = p.duplicates;
                figures.backfilled = p.backfilled;
                figures.rejected = p.rejected.len();
                if !p.rejected.is_empty() {
                    let first: Vec<String> = p
                        .rejected
                        .iter()
                        .take(5)
                        .map(|r| format!("{r:?}"))
                        .collect();
                    run.failures.push(failure(
                        "rejected",
                        format!(
                            "the server rejected {} event(s); first: {}",
                            p.rejected.len(),
                            first.join("; ")
                        ),
                    ));
                }
                // Rows an earlier step pushed come back under the same key: each must be
                // recognised, none stored twice.
                if p.duplicates != returning {
                    run.failures.push(failure(
                        "dedup",
                        format!(
                            "{returning} row(s) pushed by the previous step were sent again; the server recognised {} as duplicates",
                            p.duplicates
                        ),
                    ));
                }
                format!(
                    "ok: {} sent, {} accepted, {} duplicates, {} backfilled",
                    p.sent, p.accepted, p.duplicates, p.backfilled
                )
            }
            Err(e) => {
                run.failures
                    .push(failure("push", format!("the source's push failed: {e}")));
                format!("error: {e}")
            }
        };
        figures.push_ms = started.elapsed().as_millis() as u64;
        run.note(0, "push", outcome, self.head().1);
        result.is_ok()
    }

    /// Every fresh client pulls what is new, then the source pulls its own events back (as
    /// `td sync` does).
    fn pull(
        &self,
        source: &SyncClient<Reporting<'a>>,
        run: &mut StepRun,
        figures: &mut ReplayFigures,
    ) {
        let started = Instant::now();
        let (events, head) = self.head();
        let new = events - self.known;
        for (i, client) in self.fresh.iter().enumerate() {
            let who = format!("fresh {}", i + 1);
            let total = Some(new.max(0) as usize);
            client
                .transport()
                .begin(format!("{}: {who}", run.label), total);
            let outcome = match client.pull() {
                Ok(r) => {
                    figures.pulled.push(r.pulled);
                    figures.skipped += r.skipped;
                    if r.pulled as i64 != new || r.cursor != head {
                        run.failures.push(failure(
                            "pull",
                            format!(
                                "{who} pulled {} event(s) up to seq {}; the server had {new} new, up to seq {head}",
                                r.pulled, r.cursor
                            ),
                        ));
                    }
                    format!("ok: {} pulled, {} skipped", r.pulled, r.skipped)
                }
                Err(e) => {
                    figures.pulled.push(0);
                    run.failures
                        .push(failure("pull", format!("{who}: pull failed: {e}")));
                    format!("error: {e}")
                }
            };
            run.note(i + 1, "pull", outcome, head);
        }
        source.transport().begin(
            format!("{}: source", run.label),
            Some(events.max(0) as usize),
        );
        // A series' later file holds td's own rows, which no earlier pull-back ever touched
        // (the project never synced): where an event carries less than its row (handoff
        // times in whole seconds, …), only the whole log brings it to the server's state —
        // as in a one-file replay. The push above still ran from the carried cursor.
        let rewound = match &self.previous {
            Some(_) => source::rewind_cursor(source.db()),
            None => Ok(()),
        };
        let outcome = match rewound
            .map_err(|e| e.to_string())
            .and_then(|()| source.pull().map_err(|e| e.to_string()))
        {
            Ok(r) => {
                figures.pulled_back = r.pulled;
                figures.skipped += r.skipped;
                format!("ok: {} pulled back, {} skipped", r.pulled, r.skipped)
            }
            Err(e) => {
                run.failures.push(failure(
                    "pull",
                    format!("the source's pull of its own events failed: {e}"),
                ));
                format!("error: {e}")
            }
        };
        run.note(0, "pull", outcome, head);
        figures.pull_ms = started.elapsed().as_millis() as u64;
    }

    /// Everyone syncs until nothing moves (a replay must already be at rest: any movement shows
    /// in the rounds), then the oracle judges. Returns the rounds and the conflicts recorded.
    fn settle_and_check(
        &self,
        source: &SyncClient<Reporting<'a>>,
        issues: &[String],
        run: &mut StepRun,
    ) -> (usize, Vec<ConflictView>) {
        let clients: Vec<(String, &SyncClient<Reporting<'a>>)> =
            std::iter::once(("source".to_string(), source))
                .chain(
                    self.fresh
                        .iter()
                        .enumerate()
                        .map(|(i, c)| (format!("fresh {}", i + 1), c)),
                )
                .collect();
        for (_, c) in &clients {
            c.transport()
                .begin(format!("{}: settling", run.label), None);
        }
        let rounds = oracle::settle(&clients).unwrap_or_else(|f| {
            run.failures.push(*f);
            0
        });
        if run.started.elapsed() >= self.progress_every {
            (self.progress)(&format!("{}: checking convergence", run.label));
        }
        let subject = Subject {
            server: Box::new(self.store.project(&self.tenant, &self.project)),
            replicas: self.replicas(source, issues),
        };
        run.failures.extend(oracle::check_subject(&subject));
        (rounds, subject.conflict_views())
    }

    fn replicas<'s>(
        &'s self,
        source: &'s SyncClient<Reporting<'a>>,
        issues: &'s [String],
    ) -> Vec<Replica<'s>> {
        let fresh = self.fresh.iter().enumerate().map(|(i, c)| Replica {
            name: format!("fresh {}", i + 1),
            device_id: &c.identity().device_id,
            db: c.db(),
            created_issues: &[],
            may_keep_unsendable: false,
        });
        std::iter::once(Replica {
            name: "source".into(),
            device_id: SOURCE_DEVICE,
            db: source.db(),
            // Every issue of the source must reach the server.
            created_issues: issues,
            may_keep_unsendable: true,
        })
        .chain(fresh)
        .collect()
    }
}

/// The working copy and what preparing it found.
struct Prepared {
    db: TdDatabase,
    dropped: usize,
    /// Rows the previous step pushed that this copy sends again.
    returning: usize,
    issues: Vec<String>,
    rows: i64,
    /// Damage the input has where sync never looks.
    warnings: Vec<DamageWarning>,
}

/// What one step collects on its way.
struct StepRun {
    started: Instant,
    /// The input's file name.
    name: String,
    /// `replay <file name>`, for progress lines.
    label: String,
    failures: Vec<Failure>,
    timeline: Vec<TimelineEntry>,
}

impl StepRun {
    fn new(started: Instant, name: &str) -> StepRun {
        StepRun {
            started,
            name: name.to_string(),
            label: format!("replay {name}"),
            failures: Vec::new(),
            timeline: Vec::new(),
        }
    }

    /// A timeline line; `client` 0 is the source, 1.. the fresh clients.
    fn note(&mut self, client: usize, action: &str, outcome: String, head: i64) {
        self.timeline.push(TimelineEntry {
            step: self.timeline.len(),
            at_ms: self.started.elapsed().as_millis() as u64,
            client: Some(client),
            action: action.into(),
            outcome,
            head,
        });
    }
}

pub(super) fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}
