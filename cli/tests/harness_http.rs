//! `tdsync harness run --all`, in-process and `--transport http` (against a `tdsync serve`
//! subprocess of the real binary): the same scenarios converge both ways. The HTTP catalogue is
//! split over two processes run side by side (the runs wait on the network more than on the
//! CPU).

use std::{
    collections::BTreeSet,
    process::{Command, Output},
};

use serde_json::Value;
use tdsync_harness::scenario;

fn run(transport: &str, scenarios: &[&str]) -> std::thread::JoinHandle<Output> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tdsync"));
    cmd.args(["harness", "run", "--transport", transport, "--json"])
        .args(scenarios);
    std::thread::spawn(move || cmd.output().expect("run tdsync"))
}

/// The scenarios of `runs`' reports, each asserted converged over `transport`.
fn converged(transport: &str, runs: Vec<std::thread::JoinHandle<Output>>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for run in runs {
        let out = run.join().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        for line in stdout.lines() {
            let report: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{e}: {line}\nstderr: {stderr}"));
            let name = report["scenario"].as_str().unwrap().to_string();
            assert_eq!(report["transport"], transport, "{name}");
            assert_eq!(
                report["passed"], true,
                "{name} over {transport}: {}\nrepro: {}",
                report["failures"], report["repro"]
            );
            assert!(report["events"].as_i64().unwrap() > 0, "{name}");
            seen.insert(name);
        }
        assert!(out.status.success(), "exit {}: {stderr}", out.status);
    }
    seen
}

#[test]
fn every_scenario_of_run_all_converges_in_process_and_over_http() {
    let all: Vec<&str> = scenario::in_all().map(|s| s.name).collect();
    assert!(all.len() >= 20, "{all:?}");
    let (a, b) = all.split_at(all.len() / 2);
    let over_http = vec![run("http", a), run("http", b)];
    let in_process = run("inproc", &["--all"]);
    let expected: BTreeSet<String> = all.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        converged("http", over_http),
        expected,
        "one report per scenario"
    );
    assert_eq!(
        converged("inproc", vec![in_process]),
        expected,
        "--all runs the same scenarios"
    );
}
