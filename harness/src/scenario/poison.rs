//! td's `poison_event_test.go`: events no replica can apply — td's own `td undo` of a handoff
//! (a delete of a table without `deleted_at`), a review of an issue that never existed, an
//! issue payload without a known column, an update of a missing comment — are stepped over the
//! same way by the server and every client, stay in the server's log, and do not wedge the
//! stream: later events still land everywhere.

use super::{Builder, Scenario};
use crate::plan::{PoisonKind, WriteOp};

pub const POISON_EVENT: Scenario = Scenario {
    name: "poison-event",
    about: "events no replica can apply (td's undo of a handoff, a review of a missing issue, unknown columns, an update of a missing comment) are quarantined alike and later events still land",
    in_all: true,
    build: |b: &mut Builder| {
        let n = b.clients(3);
        let rounds = b.budget(2);
        for c in 0..n {
            b.create_named(c, &format!("base{c}"));
        }
        b.converge();
        for round in 0..rounds {
            for (k, kind) in PoisonKind::ALL.into_iter().enumerate() {
                let writer = (round + k) % n;
                b.write(writer, WriteOp::Poison { kind });
                // Work right behind the poison, in the same push.
                b.random_write(writer);
                b.sync(writer);
                let next = (writer + 1) % n;
                b.random_write(next);
                b.sync(next);
            }
            // td's undo of a handoff logs a delete that no replica can apply. A handoff on an
            // issue with an open child ends with the child's cascaded handoff (its log aside),
            // so that is what `td undo` reverses.
            let writer = round % n;
            let parent = b.create_named(writer, &format!("handoff{round}"));
            b.create_child(writer, &format!("handoff{round}-child"), Some(&parent));
            b.sync(writer);
            let (done, remaining) = (b.text(), b.text());
            b.write(
                writer,
                WriteOp::Handoff {
                    issue: parent,
                    done,
                    remaining,
                },
            );
            b.sync(writer);
            b.write(writer, WriteOp::Undo);
            b.sync(writer);
            let everyone = b.everyone();
            b.random_actions(&everyone, 6);
            b.converge();
        }
    },
};
