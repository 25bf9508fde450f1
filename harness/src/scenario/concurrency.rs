//! Syncs at the same time: td's `test_concurrent_sync.sh` (parallel and rapid-fire `td sync`
//! on one database), ThunderingHerd (every client syncs at the same moment), and pollers of
//! different speeds (fast pollers, as td's autosync polls, next to manual ones).

use rand::Rng;

use super::{Builder, Scenario};
use crate::plan::Action;

pub const CONCURRENT_SYNC: Scenario = Scenario {
    name: "concurrent-sync",
    about: "3 parallel td syncs on one database and 10 rapid-fire syncs with writes in between; nothing pushed twice, nothing left pending",
    in_all: true,
    build: |b: &mut Builder| {
        b.actors(2);
        let rounds = b.budget(4);
        for round in 0..rounds {
            let actor = round % 2;
            for _ in 0..8 {
                b.random_write(actor);
            }
            b.act(Action::ConcurrentSync {
                client: actor,
                syncs: 3,
            });
            // Rapid fire: ten syncs in a row, a write slipped in before some of them.
            for k in 0..10 {
                if k % 3 == 0 {
                    b.random_write(1 - actor);
                }
                b.sync(1 - actor);
            }
        }
        b.converge();
    },
};

pub const THUNDERING_HERD: Scenario = Scenario {
    name: "thundering-herd",
    about: "6 clients write, then all sync at the same moment (one thread each), round after round",
    in_all: true,
    build: |b: &mut Builder| {
        b.clients(6);
        let rounds = b.budget(5);
        let everyone = b.everyone();
        for _ in 0..rounds {
            for &c in &everyone {
                for _ in 0..b.generator.rng().random_range(1..=3) {
                    b.random_write(c);
                }
            }
            b.act(Action::SyncTogether {
                clients: everyone.clone(),
            });
        }
        // A second stampede carries everyone's pushes of the first to everyone.
        b.act(Action::SyncTogether { clients: everyone });
    },
};

pub const MIXED_POLLERS: Scenario = Scenario {
    name: "mixed-pollers",
    about: "fast pollers that sync after every write and pull between writes (td's autosync and monitor) next to slow ones that sync every 10–20 actions",
    in_all: true,
    build: |b: &mut Builder| {
        // Even clients are fast, odd ones slow. All pull their own events back, as `td sync`
        // does (and as tdsync answers td's autosync too, which asks without them).
        let n = b.clients(4);
        let actions = b.budget(80);
        let slow_interval = |b: &mut Builder| b.generator.rng().random_range(10..=20);
        let mut until_sync: Vec<u32> = (0..n)
            .map(|c| if c % 2 == 0 { 1 } else { slow_interval(b) })
            .collect();
        for step in 0..actions {
            let c = b.generator.rng().random_range(0..n);
            b.random_write(c);
            until_sync[c] -= 1;
            if until_sync[c] == 0 {
                b.sync(c);
                until_sync[c] = if c % 2 == 0 { 1 } else { slow_interval(b) };
            }
            // Fast pollers also poll between their own writes.
            if step % 3 == 0 {
                for fast in (0..n).step_by(2) {
                    b.act(Action::Pull { client: fast });
                }
            }
        }
        b.converge();
    },
};
