//! Executes a plan: builds the world, carries out every action, brings the world to rest, asks
//! the oracle, and writes the report.

use std::{path::PathBuf, time::Instant};

use crate::{
    oracle::{self, Failure},
    plan::{Action, Plan},
    remote::Backend,
    report::{ConflictView, RunReport},
    world::World,
};

/// How runs are carried out (shared by every run of one command).
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub fixtures: PathBuf,
    /// The command line (without the seed) that reproduces a run of this plan.
    pub repro_base: String,
}

/// Runs a plan to a report (in-process).
pub fn run_plan(plan: &Plan, opts: &RunOptions) -> RunReport {
    run_plan_on(plan, opts, &Backend::InProcess)
}

/// Runs a plan to a report, its clients syncing through `backend`.
pub fn run_plan_on(plan: &Plan, opts: &RunOptions, backend: &Backend) -> RunReport {
    let started = Instant::now();
    let (passed_world, failures, quiescence_rounds) =
        match execute_on(plan, opts, backend, &plan.actions) {
            Ok((world, failures, rounds)) => (Some(world), failures, rounds),
            Err(f) => (None, vec![*f], 0),
        };
    let duration_ms = started.elapsed().as_millis() as u64;
    let (events, conflicts, timeline) = match &passed_world {
        Some(w) => (w.head(), conflicts(w), w.timeline.clone()),
        None => (0, Vec::new(), Vec::new()),
    };
    let secs = (duration_ms as f64 / 1000.0).max(1e-3);
    RunReport {
        scenario: plan.scenario.clone(),
        seed: plan.seed,
        clients: plan.clients.len(),
        client_schemas: plan.clients.iter().map(|c| c.schema).collect(),
        actions: plan.actions.len(),
        transport: backend.label().into(),
        faults: plan.faults.clone(),
        passed: failures.is_empty(),
        duration_ms,
        events,
        events_per_sec: events as f64 / secs,
        quiescence_rounds,
        timeline,
        conflicts,
        failures,
        tolerances: oracle::tolerances().1,
        repro: format!("{} --seed {}", opts.repro_base, plan.seed),
        shrunk_actions: None,
    }
}

/// Runs `actions` (all of a plan's, or a subset while shrinking) in-process and checks the
/// result.
pub fn execute(
    plan: &Plan,
    opts: &RunOptions,
    actions: &[Action],
) -> Result<(World, Vec<Failure>, usize), Box<Failure>> {
    execute_on(plan, opts, &Backend::InProcess, actions)
}

/// Runs `actions` with the clients syncing through `backend` and checks the result.
pub fn execute_on(
    plan: &Plan,
    opts: &RunOptions,
    backend: &Backend,
    actions: &[Action],
) -> Result<(World, Vec<Failure>, usize), Box<Failure>> {
    let broken = |e: &dyn std::fmt::Display| {
        Box::new(Failure {
            kind: "harness".into(),
            message: e.to_string(),
            entity: None,
            diff: Vec::new(),
            trace: Vec::new(),
        })
    };
    let mut world = World::new_on(plan, &opts.fixtures, backend).map_err(|e| broken(&e))?;
    for (step, action) in actions.iter().enumerate() {
        world.execute(step, action).map_err(|e| broken(&e))?;
    }
    let rounds = match oracle::quiesce(&mut world) {
        Ok(r) => r,
        Err(f) => return Ok((world, vec![*f], 0)),
    };
    let failures = oracle::check(&world);
    Ok((world, failures, rounds))
}

fn conflicts(world: &World) -> Vec<ConflictView> {
    oracle::with_subject(world, |s| s.conflict_views()).unwrap_or_default()
}
