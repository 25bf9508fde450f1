//! Test support (feature `test-support`): the Redis tests run against, and redis-server
//! processes of a test's own (to stop and restart without disturbing other tests).
//!
//! `infra/test.sh` starts a throwaway redis-server (`ensure_redis` in `infra/services.sh`) and
//! exports `TDSYNC_TEST_REDIS_URL` and `TDSYNC_REDIS_SERVER` (the binary) with
//! `TDSYNC_REQUIRE_SERVICES=1`. A Redis test then **fails** when they are missing; run with
//! plain `cargo test` and no Redis, it skips with a loud message. Tests sharing one Redis stay
//! apart by a key prefix of their own ([`unique_prefix`]).

use std::{
    io::Write,
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub const REDIS_URL_VAR: &str = "TDSYNC_TEST_REDIS_URL";
pub const REDIS_SERVER_VAR: &str = "TDSYNC_REDIS_SERVER";
pub const REQUIRE_SERVICES_VAR: &str = "TDSYNC_REQUIRE_SERVICES";

fn required() -> bool {
    std::env::var(REQUIRE_SERVICES_VAR).is_ok_and(|v| v == "1")
}

/// Straight to stderr, not `eprintln!`: the test harness captures that and shows it only for
/// failures, and a skip must be seen.
fn skip(test: &str, why: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "!!! SKIPPED {test}: {why}. Run ./infra/test.sh to include the Redis tests."
    );
}

/// The shared test Redis, or `None` (after a loud message) when there is none and services are
/// not required. Panics when they are required and it is missing.
pub fn redis_url(test: &str) -> Option<String> {
    match std::env::var(REDIS_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if required() => panic!(
            "{test}: {REDIS_URL_VAR} is not set but {REQUIRE_SERVICES_VAR}=1: the Redis tests \
             must run (use ./infra/test.sh, which starts Redis)"
        ),
        _ => {
            skip(test, &format!("no Redis ({REDIS_URL_VAR} is not set)"));
            None
        }
    }
}

/// A key prefix no other test uses.
pub fn unique_prefix() -> String {
    format!(
        "tdsync-test-{}:",
        tdsync_protocol::ids::random_chars(b"0123456789abcdefghijklmnopqrstuvwxyz", 12)
    )
}

/// How many connections are subscribed to `channel` on the Redis at `url` (a test waits for a
/// process's listener before it publishes).
pub fn subscribers(url: &str, channel: &str) -> usize {
    let client = redis::Client::open(url).expect("a Redis URL");
    let mut con = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .expect("the test Redis answers");
    let (_, n): (String, usize) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query(&mut con)
        .expect("PUBSUB NUMSUB");
    n
}

/// A redis-server of one test's own on a free loopback port, in a temp dir, without
/// persistence; it keeps its port across restarts (clients keep their URL) and is killed when
/// dropped.
pub struct RedisServer {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one, or `None` (after a loud message) when redis-server is not installed and
    /// services are not required; panics when they are.
    pub fn start(test: &str) -> Option<RedisServer> {
        let bin = match std::env::var_os(REDIS_SERVER_VAR).filter(|b| !b.is_empty()) {
            Some(bin) => PathBuf::from(bin),
            None => match find_on_path("redis-server") {
                Some(bin) => bin,
                None if required() => panic!(
                    "{test}: redis-server is not installed and {REDIS_SERVER_VAR} is not set, \
                     but {REQUIRE_SERVICES_VAR}=1 (apt-get install -y redis-server)"
                ),
                None => {
                    skip(test, "redis-server is not installed");
                    return None;
                }
            },
        };
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port();
            let mut server = RedisServer {
                bin: bin.clone(),
                dir: tempfile::tempdir().expect("a temp dir"),
                port,
                child: None,
            };
            match server.launch() {
                Ok(()) => return Some(server),
                // Another process took the port between our probe and the server's bind.
                Err(e) => last = e,
            }
        }
        panic!("{test}: redis-server did not start: {last}");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server at once (as a crash would).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.launch() {
                Ok(()) => return,
                // The old socket may linger a moment.
                Err(e) if Instant::now() > deadline => panic!("redis-server did not restart: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    fn launch(&mut self) -> Result<(), String> {
        let log = self.dir.path().join("redis.log");
        let mut child = Command::new(&self.bin)
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("running {}: {e}", self.bin.display()))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!("redis-server exited ({status}): {log}"));
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("redis-server not listening on {}", self.port));
            }
            // Polling for the listening socket, with the deadline above.
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}
