//! The interop suite: the real td CLI (v0.62.0) syncing through `tdsync serve`.
//!
//! Every test starts its own `tdsync serve` (the built binary, a free loopback port, a temp data
//! directory) and td users, each with its own HOME (auth.json with a stable device id) and
//! project directory, configured headlessly as td-wire-protocol.md §2 and §8 describe
//! (TD_SYNC_URL, TD_AUTH_KEY, TD_FEATURE_SYNC_CLI=1), so tests run in parallel. Every td command
//! that talks to a server is covered — `td sync` (plain, `--push`, `--pull`, `--status`), `td
//! sync init`, `td sync-project create|join|link|unlink|list|members|role|kick|invite`, `td
//! doctor`, autosync, a first sync that bootstraps from the snapshot — and `td auth
//! status|logout`. The tests assert on td's own output (its text, or `--json`) and on the
//! server: its projection and log (the shard file, read-only), its HTTP API and its request
//! counters.
//!
//! td is found by `tdsync_harness::testing::td_binary`: `TD_BIN`, or the copy `infra/test.sh`
//! builds into `target/tools/td-v0.62.0/`. Without one the suite skips with a loud banner, or
//! fails under `TDSYNC_REQUIRE_SERVICES=1` (as in `infra/test.sh`).

#[path = "interop/support.rs"]
mod support;

use std::time::Duration;

use serde_json::Value;
use support::{Minted, Server, TdUser, assert_same, eventually};

/// A server with one tenant, a tenant-wide write token, and a scratch root for td users.
struct Team {
    td: std::path::PathBuf,
    server: Server,
    tenant: String,
    key: Minted,
    root: tempfile::TempDir,
}

impl Team {
    fn new() -> Option<Team> {
        Team::with_serve_args(&[])
    }

    /// A team on a server started with more `tdsync serve` options.
    fn with_serve_args(serve_args: &[&str]) -> Option<Team> {
        let td = support::td()?;
        let server = Server::start_with(serve_args);
        let tenant = server.tenant("acme");
        let key = server.mint(&tenant, "write", None, "team");
        Some(Team {
            td,
            server,
            tenant,
            key,
            root: tempfile::tempdir().unwrap(),
        })
    }

    fn user(&self, name: &str, token: &str) -> TdUser {
        TdUser::new(&self.td, self.root.path(), name, &self.server.url(), token)
    }

    /// Alice runs `td sync init` and creates project `name`: the answers to td's prompts
    /// (server URL, create or join, name) come on stdin. Returns the project id.
    fn init_project(&self, alice: &TdUser, name: &str) -> String {
        let answers = format!("{}\nc\n{name}\n", self.server.url());
        let r = alice.run_with_input(&["sync", "init"], &answers);
        assert!(r.ok, "td sync init failed:\n{}", r.text());
        assert!(
            r.stdout
                .contains(&format!("Created and linked to project {name}")),
            "td sync init said:\n{}",
            r.text()
        );
        let project = alice
            .linked_project()
            .expect("td sync init links the project");
        assert!(r.stdout.contains(&project), "{}", r.stdout);
        project
    }

    /// A user who joins `name` with `td sync-project join` (td lists the projects over HTTP
    /// and matches the name).
    fn joiner(&self, who: &str, token: &str, name: &str, project: &str) -> TdUser {
        let user = self.user(who, token);
        let out = user.ok(&["sync-project", "join", name]);
        assert!(out.contains(project), "join said: {out}");
        assert_eq!(user.linked_project().as_deref(), Some(project));
        user
    }

    fn shard(&self, project: &str) -> std::path::PathBuf {
        self.server.shard(&self.tenant, project)
    }

    fn server_rows(&self, project: &str, sql: &str) -> Vec<Vec<Value>> {
        self.server.rows(&self.tenant, project, sql)
    }

    /// One text column of the server's projection, for a row id.
    fn server_text(&self, project: &str, table: &str, column: &str, id: &str) -> Option<String> {
        let sql = format!("SELECT {column} FROM {table} WHERE id = '{id}'");
        self.server_rows(project, &sql)
            .first()
            .and_then(|r| r[0].as_str().map(str::to_string))
    }
}

fn text(v: &Value) -> String {
    v.to_string()
}

fn titles(issues: &[Value]) -> Vec<String> {
    let mut t: Vec<String> = issues
        .iter()
        .map(|i| i["title"].as_str().unwrap_or_default().to_string())
        .collect();
    t.sort();
    t
}

/// `td sync init` creates a project on the server; a second user joins it; both converge
/// through `td sync` on every entity td syncs: issues through their lifecycle (create, update,
/// start, review, approve/close, delete, restore), logs, comments, handoffs, boards and
/// positions, dependencies, file links and notes. td, the server's projection and the other
/// td end equal.
#[test]
fn init_join_and_converge_on_every_entity() {
    let Some(team) = Team::new() else { return };
    let alice = team.user("alice", &team.key.token);
    let project = team.init_project(&alice, "roadmap");

    // The server has the project, and lists it to the team's token.
    let (status, listed) = team.server.get("/v1/projects", &team.key.token);
    assert_eq!(status, 200, "{listed}");
    let names: Vec<(&str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    assert_eq!(names, vec![(project.as_str(), "roadmap")]);

    let bob = team.joiner("bob", &team.key.token, "roadmap", &project);

    // Issues: created by alice, pulled by bob.
    let x = alice.create(
        "Ship the importer",
        &[
            "--priority",
            "P1",
            "--labels",
            "backend,import",
            "--description",
            "first cut",
        ],
    );
    let y = alice.create("Write the guide", &["--type", "feature"]);
    let z = alice.create("Remove the old path", &["--type", "chore"]);
    let pushed = alice.sync();
    assert!(pushed.contains("Pushed 3 events"), "{pushed}");
    let pulled = bob.sync();
    assert!(pulled.contains("Pulled 3 events"), "{pulled}");
    assert_eq!(
        titles(&bob.list()),
        [
            "Remove the old path",
            "Ship the importer",
            "Write the guide"
        ]
    );

    // Alice works on x: update, start, log, comment, handoff, review.
    alice.ok(&[
        "update",
        &x,
        "--title",
        "Ship the importer v2",
        "--points",
        "3",
    ]);
    alice.ok(&["start", &x]);
    alice.ok(&["log", &x, "parsed the first file"]);
    alice.ok(&["comment", &x, "needs a fixture"]);
    alice.ok(&["handoff", &x, "--done", "parser", "--remaining", "writer"]);
    alice.ok(&["review", &x]);
    // Bob, meanwhile: a board with positions, a dependency, a file link, a note, a comment.
    bob.ok(&[
        "board",
        "create",
        "planning",
        "--query",
        "type=feature OR type=chore",
    ]);
    bob.ok(&["board", "move", "planning", &y, "1"]);
    bob.ok(&["board", "move", "planning", &z, "2"]);
    bob.ok(&["dep", "add", &y, &z]);
    std::fs::create_dir_all(bob.dir.join("docs")).unwrap();
    std::fs::write(bob.dir.join("docs/guide.md"), "# Guide\n").unwrap();
    bob.ok(&["link", &y, "docs/guide.md"]);
    let note = bob.json(&["note", "add", "Decisions", "--content", "use sqlite"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    bob.ok(&["comment", &y, "outline first"]);
    alice.sync();
    bob.sync();
    alice.sync();

    // Bob (another session) approves x, which closes it; he closes z; alice deletes y and
    // edits the note.
    bob.ok(&["approve", &x, "--reason", "looks good"]);
    bob.ok(&["close", &z, "--reason", "obsolete"]);
    alice.ok(&["delete", &y]);
    alice.ok(&["note", "edit", &note, "--content", "use sqlite in WAL mode"]);
    alice.sync();
    bob.sync();
    alice.sync();
    let deleted = bob.json(&["deleted"]);
    assert!(text(&deleted).contains(&y), "bob sees y deleted: {deleted}");
    assert!(
        team.server_text(&project, "issues", "deleted_at", &y)
            .is_some()
    );

    // Bob restores y.
    bob.ok(&["restore", &y]);
    bob.sync();
    alice.sync();

    // td's view, on alice's side (the other side of the last changes).
    let sx = alice.show(&x);
    assert_eq!(sx["title"], "Ship the importer v2");
    assert_eq!(sx["status"], "closed", "{sx}");
    assert_eq!(sx["points"], 3);
    assert_eq!(sx["priority"], "P1");
    assert_ne!(sx["implementer_session"], "", "{sx}");
    assert_ne!(
        sx["reviewer_session"], sx["implementer_session"],
        "an independent review: {sx}"
    );
    assert!(text(&sx["logs"]).contains("parsed the first file"), "{sx}");
    assert!(text(&sx["handoff"]).contains("parser"), "{sx}");
    let comments = alice.json(&["comments", &x]);
    assert!(text(&comments).contains("needs a fixture"), "{comments}");
    let comments_y = alice.json(&["comments", &y]);
    assert!(text(&comments_y).contains("outline first"), "{comments_y}");
    let sy = alice.show(&y);
    assert!(
        sy.get("deleted_at").is_none_or(Value::is_null),
        "y restored: {sy}"
    );
    assert_eq!(alice.show(&z)["status"], "closed");
    // `board show` lists open work unless asked for more; z is closed.
    let board = alice.json(&[
        "board", "show", "planning", "--status", "open", "--status", "closed",
    ]);
    assert!(
        text(&board).contains(&y) && text(&board).contains(&z),
        "{board}"
    );
    let deps = alice.json(&["dep", &y]);
    assert!(text(&deps).contains(&z), "{deps}");
    let files = alice.json(&["files", &y]);
    assert!(text(&files).contains("docs/guide.md"), "{files}");
    let shown = alice.json(&["note", "show", &note]);
    assert!(text(&shown).contains("use sqlite in WAL mode"), "{shown}");

    // The server's projection.
    let q = |sql: &str| team.server_rows(&project, sql);
    assert_eq!(
        q(&format!(
            "SELECT title, status, points FROM issues WHERE id = '{x}'"
        )),
        vec![vec![
            Value::from("Ship the importer v2"),
            Value::from("closed"),
            Value::from(3)
        ]]
    );
    assert_eq!(
        q(&format!(
            "SELECT status, deleted_at FROM issues WHERE id = '{y}'"
        )),
        vec![vec![Value::from("open"), Value::Null]]
    );
    assert_eq!(
        q(&format!(
            "SELECT message FROM logs WHERE issue_id = '{x}' AND message = 'parsed the first file'"
        ))
        .len(),
        1
    );
    assert_eq!(
        q(&format!("SELECT text FROM comments WHERE issue_id = '{x}'")),
        vec![vec![Value::from("needs a fixture")]]
    );
    assert_eq!(
        q(&format!(
            "SELECT COUNT(*) FROM handoffs WHERE issue_id = '{x}'"
        )),
        vec![vec![Value::from(1)]]
    );
    // y then z on the board, at the positions td gave them on bob's side (td spaces them).
    let positions = "SELECT b.name, p.issue_id, p.position FROM board_issue_positions p \
                     JOIN boards b ON b.id = p.board_id WHERE p.deleted_at IS NULL \
                     ORDER BY p.position";
    let on_server = q(positions);
    let ids: Vec<&Value> = on_server.iter().map(|r| &r[1]).collect();
    assert_eq!(ids, [&Value::from(y.as_str()), &Value::from(z.as_str())]);
    assert_eq!(on_server, bob.rows(positions));
    assert_eq!(
        q("SELECT issue_id, depends_on_id FROM issue_dependencies"),
        vec![vec![Value::from(y.as_str()), Value::from(z.as_str())]]
    );
    assert_eq!(
        q("SELECT issue_id, file_path FROM issue_files"),
        vec![vec![Value::from(y.as_str()), Value::from("docs/guide.md")]]
    );
    assert_eq!(
        q(&format!(
            "SELECT title, content FROM notes WHERE id = '{note}'"
        )),
        vec![vec![
            Value::from("Decisions"),
            Value::from("use sqlite in WAL mode")
        ]]
    );

    // Row for row: both td databases and the server's projection.
    assert_same(&[
        ("the server", &team.shard(&project)),
        ("alice", &alice.db()),
        ("bob", &bob.db()),
    ]);
    assert_eq!(alice.pending(), 0);
    assert_eq!(bob.pending(), 0);
}

/// Both users edit the same field of one issue between syncs: both td databases and the server
/// end with the later push's value, and the clobbered value is in tdsync's conflict log. Edits
/// of different fields merge without a conflict.
#[test]
fn concurrent_edits_of_one_field_end_equal_and_the_loser_is_in_the_conflict_log() {
    let Some(team) = Team::new() else { return };
    let alice = team.user("alice", &team.key.token);
    let project = team.init_project(&alice, "conflicts");
    let bob = team.joiner("bob", &team.key.token, "conflicts", &project);
    let x = alice.create("Original title", &["--description", "original"]);
    alice.sync();
    bob.sync();

    alice.ok(&["update", &x, "--title", "Alice's title", "--priority", "P0"]);
    bob.ok(&[
        "update",
        &x,
        "--title",
        "Bob's title",
        "--description",
        "bob's words",
    ]);
    alice.sync();
    bob.sync();
    alice.sync();

    for user in [&alice, &bob] {
        let shown = user.show(&x);
        assert_eq!(shown["title"], "Bob's title", "{}: {shown}", user.name);
        // Different fields merged.
        assert_eq!(shown["priority"], "P0", "{}: {shown}", user.name);
        assert_eq!(
            shown["description"], "bob's words",
            "{}: {shown}",
            user.name
        );
    }
    assert_eq!(
        team.server_text(&project, "issues", "title", &x).as_deref(),
        Some("Bob's title")
    );

    let (status, conflicts) = team.server.get(
        &format!("/v1/projects/{project}/conflicts"),
        &team.key.token,
    );
    assert_eq!(status, 200, "{conflicts}");
    let conflicts = conflicts.as_array().unwrap();
    let on_x: Vec<&Value> = conflicts
        .iter()
        .filter(|c| c["entity_id"] == x.as_str())
        .collect();
    assert_eq!(on_x.len(), 1, "one conflict on {x}: {conflicts:?}");
    let c = on_x[0];
    assert_eq!(c["entity_type"], "issues");
    assert_eq!(
        c["fields"],
        serde_json::json!(["title"]),
        "only the title was clobbered: {c}"
    );
    assert_eq!(c["clobbered"]["title"], "Alice's title", "{c}");
    assert_eq!(c["winner"]["title"], "Bob's title", "{c}");
    assert_eq!(c["clobbered_device"], alice.device_id.as_str());
    assert_eq!(c["winning_device"], bob.device_id.as_str());

    assert_same(&[
        ("the server", &team.shard(&project)),
        ("alice", &alice.db()),
        ("bob", &bob.db()),
    ]);
}

/// With autosync on (`TD_SYNC_AUTO=1`, `TD_FEATURE_SYNC_AUTOSYNC=1`) a change on one side
/// reaches the server and the other side without anyone running `td sync`.
#[test]
fn autosync_carries_changes_without_td_sync() {
    let Some(team) = Team::new() else { return };
    let mut alice = team.user("alice", &team.key.token);
    let project = team.init_project(&alice, "autosync");
    let mut bob = team.joiner("bob", &team.key.token, "autosync", &project);
    for user in [&mut alice, &mut bob] {
        user.set_env("TD_SYNC_AUTO", "1");
        user.set_env("TD_FEATURE_SYNC_AUTOSYNC", "1");
    }

    // Alice's create is pushed by td's post-command autosync.
    let x = alice.create("Made with autosync on", &[]);
    eventually(
        Duration::from_secs(30),
        "the server projects alice's issue",
        || team.server_text(&project, "issues", "title", &x),
    );
    // Bob's next td command pulls it at start (poll: each `td list` is a new td process).
    eventually(
        Duration::from_secs(30),
        "bob's td shows alice's issue",
        || {
            bob.list()
                .iter()
                .any(|i| i["id"] == x.as_str())
                .then_some(())
        },
    );

    // And back: bob starts it; alice sees it in progress.
    bob.ok(&["start", &x]);
    eventually(
        Duration::from_secs(30),
        "alice's td shows bob's start",
        || (alice.show(&x)["status"] == "in_progress").then_some(()),
    );
    assert_eq!(
        team.server_text(&project, "issues", "status", &x)
            .as_deref(),
        Some("in_progress")
    );
    eventually(Duration::from_secs(30), "nothing is left to push", || {
        (alice.pending() == 0 && bob.pending() == 0).then_some(())
    });
}

/// A third user joining a project with at least 100 events on the server (td's default
/// TD_SYNC_SNAPSHOT_THRESHOLD) bootstraps from the server's snapshot, and `td list` shows
/// everything; later events arrive by normal pulls.
#[test]
fn a_third_user_bootstraps_from_the_snapshot() {
    let Some(team) = Team::new() else { return };
    let alice = team.user("alice", &team.key.token);
    let project = team.init_project(&alice, "bootstrap");
    let bob = team.joiner("bob", &team.key.token, "bootstrap", &project);
    let mut ids = Vec::new();
    for i in 0..35 {
        let who = if i % 2 == 0 { &alice } else { &bob };
        ids.push(who.create(&format!("Issue {i:02}"), &["--priority", "P3"]));
    }
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    alice.sync();
    bob.sync();
    alice.sync();
    // Bulk edits: one td process, one event per issue.
    let mut update = vec!["update"];
    update.extend(&refs);
    update.extend(["--priority", "P1"]);
    alice.ok(&update);
    let mut start = vec!["start"];
    start.extend(&refs);
    bob.ok(&start);
    alice.sync();
    bob.sync();
    alice.sync();
    let (status, sync_status) = team.server.get(
        &format!("/v1/projects/{project}/sync/status"),
        &team.key.token,
    );
    assert_eq!(status, 200);
    let events = sync_status["event_count"].as_i64().unwrap();
    assert!(
        events >= 100,
        "the server has {events} events: {sync_status}"
    );

    let carol = team.joiner("carol", &team.key.token, "bootstrap", &project);
    let out = carol.sync();
    assert!(
        out.contains(&format!(
            "bootstrapping from snapshot (server has {events} events)"
        )),
        "{out}"
    );
    assert!(out.contains("Bootstrap complete"), "{out}");
    let listed = carol.json(&["list", "--limit", "1000"]);
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), ids.len(), "td list shows every issue");
    for issue in listed {
        assert_eq!(issue["priority"], "P1", "{issue}");
        assert_eq!(issue["status"], "in_progress", "{issue}");
    }
    assert_same(&[
        ("the server", &team.shard(&project)),
        ("carol", &carol.db()),
        ("alice", &alice.db()),
    ]);

    // After the snapshot, normal pulls from its seq.
    let late = alice.create("After the snapshot", &[]);
    alice.sync();
    let out = carol.sync();
    assert!(out.contains("Pulled 1 events"), "{out}");
    assert_eq!(carol.show(&late)["title"], "After the snapshot");
    assert_same(&[
        ("the server", &team.shard(&project)),
        ("carol", &carol.db()),
    ]);
}

/// A read-only token pulls, but its push is refused with 403 and td keeps its changes pending;
/// nothing is lost: with a write token the next `td sync` pushes them.
#[test]
fn a_read_only_token_pulls_and_keeps_its_changes_pending_until_it_may_write() {
    let Some(team) = Team::new() else { return };
    let alice = team.user("alice", &team.key.token);
    let project = team.init_project(&alice, "readonly");
    let x = alice.create("Readable", &[]);
    alice.sync();

    let read = team
        .server
        .mint(&team.tenant, "read", Some(&project), "reader");
    let mut reader = team.joiner("reader", &read.token, "readonly", &project);
    let out = reader.sync();
    assert!(out.contains("Pulled 1 events"), "{out}");
    assert_eq!(reader.show(&x)["title"], "Readable");

    let mine = reader.create("The reader's idea", &[]);
    reader.ok(&["comment", &x, "a reader's comment"]);
    let pending = reader.pending();
    assert_eq!(pending, 2);
    let refused = reader.run(&["sync"]);
    assert!(
        !refused.ok,
        "a read-only push must fail:\n{}",
        refused.text()
    );
    let said = refused.text();
    assert!(
        said.contains("403") || said.contains("forbidden") || said.contains("insufficient"),
        "td reports the refusal: {said}"
    );
    assert_eq!(
        reader.pending(),
        pending,
        "td keeps the refused changes pending"
    );
    assert!(
        team.server_text(&project, "issues", "title", &mine)
            .is_none()
    );

    // Pulls still work with the read token.
    let y = alice.create("Second", &[]);
    alice.sync();
    let out = reader.ok(&["sync", "--pull"]);
    assert!(out.contains("Pulled 1 events"), "{out}");
    assert_eq!(reader.show(&y)["title"], "Second");
    assert_eq!(reader.pending(), pending);

    // With a write token the pending changes go out.
    reader.set_token(&team.key.token);
    let out = reader.sync();
    assert!(out.contains("Pushed 2 events"), "{out}");
    assert_eq!(reader.pending(), 0);
    assert_eq!(
        team.server_text(&project, "issues", "title", &mine)
            .as_deref(),
        Some("The reader's idea")
    );
    alice.sync();
    assert_eq!(alice.show(&mine)["title"], "The reader's idea");
    assert_same(&[
        ("the server", &team.shard(&project)),
        ("alice", &alice.db()),
        ("reader", &reader.db()),
    ]);
}

/// A revoked token is refused with 401 (td says so); a token of another tenant cannot see the
/// project at all: it is not listed, it cannot be joined, and syncing with its id answers like
/// a project that does not exist.
#[test]
fn revoked_and_foreign_tokens_are_refused() {
    let Some(team) = Team::new() else { return };
    let alice = team.user("alice", &team.key.token);
    let project = team.init_project(&alice, "guarded");
    alice.create("Secret plan", &[]);
    alice.sync();

    // A token of the team, used, then revoked.
    let temp = team
        .server
        .mint(&team.tenant, "write", Some(&project), "temp");
    let dave = team.joiner("dave", &temp.token, "guarded", &project);
    assert!(dave.sync().contains("Pulled 1 events"));
    let revoked = team.server.admin(&["token", "revoke", &temp.id]);
    assert!(revoked.contains(&temp.id), "{revoked}");
    dave.create("After revocation", &[]);
    let refused = dave.run(&["sync"]);
    assert!(
        !refused.ok,
        "a revoked token must fail:\n{}",
        refused.text()
    );
    assert!(
        refused.text().contains("unauthorized"),
        "{}",
        refused.text()
    );
    let (status, body) = team.server.get("/v1/projects", &temp.token);
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "unauthorized");

    // Another tenant's token.
    let other_tenant = team.server.tenant("umbrella");
    let other = team.server.mint(&other_tenant, "admin", None, "outsider");
    let (status, listed) = team.server.get("/v1/projects", &other.token);
    assert_eq!((status, listed), (200, serde_json::json!([])));
    let (status, seen) = team
        .server
        .get(&format!("/v1/projects/{project}"), &other.token);
    let (absent_status, absent) = team
        .server
        .get("/v1/projects/p_doesnotexist00", &other.token);
    assert_eq!((status, absent_status), (404, 404), "{seen} / {absent}");
    assert_eq!(seen["code"], absent["code"]);
    assert_eq!(
        seen["message"].as_str().unwrap().replace(&project, "ID"),
        absent["message"]
            .as_str()
            .unwrap()
            .replace("p_doesnotexist00", "ID"),
        "a foreign project answers exactly like a missing one"
    );
    let eve = team.user("eve", &other.token);
    let join = eve.run(&["sync-project", "join", "guarded"]);
    assert!(!join.ok, "eve cannot join: {}", join.text());
    eve.ok(&["sync-project", "link", &project]);
    eve.create("Intrusion", &[]);
    let refused = eve.run(&["sync"]);
    assert!(!refused.ok, "eve cannot sync: {}", refused.text());
    assert!(
        refused.text().contains("not found"),
        "td reports a missing project: {}",
        refused.text()
    );
    let titles = team.server_rows(&project, "SELECT title FROM issues");
    assert_eq!(titles, vec![vec![Value::from("Secret plan")]]);
}

/// The value after `label` on the line of td's output that starts with it (`td sync --status`,
/// `td doctor`, `td auth status` print `Label: value` lines).
fn field<'a>(out: &'a str, label: &str) -> &'a str {
    out.lines()
        .map(str::trim_start)
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{out}"))
        .trim()
}

/// The server's `GET …/sync/status` as (event_count, last_server_seq).
fn server_status(team: &Team, project: &str) -> (i64, i64) {
    let (status, body) = team.server.get(
        &format!("/v1/projects/{project}/sync/status"),
        &team.key.token,
    );
    assert_eq!(status, 200, "{body}");
    (
        body["event_count"].as_i64().unwrap(),
        body["last_server_seq"].as_i64().unwrap(),
    )
}

/// `td sync --push` only pushes, `td sync --pull` only pulls (and brings back the puller's own
/// events, which td re-applies in server order), `td sync --status` prints the local cursor
/// and the server's counts, and a `td sync` with nothing to do says so.
#[test]
fn td_sync_push_pull_and_status() {
    let Some(team) = Team::new() else { return };
    let alice = team.user("alice", &team.key.token);
    let out = alice.ok(&["sync-project", "create", "flags"]);
    let project = alice.linked_project().expect("create links the project");
    assert!(
        out.contains(&format!("Created and linked to project flags ({project})")),
        "{out}"
    );
    let bob = team.joiner("bob", &team.key.token, "flags", &project);

    alice.create("First", &[]);
    alice.create("Second", &[]);
    let status = alice.ok(&["sync", "--status"]);
    assert_eq!(field(&status, "Project:"), project, "{status}");
    assert_eq!(field(&status, "Pending:"), "2 events", "{status}");
    assert_eq!(field(&status, "Events:"), "0", "{status}");
    assert_eq!(field(&status, "Last seq:"), "0", "{status}");
    assert_eq!(server_status(&team, &project), (0, 0));

    // --push: pushed, nothing pulled (the cursor stays at 0).
    let pushed = alice.ok(&["sync", "--push"]);
    assert!(pushed.contains("Pushed 2 events."), "{pushed}");
    assert!(!pushed.contains("ulled"), "--push does not pull: {pushed}");
    assert_eq!(server_status(&team, &project), (2, 2));
    assert_eq!(
        team.server_rows(&project, "SELECT title FROM issues ORDER BY title"),
        vec![vec![Value::from("First")], vec![Value::from("Second")]]
    );
    let status = alice.ok(&["sync", "--status"]);
    assert_eq!(field(&status, "Last pulled:"), "seq 0", "{status}");
    assert_eq!(field(&status, "Pending:"), "0 events", "{status}");
    assert_eq!(field(&status, "Events:"), "2", "{status}");
    assert_eq!(field(&status, "Last seq:"), "2", "{status}");

    // --pull: pulled, bob's own change stays pending and off the server.
    let mine = bob.create("Bob's", &[]);
    let pulled = bob.ok(&["sync", "--pull"]);
    assert!(pulled.contains("Pulled 2 events (2 applied)."), "{pulled}");
    assert!(!pulled.contains("Pushed"), "--pull does not push: {pulled}");
    assert_eq!(bob.pending(), 1);
    assert_eq!(server_status(&team, &project), (2, 2));
    assert!(
        team.server_text(&project, "issues", "title", &mine)
            .is_none()
    );
    assert_eq!(titles(&bob.list()), ["Bob's", "First", "Second"]);
    let pushed = bob.ok(&["sync", "--push"]);
    assert!(pushed.contains("Pushed 1 events."), "{pushed}");
    assert_eq!(server_status(&team, &project), (3, 3));

    // Alice's first pull brings her own two events back with bob's one.
    let pulled = alice.ok(&["sync", "--pull"]);
    assert!(pulled.contains("Pulled 3 events (3 applied)."), "{pulled}");
    let status = alice.ok(&["sync", "--status"]);
    assert_eq!(field(&status, "Last pulled:"), "seq 3", "{status}");
    assert_eq!(field(&status, "Events:"), "3", "{status}");
    let idle = alice.sync();
    assert!(
        idle.contains("Nothing to push.") && idle.contains("Nothing to pull."),
        "{idle}"
    );
    assert_eq!(server_status(&team, &project), (3, 3));
    assert_same(&[
        ("the server", &team.shard(&project)),
        ("alice", &alice.db()),
        ("bob", &bob.db()),
    ]);
}

/// The rows of a table td prints under a header line starting with `first_column` (`td
/// sync-project list`, `td sync-project members`), split on whitespace.
fn table_rows(out: &str, first_column: &str) -> Vec<Vec<String>> {
    out.lines()
        .skip_while(|l| !l.starts_with(first_column))
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// `td sync-project create` creates and links a project on the server, `list` shows what the
/// server lists, `link` (by id) and `td sync init`'s join branch (by number) link to it, and
/// `unlink` — with td's offer to reset what was pushed — then `link` to another project moves
/// a td database's whole history there.
#[test]
fn sync_project_create_list_link_unlink_and_sync_init_join() {
    let Some(team) = Team::new() else { return };
    let alice = team.user("alice", &team.key.token);
    let out = alice.ok(&["sync-project", "create", "plans"]);
    let project = alice.linked_project().expect("create links the project");
    assert!(
        out.contains(&format!("Created and linked to project plans ({project})")),
        "{out}"
    );
    let x = alice.create("Plan the release", &[]);
    alice.sync();

    // Another project, registered on the server by its admin.
    let archive = team
        .server
        .admin(&["project", "create", "--tenant", &team.tenant, "archive"]);
    let listed = table_rows(&alice.ok(&["sync-project", "list"]), "ID");
    let mut on_td: Vec<(String, String)> = listed
        .iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    on_td.sort();
    let (status, body) = team.server.get("/v1/projects", &team.key.token);
    assert_eq!(status, 200, "{body}");
    let mut on_server: Vec<(String, String)> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_string(),
                p["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    on_server.sort();
    assert_eq!(on_td, on_server);
    assert!(
        on_td.contains(&(project.clone(), "plans".into())),
        "{on_td:?}"
    );
    assert!(
        on_td.contains(&(archive.clone(), "archive".into())),
        "{on_td:?}"
    );

    // Bob links by id (no request: td writes its link row).
    let bob = team.user("bob", &team.key.token);
    let before = team.server.requests("GET", "/v1/projects");
    let out = bob.ok(&["sync-project", "link", &project]);
    assert!(
        out.contains(&format!("Linked to project {project}")),
        "{out}"
    );
    assert_eq!(team.server.requests("GET", "/v1/projects"), before);
    assert_eq!(bob.linked_project().as_deref(), Some(project.as_str()));
    assert!(bob.sync().contains("Pulled 1 events"));
    assert_eq!(bob.show(&x)["title"], "Plan the release");

    // Carol joins through `td sync init`: server URL, "j", then the number td listed.
    let carol = team.user("carol", &team.key.token);
    let r = carol.run_with_input(&["sync", "init"], &format!("{}\nj\n", team.server.url()));
    assert!(!r.ok, "no selection given: {}", r.text());
    let number = r
        .stdout
        .lines()
        .find(|l| l.contains(&format!("plans ({project})")))
        .and_then(|l| l.trim().split(')').next())
        .unwrap_or_else(|| panic!("td sync init lists plans:\n{}", r.text()))
        .to_string();
    let r = carol.run_with_input(
        &["sync", "init"],
        &format!("{}\nj\n{number}\n", team.server.url()),
    );
    assert!(r.ok, "td sync init failed:\n{}", r.text());
    assert!(
        r.stdout
            .contains(&format!("Linked to project plans ({project})")),
        "{}",
        r.text()
    );
    assert_eq!(carol.linked_project().as_deref(), Some(project.as_str()));
    carol.create("Carol's idea", &[]);
    assert!(carol.sync().contains("Pushed 1 events"));

    // Carol unlinks, accepting td's offer to reset what she pushed, and links to the archive:
    // her next sync pushes her database's whole content there (td backfills the rows it
    // pulled, which have no action_log rows of their own).
    let r = carol.run_with_input(&["sync-project", "unlink"], "y\n");
    assert!(r.ok, "{}", r.text());
    assert!(
        r.stdout.contains("Reset 1 events for re-sync"),
        "{}",
        r.text()
    );
    assert!(
        r.stdout.contains("Unlinked from sync project"),
        "{}",
        r.text()
    );
    assert_eq!(carol.linked_project(), None);
    let refused = carol.run(&["sync"]);
    assert!(!refused.ok);
    assert!(
        refused.text().contains("project not linked"),
        "{}",
        refused.text()
    );
    let out = carol.ok(&["sync-project", "link", &archive]);
    assert!(
        out.contains(&format!("Linked to project {archive}")),
        "{out}"
    );
    let out = carol.sync();
    // Her own create, re-pushed, and alice's issue, backfilled.
    assert!(out.contains("Pushed 2 events."), "{out}");
    let (status, body) = team.server.get(
        &format!("/v1/projects/{archive}/sync/status"),
        &team.key.token,
    );
    assert_eq!((status, body["event_count"].as_i64()), (200, Some(2)));
    assert_same(&[
        ("the archive on the server", &team.shard(&archive)),
        ("carol", &carol.db()),
    ]);
    // The first project is untouched by the move.
    assert_eq!(server_status(&team, &project), (2, 2));
    alice.sync();
    bob.sync();
    assert_same(&[
        ("plans on the server", &team.shard(&project)),
        ("alice", &alice.db()),
        ("bob", &bob.db()),
    ]);
}

/// The project's members as the server lists them: (user id, role), sorted.
fn server_members(team: &Team, project: &str, token: &str) -> Vec<(String, String)> {
    let (status, body) = team
        .server
        .get(&format!("/v1/projects/{project}/members"), token);
    assert_eq!(status, 200, "{body}");
    let mut members: Vec<(String, String)> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["user_id"].as_str().unwrap().to_string(),
                m["role"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    members.sort();
    members
}

/// `td sync-project members` lists the tokens that reach the project with td's role names,
/// `role` changes a token's scope (a reader's push is then refused), `kick` revokes it (its
/// next sync is unauthorized), and `invite` — email invitations, which tdsync replaces with
/// tokens — is refused with the command to run instead.
#[test]
fn sync_project_members_role_kick_and_invite() {
    let Some(team) = Team::new() else { return };
    let owner = team.server.mint(&team.tenant, "admin", None, "alice");
    let alice = team.user("alice", &owner.token);
    let project = team.init_project(&alice, "crew");
    let bob_key = team
        .server
        .mint(&team.tenant, "write", Some(&project), "bob");
    let bob = team.joiner("bob", &bob_key.token, "crew", &project);

    let members = alice.ok(&["sync-project", "members"]);
    let mut on_td: Vec<(String, String)> = table_rows(&members, "USER ID")
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    on_td.sort();
    let mut expected = vec![
        (team.key.id.clone(), "writer".to_string()),
        (owner.id.clone(), "owner".to_string()),
        (bob_key.id.clone(), "writer".to_string()),
    ];
    expected.sort();
    assert_eq!(on_td, expected, "{members}");
    assert_eq!(server_members(&team, &project, &owner.token), expected);

    // Bob becomes a reader: his pulls work, his push is refused and stays pending.
    let out = alice.ok(&["sync-project", "role", &bob_key.id, "reader"]);
    assert!(
        out.contains(&format!("Updated {} to reader", bob_key.id)),
        "{out}"
    );
    assert!(
        server_members(&team, &project, &owner.token)
            .contains(&(bob_key.id.clone(), "reader".to_string()))
    );
    let x = bob.create("Bob's proposal", &[]);
    let refused = bob.run(&["sync"]);
    assert!(
        !refused.ok,
        "a reader's push is refused: {}",
        refused.text()
    );
    assert!(
        refused.text().contains("403") || refused.text().contains("forbidden"),
        "{}",
        refused.text()
    );
    assert_eq!(bob.pending(), 1);
    assert!(team.server_text(&project, "issues", "title", &x).is_none());

    // Kicked: the token is revoked; bob's td is told it is unauthorized.
    let out = alice.ok(&["sync-project", "kick", &bob_key.id]);
    assert!(
        out.contains(&format!("Removed member {}", bob_key.id)),
        "{out}"
    );
    assert!(
        !server_members(&team, &project, &owner.token)
            .iter()
            .any(|(id, _)| id == &bob_key.id)
    );
    let (status, _) = team.server.get("/v1/projects", &bob_key.token);
    assert_eq!(status, 401);
    let refused = bob.run(&["sync"]);
    assert!(!refused.ok);
    assert!(
        refused.text().contains("unauthorized"),
        "{}",
        refused.text()
    );
    let members = alice.ok(&["sync-project", "members"]);
    assert!(!members.contains(&bob_key.id), "{members}");

    // A writer may not manage members.
    let carol = team.joiner("carol", &team.key.token, "crew", &project);
    let refused = carol.run(&["sync-project", "role", &owner.id, "reader"]);
    assert!(!refused.ok, "{}", refused.text());
    assert!(refused.text().contains("forbidden"), "{}", refused.text());
    assert!(
        server_members(&team, &project, &owner.token)
            .contains(&(owner.id.clone(), "owner".to_string()))
    );
}

/// `td doctor` checks the server (`GET /healthz`) and, when auth.json holds a key, the key
/// (`GET /v1/projects`). td's doctor reads the key from auth.json only: with `TD_AUTH_KEY`
/// alone it says "not logged in" although every sync works.
#[test]
fn td_doctor_checks_the_server_and_the_key() {
    let Some(team) = Team::new() else { return };
    let temp = team.server.mint(&team.tenant, "write", None, "temp");
    let alice = team.user("alice", &temp.token);
    let project = team.init_project(&alice, "doctor");
    alice.create("Pending", &[]);
    let health = || team.server.requests("GET", "/healthz");
    let listings = || team.server.requests("GET", "/v1/projects");

    // TD_AUTH_KEY only.
    let (h, l) = (health(), listings());
    let out = alice.ok(&["doctor"]);
    assert_eq!(
        field(&out, "Auth config ............"),
        "FAIL (not logged in)",
        "{out}"
    );
    assert_eq!(
        field(&out, "Server reachable ......."),
        format!("OK ({})", team.server.url()),
        "{out}"
    );
    assert_eq!(field(&out, "Auth valid ............."), "SKIP", "{out}");
    assert_eq!(field(&out, "Local database ........."), "OK", "{out}");
    assert_eq!(
        field(&out, "Sync linked ............"),
        format!("OK (project {project})"),
        "{out}"
    );
    assert_eq!(field(&out, "Pending events ........."), "1", "{out}");
    assert_eq!(
        (health(), listings()),
        (h + 1, l),
        "doctor asked /healthz only"
    );

    // The key in auth.json (as `td auth login` leaves it): checked with a listing.
    alice.log_in(&temp.token, &team.server.url());
    let out = alice.ok(&["doctor"]);
    assert_eq!(
        field(&out, "Auth config ............"),
        "OK (alice@example.test)",
        "{out}"
    );
    assert_eq!(field(&out, "Auth valid ............."), "OK", "{out}");
    assert_eq!((health(), listings()), (h + 2, l + 1));

    // Revoked on the server: td says so.
    team.server.admin(&["token", "revoke", &temp.id]);
    let out = alice.ok(&["doctor"]);
    assert_eq!(
        field(&out, "Auth valid ............."),
        "FAIL (invalid or expired API key)",
        "{out}"
    );
    assert_eq!((health(), listings()), (h + 3, l + 2));

    // No server there.
    let mut offline = alice;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    offline.set_env("TD_SYNC_URL", &format!("http://127.0.0.1:{port}"));
    let out = offline.ok(&["doctor"]);
    assert!(
        field(&out, "Server reachable .......").starts_with("FAIL ("),
        "{out}"
    );
    assert_eq!(field(&out, "Auth valid ............."), "SKIP", "{out}");
}

/// With `TD_AUTH_KEY`, `td auth status` reports "Not logged in." unless auth.json holds a key
/// (then its email, server and a 12-character key prefix), and `td auth logout` deletes
/// auth.json — device id included — while the key keeps working: every later td process then
/// pushes as a new device, until auth.json is put back with the old id (README's advice).
#[test]
fn td_auth_status_and_logout_with_td_auth_key() {
    let Some(team) = Team::new() else { return };
    let alice = team.user("alice", &team.key.token);
    let project = team.init_project(&alice, "auth");
    alice.create("Before logout", &[]);
    alice.sync();
    let requests = || {
        team.server.requests("GET", "/v1/projects")
            + team.server.requests("GET", "/healthz")
            + team.server.requests("POST", "/v1/projects/{id}/sync/push")
            + team.server.requests("GET", "/v1/projects/{id}/sync/pull")
    };
    let before = requests();

    // auth.json without a key (the headless setup): td knows no login.
    let out = alice.ok(&["auth", "status"]);
    assert_eq!(out.trim(), "Not logged in.");
    // With a key: email, server, and the key cut to 12 characters.
    alice.log_in(&team.key.token, &team.server.url());
    let out = alice.ok(&["auth", "status"]);
    assert_eq!(field(&out, "Email:"), "alice@example.test", "{out}");
    assert_eq!(field(&out, "Server:"), team.server.url(), "{out}");
    assert_eq!(
        field(&out, "Key:"),
        format!("{}...", &team.key.token[..12]),
        "{out}"
    );
    assert!(
        !out.contains(&team.key.token),
        "the whole key is never shown"
    );

    // Logout: auth.json is gone, device id and all; the server was not asked, and the key
    // still works there.
    let out = alice.ok(&["auth", "logout"]);
    assert_eq!(out.trim(), "Logged out.");
    assert!(!alice.auth_file().exists());
    assert_eq!(alice.ok(&["auth", "status"]).trim(), "Not logged in.");
    assert_eq!(requests(), before, "auth status and logout are local");
    let (status, _) = team.server.get("/v1/projects", &team.key.token);
    assert_eq!(status, 200, "the key is not revoked by a logout");

    // Each td process now invents a device id of its own.
    for title in ["After logout 1", "After logout 2"] {
        alice.create(title, &[]);
        assert!(alice.sync().contains("Pushed 1 events."));
    }
    let events = team.server.events(&team.tenant, &project);
    let devices: Vec<&str> = events.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(devices.len(), 3, "{events:?}");
    assert_eq!(devices[0], alice.device_id);
    assert!(
        devices[1] != alice.device_id && devices[2] != alice.device_id && devices[1] != devices[2],
        "after logout every process pushes as a new device: {devices:?}"
    );

    // auth.json put back with the kept id: alice is one device again.
    alice.log_in(&team.key.token, &team.server.url());
    alice.create("Back", &[]);
    alice.sync();
    let events = team.server.events(&team.tenant, &project);
    assert_eq!(events.last().unwrap().1, alice.device_id, "{events:?}");
}

/// Rows of td's local conflict table: (server seq, entity id).
fn td_conflicts(user: &TdUser) -> Vec<(i64, String)> {
    user.rows("SELECT server_seq, entity_id FROM sync_conflicts ORDER BY id")
        .into_iter()
        .map(|r| (r[0].as_i64().unwrap(), r[1].as_str().unwrap().to_string()))
        .collect()
}

/// Two users edit the same field concurrently and the author of the later edit (as the server
/// orders them) syncs only by autosync, which pulls with `exclude_client`. td-sync would leave
/// that author with the *earlier* value (it pulls the other edit without its own later one);
/// tdsync answers every pull with the caller's own events too, td re-applies them in server
/// order, and every replica ends equal. td records no conflict for its own events, in either
/// round: the edit applied by a post-mutation autosync, and an offline edit carried by the
/// next command's startup autosync.
#[test]
fn an_autosync_author_of_a_concurrent_edit_ends_with_the_servers_order() {
    let Some(team) = Team::new() else { return };
    let alice = team.user("alice", &team.key.token);
    let project = team.init_project(&alice, "race");
    let mut bob = team.joiner("bob", &team.key.token, "race", &project);
    let x = alice.create("Original", &["--description", "start"]);
    alice.sync();
    bob.sync();
    // Bob syncs only by autosync from here on.
    bob.set_env("TD_SYNC_AUTO", "1");
    bob.set_env("TD_FEATURE_SYNC_AUTOSYNC", "1");
    let title_on = |user: &TdUser| user.show(&x)["title"].as_str().unwrap().to_string();

    // Round 1: alice's edit reaches the server first; bob's edit of the same field is pushed
    // by the autosync after his command (no startup sync: it would pull alice's edit first).
    alice.ok(&["update", &x, "--title", "Alice's title"]);
    alice.sync();
    bob.set_env("TD_SYNC_AUTO_START", "0");
    bob.ok(&["update", &x, "--title", "Bob's title"]);
    assert_eq!(bob.pending(), 0, "autosync pushed bob's edit");
    assert_eq!(
        team.server_text(&project, "issues", "title", &x).as_deref(),
        Some("Bob's title")
    );
    assert_eq!(
        title_on(&bob),
        "Bob's title",
        "bob's td ends with the server's order"
    );
    alice.sync();
    assert_eq!(title_on(&alice), "Bob's title");
    assert_same(&[
        ("the server", &team.shard(&project)),
        ("alice", &alice.db()),
        ("bob", &bob.db()),
    ]);

    // Round 2: bob edits offline (autosync off for that command); alice edits and pushes;
    // bob's next command (a read) syncs at its start.
    bob.set_env("TD_SYNC_AUTO_START", "1");
    bob.set_env("TD_SYNC_AUTO", "0");
    bob.ok(&["update", &x, "--title", "Bob's offline title"]);
    assert_eq!(bob.pending(), 1);
    alice.ok(&["update", &x, "--title", "Alice's second title"]);
    alice.sync();
    bob.set_env("TD_SYNC_AUTO", "1");
    assert_eq!(title_on(&bob), "Bob's offline title");
    assert_eq!(bob.pending(), 0);
    assert_eq!(
        team.server_text(&project, "issues", "title", &x).as_deref(),
        Some("Bob's offline title")
    );
    // A create by bob makes the round trip too (a full-row upsert over his own row).
    let y = bob.create("Bob's own issue", &[]);
    assert_eq!(bob.pending(), 0);
    alice.sync();
    assert_eq!(title_on(&alice), "Bob's offline title");
    assert_eq!(alice.show(&y)["title"], "Bob's own issue");
    assert_same(&[
        ("the server", &team.shard(&project)),
        ("alice", &alice.db()),
        ("bob", &bob.db()),
    ]);

    // Bob's td pulled its own events back (its sync history names his device)...
    let own_pulled = bob.rows(&format!(
        "SELECT COUNT(*) FROM sync_history WHERE direction = 'pull' AND device_id = '{}'",
        bob.device_id
    ))[0][0]
        .as_i64()
        .unwrap();
    let own_pushed = team
        .server
        .events(&team.tenant, &project)
        .iter()
        .filter(|e| e.1 == bob.device_id)
        .count() as i64;
    assert_eq!(
        own_pulled, own_pushed,
        "every event bob pushed came back to him"
    );
    // ... and recorded no conflict for them: td's conflict table is empty on both sides (its
    // same-field updates carry previous_data and merge; creates of one's own are not
    // conflicts), and `td sync conflicts` says so.
    for user in [&alice, &bob] {
        assert_eq!(td_conflicts(user), [], "{}", user.name);
        let out = user.ok(&["sync", "conflicts"]);
        assert!(
            out.contains("No sync conflicts found."),
            "{}: {out}",
            user.name
        );
    }
    // The server kept both clobbered titles of alice in its conflict log.
    let (status, conflicts) = team.server.get(
        &format!("/v1/projects/{project}/conflicts"),
        &team.key.token,
    );
    assert_eq!(status, 200, "{conflicts}");
    let mut clobbered: Vec<(String, String)> = conflicts
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["entity_id"] == x.as_str())
        .map(|c| {
            assert_eq!(c["clobbered_device"], alice.device_id.as_str(), "{c}");
            assert_eq!(c["winning_device"], bob.device_id.as_str(), "{c}");
            (
                c["clobbered"]["title"].as_str().unwrap().to_string(),
                c["winner"]["title"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    clobbered.sort();
    assert_eq!(
        clobbered,
        [
            ("Alice's second title".into(), "Bob's offline title".into()),
            ("Alice's title".into(), "Bob's title".into()),
        ]
    );
}

/// Two users close a three-issue dependency cycle at once, each edge valid on its writer's
/// graph (td's own `dep add` checks only the local graph). td's cycle rule cannot settle a
/// cycle of three alike on every replica; the server's repair (the closing edge deleted, the
/// edges of the path it closed written again, under the server's device) makes every td end
/// with the same acyclic graph.
#[test]
fn a_dependency_cycle_closed_by_two_users_at_once_ends_the_same_everywhere() {
    let Some(team) = Team::new() else { return };
    let alice = team.user("alice", &team.key.token);
    let project = team.init_project(&alice, "cycle");
    let bob = team.joiner("bob", &team.key.token, "cycle", &project);
    let carol = team.joiner("carol", &team.key.token, "cycle", &project);
    let [x, y, z] = ["x", "y", "z"].map(|t| alice.create(&format!("issue {t}"), &[]));
    alice.ok(&["dep", "add", &x, &y]);
    alice.sync();
    bob.sync();
    carol.sync();

    // Each closes the cycle x→y→z→x on a graph that only has x→y.
    bob.ok(&["dep", "add", &y, &z]);
    carol.ok(&["dep", "add", &z, &x]);
    carol.sync();
    bob.sync();
    for user in [&alice, &bob, &carol] {
        user.sync();
    }

    let edges = |rows: Vec<Vec<Value>>| -> Vec<(String, String)> {
        let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let mut e: Vec<_> = rows.iter().map(|r| (s(&r[0]), s(&r[1]))).collect();
        e.sort();
        e
    };
    let sql = "SELECT issue_id, depends_on_id FROM issue_dependencies";
    let server = edges(team.server_rows(&project, sql));
    // The edge that closed the cycle in the server's order (bob's, pushed last) is gone.
    let mut want = vec![(x.clone(), y.clone()), (z.clone(), x.clone())];
    want.sort();
    assert_eq!(server, want);
    for user in [&alice, &bob, &carol] {
        assert_eq!(edges(user.rows(sql)), want, "{}", user.name);
    }
    // td's own view agrees: y depends on nothing any more.
    let deps = bob.json(&["dep", &y]);
    assert!(!text(&deps).contains(&z), "{deps}");
    // The server's repair is in the log, under its own device, right after bob's edge.
    let log = team.server_rows(
        &project,
        "SELECT device_id, action_type FROM events WHERE entity_type = 'issue_dependencies' \
         ORDER BY server_seq",
    );
    let actions: Vec<(&str, &str)> = log
        .iter()
        .map(|r| (r[0].as_str().unwrap_or(""), r[1].as_str().unwrap_or("")))
        .collect();
    let repair = actions
        .iter()
        .position(|(device, _)| *device == "tdsync-server")
        .unwrap_or_else(|| panic!("no repair in the log: {actions:?}"));
    assert_eq!(actions[repair].1, "delete", "{actions:?}");
    assert_same(&[
        ("server", &team.shard(&project)),
        ("alice", &alice.db()),
        ("bob", &bob.db()),
        ("carol", &carol.db()),
    ]);
}

/// A project's SSE stream sees every push of real tds: one `change` per accepted push, the
/// seqs contiguous, every issue td wrote among the entities touched, and td-sync's
/// `issue.upserted` for each.
#[test]
fn the_event_stream_sees_every_push_from_real_tds() {
    let Some(team) = Team::new() else { return };
    let alice = team.user("alice", &team.key.token);
    let project = team.init_project(&alice, "live");
    let bob = team.joiner("bob", &team.key.token, "live", &project);
    let stream = tdsync_client::events::EventStream::open(
        &team.server.url(),
        &project,
        &team.key.token,
        None,
    )
    .expect("the stream opens");

    let mut written = Vec::new();
    for title in ["one", "two"] {
        written.push(alice.create(title, &[]));
    }
    alice.sync();
    written.push(bob.create("three", &[]));
    bob.ok(&["update", &written[0], "--title", "one, edited"]);
    bob.sync();
    let head: i64 = team.server_rows(&project, "SELECT max(server_seq) FROM events")[0][0]
        .as_i64()
        .unwrap();

    // Changes until the head: each starts where the previous ended.
    let (mut next, mut touched, mut upserted) = (1, Vec::new(), Vec::new());
    while next <= head {
        let event = stream
            .next(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("no event for seq {next} (head {head})"));
        let body = event.json();
        match event.event.as_str() {
            "change" => {
                assert_eq!(body["first"], next, "{body}");
                next = body["head"].as_i64().unwrap() + 1;
                for t in body["touched"].as_array().unwrap() {
                    touched.push(t["entity_id"].as_str().unwrap().to_string());
                }
            }
            "issue.upserted" => upserted.push(body["issue_id"].as_str().unwrap().to_string()),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    for id in &written {
        assert!(touched.contains(id), "{id} not in {touched:?}");
    }
    // td-sync's issue events of the last change may still be on their way.
    while let Some(event) = stream.next(Duration::from_millis(500)) {
        if event.event == "issue.upserted" {
            upserted.push(event.json()["issue_id"].as_str().unwrap().to_string());
        }
    }
    for id in &written {
        assert!(
            upserted.contains(id),
            "no issue.upserted for {id}: {upserted:?}"
        );
    }
}

/// A push refused by a rate limit, as td meets it. td v0.62's sync client reads the 429's
/// `code` and `message` (td's envelope) and never `Retry-After`; what follows depends on the
/// command:
/// - autosync retries a failed push with backoff (250 ms, doubling, within 6 s: `cmd/autosync.go`
///   `pushBatchWithRetry`), so a push refused for less than that gets through on a later try
///   and the command ends with nothing pending;
/// - `td sync` does not retry: it fails with td's `push: rate_limited: …` error, and succeeds
///   when run again after `Retry-After`.
///
/// Here a token may push 20 times a minute, one at once: after a push, the next is 3 s away.
#[test]
fn a_push_over_the_rate_limit_gets_429_and_td_gets_it_through() {
    let Some(team) =
        Team::with_serve_args(&["--rate-limit-push", "20", "--rate-limit-push-burst", "1"])
    else {
        return;
    };
    let mut alice = team.user("alice", &team.key.token);
    let project = team.init_project(&alice, "limited");
    let push = format!("/v1/projects/{project}/sync/push");
    let refusals = || {
        team.server
            .metric(r#"tdsync_rate_limited_total{class="push"}"#)
    };
    // An empty push still counts: it is refused or not before it is read.
    let nothing = serde_json::json!({"device_id": "probe", "session_id": "probe", "events": []});
    // Takes the token's one push (waiting out whatever td's setup left), so the next push
    // is refused for the next 3 s.
    let take_the_push = || {
        eventually(Duration::from_secs(10), "a push gets through", || {
            (team.server.post(&push, &team.key.token, &nothing).0 != 429).then_some(())
        })
    };

    // The server's answer: 429 in td's envelope, with Retry-After.
    take_the_push();
    let before = refusals();
    let (status, retry_after, body) = team.server.post(&push, &team.key.token, &nothing);
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], "rate_limited", "{body}");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    let secs: u64 = retry_after.expect("a 429 has Retry-After").parse().unwrap();
    assert!((1..=3).contains(&secs), "Retry-After {secs}");
    assert_eq!(refusals(), before + 1, "the refusal is counted");

    // Autosync: two creates back to back; the second's push is refused, retried, accepted.
    alice.set_env("TD_SYNC_AUTO", "1");
    alice.set_env("TD_FEATURE_SYNC_AUTOSYNC", "1");
    let before = refusals();
    let first = alice.create("First of a burst", &[]);
    let second = alice.run(&["create", "Second of a burst", "--json"]);
    assert!(second.ok, "{}", second.text());
    assert!(
        !second.text().contains("not yet pushed"),
        "autosync gave up:\n{}",
        second.text()
    );
    let second: Value = serde_json::from_str(&second.stdout).unwrap();
    assert!(
        refusals() > before,
        "td's autosync pushes were never refused: the test proves nothing"
    );
    assert_eq!(alice.pending(), 0, "autosync pushed both");
    for id in [first.as_str(), second["id"].as_str().unwrap()] {
        assert!(
            team.server_text(&project, "issues", "title", id).is_some(),
            "{id} is on the server"
        );
    }

    // `td sync`: refused, it fails with the server's message; run again later, it succeeds.
    alice.set_env("TD_SYNC_AUTO", "0");
    let third = alice.create("Pushed by td sync", &[]);
    take_the_push();
    let refused = alice.run(&["sync"]);
    assert!(!refused.ok, "td sync was not refused:\n{}", refused.text());
    assert!(
        refused.text().contains(
            "rate_limited: rate limit exceeded: this token's pushes are limited to 20 a minute"
        ),
        "{}",
        refused.text()
    );
    assert_eq!(alice.pending(), 1);
    eventually(
        Duration::from_secs(10),
        "td sync succeeds after Retry-After",
        || alice.run(&["sync"]).ok.then_some(()),
    );
    assert_eq!(alice.pending(), 0);
    assert!(
        team.server_text(&project, "issues", "title", &third)
            .is_some()
    );
}

/// A new teammate gets in with nothing from an admin but an invitation: alice (an owner) runs
/// `td sync-project invite`; bob, who holds no token, runs `td auth login` with the invited
/// address, approves the emailed link, joins and syncs both ways. The real td, a real SMTP
/// server.
#[test]
fn a_teammate_joins_with_an_invitation_and_td_auth_login() {
    use tdsync_mail::testing::{Maildir, smtp_url, unique_address};
    const TEST: &str = "td auth login with an invitation (cli/tests/interop.rs)";
    let (Some(smtp), Some(mail)) = (smtp_url(TEST), Maildir::from_env(TEST)) else {
        return;
    };
    let Some(team) = Team::with_serve_args(&["--smtp-url", &smtp]) else {
        return;
    };
    let url = team.server.url();
    let owner = team.server.mint(&team.tenant, "admin", None, "alice");
    let alice = team.user("alice", &owner.token);
    let project = team.init_project(&alice, "crew");
    alice.create("written before bob came", &[]);
    alice.sync();

    let email = unique_address("bob");
    let out = alice.ok(&["sync-project", "invite", &email, "writer"]);
    assert!(
        out.contains(&format!("Added {email} as writer (user inv_")),
        "td invite said: {out}"
    );
    let invitation = mail.wait_for_blocking(&email, Duration::from_secs(30));
    assert!(
        invitation.subject.contains("crew"),
        "{}",
        invitation.subject
    );
    for line in [format!("export TD_SYNC_URL={url}"), "td auth login".into()] {
        assert!(
            invitation.body_text.contains(&line),
            "{}",
            invitation.body_text
        );
    }

    // Bob has no token at all: only td's own login.
    let mut bob = team.user("bob", "");
    bob.remove_env("TD_AUTH_KEY");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let login = std::thread::scope(|scope| {
        let td = scope.spawn(|| bob.run_with_input(&["auth", "login"], &format!("{email}\n")));
        let approval = mail.wait_for_blocking(&email, Duration::from_secs(30));
        let link = approval
            .link_starting_with(&format!("{url}/auth/device/approve?token="))
            .unwrap_or_else(|| panic!("no approval link in:\n{}", approval.body_text));
        let page = agent
            .get(&link)
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        assert!(
            page.contains("td-cli@") && page.contains("Approve"),
            "{page}"
        );
        let token = link.split_once("token=").unwrap().1;
        let mut approved = agent
            .post(format!("{url}/auth/device/approve"))
            .send_form([("token", token)])
            .unwrap();
        assert_eq!(approved.status(), 200);
        let page = approved.body_mut().read_to_string().unwrap();
        assert!(
            page.contains("approved") && page.contains(&project),
            "{page}"
        );
        td.join().unwrap()
    });
    assert!(login.ok, "td auth login failed:\n{}", login.text());
    assert!(
        login.stdout.contains(&format!("Logged in as {email}")),
        "{}",
        login.text()
    );
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(bob.auth_file()).unwrap()).unwrap();
    let saved_field = |k: &str| saved[k].as_str().unwrap_or_default().to_string();
    assert!(saved_field("api_key").starts_with("tds_"), "{saved}");
    assert!(saved_field("user_id").starts_with("u_"), "{saved}");
    let status = bob.ok(&["auth", "status"]);
    assert!(status.contains(&email), "{status}");

    // The login's token is exactly the invitation: the project, as a writer.
    let out = bob.ok(&["sync-project", "join", "crew"]);
    assert!(out.contains(&project), "{out}");
    bob.sync();
    assert!(titles(&bob.list()).contains(&"written before bob came".to_string()));
    bob.create("written by bob", &[]);
    bob.sync();
    alice.sync();
    assert!(titles(&alice.list()).contains(&"written by bob".to_string()));
}
