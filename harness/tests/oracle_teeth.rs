//! The oracle has teeth: with one replica applying pulled updates by a deliberately wrong rule
//! (it ignores `previous_data`, a test-only switch), the same run that converges otherwise
//! fails, and the report names the table, the row and the column that diverged, on which client.

use tdsync_harness::{
    fixtures,
    plan::Plan,
    runner::{self, RunOptions},
    scenario::{self, Size},
};

fn opts() -> RunOptions {
    RunOptions {
        fixtures: fixtures::default_dir(),
        repro_base: "cargo test -p tdsync-harness --test oracle_teeth".into(),
    }
}

fn field_collisions() -> Plan {
    let s = scenario::find("field-collisions").expect("the scenario exists");
    scenario::plan(s, 1, Size::default())
}

#[test]
fn a_wrong_apply_rule_on_one_replica_fails_the_run_and_names_the_divergence() {
    let healthy = runner::run_plan(&field_collisions(), &opts());
    assert!(
        healthy.passed,
        "the control run must converge: {:?}",
        healthy.failures
    );

    let mut plan = field_collisions();
    plan.clients[1].wrong_apply_rule = true;
    let broken = runner::run_plan(&plan, &opts());
    assert!(!broken.passed, "the oracle missed a broken apply rule");
    let diverged = broken
        .failures
        .iter()
        .find(|f| f.kind == "diverged")
        .unwrap_or_else(|| panic!("no divergence reported: {:?}", broken.failures));
    let (table, row) = diverged
        .entity
        .clone()
        .expect("the divergence names its row");
    assert_eq!(table, "issues", "{diverged:?}");
    assert!(!row.is_empty());
    assert!(
        diverged.message.contains("client 1"),
        "the message names the replica: {}",
        diverged.message
    );
    assert!(
        !diverged.diff.is_empty(),
        "the divergence comes with a column diff"
    );
    for line in &diverged.diff {
        assert_ne!(line.server, line.client, "{line:?}");
    }
    assert!(!diverged.trace.is_empty(), "and with the row's event trace");
    assert_eq!(
        broken.repro,
        format!("{} --seed 1", opts().repro_base),
        "a one-line repro"
    );
}
