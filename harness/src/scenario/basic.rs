//! The simplest syncs: one event, and td's basic sync test.

use super::{Builder, Scenario};

pub const SMALL: Scenario = Scenario {
    name: "small",
    about: "the smallest sync: one client writes one issue, another pulls it",
    in_all: true,
    build: |b: &mut Builder| {
        b.clients(2);
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
        b.clients(2);
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
