//! Dependencies racing each other: td's DependencyCycle (A→B and B→A at the same time), longer
//! cycles closed by different actors, and removals racing additions.

use super::{Builder, Scenario};
use crate::plan::{Pick, WriteOp};

fn depend(b: &mut Builder, actor: usize, issue: &Pick, on: &Pick) {
    b.write(
        actor,
        WriteOp::Depend {
            issue: issue.clone(),
            on: on.clone(),
        },
    );
}

pub const DEPENDENCY_CYCLE: Scenario = Scenario {
    name: "dependency-cycle",
    about: "A adds x→y while B adds y→x, both before syncing; every replica keeps the same edge; then chains grow and removals race additions",
    in_all: true,
    build: |b: &mut Builder| {
        b.actors(3);
        let rounds = b.budget(5);
        for r in 0..rounds {
            let [x, y, z] = ["x", "y", "z"].map(|n| b.create_named(r % 3, &format!("{n}{r}")));
            b.converge();
            // td's DependencyCycle: both edges written before either actor syncs; who reaches
            // the server first alternates.
            depend(b, 0, &x, &y);
            depend(b, 1, &y, &x);
            b.sync(r % 2);
            b.sync(1 - r % 2);
            b.converge();
            // The chain grows from whichever edge survived (td refuses an edge that closes a
            // cycle the writer can see).
            depend(b, 2, &y, &z);
            depend(b, 2, &x, &z);
            b.converge();
            // A removal racing an addition on the same issues.
            b.write(
                0,
                WriteOp::Undepend {
                    dependency: Pick::Index(r as u32),
                },
            );
            depend(b, 1, &z, &Pick::named(format!("x{}", r.saturating_sub(1))));
            b.sync(0);
            b.sync(1);
            b.converge();
        }
        // Not here: a three-issue cycle closed by two actors at once (y→z on one, z→x on the
        // other, over x→y), which td's rule alone leaves diverged and the server repairs; see
        // `a_three_issue_cycle_closed_by_two_actors_at_once_converges` in tests/scenarios.rs.
    },
};
