//! Conflicting writes between syncs: td's `exec_field_collision` (both actors edit the same
//! field of the same issue), MultiFieldCollision (different fields merge), and
//! `exec_delete_while_mutate` (A deletes while B, unaware, keeps editing).

use super::{Builder, Scenario};
use crate::plan::{Pick, WriteOp};

/// The fields td's chaos collides on.
const FIELDS: &[&str] = &[
    "title",
    "description",
    "priority",
    "points",
    "labels",
    "sprint",
    "acceptance",
];

/// An edit of `field` whose value is distinct for each (round, actor).
fn edit(b: &mut Builder, field: &str, issue: &Pick, round: usize, actor: usize) -> WriteOp {
    let issue = issue.clone();
    let n = round * 2 + actor;
    match field {
        "title" => WriteOp::SetTitle {
            issue,
            title: b.ordinary_text(),
        },
        "description" => WriteOp::SetDescription {
            issue,
            description: b.text(),
        },
        "priority" => WriteOp::SetPriority {
            issue,
            priority: (n % 5) as u8,
        },
        "points" => WriteOp::SetPoints {
            issue,
            points: [1, 2, 3, 5, 8, 13, 21][n % 7],
        },
        "labels" => WriteOp::SetLabels {
            issue,
            labels: vec![format!("l{n}"), format!("actor{actor}")],
        },
        "sprint" => WriteOp::SetSprint {
            issue,
            sprint: format!("sprint-{n}"),
        },
        _ => WriteOp::SetAcceptance {
            issue,
            acceptance: b.text(),
        },
    }
}

pub const FIELD_COLLISIONS: Scenario = Scenario {
    name: "field-collisions",
    about: "both actors edit the same field of the same issue between syncs (title, description, priority, points, labels, sprint, acceptance); different fields merge",
    in_all: true,
    build: |b: &mut Builder| {
        b.actors(2);
        let rounds = b.budget(3);
        for f in FIELDS {
            b.create_named(0, f);
        }
        // td's MultiFieldCollision pairs: different fields of one issue must both survive.
        let pairs = [
            ("title", "priority"),
            ("description", "labels"),
            ("points", "sprint"),
        ];
        for (x, y) in pairs {
            b.create_named(0, &format!("{x}+{y}"));
        }
        b.converge();
        for round in 0..rounds {
            // Who reaches the server first alternates, so each side wins some collisions.
            let first = round % 2;
            for f in FIELDS {
                let issue = Pick::named(*f);
                for actor in 0..2 {
                    let op = edit(b, f, &issue, round, actor);
                    b.write(actor, op);
                }
            }
            for (x, y) in pairs {
                let issue = Pick::named(format!("{x}+{y}"));
                let op = edit(b, x, &issue, round, 0);
                b.write(0, op);
                let op = edit(b, y, &issue, round, 1);
                b.write(1, op);
            }
            b.sync(first);
            b.sync(1 - first);
            b.sync(first);
        }
    },
};

pub const DELETE_WHILE_MUTATE: Scenario = Scenario {
    name: "delete-while-mutate",
    about: "A deletes an issue while B, unaware, makes 2–3 mutations of it (edits, status, comments), then both sync",
    in_all: true,
    build: |b: &mut Builder| {
        b.actors(2);
        let rounds = b.budget(6);
        for round in 0..rounds {
            // Roles swap each round, and so does who syncs first.
            let (deleter, mutator) = (round % 2, 1 - round % 2);
            let issue = b.create_named(mutator, &format!("dwm{round}"));
            b.converge();
            b.write(
                deleter,
                WriteOp::Delete {
                    issue: issue.clone(),
                },
            );
            let title = b.ordinary_text();
            let text = b.text();
            let mutations = [
                WriteOp::SetTitle {
                    issue: issue.clone(),
                    title,
                },
                WriteOp::Start {
                    issue: issue.clone(),
                },
                WriteOp::Comment {
                    issue: issue.clone(),
                    text,
                },
            ];
            let n = 2 + round % 2;
            for op in mutations.into_iter().take(n) {
                b.write(mutator, op);
            }
            if round % 3 == 2 {
                b.sync(mutator);
                b.sync(deleter);
            } else {
                b.sync(deleter);
                b.sync(mutator);
            }
            b.converge();
        }
    },
};
