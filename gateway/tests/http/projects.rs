//! `GET /healthz` and td's project routes (td-wire-protocol.md §1.4–1.6): the 201 object, td's
//! 400s, who may create, listings filtered by the token and ordered by `created_at`.

use chrono::TimeDelta;
use serde_json::{Value, json};

use crate::{
    both_backends,
    support::{TestServer, events::creates, t0},
};

#[test]
fn healthz_answers_ok_without_a_token() {
    let s = TestServer::start();
    let reply = s.send("GET", "/healthz", &[], None);
    assert_eq!(
        reply.expect(200),
        json!({"status": "ok", "live": "in-process"})
    );
    assert_eq!(reply.header("content-type"), Some("application/json"));
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

fn create_answers_201_with_tds_project_object(s: TestServer) {
    let tenant = s.tenant("acme");
    let writer = s.mint(&tenant, "write", &[], None);
    s.clock.advance(TimeDelta::milliseconds(1500));
    let body = json!({"name": "my-project", "description": "the CLI"});
    let reply = s.post("/v1/projects", &writer.token, &body);
    let project = reply.expect(201);
    assert_eq!(
        keys(&project),
        ["created_at", "description", "id", "name", "updated_at"]
    );
    let id = project["id"].as_str().unwrap();
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
        "td puts the id in URLs as is: {id}"
    );
    assert_eq!(project["name"], "my-project");
    assert_eq!(project["description"], "the CLI");
    // RFC 3339, second precision, UTC as `Z` (the clock is at t0 + 1.5 s).
    assert_eq!(project["created_at"], "2026-11-01T12:00:01Z");
    assert_eq!(project["updated_at"], "2026-11-01T12:00:01Z");
    // td sync init sends `description: ""`; a missing description is the same.
    let bare = s.post("/v1/projects", &writer.token, &json!({"name": "bare"}));
    assert_eq!(bare.expect(201)["description"], "");

    let got = s.get(&format!("/v1/projects/{id}"), &writer.token);
    assert_eq!(got.expect(200), project);
    // The project is ready to sync: an empty log. Its shard is made by the first push, so a
    // project nobody pushed to costs nothing on disk.
    let status = s.status(id, &writer.token);
    assert_eq!((status.event_count, status.last_server_seq), (0, 0));
    assert!(!s.shard_path(&tenant, id).exists());
    s.push(id, &writer.token, &creates("dev-a", 1..=1))
        .expect(200);
    assert!(s.shard_path(&tenant, id).is_file());
}

fn bad_bodies_are_400_and_create_nothing(s: TestServer) {
    let tenant = s.tenant("acme");
    let writer = s.mint(&tenant, "write", &[], None);
    let cases: [(&[u8], &str); 7] = [
        (b"{", "invalid json body"),
        (b"not json", "invalid json body"),
        (b"[]", "invalid json body"),
        (br#"{"description":"no name"}"#, "invalid json body"),
        (br#"{"name":5}"#, "invalid json body"),
        (br#"{"name":"","description":""}"#, "name is required"),
        (br#"{"name":"   "}"#, "name is required"),
    ];
    for (body, needle) in cases {
        let reply = s.with_body("POST", "/v1/projects", &writer.token, body.to_vec());
        let message = reply.error(400, "bad_request");
        assert!(
            message.contains(needle),
            "{}: {message}",
            String::from_utf8_lossy(body)
        );
    }
    assert_eq!(s.get("/v1/projects", &writer.token).expect(200), json!([]));
    assert!(
        s.block_on(s.acl.projects(&tenant)).unwrap().is_empty(),
        "nothing registered"
    );
}

fn a_second_project_of_the_same_name_is_a_conflict(s: TestServer) {
    let team = s.team("acme");
    let reply = s.post(
        "/v1/projects",
        &team.admin.token,
        &json!({"name": "acme-project", "description": ""}),
    );
    let message = reply.error(409, "conflict");
    assert!(message.contains("acme-project"), "{message}");
    assert_eq!(
        s.get("/v1/projects", &team.admin.token)
            .expect(200)
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

fn creating_needs_write_on_a_tenant_wide_token(s: TestServer) {
    let team = s.team("acme");
    let reader = s.mint(&team.tenant, "read", &[], None);
    let bound = s.mint(&team.tenant, "write", &[&team.project], None);
    let body = json!({"name": "another", "description": ""});
    let message = s
        .post("/v1/projects", &reader.token, &body)
        .error(403, "insufficient_scope");
    assert!(message.contains("write"), "{message}");
    let message = s
        .post("/v1/projects", &bound.token, &body)
        .error(403, "insufficient_scope");
    assert!(message.contains("all projects"), "{message}");
    let names: Vec<String> = s
        .block_on(s.acl.projects(&team.tenant))
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["acme-project"]);
}

fn the_list_holds_what_the_token_may_read_oldest_first(s: TestServer) {
    let tenant = s.tenant("acme");
    let writer = s.mint(&tenant, "write", &[], None);
    // Created in the order a..e, but at clock times that order them e, b, d, a, c: the list
    // follows created_at, not creation order (and not the random ids).
    let mut ids = std::collections::BTreeMap::new();
    for (name, offset) in [("a", 3), ("b", 1), ("c", 4), ("d", 2), ("e", 0)] {
        s.clock.set(t0() + TimeDelta::seconds(offset));
        ids.insert(name, s.create_project(&writer.token, name));
    }
    let names = |reply: crate::support::Reply| -> Vec<String> {
        reply
            .expect(200)
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(s.get("/v1/projects", &writer.token)),
        ["e", "b", "d", "a", "c"]
    );
    // A reader sees them too; a token bound to two projects sees those two, in order.
    let reader = s.mint(&tenant, "read", &[], None);
    assert_eq!(names(s.get("/v1/projects", &reader.token)).len(), 5);
    let bound = s.mint(&tenant, "read", &[&ids["c"], &ids["b"]], None);
    assert_eq!(names(s.get("/v1/projects", &bound.token)), ["b", "c"]);
    // Another tenant sees only its own.
    let other = s.tenant("globex");
    let theirs = s.mint(&other, "write", &[], None);
    assert_eq!(s.get("/v1/projects", &theirs.token).expect(200), json!([]));
    s.create_project(&theirs.token, "a");
    assert_eq!(names(s.get("/v1/projects", &theirs.token)), ["a"]);
    // Every listed object is td's project object, equal to what GET answers.
    let list = s.get("/v1/projects", &writer.token).expect(200);
    for p in list.as_array().unwrap() {
        let id = p["id"].as_str().unwrap();
        assert_eq!(
            &s.get(&format!("/v1/projects/{id}"), &writer.token)
                .expect(200),
            p
        );
    }
    // A token that may only mint cannot list.
    let minter = s.mint(&tenant, "mint", &[], None);
    s.get("/v1/projects", &minter.token)
        .error(403, "insufficient_scope");
}

fn an_unknown_project_is_404(s: TestServer) {
    let team = s.team("acme");
    for id in ["p_doesnotexist", "not%20an%20id", "..", "p_1.db"] {
        let message = s
            .get(&format!("/v1/projects/{id}"), &team.admin.token)
            .error(404, "not_found");
        assert!(message.contains("not found"), "{id}: {message}");
    }
}

both_backends!(
    create_answers_201_with_tds_project_object,
    bad_bodies_are_400_and_create_nothing,
    a_second_project_of_the_same_name_is_a_conflict,
    creating_needs_write_on_a_tenant_wide_token,
    the_list_holds_what_the_token_may_read_oldest_first,
    an_unknown_project_is_404,
);
