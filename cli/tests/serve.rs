//! `tdsync serve` as a process: it exits 0 on SIGTERM.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

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
