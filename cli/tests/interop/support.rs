//! What the interop tests stand on: finding the real td binary (or saying loudly why the suite
//! cannot run), a `tdsync serve` subprocess with its admin commands and HTTP API, and td users —
//! each with its own HOME, auth.json (a stable device id) and project directory.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use serde_json::Value;
use tdsync_harness::remote::ServeProcess;
use tdsync_projection::{Dump, Tolerances};

/// The td release the suite is written against (td-wire-protocol.md is read from its source).
pub const TD_VERSION: &str = "v0.62.0";

const HOW_TO_PROVIDE_TD: &str = "\
    td v0.62.0 is installed with `go install github.com/marcus/td@v0.62.0` (infra/test.sh tries \
    it), but the Go module proxy currently answers 403 for github.com/marcus/td, so that may \
    fail. Build td v0.62.0 from its public source (github.com/marcus/td, tag v0.62.0: \
    `go build -o /some/dir/td .`) and run the suite with TD_BIN=/some/dir/td, e.g. \
    `TD_BIN=/some/dir/td cargo test -p tdsync-gateway --test interop`";

/// Where td was found, or why not.
enum Found {
    Td(PathBuf),
    /// No td anywhere; the suite skips with this message.
    Missing(String),
}

/// The td binary: `$TD_BIN`, else `td` on PATH, else `$(go env GOPATH)/bin/td`. None (after a
/// loud message, printed once) when there is none; a panic when TD_BIN names nothing or Go
/// itself is missing (the message says how to install it).
pub fn td() -> Option<PathBuf> {
    static FOUND: OnceLock<Found> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        let found = find_td();
        match &found {
            Found::Td(path) => eprintln!(
                "interop: td at {} ({})",
                path.display(),
                td_version(path)
            ),
            Found::Missing(why) => eprintln!(
                "\n{bar}\nSKIPPED: the td interop suite (gateway/tests/interop.rs) did not run.\n{why}\n{bar}\n",
                bar = "!".repeat(100)
            ),
        }
        found
    });
    match found {
        Found::Td(path) => Some(path.clone()),
        Found::Missing(_) => None,
    }
}

fn find_td() -> Found {
    if let Some(bin) = std::env::var_os("TD_BIN") {
        let path = PathBuf::from(&bin);
        assert!(
            path.is_file(),
            "TD_BIN={} is not a file. {HOW_TO_PROVIDE_TD}",
            path.display()
        );
        return Found::Td(path);
    }
    if let Some(path) = on_path("td") {
        return Found::Td(path);
    }
    let gopath = match Command::new("go").args(["env", "GOPATH"]).output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        Ok(out) => panic!(
            "`go env GOPATH` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "the td interop suite needs td {TD_VERSION}, installed with Go, and Go is not \
             installed ({e}). Install Go 1.22 or newer (https://go.dev/doc/install, or \
             `apt-get install golang-go`) and run infra/test.sh, which runs \
             `go install github.com/marcus/td@{TD_VERSION}`; or set TD_BIN to a td binary. \
             {HOW_TO_PROVIDE_TD}"
        ),
    };
    let candidate = Path::new(&gopath).join("bin").join("td");
    if candidate.is_file() {
        return Found::Td(candidate);
    }
    Found::Missing(format!(
        "Missing: a td {TD_VERSION} binary. TD_BIN is not set, there is no `td` on PATH, and \
         {} does not exist.\n{HOW_TO_PROVIDE_TD}",
        candidate.display()
    ))
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn td_version(td: &Path) -> String {
    Command::new(td)
        .arg("version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|e| format!("`td version` failed: {e}"))
}

/// Polls `check` until it returns Some, failing after `deadline` with `what`.
pub fn eventually<T>(deadline: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + deadline;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < until,
            "timed out after {deadline:?}: {what}"
        );
        // Polling a condition under the deadline above.
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A token as `tdsync token mint --json` prints it.
#[derive(Debug, Clone)]
pub struct Minted {
    pub id: String,
    pub token: String,
}

/// A `tdsync serve` on a free loopback port with its own data directory.
pub struct Server {
    pub dir: tempfile::TempDir,
    pub process: ServeProcess,
    agent: ureq::Agent,
}

impl Server {
    pub fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut process = ServeProcess::new(
            Path::new(env!("CARGO_BIN_EXE_tdsync")),
            &dir.path().join("data"),
            &dir.path().join("server.log"),
        );
        process.start().expect("tdsync serve starts");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .http_status_as_error(false)
            .build()
            .into();
        Server {
            dir,
            process,
            agent,
        }
    }

    pub fn url(&self) -> String {
        self.process.base_url()
    }

    pub fn admin(&self, args: &[&str]) -> String {
        self.process.admin(args).unwrap()
    }

    pub fn tenant(&self, name: &str) -> String {
        self.admin(&["tenant", "create", name])
    }

    /// `tdsync token mint --tenant T --scope S [--project P] --json`.
    pub fn mint(&self, tenant: &str, scope: &str, project: Option<&str>, name: &str) -> Minted {
        let mut args = vec![
            "token", "mint", "--tenant", tenant, "--scope", scope, "--name", name, "--json",
        ];
        if let Some(p) = project {
            args.extend(["--project", p]);
        }
        let line = self.admin(&args);
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        Minted {
            id: v["id"].as_str().unwrap().to_string(),
            token: v["token"].as_str().unwrap().to_string(),
        }
    }

    /// A GET on the HTTP API with a token: status and JSON body.
    pub fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let mut r = self
            .agent
            .get(format!("{}{path}", self.url()))
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

    /// The project's shard file (the server's projection and log).
    pub fn shard(&self, tenant: &str, project: &str) -> PathBuf {
        self.dir
            .path()
            .join("data/tenants")
            .join(tenant)
            .join(format!("{project}.db"))
    }

    /// A query on the server's projection, opened read-only.
    pub fn rows(&self, tenant: &str, project: &str, sql: &str) -> Vec<Vec<Value>> {
        query(&self.shard(tenant, project), sql)
    }
}

/// Every row of `sql` on the SQLite file at `path` (read-only), as JSON values.
pub fn query(path: &Path, sql: &str) -> Vec<Vec<Value>> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let n = stmt.column_count();
    stmt.query_map([], |r| {
        (0..n)
            .map(|i| {
                Ok(match r.get_ref(i)? {
                    rusqlite::types::ValueRef::Null => Value::Null,
                    rusqlite::types::ValueRef::Integer(x) => Value::from(x),
                    rusqlite::types::ValueRef::Real(x) => Value::from(x),
                    rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                        Value::String(String::from_utf8_lossy(t).into_owned())
                    }
                })
            })
            .collect()
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// The synced tables of a td database or a shard (read-only).
pub fn dump(path: &Path) -> Dump {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    Dump::read(&conn).unwrap()
}

/// Asserts that every replica's synced tables equal the first's (td's own tolerances).
pub fn assert_same(replicas: &[(&str, &Path)]) {
    let (first_name, first) = replicas[0];
    let left = dump(first);
    for (name, path) in &replicas[1..] {
        let right = dump(path);
        if let Some(d) = left.first_difference_with(&right, &Tolerances::td()) {
            panic!("{name} differs from {first_name} (left = {first_name}): {d}");
        }
    }
}

/// The output of one td command.
#[derive(Debug)]
pub struct Ran {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    fn of(out: Output) -> Ran {
        Ran {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// stdout and stderr together (td prints its sync errors on either).
    pub fn text(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// One td installation: its own HOME (with auth.json), project directory and token.
pub struct TdUser {
    pub name: String,
    td: PathBuf,
    pub home: PathBuf,
    pub dir: PathBuf,
    pub device_id: String,
    env: Vec<(String, String)>,
}

impl TdUser {
    /// A td user under `root/<name>`, with `td init` done in its project directory.
    pub fn new(td: &Path, root: &Path, name: &str, url: &str, token: &str) -> TdUser {
        let home = root.join(name).join("home");
        let dir = root.join(name).join("project");
        std::fs::create_dir_all(home.join(".config/td")).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        // A stable device id: without one td invents a new device for every process.
        let device_id = format!("{:0>32}", hex_of(name));
        let auth = serde_json::json!({
            "user_id": name,
            "email": format!("{name}@example.test"),
            "server_url": url,
            "device_id": device_id,
        });
        std::fs::write(home.join(".config/td/auth.json"), auth.to_string()).unwrap();
        let user = TdUser {
            name: name.to_string(),
            td: td.to_path_buf(),
            home,
            dir,
            device_id,
            env: vec![
                ("TD_SYNC_URL".into(), url.into()),
                ("TD_AUTH_KEY".into(), token.into()),
                ("TD_FEATURE_SYNC_CLI".into(), "1".into()),
                // Syncs happen when a test says so (`td sync`), unless it turns autosync on.
                ("TD_SYNC_AUTO".into(), "0".into()),
            ],
        };
        user.ok(&["init"]);
        user
    }

    /// Sets (or replaces) one environment variable for this user's td processes.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
    }

    pub fn set_token(&mut self, token: &str) {
        self.set_env("TD_AUTH_KEY", token);
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.td);
        cmd.args(args)
            .current_dir(&self.dir)
            .env_clear()
            .env("HOME", &self.home)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("NO_COLOR", "1");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `td ARGS` with `input` on stdin.
    pub fn run_with_input(&self, args: &[&str], input: &str) -> Ran {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        Ran::of(child.wait_with_output().unwrap())
    }

    /// Runs `td ARGS`.
    pub fn run(&self, args: &[&str]) -> Ran {
        Ran::of(
            self.command(args)
                .stdin(Stdio::null())
                .output()
                .unwrap_or_else(|e| panic!("running td {}: {e}", args.join(" "))),
        )
    }

    /// Runs `td ARGS` and asserts it succeeded; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert!(
            r.ok,
            "{}: td {} failed:\n{}",
            self.name,
            args.join(" "),
            r.text()
        );
        r.stdout
    }

    /// Runs `td ARGS --json` and parses its output.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| {
            panic!(
                "{}: td {}: not JSON ({e}):\n{out}",
                self.name,
                all.join(" ")
            )
        })
    }

    /// `td sync`, asserted to succeed; returns its output.
    pub fn sync(&self) -> String {
        let r = self.run(&["sync"]);
        assert!(r.ok, "{}: td sync failed:\n{}", self.name, r.text());
        r.text()
    }

    /// Creates an issue and returns its id.
    pub fn create(&self, title: &str, extra: &[&str]) -> String {
        let mut args = vec!["create", title];
        args.extend(extra);
        let v = self.json(&args);
        v["id"]
            .as_str()
            .expect("td create --json has an id")
            .to_string()
    }

    /// `td show ID --json`.
    pub fn show(&self, id: &str) -> Value {
        self.json(&["show", id])
    }

    /// Every issue, closed and deleted ones aside (`td list -a`).
    pub fn list(&self) -> Vec<Value> {
        match self.json(&["list", "--all", "--limit", "100000"]) {
            Value::Array(a) => a,
            other => panic!("td list --json printed {other}"),
        }
    }

    pub fn db(&self) -> PathBuf {
        self.dir.join(".todos/issues.db")
    }

    /// A query on this user's td database (read-only).
    pub fn rows(&self, sql: &str) -> Vec<Vec<Value>> {
        query(&self.db(), sql)
    }

    /// action_log rows not yet pushed.
    pub fn pending(&self) -> i64 {
        self.rows("SELECT COUNT(*) FROM action_log WHERE synced_at IS NULL AND undone = 0")[0][0]
            .as_i64()
            .unwrap()
    }

    /// The project this td database is linked to.
    pub fn linked_project(&self) -> Option<String> {
        self.rows("SELECT project_id FROM sync_state")
            .first()
            .and_then(|r| r[0].as_str().map(str::to_string))
    }
}

/// Lowercase hex of a name (for readable, stable device ids).
fn hex_of(name: &str) -> String {
    name.bytes().map(|b| format!("{b:02x}")).collect()
}
