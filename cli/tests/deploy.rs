//! `tdsync deploy` as a person uses it: the built binary in a terminal played by tmux (keys
//! sent, the screen read), installing into a `--root` sandbox on a free port. A first install
//! that a real td then syncs through; a rerun that changes nothing; bad answers refused at the
//! prompt; Ctrl-C in the middle; failures injected mid-way (a taken port, an unreachable
//! PostgreSQL, a bucket that refuses), fixed, then resumed; the answers-file run; an upgrade and
//! its rollback.
//!
//! tmux and td are needed (and PostgreSQL and S3 for their tests): without them a test skips
//! with a loud banner, or fails under `TDSYNC_REQUIRE_SERVICES=1`.

#[path = "interop/support.rs"]
#[allow(dead_code)]
mod support;

#[path = "deploy/screen.rs"]
mod screen;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use screen::Screen;

const TDSYNC: &str = env!("CARGO_BIN_EXE_tdsync");

/// The prompts of a first SQLite install on the script service, in order, after the listen
/// address; each answered with its default.
const DEFAULTED: [&str; 6] = [
    "Data directory",
    "Control plane",
    "Redis",
    "Backups",
    "TLS",
    "Service manager",
];

/// A sandbox install on a port of its own; its server is stopped when it is dropped.
struct Install {
    root: tempfile::TempDir,
    port: u16,
}

impl Install {
    fn new() -> Install {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Install {
            root: tempfile::tempdir().unwrap(),
            port,
        }
    }

    fn root(&self) -> &Path {
        self.root.path()
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn listen(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The shell line that runs `tdsync deploy --root ROOT` with `extra` options.
    fn command(&self, extra: &str) -> String {
        format!("{TDSYNC} deploy --root {} {extra}", self.root().display())
    }

    /// `tdsync deploy --root ROOT ARGS` without a terminal: its status and output.
    fn run(&self, args: &[&str]) -> (i32, String) {
        let output = Command::new(TDSYNC)
            .arg("deploy")
            .arg("--root")
            .arg(self.root())
            .args(args)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.code().unwrap_or(-1), text)
    }

    /// An answers file with the basics (this install's URL and port, tenant acme) and `more`.
    fn answers(&self, more: &str) -> PathBuf {
        let path = self.root().join("answers.toml");
        std::fs::write(
            &path,
            format!(
                "public_url = \"{}\"\nlisten = \"{}\"\ntenant = \"acme\"\n{more}",
                self.url(),
                self.listen()
            ),
        )
        .unwrap();
        path
    }

    /// `--answers` (the basics and `more`) `--yes` with `extra` options: status and output.
    fn run_answers(&self, more: &str, extra: &[&str]) -> (i32, String) {
        let answers = self.answers(more);
        let mut args = vec!["--answers", answers.to_str().unwrap(), "--yes"];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    fn saved(&self) -> String {
        std::fs::read_to_string(self.root().join("etc/tdsync/deploy.toml")).unwrap_or_default()
    }

    fn healthy(&self) -> bool {
        ureq::get(format!("{}/healthz", self.url()))
            .call()
            .is_ok_and(|r| r.status() == 200)
    }

    fn server_pid(&self) -> String {
        std::fs::read_to_string(self.root().join("run/tdsync/tdsync.pid")).unwrap_or_default()
    }
}

impl Drop for Install {
    fn drop(&mut self) {
        let _ = Command::new(TDSYNC)
            .arg("deploy")
            .arg("--root")
            .arg(self.root())
            .arg("--stop")
            .output();
    }
}

/// The lines a run printed for its steps (`✓`, `↷` or `✗` first).
fn step_lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('✓') || l.starts_with('↷') || l.starts_with('✗'))
        .collect()
}

/// Asserts that the run stopped at `step`: exit status 1, its `✗` line the last step line.
fn assert_failed_at(code: i32, text: &str, step: &str) {
    assert_eq!(code, 1, "{text}");
    let failed = step_lines(text).last().copied().unwrap_or_default();
    assert!(
        failed.starts_with(&format!("✗ {step}")),
        "stopped at {step}:\n{text}"
    );
    assert!(text.contains("Stopped at the failed step"), "{text}");
}

/// Asserts that a run with the saved answers finds every step already done.
fn assert_nothing_to_do(install: &Install) {
    let (code, text) = install.run(&["--yes"]);
    assert_eq!(code, 0, "{text}");
    let steps = step_lines(&text);
    assert_eq!(steps.len(), 14, "{text}");
    assert!(steps.iter().all(|l| l.starts_with('↷')), "{text}");
}

/// The admin token the summary showed.
fn shown_token(text: &str) -> String {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("export TD_AUTH_KEY="))
        .unwrap_or_else(|| panic!("no token in the summary:\n{text}"))
        .trim()
        .to_string()
}

/// The titles `user` sees after joining `project` and syncing.
fn titles_after_join(user: &support::TdUser, project: &str) -> Vec<String> {
    user.ok(&["sync-project", "join", project]);
    user.sync();
    user.list()
        .iter()
        .map(|i| i["title"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Runs `tdsync deploy` at a terminal again, taking the saved answers; it must succeed.
fn rerun_with_saved_answers(install: &Install) -> String {
    let screen = Screen::run(&install.command(""));
    screen.wait_for("Use the saved answers");
    screen.answer("");
    let (code, text) = screen.wait_exit();
    assert_eq!(code, 0, "{text}");
    text
}

/// Answers a first install's prompts: this install's URL and port, defaults, tenant acme.
fn answer_first_install(screen: &Screen, install: &Install) {
    screen.wait_for("Public URL");
    screen.answer(&install.url());
    screen.wait_for("Listen address");
    screen.answer(&install.listen());
    for prompt in DEFAULTED {
        screen.wait_for(prompt);
        screen.answer("");
    }
    screen.wait_for("First tenant");
    screen.answer("acme");
}

#[test]
fn an_interactive_install_serves_td_and_a_rerun_changes_nothing() {
    let (true, Some(td)) = (screen::tmux(), support::td()) else {
        return;
    };
    let install = Install::new();
    let screen = Screen::run(&install.command(""));
    answer_first_install(&screen, &install);
    let (code, text) = screen.wait_exit();
    assert_eq!(code, 0, "{text}");
    let steps = step_lines(&text);
    assert_eq!(steps.len(), 14, "one line per step:\n{text}");
    for done in [
        "✓ directories",
        "✓ tdsync binary",
        "✓ server settings",
        "✓ first tenant and admin token",
        "✓ service definition",
        "✓ server",
    ] {
        assert!(steps.iter().any(|l| l.starts_with(done)), "{done}:\n{text}");
    }
    assert!(
        text.contains(&format!("export TD_SYNC_URL={}", install.url())),
        "{text}"
    );
    let token = shown_token(&text);
    assert!(token.starts_with("tds_"), "{token}");
    let saved = install.saved();
    for line in [
        format!("public_url = \"{}\"", install.url()),
        "tenant = \"acme\"".to_string(),
        "service = \"script\"".to_string(),
    ] {
        assert!(saved.contains(&line), "{line} in:\n{saved}");
    }
    assert!(!saved.contains("tds_"), "no token is saved:\n{saved}");

    // A real td syncs through it with the token shown.
    let people = tempfile::tempdir().unwrap();
    let alice = support::TdUser::new(&td, people.path(), "alice", &install.url(), &token);
    let init = alice.run_with_input(&["sync", "init"], &format!("{}\nc\nweb\n", install.url()));
    assert!(init.ok, "td sync init:\n{}", init.text());
    alice.create("Ship the deploy", &[]);
    alice.sync();
    let bob = support::TdUser::new(&td, people.path(), "bob", &install.url(), &token);
    assert_eq!(titles_after_join(&bob, "web"), ["Ship the deploy"]);

    // A second run with the saved answers changes nothing.
    let pid = install.server_pid();
    let text = rerun_with_saved_answers(&install);
    let steps = step_lines(&text);
    assert_eq!(steps.len(), 14, "{text}");
    assert!(
        steps.iter().all(|l| l.starts_with('↷')),
        "all already done:\n{text}"
    );
    assert_eq!(install.server_pid(), pid, "the server was not restarted");
    assert!(
        !text.contains("TD_AUTH_KEY=tds_"),
        "the token is shown once:\n{text}"
    );
}

#[test]
fn bad_answers_are_refused_at_the_prompt_and_ctrl_c_keeps_the_ones_given() {
    if !screen::tmux() {
        return;
    }
    let install = Install::new();
    let a_file = install.root().join("not-a-dir");
    std::fs::write(&a_file, "x").unwrap();
    let screen = Screen::run(&install.command(""));
    screen.wait_for("Public URL");
    screen.answer("td.example.com");
    screen.wait_for("\"td.example.com\" is not a URL");
    screen.answer(&install.url());
    screen.wait_for("Listen address");
    screen.answer("localhost");
    screen.wait_for("is not an address and port");
    screen.answer(&install.listen());
    screen.wait_for("Data directory");
    screen.answer(&a_file.display().to_string());
    screen.wait_for("is a file, not a directory");
    screen.answer("");
    screen.wait_for("Control plane");
    screen.key("C-c");
    let (code, text) = screen.wait_exit();
    assert_eq!(code, 130, "ended by the interrupt:\n{text}");
    assert!(!install.healthy());
    let saved = install.saved();
    assert!(
        saved.contains(&format!("listen = \"{}\"", install.listen())),
        "{saved}"
    );
    assert!(saved.contains("data_dir = "), "{saved}");
    assert!(!saved.contains("control_plane"), "{saved}");

    // The next run offers what was saved and completes.
    let again = Screen::run(&install.command(""));
    let text = again.wait_for("Public URL");
    assert!(
        text.contains(&install.url()),
        "the saved URL is the default:\n{text}"
    );
    again.answer("");
    again.wait_for("Listen address");
    again.answer("");
    for prompt in DEFAULTED {
        again.wait_for(prompt);
        again.answer("");
    }
    again.wait_for("First tenant");
    again.answer("");
    let (code, text) = again.wait_exit();
    assert_eq!(code, 0, "{text}");
    assert!(install.healthy());
}

#[test]
fn a_taken_port_stops_the_run_and_the_rerun_resumes_there() {
    if !screen::tmux() {
        return;
    }
    let install = Install::new();
    let squatter = TcpListener::bind(install.listen()).unwrap();
    let screen = Screen::run(&install.command(""));
    answer_first_install(&screen, &install);
    let (code, text) = screen.wait_exit();
    assert_failed_at(code, &text, "server");
    assert!(
        text.contains(&format!("{} is taken", install.listen())),
        "{text}"
    );
    assert!(text.contains("next: stop the program using it"), "{text}");

    drop(squatter);
    let text = rerun_with_saved_answers(&install);
    let steps = step_lines(&text);
    let server = steps
        .iter()
        .position(|l| l.starts_with("✓ server"))
        .expect(&text);
    assert!(
        steps[..server].iter().all(|l| l.starts_with('↷')),
        "the steps before the failed one are already done:\n{text}"
    );
    assert!(install.healthy());
}

#[test]
fn an_unreachable_postgres_stops_the_run_until_the_url_is_right() {
    let Some(server) = tdsync_acl::testing::postgres_server_url("deploy control plane") else {
        return;
    };
    let install = Install::new();
    let unreachable = "postgres://tdsync:secret@127.0.0.1:1/tdsync";
    let (code, text) = install.run_answers(
        &format!("control_plane = \"postgres\"\npostgres_url = \"{unreachable}\"\n"),
        &[],
    );
    assert_failed_at(code, &text, "control plane");
    assert!(
        text.contains("deploy-secrets.toml"),
        "the next step names the file:\n{text}"
    );
    assert!(
        !text.contains("secret@"),
        "the password is not shown:\n{text}"
    );
    let secrets = install.root().join("etc/tdsync/deploy-secrets.toml");
    assert!(
        std::fs::read_to_string(&secrets)
            .unwrap()
            .contains(unreachable)
    );
    assert!(
        !install.saved().contains("secret@"),
        "secrets stay in their own file"
    );

    // Fixed: a database that is there.
    let database = format!("tdsync_deploy_{}", install.port);
    let admin = Command::new("psql")
        .args([&server, "-qc", &format!("CREATE DATABASE {database}")])
        .output()
        .unwrap();
    assert!(admin.status.success(), "{admin:?}");
    let url = tdsync_acl::testing::with_database(&server, &database);
    let (code, text) = install.run_answers(
        &format!("control_plane = \"postgres\"\npostgres_url = \"{url}\"\n"),
        &[],
    );
    assert_eq!(code, 0, "{text}");
    assert!(
        step_lines(&text)
            .iter()
            .any(|l| l.starts_with("↷ control plane") && l.contains("PostgreSQL")),
        "{text}"
    );
    assert!(install.healthy());
}

#[test]
fn ctrl_c_during_a_step_leaves_a_state_the_next_run_completes() {
    let (true, Some(s3)) = (screen::tmux(), s3()) else {
        return;
    };
    // The test object store behind a gate: while it is shut, connections are taken and never
    // answered (the backup step waits on them); opened, they are forwarded.
    let gate = Gate::new(&s3.endpoint);
    let install = Install::new();
    let answers = install.answers(&s3.answers(&gate.url, &s3.bucket));
    let screen = Screen::run(&install.command(&format!("--answers {} --yes", answers.display())));
    screen.wait_for("… write a first backup");
    screen.key("C-c");
    let (code, text) = screen.wait_exit();
    assert_eq!(code, 130, "ended by the interrupt:\n{text}");
    assert!(
        install.healthy(),
        "the server started before the interrupt runs on"
    );
    let leftovers: Vec<_> = std::fs::read_dir(install.root().join("etc/tdsync"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "no half-written file: {leftovers:?}");

    // The store answers now: the next run completes from the interrupted step.
    gate.open();
    let (code, text) = install.run(&["--yes"]);
    assert_eq!(code, 0, "{text}");
    let steps = step_lines(&text);
    let backups = steps
        .iter()
        .position(|l| l.starts_with("✓ backups"))
        .expect(&text);
    assert!(
        steps[..backups].iter().all(|l| l.starts_with('↷')),
        "{text}"
    );
}

#[test]
fn a_bucket_that_refuses_stops_the_run_until_it_is_one_that_takes_backups() {
    let Some(s3) = s3() else {
        return;
    };
    let install = Install::new();
    let with_bucket = |bucket: &str| install.run_answers(&s3.answers(&s3.endpoint, bucket), &[]);
    let (code, text) = with_bucket("no-such-bucket");
    assert_failed_at(code, &text, "backups");
    assert!(
        text.contains("next: check that the bucket exists"),
        "{text}"
    );
    assert!(
        !text.contains(&s3.secret),
        "the secret key is not shown:\n{text}"
    );

    let (code, text) = with_bucket(&s3.bucket);
    assert_eq!(code, 0, "{text}");
    assert!(
        step_lines(&text).iter().any(|l| l.starts_with("✓ backups")),
        "{text}"
    );
    // Recorded: the third run only checks.
    assert_nothing_to_do(&install);
}

struct S3 {
    endpoint: String,
    bucket: String,
    key_id: String,
    secret: String,
    region: String,
}

/// A TCP gate in front of an HTTP endpoint: shut, it holds connections unanswered; open, it
/// forwards them.
struct Gate {
    url: String,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Gate {
    fn new(endpoint: &str) -> Gate {
        let target = endpoint.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let is_open = open.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for client in listener.incoming().flatten() {
                if !is_open.load(std::sync::atomic::Ordering::SeqCst) {
                    held.push(client);
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(&target) else {
                    continue;
                };
                let (mut up_from, mut up_to) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || std::io::copy(&mut up_from, &mut up_to));
                let (mut down_from, mut down_to) = (server, client);
                std::thread::spawn(move || std::io::copy(&mut down_from, &mut down_to));
            }
        });
        Gate { url, open }
    }

    fn open(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl S3 {
    /// The answers for backups to `bucket` at `endpoint` with this server's key.
    fn answers(&self, endpoint: &str, bucket: &str) -> String {
        format!(
            "backups = \"s3\"\nbackup_url = \"s3://{bucket}/tdsync?endpoint={endpoint}&region={}\"\n\
             s3_access_key_id = \"{}\"\ns3_secret_access_key = \"{}\"\n",
            self.region, self.key_id, self.secret
        )
    }
}

/// The test S3 server `infra/services.sh` starts, or None (loudly; a panic when required).
fn s3() -> Option<S3> {
    let var = |name: &str| std::env::var(name).ok();
    match (
        var("TDSYNC_TEST_S3_ENDPOINT"),
        var("TDSYNC_TEST_S3_BUCKET"),
        var("TDSYNC_TEST_S3_ACCESS_KEY"),
        var("TDSYNC_TEST_S3_SECRET_KEY"),
    ) {
        (Some(endpoint), Some(bucket), Some(key_id), Some(secret)) => Some(S3 {
            endpoint,
            bucket,
            key_id,
            secret,
            region: var("TDSYNC_TEST_S3_REGION").unwrap_or_else(|| "us-east-1".into()),
        }),
        _ => {
            let message = "no test S3 server (TDSYNC_TEST_S3_*): run infra/test.sh";
            assert!(
                std::env::var_os("TDSYNC_REQUIRE_SERVICES").is_none(),
                "{message}"
            );
            eprintln!("\n!!!!!!!!!! SKIPPED: {message} !!!!!!!!!!\n");
            None
        }
    }
}

#[test]
fn an_upgrade_keeps_the_old_binary_and_a_rollback_puts_it_back() {
    let install = Install::new();
    let (code, text) = install.run_answers("", &[]);
    assert_eq!(code, 0, "{text}");
    let first_pid = install.server_pid();

    // A newer binary: the same program with different bytes (a trailing byte changes nothing
    // an ELF loader reads).
    let newer = install.root().join("tdsync-newer");
    let mut bytes = std::fs::read(TDSYNC).unwrap();
    bytes.push(b'\n');
    std::fs::write(&newer, &bytes).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&newer, std::fs::Permissions::from_mode(0o755)).unwrap();
    let output = Command::new(&newer)
        .arg("deploy")
        .arg("--root")
        .arg(install.root())
        .arg("--yes")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    let steps = step_lines(&text);
    assert!(
        steps.iter().any(|l| l.starts_with("✓ tdsync binary")),
        "{text}"
    );
    assert!(
        steps.iter().any(|l| l.starts_with("✓ server")),
        "restarted:\n{text}"
    );
    let bin = install.root().join("opt/tdsync/bin");
    assert_eq!(std::fs::read(bin.join("tdsync")).unwrap(), bytes);
    assert_eq!(
        std::fs::read(bin.join("tdsync.previous")).unwrap(),
        std::fs::read(TDSYNC).unwrap()
    );
    assert_ne!(install.server_pid(), first_pid);
    assert!(install.healthy());

    let (code, text) = install.run(&["--rollback"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("rolled back"), "{text}");
    assert_eq!(
        std::fs::read(bin.join("tdsync")).unwrap(),
        std::fs::read(TDSYNC).unwrap()
    );
    assert_eq!(std::fs::read(bin.join("tdsync.previous")).unwrap(), bytes);
    assert!(install.healthy());

    let (code, text) = install.run(&["--stop"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("stopped the server"), "{text}");
    assert!(!install.healthy());
}

#[test]
fn https_through_a_local_caddy_with_its_own_authority_carries_a_td_sync() {
    let Some(td) = support::td() else {
        return;
    };
    if !screen::installed("caddy", "version", "the deploy suite's TLS step runs it") {
        return;
    }
    let install = Install::new();
    let https_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let public = format!("https://localhost:{https_port}");
    let answers = install.root().join("answers.toml");
    std::fs::write(
        &answers,
        format!(
            "public_url = \"{public}\"\nlisten = \"{}\"\ntenant = \"acme\"\n\
             tls = \"caddy-internal\"\n",
            install.listen()
        ),
    )
    .unwrap();
    let (code, text) = install.run(&["--answers", answers.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 0, "{text}");
    assert!(
        step_lines(&text)
            .iter()
            .any(|l| l.starts_with("✓ TLS (Caddy)")
                && l.contains(&format!("localhost:{https_port}"))),
        "{text}"
    );
    let root_cert = install
        .root()
        .join("var/lib/caddy/caddy/pki/authorities/local/root.crt");
    assert!(
        text.contains(&format!("SSL_CERT_FILE={}", root_cert.display())),
        "{text}"
    );
    let token = shown_token(&text);

    // td, trusting Caddy's authority, syncs through HTTPS.
    let people = tempfile::tempdir().unwrap();
    let mut alice = support::TdUser::new(&td, people.path(), "alice", &public, &token);
    alice.set_env("SSL_CERT_FILE", &root_cert.display().to_string());
    let init = alice.run_with_input(&["sync", "init"], &format!("{public}\nc\nweb\n"));
    assert!(init.ok, "td sync init:\n{}", init.text());
    alice.create("Behind Caddy", &[]);
    alice.sync();
    let mut bob = support::TdUser::new(&td, people.path(), "bob", &public, &token);
    bob.set_env("SSL_CERT_FILE", &root_cert.display().to_string());
    assert_eq!(titles_after_join(&bob, "web"), ["Behind Caddy"]);
    assert_nothing_to_do(&install);
    let (code, text) = install.run(&["--stop"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("stopped Caddy"), "{text}");
}

/// Host services a test started, stopped again when it ends (those already running are left).
struct StartedHere(Vec<Vec<&'static str>>);

impl Drop for StartedHere {
    fn drop(&mut self) {
        for command in &self.0 {
            let _ = Command::new(command[0]).args(&command[1..]).output();
        }
    }
}

fn local_postgres_online() -> bool {
    Command::new("pg_lsclusters")
        .arg("--no-header")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("online"))
}

fn local_redis_answers() -> bool {
    std::net::TcpStream::connect("127.0.0.1:6379").is_ok()
}

#[test]
fn local_postgres_and_redis_come_from_debian_packages() {
    // Packages and system services are root's: this test changes the machine (CI's is thrown
    // away), and stops again what it started.
    if !rustix::process::geteuid().is_root() {
        let message = "local PostgreSQL and Redis need root: run the suite as root";
        assert!(
            std::env::var_os("TDSYNC_REQUIRE_SERVICES").is_none(),
            "{message}"
        );
        eprintln!("\n!!!!!!!!!! SKIPPED: {message} !!!!!!!!!!\n");
        return;
    }
    let mut started = StartedHere(Vec::new());
    if !local_postgres_online() {
        started.0.push(vec![
            "sh",
            "-c",
            "pg_lsclusters --no-header | while read v c _; do pg_ctlcluster $v $c stop; done",
        ]);
    }
    if !local_redis_answers() {
        started
            .0
            .push(vec!["redis-cli", "-p", "6379", "shutdown", "nosave"]);
    }
    let install = Install::new();
    let (code, text) = install.run_answers(
        "control_plane = \"postgres-local\"\nredis = \"local\"\n",
        &[],
    );
    assert_eq!(code, 0, "{text}");
    let steps = step_lines(&text);
    for (step, says) in [
        ("local PostgreSQL", "@127.0.0.1:"),
        ("local Redis", "redis://127.0.0.1:6379 answers PING"),
        ("control plane", "PostgreSQL at postgres://tdsync:redacted@"),
    ] {
        assert!(
            steps.iter().any(|l| l.contains(step) && l.contains(says)),
            "{step}: {says}\n{text}"
        );
    }
    let secrets =
        std::fs::read_to_string(install.root().join("etc/tdsync/deploy-secrets.toml")).unwrap();
    assert!(
        secrets.contains("postgres_url = \"postgres://tdsync:"),
        "the made URL is kept"
    );
    assert!(
        !install.saved().contains("postgres://"),
        "and only with the secrets"
    );
    let env = std::fs::read_to_string(install.root().join("etc/tdsync/tdsync.env")).unwrap();
    assert!(
        env.contains("TDSYNC_REDIS_URL='redis://127.0.0.1:6379'"),
        "{env}"
    );
    assert!(
        env.contains("TDSYNC_CONTROL_PLANE='postgres://tdsync:"),
        "{env}"
    );
    assert!(install.healthy());
    assert_nothing_to_do(&install);
}

#[test]
fn the_dry_run_changes_nothing_and_bad_answers_files_are_refused() {
    let install = Install::new();
    let (code, text) = install.run_answers("", &["--dry-run"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("14. health through the public URL"), "{text}");
    assert!(!install.root().join("opt").exists(), "nothing installed");

    let (code, text) = install.run(&["--answers", "/nonexistent.toml", "--yes"]);
    assert_ne!(code, 0);
    assert!(text.contains("/nonexistent.toml: no such file"), "{text}");
    let (code, text) = install.run_answers("tennant = \"x\"\n", &[]);
    assert_ne!(code, 0);
    assert!(text.contains("unknown answer \"tennant\""), "{text}");
    let (code, text) = install.run_answers("backups = \"tape\"\n", &[]);
    assert_ne!(code, 0);
    assert!(
        text.contains("backups: \"tape\" is not one of none, dir, s3"),
        "{text}"
    );
    let (code, text) = install.run(&["--rollback"]);
    assert_ne!(code, 0);
    assert!(
        text.contains("no previous binary") || text.contains("nothing is deployed"),
        "{text}"
    );
}
