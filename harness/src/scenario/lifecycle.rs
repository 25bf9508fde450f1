//! Issues coming and going: td's `test_create_delete_recreate.sh`, `test_parent_delete_cascade.sh`
//! and `test_event_ordering.sh`.

use super::{Builder, Scenario};
use crate::plan::{Pick, WriteOp};

/// Cycles of create-delete-recreate after which the deleted issue is restored on purpose.
pub const CDR_RESTORE_EVERY: usize = 5;

pub const CREATE_DELETE_RECREATE: Scenario = Scenario {
    name: "create-delete-recreate",
    about: "15 cycles of create → sync → delete → sync → recreate a similar issue (every 5th deleted one restored on purpose), then a delete racing a create",
    in_all: true,
    build: |b: &mut Builder| {
        b.actors(2);
        let cycles = b.budget(15);
        for c in 0..cycles {
            let (creator, deleter) = (c % 2, 1 - c % 2);
            let title = b.ordinary_text();
            let first = b.create_titled(creator, &format!("cdr{c}"), &title, None);
            b.sync(creator);
            b.sync(deleter);
            b.write(
                deleter,
                WriteOp::Delete {
                    issue: first.clone(),
                },
            );
            b.sync(deleter);
            b.sync(creator);
            b.create_titled(creator, &format!("cdr{c}-again"), &title, None);
            if c % CDR_RESTORE_EVERY == CDR_RESTORE_EVERY - 1 {
                b.write(creator, WriteOp::Restore { issue: first });
            }
            b.sync(creator);
            b.sync(deleter);
        }
        // A delete racing a create of a similar issue, neither side having seen the other.
        let title = b.ordinary_text();
        let racing = b.create_titled(0, "race", &title, None);
        b.converge();
        b.write(0, WriteOp::Delete { issue: racing });
        b.create_titled(1, "race-again", &title, None);
        b.sync(1);
        b.sync(0);
        b.converge();
    },
};

pub const PARENT_DELETE: Scenario = Scenario {
    name: "parent-delete",
    about: "a parent is soft-deleted (no cascade) while the other actor edits its children and grandchildren; rapid delete/restore cycles of the parent",
    in_all: true,
    build: |b: &mut Builder| {
        b.actors(2);
        let cycles = b.budget(4);
        let parent = b.create_named(0, "parent");
        let c1 = b.create_child(0, "child1", Some(&parent));
        let c2 = b.create_child(0, "child2", Some(&parent));
        let c3 = b.create_child(0, "child3", Some(&parent));
        let grandchild = b.create_child(0, "grandchild", Some(&c1));
        b.converge();
        // A deletes the parent; B, unaware, edits every generation below it.
        b.write(
            0,
            WriteOp::Delete {
                issue: parent.clone(),
            },
        );
        let title = b.ordinary_text();
        b.write(
            1,
            WriteOp::SetTitle {
                issue: c1.clone(),
                title,
            },
        );
        let text = b.text();
        b.write(
            1,
            WriteOp::Comment {
                issue: c2.clone(),
                text,
            },
        );
        b.write(
            1,
            WriteOp::Start {
                issue: grandchild.clone(),
            },
        );
        b.write(
            1,
            WriteOp::SetPriority {
                issue: c3,
                priority: 0,
            },
        );
        b.sync(0);
        b.sync(1);
        b.converge();
        // A child created under the deleted parent by the actor who has not seen the delete.
        b.write(
            0,
            WriteOp::Restore {
                issue: parent.clone(),
            },
        );
        b.converge();
        b.write(
            1,
            WriteOp::Delete {
                issue: parent.clone(),
            },
        );
        b.create_child(0, "late-child", Some(&parent));
        b.sync(1);
        b.sync(0);
        b.converge();
        // Rapid cycles: restore and delete the parent while the other edits a child.
        for cycle in 0..cycles {
            let actor = cycle % 2;
            b.write(
                actor,
                WriteOp::Restore {
                    issue: parent.clone(),
                },
            );
            b.sync(actor);
            b.write(
                actor,
                WriteOp::Delete {
                    issue: parent.clone(),
                },
            );
            b.sync(actor);
            let title = b.ordinary_text();
            b.write(
                1 - actor,
                WriteOp::SetTitle {
                    issue: c2.clone(),
                    title,
                },
            );
            b.sync(1 - actor);
        }
        b.write(0, WriteOp::Delete { issue: c1 });
        b.write(
            1,
            WriteOp::SetTitle {
                issue: grandchild,
                title: "orphaned grandchild".into(),
            },
        );
        b.converge();
    },
};

pub const EVENT_ORDERING: Scenario = Scenario {
    name: "event-ordering",
    about: "three actors build epic → story → task hierarchies under each other's issues, with mutations in between; creates precede updates and children everywhere",
    in_all: true,
    build: |b: &mut Builder| {
        let n = b.clients(3);
        let trees = b.budget(4);
        for t in 0..trees {
            let owner = t % n;
            let epic = b.create_named(owner, &format!("epic{t}"));
            b.sync(owner);
            for s in 0..2 {
                // Stories by the next actor, who must first pull the epic.
                let actor = (owner + 1 + s) % n;
                b.sync(actor);
                let story = b.create_child(actor, &format!("story{t}.{s}"), Some(&epic));
                for k in 0..2 {
                    b.create_child(actor, &format!("task{t}.{s}.{k}"), Some(&story));
                }
                let title = b.ordinary_text();
                b.write(
                    actor,
                    WriteOp::SetTitle {
                        issue: story.clone(),
                        title,
                    },
                );
                b.write(
                    actor,
                    WriteOp::Start {
                        issue: Pick::named(format!("task{t}.{s}.0")),
                    },
                );
                b.random_actions(&[actor], 3);
                b.sync(actor);
            }
            b.write(owner, WriteOp::Review { issue: epic });
        }
        b.converge();
    },
};
