//! Random td-like commands, weighted roughly as agents use td (creating, editing and moving
//! issues most; boards, dependencies, notes and undo less), with generated text.

use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::{
    plan::{Pick, WriteOp},
    text,
};

/// A seeded source of td commands.
pub struct Generator {
    rng: StdRng,
    n: u64,
}

const LABELS: &[&str] = &["backend", "ui", "sync", "bug", "p1", "docs", "🚀", "naïve"];

/// Weights of the command kinds, in the order `write_op` matches them.
const WEIGHTS: &[u32] = &[
    14, 8, 3, 4, 3, 2, // create, title, description, priority, labels, points
    5, 3, 2, 1, 1, 1, 3, 1, // start, review, approve, reject, block, unblock, close, reopen
    3, 2, // delete, restore
    5, 5, 2, // log, comment, handoff
    1, 3, 1, 1, // board, position, unposition, delete board
    2, 1, 2, 1, // depend, undepend, link, unlink
    1, 1, 2, 1, // work session start, end, tag, untag
    2, 2, 1, // note create, edit, delete
    2, // undo
];

impl Generator {
    pub fn new(seed: u64) -> Generator {
        Generator {
            rng: StdRng::seed_from_u64(seed),
            n: 0,
        }
    }

    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    /// Generated text (about 15% edge cases).
    pub fn text(&mut self) -> String {
        self.n += 1;
        text::text(&mut self.rng, self.n)
    }

    fn pick(&mut self) -> Pick {
        Pick::Index(self.rng.random())
    }

    fn labels(&mut self) -> Vec<String> {
        let n = self.rng.random_range(0..3);
        (0..n)
            .map(|_| LABELS[self.rng.random_range(0..LABELS.len())].to_string())
            .collect()
    }

    /// A new issue.
    pub fn create_issue(&mut self) -> WriteOp {
        let with_parent = self.rng.random_bool(0.15);
        WriteOp::CreateIssue {
            title: self.text(),
            description: if self.rng.random_bool(0.5) {
                self.text()
            } else {
                String::new()
            },
            labels: self.labels(),
            priority: self.rng.random_range(0..5),
            parent: with_parent.then(|| self.pick()),
            name: None,
        }
    }

    /// A random command.
    pub fn write_op(&mut self) -> WriteOp {
        let total: u32 = WEIGHTS.iter().sum();
        let mut roll = self.rng.random_range(0..total);
        let mut kind = 0;
        for (i, w) in WEIGHTS.iter().enumerate() {
            if roll < *w {
                kind = i;
                break;
            }
            roll -= w;
        }
        // Raw draws: `b` also seeds numbers (points, positions, paths).
        let (a, b): (u32, u32) = (self.rng.random(), self.rng.random());
        let (pa, pb) = (Pick::Index(a), Pick::Index(b));
        match kind {
            0 => self.create_issue(),
            1 => WriteOp::SetTitle {
                issue: pa,
                title: self.text(),
            },
            2 => WriteOp::SetDescription {
                issue: pa,
                description: self.text(),
            },
            3 => WriteOp::SetPriority {
                issue: pa,
                priority: self.rng.random_range(0..5),
            },
            4 => WriteOp::SetLabels {
                issue: pa,
                labels: self.labels(),
            },
            5 => WriteOp::SetPoints {
                issue: pa,
                points: [0, 1, 2, 3, 5, 8, 13][b as usize % 7],
            },
            6 => WriteOp::Start { issue: pa },
            7 => WriteOp::Review { issue: pa },
            8 => WriteOp::Approve { issue: pa },
            9 => WriteOp::Reject { issue: pa },
            10 => WriteOp::Block { issue: pa },
            11 => WriteOp::Unblock { issue: pa },
            12 => WriteOp::Close { issue: pa },
            13 => WriteOp::Reopen { issue: pa },
            14 => WriteOp::Delete { issue: pa },
            15 => WriteOp::Restore { issue: pa },
            16 => WriteOp::Log {
                issue: pa,
                message: self.text(),
            },
            17 => WriteOp::Comment {
                issue: pa,
                text: self.text(),
            },
            18 => WriteOp::Handoff {
                issue: pa,
                done: self.text(),
                remaining: self.text(),
            },
            19 => WriteOp::CreateBoard { name: self.text() },
            20 => WriteOp::Position {
                board: pa,
                issue: pb,
                position: i64::from(b % 64) * 65_536,
            },
            21 => WriteOp::Unposition {
                board: pa,
                issue: pb,
            },
            22 => WriteOp::DeleteBoard { board: pa },
            23 => WriteOp::Depend { issue: pa, on: pb },
            24 => WriteOp::Undepend { dependency: pa },
            25 => WriteOp::LinkFile {
                issue: pa,
                path: format!("src/{}/mod.rs", b % 7),
            },
            26 => WriteOp::UnlinkFile { link: pa },
            27 => WriteOp::StartWorkSession { name: self.text() },
            28 => WriteOp::EndWorkSession,
            29 => WriteOp::Tag { issue: pa },
            30 => WriteOp::Untag { issue: pa },
            31 => WriteOp::CreateNote {
                title: self.text(),
                content: self.text(),
                name: None,
            },
            32 => WriteOp::EditNote {
                note: pa,
                content: self.text(),
            },
            33 => WriteOp::DeleteNote { note: pa },
            _ => WriteOp::Undo,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_and_covers_every_command_kind() {
        let ops = |seed| {
            let mut g = Generator::new(seed);
            (0..3000).map(|_| g.write_op()).collect::<Vec<_>>()
        };
        assert_eq!(ops(5), ops(5));
        let kinds: std::collections::BTreeSet<String> = ops(5)
            .iter()
            .map(|op| {
                serde_json::to_value(op).unwrap()["op"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(kinds.len(), WEIGHTS.len(), "{kinds:?}");
    }
}
