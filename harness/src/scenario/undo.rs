//! td's `undo_sync_test.go`: undo before sync, after sync, of an update, with a remote
//! modification in between, of a delete (a restore), of an already-synced action, and
//! undo-then-redo; plus undos of dependencies, file links and board positions.

use super::{Builder, Scenario};
use crate::plan::{Pick, WriteOp};

fn undo(b: &mut Builder, client: usize) {
    b.write(client, WriteOp::Undo);
}

fn retitle(b: &mut Builder, client: usize, issue: &Pick) {
    let title = b.ordinary_text();
    b.write(
        client,
        WriteOp::SetTitle {
            issue: issue.clone(),
            title,
        },
    );
}

pub const UNDO: Scenario = Scenario {
    name: "undo",
    about: "td's seven undo cases (before sync, after sync, an update, with a remote edit, a delete, already synced, undo-redo) and undos of dependencies, links and positions",
    in_all: true,
    build: |b: &mut Builder| {
        b.actors(2);
        let rounds = b.budget(2);
        for r in 0..rounds {
            // The two actors swap roles every round.
            let (a, o) = (r % 2, 1 - r % 2);
            let name = |case: &str| format!("{case}{r}");
            // 1. Undo before sync: the create never reaches anyone as a live issue.
            b.create_named(a, &name("before"));
            undo(b, a);
            b.sync(a);
            b.sync(o);
            // 2. Undo after sync: the other side sees the issue appear, then go.
            b.create_named(a, &name("after"));
            b.sync(a);
            b.sync(o);
            undo(b, a);
            b.sync(a);
            b.sync(o);
            // 3. Undo of an update.
            let issue = b.create_named(a, &name("update"));
            b.sync(a);
            retitle(b, a, &issue);
            undo(b, a);
            b.sync(a);
            b.sync(o);
            // 4. Undo with a remote modification in between: td restores its whole image.
            b.write(
                a,
                WriteOp::SetPriority {
                    issue: issue.clone(),
                    priority: 0,
                },
            );
            b.sync(a);
            b.sync(o);
            retitle(b, o, &issue);
            b.sync(o);
            b.sync(a);
            undo(b, a);
            b.sync(a);
            b.sync(o);
            // 5. Undo of a delete restores the issue.
            let deleted = b.create_named(o, &name("delete"));
            b.sync(o);
            b.sync(a);
            b.write(a, WriteOp::Delete { issue: deleted });
            b.sync(a);
            b.sync(o);
            undo(b, a);
            b.sync(a);
            b.sync(o);
            // 6. Undo of an action synced long ago (after unrelated work by the other).
            retitle(b, a, &issue);
            b.sync(a);
            b.sync(o);
            let text = b.text();
            b.write(
                o,
                WriteOp::Comment {
                    issue: issue.clone(),
                    text,
                },
            );
            b.sync(o);
            b.sync(a);
            undo(b, a);
            // 7. Undo then redo.
            let redo = b.ordinary_text();
            b.write(
                a,
                WriteOp::SetTitle {
                    issue: issue.clone(),
                    title: redo.clone(),
                },
            );
            undo(b, a);
            b.write(
                a,
                WriteOp::SetTitle {
                    issue: issue.clone(),
                    title: redo,
                },
            );
            b.sync(a);
            b.sync(o);
            // Undos of relations: a dependency, a file link, a board position.
            let other = b.create_named(a, &name("dep"));
            b.write(
                a,
                WriteOp::Depend {
                    issue: issue.clone(),
                    on: other,
                },
            );
            undo(b, a);
            b.write(
                a,
                WriteOp::LinkFile {
                    issue: issue.clone(),
                    path: format!("src/undo{r}.rs"),
                },
            );
            undo(b, a);
            let board = b.ordinary_text();
            b.write(a, WriteOp::CreateBoard { name: board });
            b.write(
                a,
                WriteOp::Position {
                    board: Pick::Index(0),
                    issue: issue.clone(),
                    position: 65_536,
                },
            );
            undo(b, a);
            b.sync(a);
            b.sync(o);
        }
        b.converge();
    },
};
