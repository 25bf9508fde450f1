//! td's `test_clock_skew.sh`: every timestamp a client writes (rows and action_log) runs off
//! the server's clock — A 5 minutes ahead, then 5 minutes behind, then A 3 hours ahead while B
//! is 3 hours behind — and deletes and restores happen under skew. The server orders by arrival,
//! not by client time, so all converge; it measures each device's skew.

use super::{Builder, Scenario};
use crate::plan::{Action, Pick, WriteOp};

/// The skews td's test sets, in seconds: (A, B) per phase.
pub const PHASES: [(i64, i64); 3] = [(300, 0), (-300, 0), (3 * 3600, -3 * 3600)];

pub const CLOCK_SKEW: Scenario = Scenario {
    name: "clock-skew",
    about: "A's clock +5 min, then −5 min, then A +3 h while B is −3 h, with edits, deletes and restores under skew",
    in_all: true,
    build: |b: &mut Builder| {
        b.actors(2);
        let per_phase = b.budget(16);
        for _ in 0..3 {
            b.create_issue(0);
        }
        b.converge();
        for (phase, (a, skew_b)) in PHASES.into_iter().enumerate() {
            b.act(Action::SetClockSkew { client: 0, secs: a });
            b.act(Action::SetClockSkew {
                client: 1,
                secs: skew_b,
            });
            b.random_actions(&[0, 1], per_phase);
            // Both edit the same issue: the later arrival wins whatever the clocks say.
            let title = b.ordinary_text();
            b.write(
                0,
                WriteOp::SetTitle {
                    issue: Pick::Index(phase as u32),
                    title,
                },
            );
            b.sync(0);
            let title = b.ordinary_text();
            b.write(
                1,
                WriteOp::SetTitle {
                    issue: Pick::Index(phase as u32),
                    title,
                },
            );
            b.converge();
        }
        // Delete and restore under the widest skew: A (ahead) deletes, B (behind) restores
        // what it pulled, A edits the restored issue.
        let victim = b.create_named(0, "skewed");
        b.converge();
        b.write(
            0,
            WriteOp::Delete {
                issue: victim.clone(),
            },
        );
        b.sync(0);
        b.sync(1);
        b.write(
            1,
            WriteOp::Restore {
                issue: victim.clone(),
            },
        );
        b.sync(1);
        b.sync(0);
        b.write(
            0,
            WriteOp::SetPriority {
                issue: victim.clone(),
                priority: 0,
            },
        );
        b.write(1, WriteOp::Delete { issue: victim });
        b.converge();
    },
};
