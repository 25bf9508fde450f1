//! td's `test_large_payload.sh`: 10K, 25K and 50K-character descriptions, 50/100/200 comments,
//! 20/40/80 dependencies, many labels, and all of them on one issue; nothing may be truncated.

use super::{Builder, Scenario};
use crate::plan::{Pick, WriteOp};

/// td's three payload sizes, for descriptions (characters), comments and dependencies.
pub const DESCRIPTION_CHARS: [usize; 3] = [10_000, 25_000, 50_000];
pub const COMMENTS: [usize; 3] = [50, 100, 200];
pub const DEPENDENCIES: [usize; 3] = [20, 40, 80];

/// A string of exactly `chars` characters mixing scripts (multi-byte included), distinct per tag.
fn long_text(chars: usize, tag: usize) -> String {
    let alphabet: Vec<char> = "abc xyz Ωλ中文🚀\"\\<>\n".chars().collect();
    let head = format!("[{tag}] ");
    let mut out = head.clone();
    out.extend(
        (0..chars.saturating_sub(head.chars().count()))
            .map(|i| alphabet[(i * 7 + tag) % alphabet.len()]),
    );
    out
}

pub const LARGE_PAYLOAD: Scenario = Scenario {
    name: "large-payload",
    about: "10K/25K/50K-character descriptions, 50/100/200 comments, 20/40/80 dependencies, 30 labels, and all at once on one issue; no truncation",
    in_all: true,
    build: |b: &mut Builder| {
        b.actors(2);
        // `--actions` scales the comment and dependency counts (100 = td's sizes).
        let percent = b.budget(100);
        let scaled = |n: usize| (n * percent).div_ceil(100);
        for (k, chars) in DESCRIPTION_CHARS.into_iter().enumerate() {
            let issue = b.create_named(0, &format!("long{k}"));
            b.write(
                0,
                WriteOp::SetDescription {
                    issue,
                    description: long_text(chars, k),
                },
            );
        }
        b.sync(0);
        b.sync(1);
        // Comments: B writes them on A's issues.
        for (k, n) in COMMENTS.into_iter().enumerate() {
            for c in 0..scaled(n) {
                b.write(
                    1,
                    WriteOp::Comment {
                        issue: Pick::named(format!("long{k}")),
                        text: format!("comment {c} on long{k}: {}", long_text(200, c)),
                    },
                );
            }
        }
        b.sync(1);
        b.sync(0);
        // Dependencies: a hub issue per size depending on that many others.
        let most = scaled(DEPENDENCIES[2]);
        for d in 0..most {
            b.create_named(0, &format!("dep{d}"));
        }
        for (k, n) in DEPENDENCIES.into_iter().enumerate() {
            let hub = b.create_named(0, &format!("hub{k}"));
            for d in 0..scaled(n) {
                b.write(
                    0,
                    WriteOp::Depend {
                        issue: hub.clone(),
                        on: Pick::named(format!("dep{d}")),
                    },
                );
            }
        }
        b.sync(0);
        b.sync(1);
        // Everything on one issue, written by B: long text, many labels, comments, deps.
        let all = b.create_named(1, "combined");
        b.write(
            1,
            WriteOp::SetDescription {
                issue: all.clone(),
                description: long_text(DESCRIPTION_CHARS[2], 99),
            },
        );
        b.write(
            1,
            WriteOp::SetLabels {
                issue: all.clone(),
                labels: (0..30).map(|l| format!("label-{l}-ラベル")).collect(),
            },
        );
        for c in 0..scaled(20) {
            b.write(
                1,
                WriteOp::Comment {
                    issue: all.clone(),
                    text: long_text(2_000, c),
                },
            );
        }
        for d in 0..scaled(20) {
            b.write(
                1,
                WriteOp::Depend {
                    issue: all.clone(),
                    on: Pick::named(format!("dep{d}")),
                },
            );
        }
        b.converge();
    },
};
