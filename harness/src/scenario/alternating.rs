//! td's `test_alternating_actions.sh`: two actors take turns on the same issues — one creates,
//! the other starts, logs, comments and submits for review, the first approves — with boards
//! and positions, syncing after every step so each sees the other's work before acting.

use super::{Builder, Scenario};
use crate::plan::{Pick, WriteOp};

pub const ALTERNATING_ACTIONS: Scenario = Scenario {
    name: "alternating-actions",
    about: "A and B alternate create → start → log → comment → review → approve on each issue, plus boards and positions, syncing after every step",
    in_all: true,
    build: |b: &mut Builder| {
        b.actors(2);
        let rounds = b.budget(6);
        // One step by `actor`, then both sync so the other sees it before the next step.
        let step = |b: &mut Builder, actor: usize, op: WriteOp| {
            b.write(actor, op);
            b.sync(actor);
            b.sync(1 - actor);
        };
        let name = b.ordinary_text();
        step(b, 0, WriteOp::CreateBoard { name });
        for round in 0..rounds {
            // The creator and approver swap roles every round.
            let (x, y) = (round % 2, 1 - round % 2);
            let issue = b.create_named(x, &format!("alt{round}"));
            b.sync(x);
            b.sync(y);
            step(
                b,
                y,
                WriteOp::Start {
                    issue: issue.clone(),
                },
            );
            let message = b.text();
            step(
                b,
                x,
                WriteOp::Log {
                    issue: issue.clone(),
                    message,
                },
            );
            let text = b.text();
            step(
                b,
                y,
                WriteOp::Comment {
                    issue: issue.clone(),
                    text,
                },
            );
            let position = 65_536 * (round as i64 + 1);
            step(
                b,
                y,
                WriteOp::Position {
                    board: Pick::Index(0),
                    issue: issue.clone(),
                    position,
                },
            );
            step(
                b,
                y,
                WriteOp::Review {
                    issue: issue.clone(),
                },
            );
            step(b, x, WriteOp::Approve { issue });
        }
        // A second board, created by B and filled by A.
        let name = b.ordinary_text();
        step(b, 1, WriteOp::CreateBoard { name });
        for round in 0..rounds {
            step(
                b,
                0,
                WriteOp::Position {
                    board: Pick::Index(1),
                    issue: Pick::named(format!("alt{round}")),
                    position: 65_536 * (rounds - round) as i64,
                },
            );
        }
    },
};
