//! What the harness tests share: `tdsync harness run … --json` in a thread, and its reports,
//! each asserted converged over the transport it names.

use std::process::{Command, Output};

use serde_json::Value;

/// `tdsync harness run --transport TRANSPORT --json ARGS…` in a thread of its own.
pub fn run(transport: &str, args: &[&str]) -> std::thread::JoinHandle<Output> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tdsync"));
    cmd.args(["harness", "run", "--transport", transport, "--json"])
        .args(args);
    std::thread::spawn(move || cmd.output().expect("run tdsync"))
}

/// Every report of `runs`, each asserted converged over `transport` with events logged, and
/// every run asserted to have exited 0.
pub fn converged(transport: &str, runs: Vec<std::thread::JoinHandle<Output>>) -> Vec<Value> {
    let mut reports = Vec::new();
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
            reports.push(report);
        }
        assert!(out.status.success(), "exit {}: {stderr}", out.status);
    }
    reports
}
