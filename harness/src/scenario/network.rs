//! The network and the server misbehaving: td's `test_network_partition.sh`,
//! `test_late_join.sh` and `test_server_restart.sh`, and the faults td's harness covers in
//! unit tests — lost acknowledgements (CrashRecovery: a re-push is answered as duplicates),
//! duplicate delivery, and a client dying in the middle of a pull.

use rand::Rng;

use super::{Builder, Scenario};
use crate::{faults, plan::Action};

/// A client cut off from (or reconnected to) the network.
fn offline(b: &mut Builder, client: usize, offline: bool) {
    b.act(Action::Offline { client, offline });
}

pub const PARTITION: Scenario = Scenario {
    name: "partition",
    about: "25 synced actions, then A offline for 40 actions (its syncs fail) while B does 30, then A reconnects",
    in_all: true,
    build: |b: &mut Builder| {
        b.actors(2);
        let scale = b.budget(100);
        let scaled = |n: usize| (n * scale).div_ceil(100);
        b.random_actions(&[0, 1], scaled(25));
        b.converge();
        offline(b, 0, true);
        b.random_actions_by(&[(0, scaled(40)), (1, scaled(30))]);
        // A tries once more before the network comes back.
        b.sync(0);
        offline(b, 0, false);
        b.sync(0);
        b.sync(1);
        b.converge();
    },
};

pub const LATE_JOIN: Scenario = Scenario {
    name: "late-join",
    about: "A and B create 50 issues and make 30 more actions; C joins and pulls all history; then 40 more actions by all three",
    in_all: true,
    build: |b: &mut Builder| {
        b.actors(3);
        let scale = b.budget(100);
        let scaled = |n: usize| (n * scale).div_ceil(100);
        for i in 0..scaled(50) {
            b.create_issue(i % 2);
        }
        b.sync(0);
        b.sync(1);
        b.random_actions(&[0, 1], scaled(30));
        b.sync(0);
        b.sync(1);
        b.sync(0);
        // C's first sync: the whole history at once.
        b.sync(2);
        b.random_actions(&[0, 1, 2], scaled(40));
        b.converge();
    },
};

pub const SERVER_RESTART: Scenario = Scenario {
    name: "server-restart",
    about: "50 synced actions; the server goes down while A and B make 30 actions each (their syncs are refused); it comes back on the same data; all converge",
    in_all: true,
    build: |b: &mut Builder| {
        b.actors(2);
        let scale = b.budget(100);
        let scaled = |n: usize| (n * scale).div_ceil(100);
        b.random_actions(&[0, 1], scaled(50));
        // A restart between two syncs drops every in-memory state (cached heads, shards).
        b.act(Action::RestartServer);
        b.converge();
        b.act(Action::ServerDown);
        b.random_actions_by(&[(0, scaled(30)), (1, scaled(30))]);
        b.sync(0);
        b.act(Action::ServerUp);
        b.sync(0);
        b.sync(1);
        b.converge();
    },
};

pub const LOST_ACKS: Scenario = Scenario {
    name: "lost-acks",
    about: "push replies lost after the server committed (every few syncs, and 5% of all replies); the re-push is answered as duplicates and nothing is stored twice",
    in_all: true,
    build: |b: &mut Builder| {
        b.actors(3);
        let rounds = b.budget(12);
        for _ in 0..3 {
            b.create_issue(0);
        }
        b.converge();
        for round in 0..rounds {
            let actor = round % 3;
            for _ in 0..b.generator.rng().random_range(2..=4) {
                b.random_write(actor);
            }
            b.act(Action::LoseNextReply { client: actor });
            b.sync(actor);
            // One more write, then the re-push carries old (duplicate) and new events.
            b.random_write(actor);
            b.sync(actor);
            b.sync((actor + 1) % 3);
        }
        b.converge();
        faults::apply(&mut b.plan, &["lost-acks".to_string()]);
    },
};

pub const DUPLICATE_DELIVERY: Scenario = Scenario {
    name: "duplicate-delivery",
    about: "half of all requests (pushes and pulls) are delivered to the server twice; no event is logged or applied twice",
    in_all: true,
    build: |b: &mut Builder| {
        b.clients(3);
        let actions = b.budget(60);
        let everyone = b.everyone();
        b.random_actions(&everyone, actions);
        b.converge();
        b.plan.network.duplicate = 0.5;
        b.plan.faults.push("duplicates".into());
    },
};

pub const CRASH_MID_PULL: Scenario = Scenario {
    name: "crash-mid-pull",
    about: "clients die after pulling a few pages of a long backlog (their databases are reopened from disk) and resume, writing in between",
    in_all: true,
    build: |b: &mut Builder| {
        b.actors(3);
        let rounds = b.budget(5);
        for round in 0..rounds {
            b.random_actions(&[0], 12);
            b.sync(0);
            for client in [1, 2] {
                let pages = b.generator.rng().random_range(1..=4);
                b.act(Action::CrashDuringPull { client, pages });
                b.random_write(client);
                if round % 2 == 1 {
                    // A second crash before the client ever finished catching up.
                    b.act(Action::CrashDuringPull { client, pages: 2 });
                }
                b.sync(client);
            }
        }
        b.converge();
    },
};
