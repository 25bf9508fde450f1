//! `tdsync harness run --all`, in-process and `--transport http` (against a `tdsync serve`
//! subprocess of the real binary): the same scenarios converge both ways. The HTTP catalogue is
//! split over two processes run side by side (the runs wait on the network more than on the
//! CPU).

mod harness_runs;

use std::collections::BTreeSet;

use harness_runs::run;
use tdsync_harness::scenario;

/// The scenarios of `runs`' reports, each asserted converged over `transport`.
fn converged(
    transport: &str,
    runs: Vec<std::thread::JoinHandle<std::process::Output>>,
) -> BTreeSet<String> {
    harness_runs::converged(transport, runs)
        .iter()
        .map(|r| r["scenario"].as_str().unwrap().to_string())
        .collect()
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
