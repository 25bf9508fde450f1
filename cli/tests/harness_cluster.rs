//! `tdsync harness run --transport cluster`: every scenario of the catalogue, the big sync
//! included, through a cluster's two gateways — per run, three `tdsync serve --role shard` nodes
//! and two `--role gateway` processes of the real binary sharing a Postgres database, Redis and
//! a backup directory. Every scenario converges, and the oracle judges the project's owner:
//! in `server-restart` the owner is stopped while the clients write, another node takes the
//! project over and serves their syncs, and the stopped node comes back without it.
//!
//! The catalogue is split over two processes run side by side (the big sync takes about as long
//! as all the others together), each on a Postgres database of its own: nodes take over any
//! project whose lease ran out, so two clusters on one database would take each other's.

mod harness_runs;

use std::collections::BTreeSet;

use serde_json::Value;
use tdsync_acl::testing::PostgresTestDb;
use tdsync_harness::scenario::CATALOGUE;

/// Over the cluster on `pg`'s database and `redis`.
fn run(pg: &str, redis: &str, scenarios: &[&str]) -> std::thread::JoinHandle<std::process::Output> {
    let mut args = vec!["--control-plane", pg, "--redis", redis];
    args.extend(scenarios);
    harness_runs::run("cluster", &args)
}

/// Every report of `runs`, converged, each with a repro line that rebuilds the cluster.
fn converged(runs: Vec<std::thread::JoinHandle<std::process::Output>>) -> Vec<Value> {
    let reports = harness_runs::converged("cluster", runs);
    for report in &reports {
        let repro = report["repro"].as_str().unwrap();
        assert!(
            repro.contains("--transport cluster --control-plane postgres://")
                && repro.contains(" --redis "),
            "{repro}"
        );
    }
    reports
}

/// The outcomes of the syncs between the owner going down and coming back.
fn syncs_while_down(report: &Value) -> Vec<String> {
    report["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .skip_while(|t| t["action"] != "server-down")
        .take_while(|t| t["action"] != "server-up")
        .filter(|t| t["action"] == "sync")
        .map(|t| t["outcome"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_scenario_converges_through_a_clusters_gateways() {
    let test = "harness_cluster";
    let Some(redis) = tdsync_live_redis::testing::redis_url(test) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(db_a) = runtime.block_on(PostgresTestDb::create(&format!("{test}_a"))) else {
        return;
    };
    let Some(db_b) = runtime.block_on(PostgresTestDb::create(&format!("{test}_b"))) else {
        return;
    };
    let (big, rest): (Vec<&str>, Vec<&str>) = CATALOGUE
        .iter()
        .map(|s| s.name)
        .partition(|name| *name == "big");
    assert_eq!(big.len(), 1, "the big sync is in the catalogue");
    assert!(rest.len() >= 20, "{rest:?}");
    let started = std::time::Instant::now();
    let reports = converged(vec![
        run(db_a.url(), &redis, &big),
        run(db_b.url(), &redis, &rest),
    ]);
    eprintln!(
        "{} scenarios through a cluster in {:.1} s",
        reports.len(),
        started.elapsed().as_secs_f64()
    );
    let seen: BTreeSet<&str> = reports
        .iter()
        .map(|r| r["scenario"].as_str().unwrap())
        .collect();
    let expected: BTreeSet<&str> = CATALOGUE.iter().map(|s| s.name).collect();
    assert_eq!(seen, expected, "one report per scenario");
    // The owner down, the clients' syncs went on through the node that took the project over.
    let restart = reports
        .iter()
        .find(|r| r["scenario"] == "server-restart")
        .unwrap();
    let while_down = syncs_while_down(restart);
    assert!(
        while_down.iter().any(|o| o == "ok"),
        "no sync got through while the owner was down: {while_down:?}"
    );
}
