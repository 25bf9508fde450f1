//! The simplest syncs: one event, and td's basic sync test.

use super::{Builder, Scenario};

pub const SMALL: Scenario = Scenario {
    name: "small",
    about: "the smallest sync: one client writes one issue, another pulls it",
    in_all: true,
    build: |b: &mut Builder| {
        b.actors(2);
        b.create_issue(0);
        b.sync(0);
        b.sync(1);
    },
};

pub const BASIC: Scenario = Scenario {
    name: "basic",
    about: "td's basic sync: A creates 3 issues, B pulls them, B creates one, both end with 4",
    in_all: true,
    build: |b: &mut Builder| {
        b.actors(2);
        for _ in 0..3 {
            b.create_issue(0);
        }
        b.sync(0);
        b.sync(1);
        b.create_issue(1);
        b.sync(1);
        b.sync(0);
    },
};

pub const BURST: Scenario = Scenario {
    name: "burst",
    about: "td's BurstNoSync: 20 mutations without a sync, then one sync, by each actor in turn and by both at once",
    in_all: true,
    build: |b: &mut Builder| {
        b.actors(2);
        let burst = b.budget(20);
        for _ in 0..3 {
            b.create_issue(0);
        }
        b.converge();
        for round in 0..3 {
            let actor = round % 2;
            for _ in 0..burst {
                b.random_write(actor);
            }
            b.sync(actor);
            b.sync(1 - actor);
        }
        // Both burst at once: each sync carries a whole burst against the other's.
        for actor in 0..2 {
            for _ in 0..burst {
                b.random_write(actor);
            }
        }
        b.converge();
    },
};
