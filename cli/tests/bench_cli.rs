//! `tdsync bench` end to end, kept short: it starts its own server, measures, and prints one
//! JSON document whose figures are real measurements next to their baselines. (The figures
//! themselves belong in BENCHMARKS.md, not in a test.)

use std::process::Command;

use serde_json::Value;

fn bench(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_tdsync"))
        .args(["bench", "--json", "--rounds", "1", "--duration", "0.2"])
        .args(args)
        .output()
        .expect("run tdsync bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tdsync bench failed: {stderr}");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn measurement<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["measurements"]
        .as_array()
        .expect("measurements")
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {doc}"))
}

#[test]
fn push_spread_over_projects_and_pull_at_the_head_are_measured_with_baselines() {
    let doc = bench(&[
        "--only",
        "push,pull-head",
        "--devices",
        "2",
        "--push-projects",
        "2",
        "--pollers",
        "2",
    ]);
    assert_eq!(doc["in_process"], true);
    let push = measurement(&doc, "push");
    assert!(push["measured"]["median"].as_f64().unwrap() > 0.0, "{push}");
    assert!(push["baseline"]["median"].as_f64().unwrap() > 0.0, "{push}");
    assert!(
        push["title"].as_str().unwrap().contains("2 projects"),
        "{push}"
    );
    let head = measurement(&doc, "pull_head");
    assert!(head["measured"]["median"].as_f64().unwrap() > 0.0, "{head}");
    assert!(head["measured"]["p99_ms"].as_f64().unwrap() > 0.0, "{head}");
    assert_eq!(
        doc["measurements"].as_array().unwrap().len(),
        2,
        "only what was asked"
    );
}

#[test]
fn pull_at_the_head_with_redis_is_measured_next_to_in_process() {
    let Some(url) = tdsync_live_redis::testing::redis_url("bench pull-head --redis") else {
        return;
    };
    let doc = bench(&["--only", "pull-head", "--pollers", "2", "--redis", &url]);
    let redis = measurement(&doc, "pull_head_redis");
    assert!(
        redis["measured"]["median"].as_f64().unwrap() > 0.0,
        "{redis}"
    );
    assert!(
        redis["baseline"]["median"].as_f64().unwrap() > 0.0,
        "{redis}"
    );
    assert!(redis["ratio"].as_f64().is_some(), "{redis}");
    assert_eq!(doc["measurements"].as_array().unwrap().len(), 2);
}

#[test]
fn many_projects_are_created_filled_polled_and_measured_on_disk() {
    let doc = bench(&[
        "--only",
        "many-projects",
        "--projects",
        "40",
        "--project-events",
        "2",
        "--pollers",
        "2",
    ]);
    let created = measurement(&doc, "project_create");
    assert!(
        created["measured"]["median"].as_f64().unwrap() > 0.0,
        "{created}"
    );
    let poll = measurement(&doc, "many_projects_poll");
    assert!(poll["measured"]["median"].as_f64().unwrap() > 0.0, "{poll}");
    assert!(poll["baseline"]["median"].as_f64().unwrap() > 0.0, "{poll}");
    assert!(
        poll["title"].as_str().unwrap().contains("40 projects"),
        "{poll}"
    );
    // What is on disk is measured, not assumed: forty projects' shards and more.
    for name in ["disk_per_project_serving", "disk_per_project_at_rest"] {
        let disk = measurement(&doc, name);
        let per_project = disk["measured"]["median"].as_f64().unwrap();
        assert!(per_project > 10_000.0, "{disk}");
    }
    let rss = measurement(&doc, "many_projects_rss");
    assert!(rss["measured"]["median"].as_f64().unwrap() > 1.0, "{rss}");
}

#[test]
fn the_live_layer_is_measured_with_baselines_and_targets() {
    let doc = bench(&[
        "--only",
        "sse,long-poll",
        "--sse-connections",
        "40",
        "--subscribers",
        "20",
        "--long-polls",
        "4",
        "--live-pushes",
        "3",
    ]);
    let names: Vec<&str> = doc["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "long_poll",
            "long_poll_deadline",
            "sse_fanout",
            "sse_fanout_subscriber",
            "sse_idle_rss",
            "sse_open"
        ],
        "only what was asked"
    );
    for name in ["long_poll", "long_poll_deadline", "sse_fanout"] {
        let m = measurement(&doc, name);
        assert!(m["measured"]["p99_ms"].as_f64().unwrap() > 0.0, "{m}");
        assert!(m["baseline"]["p99_ms"].as_f64().unwrap() > 0.0, "{m}");
        assert!(m["target"]["met"].is_boolean(), "{m}");
    }
    assert!(
        measurement(&doc, "sse_fanout")["title"]
            .as_str()
            .unwrap()
            .contains("20 SSE subscribers")
    );
    // Read from a `tdsync serve` of its own. Forty streams may fit in memory its warm-up freed,
    // so only that there is a figure, and its baseline, is asserted.
    let idle = measurement(&doc, "sse_idle_rss");
    assert!(
        idle["measured"]["median"].as_f64().unwrap() >= 0.0,
        "{idle}"
    );
    assert!(
        idle["baseline"]["median"].as_f64().unwrap() >= 0.0,
        "{idle}"
    );
    assert!(
        idle["title"].as_str().unwrap().contains("40 streams"),
        "{idle}"
    );
}

#[test]
fn backups_are_measured_against_a_server_without_them() {
    let doc = bench(&[
        "--only",
        "backup",
        "--devices",
        "1",
        "--restore-events",
        "1000",
    ]);
    for name in ["push_backup_normal", "push_backup_replicated"] {
        let m = measurement(&doc, name);
        assert!(m["measured"]["median"].as_f64().unwrap() > 0.0, "{m}");
        assert!(m["baseline"]["median"].as_f64().unwrap() > 0.0, "{m}");
    }
    // A shipment waits for the next round of a 1 s interval: it cannot be instant.
    let lag = measurement(&doc, "backup_lag");
    assert!(lag["measured"]["median"].as_f64().unwrap() > 0.0, "{lag}");
    for name in ["restore_segments", "restore_snapshot"] {
        let m = measurement(&doc, name);
        assert!(m["measured"]["median"].as_f64().unwrap() > 0.0, "{m}");
        assert!(m["title"].as_str().unwrap().contains("1,000-event"), "{m}");
    }
    // Not in the default set: it is asked for by name.
    assert_eq!(doc["measurements"].as_array().unwrap().len(), 5);
}

#[test]
fn impossible_settings_are_refused_with_a_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_tdsync"))
        .args(["bench", "--devices", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("at least 1"), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_tdsync"))
        .args([
            "bench",
            "--only",
            "many-projects",
            "--project-events",
            "1001",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("at most 1000"), "{stderr}");
}
