//! Delta debugging (Zeller's ddmin) over a failing plan's action list: the smallest list of
//! actions, by removing chunks and then single actions, that still makes the run fail the same
//! way (same failure kind).

use crate::{
    oracle::Failure,
    plan::{Action, Plan},
    remote::Backend,
    runner::{RunOptions, execute_on},
};

/// Most re-runs a shrink may spend (each is a whole world; in-process runs take milliseconds).
const MAX_RUNS: usize = 400;

/// Whether running `actions` fails with a failure of `kind`.
fn fails_like(
    plan: &Plan,
    opts: &RunOptions,
    backend: &Backend,
    actions: &[Action],
    kind: &str,
) -> bool {
    match execute_on(plan, opts, backend, actions) {
        Ok((_, failures, _)) => failures.iter().any(|f| f.kind == kind),
        Err(f) => f.kind == kind,
    }
}

/// The smallest failing action list found; `first` is the original run's first failure.
pub fn shrink(plan: &Plan, opts: &RunOptions, first: &Failure) -> Vec<Action> {
    shrink_on(plan, opts, &Backend::InProcess, first)
}

/// [`shrink`], re-running through `backend`.
pub fn shrink_on(
    plan: &Plan,
    opts: &RunOptions,
    backend: &Backend,
    first: &Failure,
) -> Vec<Action> {
    let mut current = plan.actions.clone();
    let mut runs = 0;
    let mut chunks = 2usize;
    while current.len() >= 2 && runs < MAX_RUNS {
        let size = current.len().div_ceil(chunks);
        let mut reduced = false;
        for start in (0..current.len()).step_by(size) {
            if runs >= MAX_RUNS {
                break;
            }
            // Try the list without this chunk.
            let candidate: Vec<Action> = current[..start]
                .iter()
                .chain(current[(start + size).min(current.len())..].iter())
                .cloned()
                .collect();
            runs += 1;
            if fails_like(plan, opts, backend, &candidate, &first.kind) {
                current = candidate;
                chunks = (chunks - 1).max(2);
                reduced = true;
                break;
            }
        }
        if !reduced {
            if chunks >= current.len() {
                break;
            }
            chunks = (chunks * 2).min(current.len());
        }
    }
    current
}
