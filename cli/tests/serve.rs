//! `tdsync serve` as a process: it exits 0 on SIGTERM, and the advice its API gives (the mint
//! command of an invitation) works as printed against the same data directory.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::{Value, json};
use tdsync_harness::remote::ServeProcess;

#[test]
fn the_binary_exits_zero_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tdsync"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env_remove("TDSYNC_CONTROL_PLANE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The binary says where it listens once it does.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let base = loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "tdsync serve ended before listening"
        );
        if let Some(rest) = line.trim().strip_prefix("tdsync: serving on ") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let health = ureq::get(format!("{base}/healthz")).call().unwrap();
    assert_eq!(health.status().as_u16(), 200);

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // Drain stderr so the child never blocks on a full pipe, then wait for its exit.
    let drain = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "tdsync serve did not stop within 30 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let rest = drain.join().unwrap();
    assert!(status.success(), "exit status {status}; stderr: {rest}");
}

#[test]
fn the_mint_command_an_invitation_answers_with_works_as_printed() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServeProcess::new(
        Path::new(env!("CARGO_BIN_EXE_tdsync")),
        &dir.path().join("data"),
        &dir.path().join("server.log"),
    );
    server.start().unwrap();
    let tenant = server.admin(&["tenant", "create", "acme"]).unwrap();
    let project = server
        .admin(&["project", "create", "--tenant", &tenant, "web"])
        .unwrap();
    let owner = server
        .admin(&["token", "mint", "--tenant", &tenant, "--scope", "admin"])
        .unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let post = |path: &str, token: &str, body: &Value| -> (u16, Value) {
        let mut reply = agent
            .post(format!("{}{path}", server.base_url()))
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .unwrap();
        let status = reply.status().as_u16();
        let text = reply.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str(&text).unwrap())
    };
    let (status, body) = post(
        &format!("/v1/projects/{project}/members"),
        &owner,
        &json!({"email": "bob@example.test", "role": "writer"}),
    );
    assert_eq!(status, 422, "{body}");
    let message = body["message"].as_str().unwrap();
    let command = message
        .split('`')
        .find(|part| part.starts_with("tdsync token mint"))
        .unwrap_or_else(|| panic!("no command in {message:?}"));
    // Run it as printed, with a name for the placeholder.
    let args: Vec<&str> = command
        .split_whitespace()
        .skip(1)
        .map(|a| if a == "<who>" { "bob" } else { a })
        .collect();
    let token = server.admin(&args).unwrap();
    let push = json!({"device_id": "dev-bob", "session_id": "ses_bob", "events": [{
        "client_action_id": 1, "action_type": "create", "entity_type": "issues",
        "entity_id": "td-1", "client_timestamp": "2026-03-01T10:00:00Z",
        "payload": {"schema_version": 1, "new_data": {"id": "td-1", "title": "from bob"}}
    }]});
    let (status, body) = post(&format!("/v1/projects/{project}/sync/push"), &token, &push);
    assert_eq!((status, &body["accepted"]), (200, &json!(1)), "{body}");
}
