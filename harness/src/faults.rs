//! Named, composable faults (`--faults latency,lost-acks,partitions`). Network faults set the
//! transport's per-call probabilities; the others are actions sprinkled into the plan at seeded
//! random points (a partition and its reconnect, a server restart, a crash in the middle of a
//! pull, a clock skew on a client, concurrent syncs on one client, slow pollers).

use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::plan::{Action, Plan};

/// Every fault the harness knows, with what it does.
pub const ALL: &[(&str, &str)] = &[
    ("latency", "2 ms on every call"),
    ("jitter", "up to 3 ms more on every call"),
    ("lost-requests", "5% of requests never reach the server"),
    ("lost-acks", "5% of replies are lost after the server acted"),
    ("duplicates", "5% of requests are delivered twice"),
    ("server-errors", "3% of calls answer 5xx without acting"),
    (
        "partitions",
        "clients go offline for stretches of the run, then reconnect",
    ),
    (
        "restarts",
        "the server restarts (all in-memory state dropped, shards reopened)",
    ),
    (
        "crash-mid-pull",
        "a client dies after pulling a few pages; its database is reopened",
    ),
    ("clock-skew", "clients' clocks run hours ahead or behind"),
    (
        "concurrent-sync",
        "two td syncs at once on one client's database",
    ),
    (
        "mixed-pollers",
        "some clients sync every step, others rarely",
    ),
];

/// Checks and normalises a comma list of fault names.
pub fn parse(list: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if name == "all" {
            out.extend(ALL.iter().map(|(n, _)| n.to_string()));
        } else if ALL.iter().any(|(n, _)| *n == name) {
            out.push(name.to_string());
        } else {
            let known: Vec<&str> = ALL.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "unknown fault {name:?}; known: {}, all",
                known.join(", ")
            ));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Applies `faults` to `plan`, seeded from the plan's seed.
pub fn apply(plan: &mut Plan, faults: &[String]) {
    plan.faults.extend(faults.iter().cloned());
    plan.faults.sort();
    plan.faults.dedup();
    let mut rng = StdRng::seed_from_u64(plan.seed ^ 0xfa17_5eed);
    let on = |name: &str| faults.iter().any(|f| f == name);
    let n = &mut plan.network;
    if on("latency") {
        n.latency_ms = 2;
    }
    if on("jitter") {
        n.jitter_ms = 3;
    }
    if on("lost-requests") {
        n.lose_request = 0.05;
    }
    if on("lost-acks") {
        n.lose_reply = 0.05;
    }
    if on("duplicates") {
        n.duplicate = 0.05;
    }
    if on("server-errors") {
        n.server_error = 0.03;
    }
    let clients = plan.clients.len();
    if clients == 0 {
        return;
    }
    if on("clock-skew") {
        for c in plan.clients.iter_mut() {
            c.clock_skew_secs = rng.random_range(-6..=6) * 3600 + rng.random_range(-300..=300);
        }
    }
    let len = plan.actions.len().max(1);
    let mut inserts: Vec<(usize, Action)> = Vec::new();
    let at = |rng: &mut StdRng| rng.random_range(0..=len);
    if on("partitions") {
        for _ in 0..(len / 40).max(1) {
            let client = rng.random_range(0..clients);
            let start = at(&mut rng);
            let end = (start + rng.random_range(5..30)).min(len);
            inserts.push((
                start,
                Action::Offline {
                    client,
                    offline: true,
                },
            ));
            inserts.push((
                end,
                Action::Offline {
                    client,
                    offline: false,
                },
            ));
        }
    }
    if on("restarts") {
        for _ in 0..(len / 60).max(1) {
            inserts.push((at(&mut rng), Action::RestartServer));
        }
    }
    if on("crash-mid-pull") {
        for _ in 0..(len / 50).max(1) {
            let client = rng.random_range(0..clients);
            inserts.push((
                at(&mut rng),
                Action::CrashDuringPull {
                    client,
                    pages: rng.random_range(1..4),
                },
            ));
        }
    }
    if on("concurrent-sync") {
        for _ in 0..(len / 50).max(1) {
            inserts.push((
                at(&mut rng),
                Action::ConcurrentSync {
                    client: rng.random_range(0..clients),
                    syncs: 2,
                },
            ));
        }
    }
    if on("mixed-pollers") {
        // Fast pollers: every client with an even index syncs every few steps.
        for pos in (0..len).step_by(4) {
            for client in (0..clients).step_by(2) {
                inserts.push((pos, Action::Sync { client }));
            }
        }
    }
    // Insert from the back so earlier positions stay valid.
    inserts.sort_by_key(|(pos, _)| std::cmp::Reverse(*pos));
    for (pos, action) in inserts {
        plan.actions.insert(pos.min(plan.actions.len()), action);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{ClientSpec, NetworkFaults};

    #[test]
    fn names_are_checked_and_all_expands() {
        assert!(parse("latency, lost-acks").is_ok());
        assert_eq!(parse("all").unwrap().len(), ALL.len());
        let err = parse("latency,gremlins").unwrap_err();
        assert!(
            err.contains("gremlins") && err.contains("lost-acks"),
            "{err}"
        );
    }

    #[test]
    fn structural_faults_become_actions() {
        let mut plan = Plan {
            scenario: "t".into(),
            seed: 9,
            clients: vec![ClientSpec::default(); 3],
            network: NetworkFaults::default(),
            faults: Vec::new(),
            actions: vec![Action::Sync { client: 0 }; 100],
        };
        apply(
            &mut plan,
            &parse("partitions,restarts,crash-mid-pull,lost-acks").unwrap(),
        );
        assert!(plan.network.lose_reply > 0.0);
        let has = |f: fn(&Action) -> bool| plan.actions.iter().any(f);
        assert!(has(|a| matches!(a, Action::Offline { offline: true, .. })));
        assert!(has(|a| matches!(a, Action::Offline { offline: false, .. })));
        assert!(has(|a| matches!(a, Action::RestartServer)));
        assert!(has(|a| matches!(a, Action::CrashDuringPull { .. })));
    }
}
