//! GitHub sign-in end to end: `tdsync serve` (the built binary) configured with a fake GitHub
//! (`tdsync_github::testing::FakeGithub`: GitHub's OAuth web and device flows and its REST API,
//! on a port of its own), a project linked with `tdsync project link-github`, and the ways in:
//!
//! - a real browser (headless Chromium, `TDSYNC_CHROMIUM`) through the web flow, then the real
//!   td with the token it showed: td pulls but cannot push;
//! - a plain HTTP client playing the browser, for the refusals (no access, a redirect GitHub
//!   refuses, a replayed state, an unlinked project, GitHub down, sign-in not configured);
//! - `tdsync login github` (the built binary) through the device flow: pending then approved,
//!   expired, denied; the device routes for `slow_down` and a second use;
//! - the re-check: access taken away (or the GitHub token revoked) on GitHub ends the token;
//!   GitHub down revokes nothing;
//! - write only with `--allow-write` and push access.
//!
//! Chromium is needed by the browser test only, td by the td part of it; without them those
//! skip with a loud banner, or fail under `TDSYNC_REQUIRE_SERVICES=1`.

#[path = "interop/support.rs"]
#[allow(dead_code)]
mod support;

use std::{
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use support::{TdUser, eventually};
use tdsync_github::{
    Url,
    testing::{FakeGithub, Perm},
};

const CLIENT_ID: &str = "Iv1.tdsync-test";
const CLIENT_SECRET: &str = "fake-client-secret";
const REPO: &str = "acme/widgets";
/// How long a test waits on a condition before it fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// A loopback port nothing listens on right now (the server's public URL must be known before
/// the fake GitHub starts: its registered callback names it).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `tdsync serve` on a port chosen beforehand, with its own data directory and log.
struct Serve {
    dir: tempfile::TempDir,
    child: Option<Child>,
    url: String,
    agent: ureq::Agent,
}

impl Serve {
    fn start(port: u16, args: &[String], env: &[(&str, &str)]) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let mut cmd = Serve::command(dir.path());
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--public-url", &url])
            .args(args)
            .envs(env.iter().copied())
            .env("TDSYNC_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = cmd.spawn().expect("tdsync serve starts");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        let mut serve = Serve {
            dir,
            child: Some(child),
            url,
            agent,
        };
        let health = format!("{}/healthz", serve.url);
        let until = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = serve.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("tdsync serve exited at start ({status}):\n{}", serve.log());
            }
            if serve
                .agent
                .get(&health)
                .call()
                .is_ok_and(|r| r.status().as_u16() == 200)
            {
                return serve;
            }
            assert!(
                Instant::now() < until,
                "tdsync serve did not answer /healthz:\n{}",
                serve.log()
            );
            // Polling a readiness condition under the deadline above.
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `tdsync --data-dir DIR`, with nothing of the caller's tdsync settings.
    fn command(dir: &Path) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tdsync"));
        for (var, _) in std::env::vars_os() {
            if var.to_string_lossy().starts_with("TDSYNC_") || var == "TD_SYNC_URL" {
                cmd.env_remove(var);
            }
        }
        cmd.arg("--data-dir").arg(dir.join("data"));
        cmd
    }

    /// An admin command's output, trimmed.
    fn admin(&self, args: &[&str]) -> String {
        let out = Serve::command(self.dir.path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tdsync {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let mut r = self
            .agent
            .get(format!("{}{path}", self.url))
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .unwrap();
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A POST with a JSON body and no token: status and JSON answer.
    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let mut r = self
            .agent
            .post(format!("{}{path}", self.url))
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .unwrap();
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A push of one new issue with `token`: the status.
    fn push_issue(&self, project: &str, token: &str, id: &str) -> u16 {
        let body = json!({"device_id": "dev-gh", "session_id": "ses_gh", "events": [{
            "client_action_id": 1, "action_type": "create", "entity_type": "issues",
            "entity_id": id, "client_timestamp": "2026-03-01T10:00:00Z",
            "payload": {"schema_version": 1, "new_data": {"id": id, "title": "pushed"}}
        }]});
        self.agent
            .post(format!("{}/v1/projects/{project}/sync/push", self.url))
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .unwrap()
            .status()
            .as_u16()
    }

    /// The tenant's tokens granted through GitHub (`tdsync token list --json`).
    fn github_tokens(&self, tenant: &str) -> Vec<Value> {
        let listed: Value =
            serde_json::from_str(&self.admin(&["token", "list", "--tenant", tenant, "--json"]))
                .unwrap();
        listed
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["name"].as_str().is_some_and(|n| n.starts_with("github:")))
            .cloned()
            .collect()
    }

    /// How many requests the server answered on `route` with `method`, from /metrics.
    fn requests(&self, method: &str, route: &str) -> u64 {
        let text = self
            .agent
            .get(format!("{}/metrics", self.url))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        let prefix = format!("tdsync_http_requests_total{{route=\"{route}\",method=\"{method}\",");
        text.lines()
            .filter(|l| l.starts_with(&prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What a test's world is made of.
#[derive(Default)]
struct Setup {
    /// `--allow-write` on the link.
    allow_write: bool,
    /// The GitHub app's registered callback is on another port than the server: GitHub refuses
    /// to send the browser back.
    callback_elsewhere: bool,
    /// More `tdsync serve` options.
    serve_args: Vec<String>,
}

/// A fake GitHub, a server using it, a tenant and a project `roadmap` linked to `acme/widgets`.
/// Fields drop in order: the fake before the runtime it runs on.
struct World {
    github: FakeGithub,
    server: Serve,
    tenant: String,
    project: String,
    _runtime: tokio::runtime::Runtime,
}

impl World {
    fn new(setup: Setup) -> World {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let port = free_port();
        let callback_port = if setup.callback_elsewhere {
            free_port()
        } else {
            port
        };
        let callback = Url::parse(&format!(
            "http://127.0.0.1:{callback_port}/login/github/callback"
        ))
        .unwrap();
        let github = runtime.block_on(FakeGithub::start(CLIENT_ID, CLIENT_SECRET, callback));
        let mut args: Vec<String> = [
            "--github-client-id",
            CLIENT_ID,
            "--github-url",
            github.web_url().as_str(),
            "--github-api-url",
            github.api_url().as_str(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(setup.serve_args);
        // The secret by environment variable, as an operator gives it (never on a command line).
        let server = Serve::start(
            port,
            &args,
            &[("TDSYNC_GITHUB_CLIENT_SECRET", CLIENT_SECRET)],
        );
        let tenant = server.admin(&["tenant", "create", "acme"]);
        let project = server.admin(&["project", "create", "--tenant", &tenant, "roadmap"]);
        let mut link = vec![
            "project",
            "link-github",
            "--project",
            &project,
            "--repo",
            REPO,
        ];
        if setup.allow_write {
            link.push("--allow-write");
        }
        server.admin(&link);
        World {
            github,
            server,
            tenant,
            project,
            _runtime: runtime,
        }
    }

    /// A GitHub person with `perm` on the linked repository (None: no access).
    fn person(&self, login: &str, perm: Option<Perm>) {
        self.github.add_user(login);
        self.github.set_access(login, REPO, perm);
    }

    /// `tdsync login github` against the server, running.
    fn login_cli(&self, json: bool) -> LoginCli {
        let mut cmd = Serve::command(self.server.dir.path());
        cmd.args([
            "login",
            "github",
            "--server",
            &self.server.url,
            "--project",
            &self.project,
        ]);
        if json {
            cmd.arg("--json");
        }
        LoginCli::spawn(cmd)
    }

    /// A whole device flow through `tdsync login github --json`, approved by `login`: the
    /// server's answer.
    fn device_sign_in(&self, login: &str) -> Value {
        let cli = self.login_cli(true);
        let code = cli.user_code();
        self.github.approve_device(&code, login);
        let done = cli.finish();
        assert!(
            done.status.success(),
            "tdsync login github: {}",
            done.stderr
        );
        serde_json::from_str(&done.stdout).unwrap_or_else(|e| panic!("{e}: {}", done.stdout))
    }
}

/// A running `tdsync login github`: its stderr read line by line as it comes.
struct LoginCli {
    child: Child,
    stderr: Arc<Mutex<String>>,
    reader: std::thread::JoinHandle<()>,
}

/// A finished command.
struct Done {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl LoginCli {
    fn spawn(mut cmd: Command) -> LoginCli {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut all = sink.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
        LoginCli {
            child,
            stderr,
            reader,
        }
    }

    /// The code the CLI asks the person to enter ("Open URL and enter CODE").
    fn user_code(&self) -> String {
        eventually(
            PATIENCE,
            "tdsync login github prints the code to enter",
            || {
                let all = self.stderr.lock().unwrap();
                all.lines()
                    .find_map(|l| l.strip_prefix("Open ")?.split(" and enter ").nth(1))
                    .map(|code| code.trim().to_string())
            },
        )
    }

    /// Waits for the exit (within `PATIENCE`).
    fn finish(mut self) -> Done {
        let mut stdout = String::new();
        let mut pipe = self.child.stdout.take().unwrap();
        let until = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > until {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "tdsync login github did not finish:\n{}",
                    self.stderr.lock().unwrap()
                );
            }
            // Polling the exit under the deadline above.
            std::thread::sleep(Duration::from_millis(50));
        };
        pipe.read_to_string(&mut stdout).unwrap();
        self.reader.join().unwrap();
        let stderr = self.stderr.lock().unwrap().clone();
        Done {
            status,
            stdout,
            stderr,
        }
    }
}

/// An HTTP answer as a browser sees it.
struct Answer {
    status: u16,
    location: Option<String>,
    set_cookies: Vec<String>,
    body: String,
}

/// A plain HTTP client playing a browser: no redirects followed, cookies by hand.
struct Browser {
    agent: ureq::Agent,
}

impl Browser {
    fn new() -> Browser {
        Browser {
            agent: ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(30)))
                .http_status_as_error(false)
                .max_redirects(0)
                .build()
                .into(),
        }
    }

    fn answer(mut r: ureq::http::Response<ureq::Body>) -> Answer {
        let header = |name: &str| -> Vec<String> {
            r.headers()
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_string))
                .collect()
        };
        let location = header("location").into_iter().next();
        let set_cookies = header("set-cookie");
        Answer {
            status: r.status().as_u16(),
            location,
            set_cookies,
            body: r.body_mut().read_to_string().unwrap_or_default(),
        }
    }

    fn get(&self, url: &str, cookie: Option<&str>) -> Answer {
        let mut request = self.agent.get(url);
        if let Some(cookie) = cookie {
            request = request.header("Cookie", cookie);
        }
        Browser::answer(request.call().unwrap())
    }

    fn post_form(&self, url: &str, form: &[(String, String)]) -> Answer {
        let pairs = form.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        Browser::answer(self.agent.post(url).send_form(pairs).unwrap())
    }

    /// `/login/github?project=P` up to GitHub's redirect back: the callback URL (with code and
    /// state) and the cookie the server set. Panics if GitHub does not send the browser back.
    fn to_callback(&self, world: &World, project: &str) -> (String, String) {
        let start = self.get(
            &format!("{}/login/github?project={project}", world.server.url),
            None,
        );
        assert_eq!(start.status, 303, "{}", start.body);
        let cookie = start
            .set_cookies
            .iter()
            .find(|c| c.starts_with("tdsync_github="))
            .unwrap_or_else(|| panic!("no nonce cookie: {:?}", start.set_cookies));
        for attribute in [
            "HttpOnly",
            "SameSite=Lax",
            "Path=/login/github",
            "Max-Age=600",
        ] {
            assert!(cookie.contains(attribute), "{cookie}");
        }
        assert!(!cookie.contains("Secure"), "an http public URL: {cookie}");
        let cookie = cookie.split(';').next().unwrap().to_string();
        let authorize = start.location.expect("a Location to GitHub");
        assert!(
            authorize.starts_with(&format!("{}login/oauth/authorize?", world.github.web_url())),
            "{authorize}"
        );
        // GitHub's page: a form the page's script submits at once.
        let page = self.get(&authorize, None);
        let form = hidden_inputs(&page.body);
        assert!(!form.is_empty(), "GitHub's authorize page:\n{}", page.body);
        let back = self.post_form(
            &format!("{}login/oauth/authorize", world.github.web_url()),
            &form,
        );
        assert_eq!(back.status, 302, "{}", back.body);
        (back.location.expect("GitHub's redirect"), cookie)
    }
}

/// The hidden inputs of a page's form, unescaped.
fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    html.split("<input type=\"hidden\" name=\"")
        .skip(1)
        .filter_map(|rest| {
            let (name, rest) = rest.split_once('"')?;
            let value = rest.split_once("value=\"")?.1.split_once('"')?.0;
            Some((unescape(name), unescape(value)))
        })
        .collect()
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The token a result page shows (`export TD_AUTH_KEY=…`).
fn token_on(page: &str) -> Option<String> {
    let rest = page.split("export TD_AUTH_KEY=").nth(1)?;
    let token: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    token.starts_with("tds_").then_some(token)
}

/// Chromium, or None when the browser test skips (a panic under `TDSYNC_REQUIRE_SERVICES=1`).
fn chromium() -> Option<PathBuf> {
    let required = std::env::var("TDSYNC_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
    match std::env::var_os("TDSYNC_CHROMIUM").map(PathBuf::from) {
        Some(bin) if bin.exists() => Some(bin),
        other => {
            let why = match other {
                Some(bin) => format!("TDSYNC_CHROMIUM={} does not exist", bin.display()),
                None => "TDSYNC_CHROMIUM is not set (infra/services.sh ensure_chromium)".into(),
            };
            assert!(!required, "{why} and TDSYNC_REQUIRE_SERVICES=1");
            eprintln!(
                "\n!!!!!!!!\n!!! SKIPPING the GitHub sign-in browser test: {why}\n!!!!!!!!\n"
            );
            None
        }
    }
}

/// The DOM Chromium ends on after opening `url` (redirects, the page's scripts, the form they
/// submit, GitHub's redirect back: all followed).
fn dump_dom(chromium: &Path, url: &str) -> String {
    let scratch = tempfile::tempdir().unwrap();
    // Files, not pipes: a dump larger than a pipe's buffer would block Chromium.
    let (out_path, err_path) = (
        scratch.path().join("dom.html"),
        scratch.path().join("stderr"),
    );
    let mut child = Command::new(chromium)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            // Time for the authorize page's script to submit and the redirects to land.
            "--virtual-time-budget=10000",
        ])
        .arg(format!(
            "--user-data-dir={}",
            scratch.path().join("profile").display()
        ))
        .arg("--dump-dom")
        .arg(url)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("start chromium");
    let until = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s on {url}");
        }
        // Polling the exit under the deadline above.
        std::thread::sleep(Duration::from_millis(50));
    };
    let dom = std::fs::read_to_string(&out_path).unwrap_or_default();
    assert!(
        status.success() && dom.contains("</html>"),
        "chromium failed on {url}: {status}\n{}",
        std::fs::read_to_string(&err_path).unwrap_or_default()
    );
    dom
}

/// A person who can read the repository signs in with GitHub in a real browser: the page shows
/// a read-only token once with the lines to paste; td joins with it and pulls the project, but
/// its push is refused.
#[test]
fn a_reader_signs_in_in_a_browser_and_td_pulls_but_cannot_push() {
    let Some(chromium) = chromium() else { return };
    let Some(td) = support::td() else { return };
    let world = World::new(Setup::default());
    let server = &world.server;
    world.person("octocat", Some(Perm::Read));
    world.github.sign_in("octocat");

    // Someone with a write token has put work in the project already.
    let writer = server.admin(&[
        "token",
        "mint",
        "--tenant",
        &world.tenant,
        "--scope",
        "write",
        "--name",
        "alice",
    ]);
    let root = tempfile::tempdir().unwrap();
    let alice = TdUser::new(&td, root.path(), "alice", &server.url, &writer);
    alice.ok(&["sync-project", "join", "roadmap"]);
    alice.create("Plan the launch", &[]);
    alice.create("Write the changelog", &[]);
    let pushed = alice.sync();
    assert!(pushed.contains("Pushed 2 events"), "{pushed}");

    let dom = dump_dom(
        &chromium,
        &format!("{}/login/github?project={}", server.url, world.project),
    );
    let token = token_on(&dom).unwrap_or_else(|| panic!("no token on the page:\n{dom}"));
    for line in [
        "export TD_FEATURE_SYNC_CLI=1".to_string(),
        format!("export TD_SYNC_URL={}", server.url),
        format!("export TD_AUTH_KEY={token}"),
        "td sync-project join roadmap".to_string(),
    ] {
        assert!(dom.contains(&line), "{line:?} missing from:\n{dom}");
    }
    assert!(
        dom.contains("octocat") && dom.contains("read-only"),
        "{dom}"
    );
    let granted = server.github_tokens(&world.tenant);
    assert_eq!(granted.len(), 1, "{granted:?}");
    assert_eq!(granted[0]["scopes"], json!(["read"]), "{granted:?}");

    // td with the token from the page.
    let bob = TdUser::new(&td, root.path(), "bob", &server.url, &token);
    let joined = bob.ok(&["sync-project", "join", "roadmap"]);
    assert!(joined.contains(&world.project), "{joined}");
    let pulled = bob.sync();
    assert!(pulled.contains("Pulled 2 events"), "{pulled}");
    let mut titles: Vec<String> = bob
        .list()
        .iter()
        .map(|i| i["title"].as_str().unwrap().to_string())
        .collect();
    titles.sort();
    assert_eq!(titles, ["Plan the launch", "Write the changelog"]);
    bob.create("Bob's idea", &[]);
    let refused = bob.run(&["sync", "--push"]);
    let said = refused.text();
    assert!(!refused.ok, "a read-only push must fail:\n{said}");
    assert!(
        said.contains("403") || said.contains("insufficient") || said.contains("forbidden"),
        "td reports the refusal: {said}"
    );
    // Neither the token, nor the person's GitHub token, nor the app's secret reached the log.
    let log = server.log();
    assert!(!log.contains(&token), "the token is in the log");
    assert!(
        !log.contains("gho_") && !log.contains(CLIENT_SECRET),
        "{log}"
    );
}

/// The web flow's refusals, each a page with a 4xx status naming why, and no token.
#[test]
fn browser_refusals_are_pages_that_say_why() {
    let world = World::new(Setup::default());
    let browser = Browser::new();
    let server = &world.server;

    // No access to the repository on GitHub: 403, no token.
    world.person("mallory", None);
    world.github.sign_in("mallory");
    let (callback, cookie) = browser.to_callback(&world, &world.project);
    let page = browser.get(&callback, Some(&cookie));
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(
        page.body
            .contains("your GitHub account mallory cannot read acme/widgets"),
        "{}",
        page.body
    );
    assert!(token_on(&page.body).is_none());
    assert!(server.github_tokens(&world.tenant).is_empty());

    // A reader: the token page; the callback clears the cookie.
    world.person("octocat", Some(Perm::Read));
    world.github.sign_in("octocat");
    let (callback, cookie) = browser.to_callback(&world, &world.project);
    let page = browser.get(&callback, Some(&cookie));
    assert_eq!(page.status, 200, "{}", page.body);
    let token = token_on(&page.body).expect("a token");
    assert!(
        page.set_cookies
            .iter()
            .any(|c| c.starts_with("tdsync_github=;") && c.contains("Max-Age=0")),
        "{:?}",
        page.set_cookies
    );
    assert_eq!(server.get("/v1/projects", &token).0, 200);
    // The same callback again, as a replay without the (cleared) cookie: refused.
    let replay = browser.get(&callback, None);
    assert_eq!(replay.status, 400, "{}", replay.body);
    assert!(replay.body.contains("already used"), "{}", replay.body);
    // Even with the old cookie: GitHub's code works once.
    let replay = browser.get(&callback, Some(&cookie));
    assert_eq!(replay.status, 400, "{}", replay.body);
    assert!(
        replay.body.contains("GitHub refused the sign-in code"),
        "{}",
        replay.body
    );
    // A state started in another browser (another nonce cookie): refused.
    let (callback, _) = browser.to_callback(&world, &world.project);
    let (_, other_cookie) = browser.to_callback(&world, &world.project);
    let crossed = browser.get(&callback, Some(&other_cookie));
    assert_eq!(crossed.status, 400, "{}", crossed.body);
    assert_eq!(server.github_tokens(&world.tenant).len(), 1);
    // A state this server never made.
    let forged = browser.get(
        &format!(
            "{}/login/github/callback?code=abc&state=v1:forged",
            server.url
        ),
        Some(&cookie),
    );
    assert_eq!(forged.status, 400, "{}", forged.body);
    assert!(forged.body.contains("not valid"), "{}", forged.body);

    // A project that is not linked, and one that does not exist: 404 before GitHub.
    let other = server.admin(&["project", "create", "--tenant", &world.tenant, "other"]);
    for project in [other.as_str(), "p_doesnotexist"] {
        let page = browser.get(
            &format!("{}/login/github?project={project}", server.url),
            None,
        );
        assert_eq!(page.status, 404, "{}", page.body);
        assert!(page.body.contains("not linked"), "{}", page.body);
    }

    // GitHub down at the exchange: 503, nothing granted.
    let (callback, cookie) = browser.to_callback(&world, &world.project);
    world.github.set_unavailable(true);
    let page = browser.get(&callback, Some(&cookie));
    world.github.set_unavailable(false);
    assert_eq!(page.status, 503, "{}", page.body);
    assert!(page.body.contains("GitHub is unavailable"), "{}", page.body);
    assert_eq!(server.github_tokens(&world.tenant).len(), 1);

    // Declined on GitHub: GitHub sends the browser back with access_denied.
    let start = browser.get(
        &format!("{}/login/github?project={}", server.url, world.project),
        None,
    );
    let cookie = start.set_cookies[0].split(';').next().unwrap().to_string();
    let page = browser.get(&start.location.unwrap(), None);
    let mut form = hidden_inputs(&page.body);
    form.retain(|(k, _)| k != "authorize");
    let back = browser.post_form(
        &format!("{}login/oauth/authorize", world.github.web_url()),
        &form,
    );
    let page = browser.get(&back.location.unwrap(), Some(&cookie));
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("declined"), "{}", page.body);
}

/// GitHub refuses to send the browser back to a callback the app did not register: the
/// browser never reaches a token page, and GitHub issues no code.
#[test]
fn github_never_redirects_outside_the_registered_callback() {
    let world = World::new(Setup {
        callback_elsewhere: true,
        ..Setup::default()
    });
    world.person("octocat", Some(Perm::Read));
    world.github.sign_in("octocat");
    let browser = Browser::new();
    let start = browser.get(
        &format!(
            "{}/login/github?project={}",
            world.server.url, world.project
        ),
        None,
    );
    assert_eq!(start.status, 303);
    let page = browser.get(&start.location.unwrap(), None);
    assert!(page.body.contains("Redirect URI mismatch"), "{}", page.body);
    assert!(hidden_inputs(&page.body).is_empty(), "no form to submit");
    assert!(token_on(&page.body).is_none());
    assert_eq!(world.github.codes_issued(), 0);
    assert!(world.server.github_tokens(&world.tenant).is_empty());
}

/// Without `--github-client-id`, every GitHub route says so.
#[test]
fn without_a_github_app_the_routes_say_what_is_missing() {
    let server = Serve::start(free_port(), &[], &[]);
    let browser = Browser::new();
    let page = browser.get(&format!("{}/login/github?project=p_x", server.url), None);
    assert_eq!(page.status, 404);
    assert!(page.body.contains("--github-client-id"), "{}", page.body);
    let (status, body) = server.post("/v1/auth/github/device/start", &json!({"project": "p_x"}));
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        body["message"],
        "GitHub sign-in is not configured on this server (--github-client-id)"
    );
}

/// `tdsync login github`: the CLI shows the code, polls while it is pending, and prints the
/// token once the person approves on GitHub: read-only for a reader.
#[test]
fn the_device_flow_gives_a_reader_a_read_only_token() {
    let world = World::new(Setup::default());
    world.person("octocat", Some(Perm::Read));
    let cli = world.login_cli(true);
    let code = cli.user_code();
    // The CLI polls, and hears "pending", until the person approves.
    eventually(PATIENCE, "a pending poll", || {
        (world.server.requests("POST", "/v1/auth/github/device/poll") >= 2).then_some(())
    });
    world.github.approve_device(&code, "octocat");
    let done = cli.finish();
    assert!(done.status.success(), "{}", done.stderr);
    let answer: Value = serde_json::from_str(&done.stdout).unwrap();
    assert_eq!(answer["status"], "complete");
    assert_eq!(answer["scopes"], json!(["read"]));
    assert_eq!(answer["project_id"], world.project.as_str());
    assert_eq!(answer["project_name"], "roadmap");
    assert_eq!(answer["sync_url"], world.server.url.as_str());
    let token = answer["api_key"].as_str().unwrap();
    assert!(token.starts_with("tds_"));
    assert!(!done.stderr.contains(token), "the token is on stderr");
    let (status, project) = world
        .server
        .get(&format!("/v1/projects/{}", world.project), token);
    assert_eq!(status, 200, "{project}");
    assert_eq!(world.server.push_issue(&world.project, token, "td-r1"), 403);

    // Without --json: the export lines on stdout, the join hint on stderr.
    let cli = world.login_cli(false);
    world.github.approve_device(&cli.user_code(), "octocat");
    let done = cli.finish();
    assert!(done.status.success(), "{}", done.stderr);
    let lines: Vec<&str> = done.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", done.stdout);
    assert_eq!(lines[0], "export TD_FEATURE_SYNC_CLI=1");
    assert_eq!(lines[1], format!("export TD_SYNC_URL={}", world.server.url));
    assert!(
        lines[2].starts_with("export TD_AUTH_KEY=tds_"),
        "{}",
        lines[2]
    );
    assert!(
        done.stderr.contains("td sync-project join roadmap"),
        "{}",
        done.stderr
    );
    assert!(!done.stderr.contains("tds_"), "the token is on stderr");
}

/// The device flow's ends that are not a token: expiry, a refusal on GitHub, no access.
#[test]
fn the_device_flow_ends_without_a_token_when_expired_denied_or_without_access() {
    let world = World::new(Setup::default());
    world.person("octocat", Some(Perm::Read));
    world.person("mallory", None);

    world.github.set_device_expires_in(Duration::from_secs(2));
    let done = world.login_cli(false).finish();
    assert!(!done.status.success());
    assert!(done.stderr.contains("expired"), "{}", done.stderr);
    assert!(done.stdout.is_empty(), "{}", done.stdout);
    world.github.set_device_expires_in(Duration::from_secs(900));

    let cli = world.login_cli(false);
    world.github.deny_device(&cli.user_code());
    let done = cli.finish();
    assert!(!done.status.success());
    assert!(done.stderr.contains("declined"), "{}", done.stderr);

    let cli = world.login_cli(false);
    world.github.approve_device(&cli.user_code(), "mallory");
    let done = cli.finish();
    assert!(!done.status.success());
    assert!(
        done.stderr
            .contains("your GitHub account mallory cannot read acme/widgets"),
        "{}",
        done.stderr
    );
    assert!(world.server.github_tokens(&world.tenant).is_empty());
}

/// The device routes relay GitHub's `slow_down` with its new interval, and a completed device
/// code cannot be used again.
#[test]
fn the_device_routes_relay_slow_down_and_refuse_a_second_use() {
    let world = World::new(Setup::default());
    world.person("octocat", Some(Perm::Read));
    let server = &world.server;
    world.github.set_device_interval(5);
    let (status, started) = server.post(
        "/v1/auth/github/device/start",
        &json!({"project": world.project}),
    );
    assert_eq!(status, 200, "{started}");
    assert_eq!(started["interval"], 5);
    let device_code = started["device_code"].as_str().unwrap();
    let poll = json!({ "device_code": device_code });
    // Polled before the interval passed: GitHub says slow down, by 5 more seconds.
    let (status, answer) = server.post("/v1/auth/github/device/poll", &poll);
    assert_eq!(
        (status, &answer),
        (200, &json!({"status": "slow_down", "interval": 10}))
    );

    world.github.set_device_interval(0);
    let (status, started) = server.post(
        "/v1/auth/github/device/start",
        &json!({"project": world.project}),
    );
    assert_eq!(status, 200, "{started}");
    let poll = json!({ "device_code": started["device_code"] });
    assert_eq!(
        server.post("/v1/auth/github/device/poll", &poll),
        (200, json!({"status": "pending"}))
    );
    world
        .github
        .approve_device(started["user_code"].as_str().unwrap(), "octocat");
    let (status, done) = server.post("/v1/auth/github/device/poll", &poll);
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["status"], "complete");
    let (status, again) = server.post("/v1/auth/github/device/poll", &poll);
    assert_eq!(status, 410, "{again}");
    assert!(
        again["message"].as_str().unwrap().contains("already used"),
        "{again}"
    );
    assert_eq!(server.github_tokens(&world.tenant).len(), 1);

    // A device code this server did not make, and a project that is not linked.
    let (status, body) = server.post(
        "/v1/auth/github/device/poll",
        &json!({"device_code": "v1:made-up"}),
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = server.post(
        "/v1/auth/github/device/start",
        &json!({"project": "p_doesnotexist"}),
    );
    assert_eq!(status, 404, "{body}");
}

/// The re-check: access taken away on GitHub, or the person's GitHub token revoked there, ends
/// the tdsync token; GitHub being down ends nothing; someone who keeps access keeps the token.
#[test]
fn the_recheck_revokes_tokens_whose_github_access_is_gone() {
    let world = World::new(Setup {
        serve_args: [
            "--github-recheck-secs",
            "1",
            "--github-recheck-age-secs",
            "0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        ..Setup::default()
    });
    let server = &world.server;
    for login in ["octocat", "hubot", "keeper", "later"] {
        world.person(login, Some(Perm::Read));
    }
    let token = |login: &str| {
        world.device_sign_in(login)["api_key"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (octocat, hubot, keeper, later) = (
        token("octocat"),
        token("hubot"),
        token("keeper"),
        token("later"),
    );
    let works = |t: &str| server.get("/v1/projects", t).0;
    for t in [&octocat, &hubot, &keeper, &later] {
        assert_eq!(works(t), 200);
    }

    world.github.set_access("octocat", REPO, None);
    world.github.revoke_tokens("hubot");
    eventually(
        PATIENCE,
        "octocat's token refused after the re-check",
        || (works(&octocat) == 401).then_some(()),
    );
    eventually(PATIENCE, "hubot's token refused after the re-check", || {
        (works(&hubot) == 401).then_some(())
    });

    // GitHub down: several rounds go by and nothing is revoked, even for someone whose access
    // went meanwhile; once GitHub answers again, it is.
    world.github.set_unavailable(true);
    world.github.set_access("later", REPO, None);
    let calls = world.github.api_calls("/repos/acme/widgets");
    // Three rounds at one a second: a stretch of time is the point here, not a condition.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(works(&later), 200, "revoked while GitHub was down");
    assert_eq!(world.github.api_calls("/repos/acme/widgets"), calls);
    world.github.set_unavailable(false);
    eventually(
        PATIENCE,
        "later's token refused once GitHub answers",
        || (works(&later) == 401).then_some(()),
    );
    // The rounds kept checking keeper, who keeps access.
    let seen = world.github.api_calls("/repos/acme/widgets");
    eventually(PATIENCE, "more re-checks", || {
        (world.github.api_calls("/repos/acme/widgets") > seen + 1).then_some(())
    });
    assert_eq!(works(&keeper), 200);
    let listed = server.github_tokens(&world.tenant);
    let revoked = listed.iter().filter(|t| t["state"] == "revoked").count();
    assert_eq!(revoked, 3, "{listed:?}");
    let log = server.log();
    assert!(log.contains("GitHub grant revoked"), "{log}");
    assert!(!log.contains("gho_") && !log.contains("tds_"), "{log}");
}

/// Write comes only from push access on a link with `--allow-write`; read access, or a link
/// without it, gives read. A write token whose person loses push access is revoked at the
/// re-check.
#[test]
fn write_needs_push_access_and_a_link_that_allows_it() {
    let world = World::new(Setup {
        allow_write: true,
        serve_args: [
            "--github-recheck-secs",
            "1",
            "--github-recheck-age-secs",
            "0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        ..Setup::default()
    });
    world.person("pusher", Some(Perm::Write));
    world.person("reader", Some(Perm::Triage));
    let pushed = world.device_sign_in("pusher");
    assert_eq!(pushed["scopes"], json!(["write"]), "{pushed}");
    let writer = pushed["api_key"].as_str().unwrap().to_string();
    assert_eq!(
        world.server.push_issue(&world.project, &writer, "td-w1"),
        200
    );
    let read = world.device_sign_in("reader");
    assert_eq!(read["scopes"], json!(["read"]), "{read}");

    // Push access taken down to read: the write token goes at the re-check.
    world.github.set_access("pusher", REPO, Some(Perm::Read));
    eventually(
        PATIENCE,
        "the write token refused after the re-check",
        || (world.server.get("/v1/projects", &writer).0 == 401).then_some(()),
    );
    // Signing in again gives what the access is now: read.
    let again = world.device_sign_in("pusher");
    assert_eq!(again["scopes"], json!(["read"]), "{again}");

    // The same person with push access, on a link without --allow-write: read.
    let server = &world.server;
    let other = server.admin(&["project", "create", "--tenant", &world.tenant, "other"]);
    server.admin(&[
        "project",
        "link-github",
        "--project",
        &other,
        "--repo",
        "acme/gadgets",
    ]);
    world
        .github
        .set_access("pusher", "acme/gadgets", Some(Perm::Admin));
    let (_, started) = server.post("/v1/auth/github/device/start", &json!({"project": other}));
    let poll = json!({ "device_code": started["device_code"] });
    world
        .github
        .approve_device(started["user_code"].as_str().unwrap(), "pusher");
    let (status, done) = server.post("/v1/auth/github/device/poll", &poll);
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["scopes"], json!(["read"]), "{done}");
    let token = done["api_key"].as_str().unwrap();
    assert_eq!(server.push_issue(&other, token, "td-o1"), 403);
}
