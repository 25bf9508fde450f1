//! The scenario catalogue. A scenario turns a seed and a size into a [`Plan`]; each lives in its
//! own module and registers in [`CATALOGUE`].

mod alternating;
mod basic;
mod big;
mod chaos;
pub mod clock;
mod collisions;
mod concurrency;
pub mod large;
pub mod lifecycle;
mod network;
mod notes;
mod poison;
mod relations;
pub mod schema;
mod undo;

use rand::Rng;

use crate::{
    generator::Generator,
    plan::{Action, ClientSpec, NetworkFaults, Pick, Plan, WriteOp},
};

/// Optional overrides of a scenario's own sizes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Size {
    pub clients: Option<usize>,
    pub actions: Option<usize>,
}

/// One entry of the catalogue.
pub struct Scenario {
    pub name: &'static str,
    pub about: &'static str,
    /// Part of `run --all` (the big sync runs separately, by name).
    pub in_all: bool,
    pub build: fn(&mut Builder),
}

/// Every scenario, in `list` order.
pub const CATALOGUE: &[Scenario] = &[
    basic::SMALL,
    basic::BASIC,
    alternating::ALTERNATING_ACTIONS,
    collisions::FIELD_COLLISIONS,
    collisions::DELETE_WHILE_MUTATE,
    lifecycle::CREATE_DELETE_RECREATE,
    lifecycle::PARENT_DELETE,
    relations::DEPENDENCY_CYCLE,
    network::PARTITION,
    network::LATE_JOIN,
    network::SERVER_RESTART,
    clock::CLOCK_SKEW,
    concurrency::CONCURRENT_SYNC,
    large::LARGE_PAYLOAD,
    lifecycle::EVENT_ORDERING,
    notes::NOTES,
    undo::UNDO,
    poison::POISON_EVENT,
    concurrency::THUNDERING_HERD,
    basic::BURST,
    network::LOST_ACKS,
    network::DUPLICATE_DELIVERY,
    network::CRASH_MID_PULL,
    schema::SCHEMA_MISMATCH,
    concurrency::MIXED_POLLERS,
    chaos::CHAOS,
    big::BIG,
];

pub fn find(name: &str) -> Option<&'static Scenario> {
    CATALOGUE.iter().find(|s| s.name == name)
}

/// What `run --all` runs: every scenario marked `in_all`, in catalogue order.
pub fn in_all() -> impl Iterator<Item = &'static Scenario> {
    CATALOGUE.iter().filter(|s| s.in_all)
}

/// Builds a scenario's plan.
pub fn plan(scenario: &Scenario, seed: u64, size: Size) -> Plan {
    let mut b = Builder {
        plan: Plan {
            scenario: scenario.name.to_string(),
            seed,
            clients: Vec::new(),
            network: NetworkFaults::default(),
            faults: Vec::new(),
            actions: Vec::new(),
        },
        generator: Generator::new(seed),
        size,
    };
    (scenario.build)(&mut b);
    b.plan
}

/// What a scenario uses to write its plan.
pub struct Builder {
    pub plan: Plan,
    pub generator: Generator,
    pub size: Size,
}

impl Builder {
    /// `default` clients (or `--clients`), all at the current td schema.
    pub fn clients(&mut self, default: usize) -> usize {
        self.client_specs(&[ClientSpec::default()], default)
    }

    /// For scenarios whose actors have fixed roles: `n` clients, or more with `--clients` (the
    /// extra ones only sync), never fewer.
    pub fn actors(&mut self, n: usize) -> usize {
        let more = self.size.clients.unwrap_or(n).max(n);
        self.set_clients(&[ClientSpec::default()], more)
    }

    /// `default` clients (or `--clients`), the i-th configured as `specs[i % specs.len()]`.
    pub fn client_specs(&mut self, specs: &[ClientSpec], default: usize) -> usize {
        let n = self.size.clients.unwrap_or(default);
        self.set_clients(specs, n)
    }

    fn set_clients(&mut self, specs: &[ClientSpec], n: usize) -> usize {
        let n = n.max(1);
        self.plan.clients = (0..n).map(|i| specs[i % specs.len()].clone()).collect();
        n
    }

    /// Every client's index.
    pub fn everyone(&self) -> Vec<usize> {
        (0..self.plan.clients.len()).collect()
    }

    /// `default` actions (or `--actions`).
    pub fn budget(&self, default: usize) -> usize {
        self.size.actions.unwrap_or(default)
    }

    pub fn act(&mut self, action: Action) {
        self.plan.actions.push(action);
    }

    pub fn write(&mut self, client: usize, op: WriteOp) {
        self.act(Action::Write { client, op });
    }

    /// A random td command by `client`.
    pub fn random_write(&mut self, client: usize) {
        let op = self.generator.write_op();
        self.write(client, op);
    }

    pub fn create_issue(&mut self, client: usize) {
        let op = self.generator.create_issue();
        self.write(client, op);
    }

    /// A new issue (generated title, no parent) remembered as `name`; returns its pick.
    pub fn create_named(&mut self, client: usize, name: &str) -> Pick {
        self.create_child(client, name, None)
    }

    /// A new issue remembered as `name`, a child of `parent` when given.
    pub fn create_child(&mut self, client: usize, name: &str, parent: Option<&Pick>) -> Pick {
        let title = format!("{} ({name})", self.ordinary_text());
        self.create_titled(client, name, &title, parent)
    }

    /// A new issue titled `title`, remembered as `name`.
    pub fn create_titled(
        &mut self,
        client: usize,
        name: &str,
        title: &str,
        parent: Option<&Pick>,
    ) -> Pick {
        let description = self.text();
        self.write(
            client,
            WriteOp::CreateIssue {
                title: title.to_string(),
                description,
                labels: Vec::new(),
                priority: 2,
                parent: parent.cloned(),
                name: Some(name.to_string()),
            },
        );
        Pick::named(name)
    }

    /// Generated text that td accepts as a title (never one of the 50,000-character edge
    /// cases, which td refuses as titles).
    pub fn ordinary_text(&mut self) -> String {
        loop {
            let t = self.text();
            if t.chars().count() <= 120 {
                return t;
            }
        }
    }

    /// `n` random td commands shared out among `actors` (see [`Builder::random_actions_by`]).
    pub fn random_actions(&mut self, actors: &[usize], n: usize) {
        if actors.is_empty() {
            return;
        }
        let quotas: Vec<(usize, usize)> = actors
            .iter()
            .enumerate()
            .map(|(k, a)| (*a, n / actors.len() + usize::from(k < n % actors.len())))
            .collect();
        self.random_actions_by(&quotas);
    }

    /// Random td commands, `(actor, how many)` each, interleaved at random; every actor
    /// syncs after every 3 to 10 of its own commands (td's chaos "adaptive" sync mode).
    pub fn random_actions_by(&mut self, quotas: &[(usize, usize)]) {
        let mut left: Vec<usize> = quotas.iter().map(|(_, n)| *n).collect();
        let mut until_sync: Vec<u32> = quotas
            .iter()
            .map(|_| self.generator.rng().random_range(3..=10))
            .collect();
        loop {
            let total: usize = left.iter().sum();
            if total == 0 {
                return;
            }
            // Weighted by what is left, so every actor's commands spread over the whole run.
            let mut roll = self.generator.rng().random_range(0..total);
            let k = left
                .iter()
                .position(|n| {
                    let hit = roll < *n;
                    roll = roll.saturating_sub(*n);
                    hit
                })
                .unwrap_or(0);
            let actor = quotas[k].0;
            left[k] -= 1;
            self.random_write(actor);
            until_sync[k] -= 1;
            if until_sync[k] == 0 {
                self.sync(actor);
                until_sync[k] = self.generator.rng().random_range(3..=10);
            }
        }
    }

    /// Syncs every client twice in turn, so that everyone has everything everyone wrote.
    pub fn converge(&mut self) {
        self.sync_all();
        self.sync_all();
    }

    pub fn sync(&mut self, client: usize) {
        self.act(Action::Sync { client });
    }

    pub fn sync_all(&mut self) {
        for c in 0..self.plan.clients.len() {
            self.sync(c);
        }
    }

    pub fn text(&mut self) -> String {
        self.generator.text()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_plans_are_seeded() {
        let mut names: Vec<&str> = CATALOGUE.iter().map(|s| s.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), CATALOGUE.len());
        for s in CATALOGUE.iter().filter(|s| s.in_all) {
            let a = plan(s, 7, Size::default());
            assert_eq!(
                a,
                plan(s, 7, Size::default()),
                "{} is not deterministic",
                s.name
            );
            assert!(!a.clients.is_empty() && !a.actions.is_empty(), "{}", s.name);
        }
    }
}
