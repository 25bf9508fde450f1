//! A big sync: a client with a 10,000-issue project (about 50,000 events of history) pushes it,
//! and a fresh client onboards it.

use super::{Builder, Scenario};
use crate::plan::Action;

pub const BIG: Scenario = Scenario {
    name: "big",
    about: "a 10,000-issue project (about 50k events) pushed by one client and onboarded by a fresh one",
    in_all: false,
    build: |b: &mut Builder| {
        b.actors(2);
        let events = b.budget(50_000) as u32;
        b.act(Action::ImportHistory { client: 0, events });
        b.sync(0);
        b.sync(1);
    },
};
