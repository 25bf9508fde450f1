//! The scenario catalogue. A scenario turns a seed and a size into a [`Plan`]; each lives in its
//! own module and registers in [`CATALOGUE`].

mod basic;
mod big;
mod chaos;

use crate::{
    generator::Generator,
    plan::{Action, ClientSpec, NetworkFaults, Plan, WriteOp},
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
pub const CATALOGUE: &[Scenario] = &[basic::SMALL, basic::BASIC, chaos::CHAOS, big::BIG];

pub fn find(name: &str) -> Option<&'static Scenario> {
    CATALOGUE.iter().find(|s| s.name == name)
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
        let n = self.size.clients.unwrap_or(default).max(1);
        self.plan.clients = vec![ClientSpec::default(); n];
        n
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
