//! Random td-like actions from several clients, syncing at random, with every fault switched on
//! at random (seeded): each fault is on for about half the seeds.

use rand::Rng;

use super::{Builder, Scenario};
use crate::{faults, plan::Action};

pub const CHAOS: Scenario = Scenario {
    name: "chaos",
    about: "random td-like actions from several clients with every fault switched on at random, seeded",
    in_all: true,
    build: |b: &mut Builder| {
        let rng_clients = 2 + (b.plan.seed % 3) as usize;
        let clients = b.clients(rng_clients);
        let budget = b.budget(150);
        for _ in 0..budget {
            let client = b.generator.rng().random_range(0..clients);
            match b.generator.rng().random_range(0..10) {
                0..=6 => b.random_write(client),
                7 | 8 => b.sync(client),
                _ => {
                    let a = if b.generator.rng().random_bool(0.5) {
                        Action::Push { client }
                    } else {
                        Action::Pull { client }
                    };
                    b.act(a);
                }
            }
        }
        let chosen: Vec<String> = faults::ALL
            .iter()
            .filter(|_| b.generator.rng().random_bool(0.5))
            .map(|(n, _)| n.to_string())
            .collect();
        faults::apply(&mut b.plan, &chosen);
    },
};
