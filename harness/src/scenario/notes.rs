//! td's `test_notes_sync.sh`: notes (Sidecar's, written through td with an empty session id)
//! created on A, synced, edited on B; then both edit one note, a note is deleted while the
//! other edits it, and notes are created on both sides at once.

use super::{Builder, Scenario};
use crate::plan::{Pick, WriteOp};

fn create_note(b: &mut Builder, client: usize, name: &str) -> Pick {
    let title = b.ordinary_text();
    let content = b.text();
    b.write(
        client,
        WriteOp::CreateNote {
            title,
            content,
            name: Some(name.to_string()),
        },
    );
    Pick::named(name)
}

fn edit_note(b: &mut Builder, client: usize, note: &Pick) {
    let content = b.text();
    b.write(
        client,
        WriteOp::EditNote {
            note: note.clone(),
            content,
        },
    );
}

pub const NOTES: Scenario = Scenario {
    name: "notes",
    about: "A creates notes, B pulls and edits them; both edit one note at once; a note is deleted while the other edits it",
    in_all: true,
    build: |b: &mut Builder| {
        b.actors(2);
        let rounds = b.budget(4);
        for round in 0..rounds {
            let (x, y) = (round % 2, 1 - round % 2);
            let note = create_note(b, x, &format!("note{round}"));
            b.sync(x);
            b.sync(y);
            edit_note(b, y, &note);
            b.sync(y);
            b.sync(x);
            // Both edit the same note between syncs: the later arrival wins everywhere.
            edit_note(b, x, &note);
            edit_note(b, y, &note);
            b.sync(x);
            b.sync(y);
            b.sync(x);
            // Notes created on both sides at once.
            create_note(b, x, &format!("note{round}x"));
            create_note(b, y, &format!("note{round}y"));
        }
        b.converge();
        // A note deleted on one side while the other edits it.
        let doomed = Pick::named("note0");
        b.write(
            0,
            WriteOp::DeleteNote {
                note: doomed.clone(),
            },
        );
        edit_note(b, 1, &doomed);
        b.sync(0);
        b.sync(1);
        b.converge();
    },
};
