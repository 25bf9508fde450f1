//! What the interop tests stand on: the real td binary (found as every td-driven suite finds it),
//! a `tdsync serve` subprocess with its admin commands and HTTP API, and td users —
//! each with its own HOME, auth.json (a stable device id) and project directory.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use tdsync_harness::remote::ServeProcess;
use tdsync_projection::{Dump, Tolerances};

/// The real td binary (`tdsync_harness::testing::td_binary`: `TD_BIN`, or the copy
/// `infra/test.sh` builds), or None when the suite skips (after a loud banner); a panic under
/// `TDSYNC_REQUIRE_SERVICES=1` when there is none.
pub fn td() -> Option<PathBuf> {
    tdsync_harness::testing::td_binary("the td interop suite (cli/tests/interop.rs)")
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
    /// A server started with `serve_args`, more `tdsync serve` options.
    pub fn start_with(serve_args: &[&str]) -> Server {
        Server::start_with_env(serve_args, &[])
    }

    /// A server started with `serve_args` and these environment variables.
    pub fn start_with_env(serve_args: &[&str], env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut process = ServeProcess::new(
            Path::new(env!("CARGO_BIN_EXE_tdsync")),
            &dir.path().join("data"),
            &dir.path().join("server.log"),
        )
        .with_serve_args(serve_args)
        .with_env(env);
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

    /// A POST on the HTTP API with a token: status, `Retry-After` and JSON body.
    pub fn post(&self, path: &str, token: &str, body: &Value) -> (u16, Option<String>, Value) {
        let mut r = self
            .agent
            .post(format!("{}{path}", self.url()))
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .unwrap();
        let status = r.status().as_u16();
        let retry_after = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        let text = r.body_mut().read_to_string().unwrap();
        (
            status,
            retry_after,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// The value of the metrics series `series` (its name and labels, as `/metrics` prints
    /// them); 0 when absent.
    pub fn metric(&self, series: &str) -> u64 {
        let mut r = self
            .agent
            .get(format!("{}/metrics", self.url()))
            .call()
            .unwrap();
        let text = r.body_mut().read_to_string().unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0)
    }

    /// How many requests the server has answered on `route` (a route template, e.g.
    /// `/v1/projects`) with `method`, any status, from its Prometheus counters.
    pub fn requests(&self, method: &str, route: &str) -> u64 {
        let mut r = self
            .agent
            .get(format!("{}/metrics", self.url()))
            .call()
            .unwrap();
        let text = r.body_mut().read_to_string().unwrap();
        let prefix = format!("tdsync_http_requests_total{{route=\"{route}\",method=\"{method}\",");
        text.lines()
            .filter(|l| l.starts_with(&prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    /// The event log of a project's shard: (seq, device id, entity type, action), in seq order.
    pub fn events(&self, tenant: &str, project: &str) -> Vec<(i64, String, String, String)> {
        self.rows(
            tenant,
            project,
            "SELECT server_seq, device_id, entity_type, action_type FROM events ORDER BY server_seq",
        )
        .into_iter()
        .map(|r| {
            (
                r[0].as_i64().unwrap(),
                r[1].as_str().unwrap().to_string(),
                r[2].as_str().unwrap().to_string(),
                r[3].as_str().unwrap().to_string(),
            )
        })
        .collect()
    }

    /// The project's shard file (the server's projection and log).
    pub fn shard(&self, tenant: &str, project: &str) -> PathBuf {
        self.dir
            .path()
            .join("data/tenants")
            .join(tenant)
            .join(format!("{project}.db"))
    }

    /// A query on the server's projection, opened read-only. A project nobody pushed to has
    /// no shard file yet, and no rows.
    pub fn rows(&self, tenant: &str, project: &str, sql: &str) -> Vec<Vec<Value>> {
        let shard = self.shard(tenant, project);
        if !shard.exists() {
            return Vec::new();
        }
        query(&shard, sql)
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

    /// Removes one environment variable from this user's td processes.
    pub fn remove_env(&mut self, key: &str) {
        self.env.retain(|(k, _)| k != key);
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

    /// `~/.config/td/auth.json` of this user.
    pub fn auth_file(&self) -> PathBuf {
        self.home.join(".config/td/auth.json")
    }

    /// Rewrites auth.json as `td auth login` would leave it (`api_key` included), keeping the
    /// stable device id.
    pub fn log_in(&self, token: &str, url: &str) {
        let auth = serde_json::json!({
            "api_key": token,
            "user_id": self.name,
            "email": format!("{}@example.test", self.name),
            "server_url": url,
            "device_id": self.device_id,
        });
        std::fs::write(self.auth_file(), auth.to_string()).unwrap();
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
