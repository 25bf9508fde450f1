//! `tdsync harness run --all --transport http`: every scenario of the catalogue, over HTTP
//! against a `tdsync serve` subprocess of the real binary, converges as it does in-process.
//! The catalogue is split over two processes run side by side (the runs wait on the network
//! more than on the CPU).

use std::{
    collections::BTreeSet,
    process::{Command, Output},
};

use serde_json::Value;
use tdsync_harness::scenario;

fn run_over_http(names: &[&str]) -> std::thread::JoinHandle<Output> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tdsync"));
    cmd.args(["harness", "run", "--transport", "http", "--json"])
        .args(names);
    std::thread::spawn(move || cmd.output().expect("run tdsync"))
}

#[test]
fn every_scenario_of_run_all_converges_over_http() {
    let all: Vec<&str> = scenario::in_all().map(|s| s.name).collect();
    assert!(all.len() >= 20, "{all:?}");
    let (a, b) = all.split_at(all.len() / 2);
    let runs = [run_over_http(a), run_over_http(b)];
    let mut seen = BTreeSet::new();
    for run in runs {
        let out = run.join().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        for line in stdout.lines() {
            let report: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{e}: {line}\nstderr: {stderr}"));
            let name = report["scenario"].as_str().unwrap().to_string();
            assert_eq!(report["transport"], "http", "{name}");
            assert_eq!(
                report["passed"], true,
                "{name} over HTTP: {}\nrepro: {}",
                report["failures"], report["repro"]
            );
            assert!(report["events"].as_i64().unwrap() > 0, "{name}");
            seen.insert(name);
        }
        assert!(out.status.success(), "exit {}: {stderr}", out.status);
    }
    let expected: BTreeSet<String> = all.iter().map(|s| s.to_string()).collect();
    assert_eq!(seen, expected, "one report per scenario");
}
