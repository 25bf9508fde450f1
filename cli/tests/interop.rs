//! The interop suite: the real td CLI (v0.62.0) syncing through `tdsync serve`.
//!
//! Every test starts its own `tdsync serve` (the built binary, a free loopback port, a temp data
//! directory) and td users, each with its own HOME (auth.json with a stable device id) and
//! project directory, configured headlessly as td-wire-protocol.md §2 and §8 describe
//! (TD_SYNC_URL, TD_AUTH_KEY, TD_FEATURE_SYNC_CLI=1). The tests assert on td's own `--json`
//! output and on the server's projection (the shard file, read-only) and HTTP API.
//!
//! td is found at `$TD_BIN`, else `td` on PATH, else `$(go env GOPATH)/bin/td`. Without one the
//! suite skips with a loud message saying how to provide it; without Go it fails with a message
//! saying how to install Go (see support.rs).

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
        let td = support::td()?;
        let server = Server::start();
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
