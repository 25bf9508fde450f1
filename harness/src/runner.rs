//! Executes a plan: builds the world, carries out every action, brings the world to rest, asks
//! the oracle, and writes the report.

use std::{path::PathBuf, time::Instant};

use crate::{
    oracle::{self, Failure},
    plan::{Action, Plan},
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

/// Runs a plan to a report.
pub fn run_plan(plan: &Plan, opts: &RunOptions) -> RunReport {
    let started = Instant::now();
    let (passed_world, failures, quiescence_rounds) = match execute(plan, opts, &plan.actions) {
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
        transport: "inproc".into(),
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

/// Runs `actions` (all of a plan's, or a subset while shrinking) and checks the result.
pub fn execute(
    plan: &Plan,
    opts: &RunOptions,
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
    let mut world = World::new(plan, &opts.fixtures).map_err(|e| broken(&e))?;
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
    let Some(store) = world.server.get() else {
        return Vec::new();
    };
    let name = |device: &str| {
        world
            .clients
            .iter()
            .position(|c| c.identity.device_id == device)
            .map_or_else(|| device.to_string(), |i| format!("client {i}"))
    };
    let filter = tdsync_tenants::ConflictFilter {
        limit: Some(10_000),
        ..Default::default()
    };
    store
        .conflicts(&world.tenant, &world.project, &filter)
        .unwrap_or_default()
        .into_iter()
        .map(|c| ConflictView {
            id: c.id,
            entity_type: c.entity_type,
            entity_id: c.entity_id,
            fields: c.fields,
            clobbered: c.clobbered,
            clobbered_seq: c.clobbered_seq,
            clobbered_by: c.clobbered_device.as_deref().map(name),
            winner: c.winner,
            winning_seq: c.winning_seq,
            winning_by: name(&c.winning_device),
        })
        .collect()
}
