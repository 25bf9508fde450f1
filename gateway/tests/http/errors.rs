//! Errors as td's client reads them (td-wire-protocol.md §1.3): both envelopes on every error;
//! 401 for every way a token can be wrong (expiry by moving the clock, revocation seen by the
//! very next request — also when another process revokes); 403 when the scope is short; no
//! existence leaks across tenants or bindings; bad input changes nothing.

use chrono::TimeDelta;
use serde_json::json;
use tdsync_acl::Actor;

use crate::{
    both_backends,
    support::{Backend, Reply, TestServer, events::creates, eventually},
};

/// One request of every kind of failure the gateway can answer, each checked for both
/// envelopes, a JSON content type and a request id (see `Reply::error`).
#[test]
fn every_error_carries_both_envelopes() {
    let s = TestServer::start();
    let team = s.team("acme");
    let (p, t) = (team.project.as_str(), team.admin.token.as_str());
    let reader = s.mint(&team.tenant, "read", &[], None);
    let cases: Vec<(Reply, u16, &str)> = vec![
        (
            s.send("GET", "/v1/projects", &[], None),
            401,
            "unauthorized",
        ),
        (
            s.push(p, &reader.token, &creates("d", 1..=1)),
            403,
            "insufficient_scope",
        ),
        (s.get("/v1/projects/p_missing", t), 404, "not_found"),
        (s.get("/v1/no/such/route", t), 404, "not_found"),
        (s.send("GET", "/nothing-here", &[], None), 404, "not_found"),
        (
            s.send(
                "PUT",
                "/v1/projects",
                &[("authorization", &format!("Bearer {t}"))],
                Some(b"{}".to_vec()),
            ),
            405,
            "method_not_allowed",
        ),
        (
            s.send("DELETE", "/healthz", &[], None),
            405,
            "method_not_allowed",
        ),
        (s.pull(p, t, "limit=x"), 400, "bad_request"),
        // A path parameter that is not UTF-8 once percent-decoded (the document's 400 on every
        // route with one).
        (s.get("/v1/projects/%FF/sync/status", t), 400, "bad_request"),
        (s.delete("/v1/tokens/%C3", t), 400, "bad_request"),
        (
            s.with_body(
                "POST",
                &format!("/v1/projects/{p}/sync/push"),
                t,
                b"{".to_vec(),
            ),
            400,
            "bad_request",
        ),
        (
            s.get(&format!("/v1/projects/{p}/sync/snapshot"), t),
            404,
            "no_events",
        ),
        (
            s.post(
                &format!("/v1/projects/{p}/members"),
                t,
                &json!({"email": "x@y"}),
            ),
            400,
            "bad_request",
        ),
        (
            s.post("/v1/projects", t, &json!({"name": "acme-project"})),
            409,
            "conflict",
        ),
    ];
    for (reply, status, code) in cases {
        reply.error(status, code);
    }
}

/// What td sends when the key is missing or garbled, and keys that look right but are not.
fn a_missing_malformed_or_unknown_token_is_401(s: TestServer) {
    let team = s.team("acme");
    let p = team.project.as_str();
    let path = format!("/v1/projects/{p}/sync/status");
    let good = team.admin.token.as_str();
    let (id, secret) = good.strip_prefix("tds_").unwrap().split_once('_').unwrap();
    let wrong_secret = format!("tds_{id}_{}", secret.chars().rev().collect::<String>());
    let unknown_id = format!("tds_zzzzzzzzzzzz_{secret}");
    crate::support::logs::remember(&wrong_secret);
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (vec![], "missing authorization header"),
        (
            vec![("authorization", format!("Basic {good}"))],
            "expected `Bearer <token>`",
        ),
        (
            vec![("authorization", "Bearer ".to_string())],
            "expected `Bearer <token>`",
        ),
        (
            vec![("authorization", good.to_string())],
            "expected `Bearer <token>`",
        ),
        (
            vec![("authorization", "Bearer not-a-token".to_string())],
            "not a tdsync token",
        ),
        (
            vec![("authorization", format!("Bearer {wrong_secret}"))],
            "unknown or invalid token",
        ),
        (
            vec![("authorization", format!("Bearer {unknown_id}"))],
            "unknown or invalid token",
        ),
    ];
    for (headers, needle) in cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let reply = s.send("GET", &path, &headers, None);
        let message = reply.error(401, "unauthorized");
        assert!(message.contains(needle), "{headers:?}: {message}");
        assert!(
            !message.contains(secret),
            "the message repeats the secret: {message}"
        );
    }
    // The good one works, before and after the bad ones.
    s.get(&path, good).expect(200);
}

fn an_expired_token_is_401_from_the_moment_it_expires(s: TestServer) {
    let team = s.team("acme");
    let p = team.project.as_str();
    let short = s.mint(&team.tenant, "write", &[], Some(TimeDelta::minutes(10)));
    // Used (and cached) while valid…
    s.push(p, &short.token, &creates("dev-a", 1..=1))
        .expect(200);
    s.clock
        .advance(TimeDelta::minutes(10) - TimeDelta::microseconds(1));
    s.pull(p, &short.token, "after_server_seq=0").expect(200);
    // …refused the moment the clock reaches its expiry, on every route.
    s.clock.advance(TimeDelta::microseconds(1));
    let message = s
        .pull(p, &short.token, "after_server_seq=0")
        .error(401, "unauthorized");
    assert!(message.contains("expired"), "{message}");
    s.push(p, &short.token, &creates("dev-a", 2..=2))
        .error(401, "unauthorized");
    s.get("/v1/projects", &short.token)
        .error(401, "unauthorized");
    assert_eq!(s.event_count(&team.tenant, p), 1);
    // Never-expiring tokens are unaffected.
    s.pull(p, &team.admin.token, "after_server_seq=0")
        .expect(200);
}

fn a_revocation_applies_to_the_very_next_request(s: TestServer) {
    let team = s.team("acme");
    let p = team.project.as_str();
    let token = s.mint(&team.tenant, "write", &[], None);
    s.pull(p, &token.token, "after_server_seq=0").expect(200);
    s.pull(p, &token.token, "after_server_seq=0").expect(200); // verified from the cache now
    s.block_on(s.acl.revoke(&token.id, &Actor::Cli)).unwrap();
    let message = s
        .push(p, &token.token, &creates("dev-a", 1..=1))
        .error(401, "unauthorized");
    assert!(message.contains("revoked"), "{message}");
    assert_eq!(s.event_count(&team.tenant, p), 0);
}

/// The admin CLI (another process, another `Acl` on the same control plane) revokes: SQLite's
/// next verification sees the other connection's commit; Postgres nodes see it when the
/// notification arrives (milliseconds; the test allows one second).
fn a_revocation_by_another_process_applies_to_the_next_request(s: TestServer) {
    let team = s.team("acme");
    let p = team.project.as_str();
    let token = s.mint(&team.tenant, "write", &[], None);
    s.pull(p, &token.token, "after_server_seq=0").expect(200);
    s.pull(p, &token.token, "after_server_seq=0").expect(200);
    let cli = s.second_acl();
    s.block_on(cli.revoke(&token.id, &Actor::Cli)).unwrap();
    match s.backend {
        Backend::Sqlite => {
            let message = s
                .pull(p, &token.token, "after_server_seq=0")
                .error(401, "unauthorized");
            assert!(message.contains("revoked"), "{message}");
        }
        Backend::Postgres => eventually(
            "the server refuses a token revoked by another process",
            std::time::Duration::from_secs(1),
            || s.pull(p, &token.token, "after_server_seq=0").status == 401,
        ),
    }
    let message = s
        .push(p, &token.token, &creates("dev-a", 1..=1))
        .error(401, "unauthorized");
    assert!(message.contains("revoked"), "{message}");
    assert_eq!(s.event_count(&team.tenant, p), 0);
    // Other tokens are unaffected.
    s.pull(p, &team.admin.token, "after_server_seq=0")
        .expect(200);
}

fn a_read_only_token_cannot_push_and_nothing_is_stored(s: TestServer) {
    let team = s.team("acme");
    let p = team.project.as_str();
    s.push(p, &team.admin.token, &creates("dev-a", 1..=2))
        .expect(200);
    let reader = s.mint(&team.tenant, "read", &[], None);
    let message = s
        .push(p, &reader.token, &creates("dev-r", 1..=3))
        .error(403, "insufficient_scope");
    assert!(
        message.contains("write"),
        "names the missing scope: {message}"
    );
    let status = s.status(p, &reader.token);
    assert_eq!((status.event_count, status.last_server_seq), (2, 2));
    // What it may do, it does.
    let page = s.pull(p, &reader.token, "after_server_seq=0").expect(200);
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    assert_eq!(
        s.get(&format!("/v1/projects/{p}/sync/snapshot"), &reader.token)
            .status,
        200
    );
    // Restoring a conflict writes too.
    s.post(
        &format!("/v1/projects/{p}/conflicts/1/restore"),
        &reader.token,
        &json!({}),
    )
    .error(403, "insufficient_scope");
}

/// Answers about another tenant's project, with the id replaced, are byte for byte the answers
/// about a project that does not exist — whatever the token's scopes.
fn a_project_of_another_tenant_answers_exactly_like_a_missing_one(s: TestServer) {
    let victim = s.team("acme");
    let theirs = victim.project.as_str();
    s.push(theirs, &victim.admin.token, &creates("dev-a", 1..=2))
        .expect(200);
    let attacker = s.tenant("globex");
    let missing = "p_0000000000000000";
    let tokens = [
        s.mint(&attacker, "admin,mint", &[], None),
        s.mint(&attacker, "read", &[], None),
    ];
    let requests: Vec<(&str, String, Option<serde_json::Value>)> = vec![
        ("GET", "/v1/projects/{id}".into(), None),
        (
            "GET",
            "/v1/projects/{id}/sync/pull?after_server_seq=0".into(),
            None,
        ),
        ("GET", "/v1/projects/{id}/sync/status".into(), None),
        ("GET", "/v1/projects/{id}/sync/snapshot".into(), None),
        (
            "POST",
            "/v1/projects/{id}/sync/push".into(),
            Some(creates("dev-x", 1..=1)),
        ),
        ("GET", "/v1/projects/{id}/members".into(), None),
        (
            "POST",
            "/v1/projects/{id}/members".into(),
            Some(json!({"email": "x@y"})),
        ),
        (
            "PATCH",
            format!("/v1/projects/{{id}}/members/{}", victim.admin.id),
            Some(json!({"role": "reader"})),
        ),
        (
            "DELETE",
            format!("/v1/projects/{{id}}/members/{}", victim.admin.id),
            None,
        ),
        ("GET", "/v1/projects/{id}/conflicts".into(), None),
        (
            "POST",
            "/v1/projects/{id}/conflicts/1/restore".into(),
            Some(json!({})),
        ),
        ("GET", "/v1/projects/{id}/history/issues/td-1".into(), None),
    ];
    for token in &tokens {
        for (method, template, body) in &requests {
            let ask = |id: &str| {
                let path = template.replace("{id}", id);
                let auth = format!("Bearer {}", token.token);
                match body {
                    Some(b) => s.send(
                        method,
                        &path,
                        &[
                            ("authorization", &auth),
                            ("content-type", "application/json"),
                        ],
                        Some(b.to_string().into_bytes()),
                    ),
                    None => s.send(method, &path, &[("authorization", &auth)], None),
                }
            };
            let (a, b) = (ask(theirs), ask(missing));
            a.error(404, "not_found");
            b.error(404, "not_found");
            assert_eq!(
                a.text().replace(theirs, "<id>"),
                b.text().replace(missing, "<id>"),
                "{method} {template}"
            );
        }
    }
    // Nothing happened to the victim's project.
    assert_eq!(s.event_count(&victim.tenant, theirs), 2);
    s.get(&format!("/v1/projects/{theirs}"), &victim.admin.token)
        .expect(200);
}

/// A token bound to some projects: the others of its own tenant are invisible too.
fn a_project_bound_token_sees_only_its_projects(s: TestServer) {
    let team = s.team("acme");
    let mine = team.project.as_str();
    let other = s.create_project(&team.admin.token, "other");
    let missing = "p_0000000000000000";
    let bound = s.mint(&team.tenant, "write", &[mine], None);
    let listed = s.get("/v1/projects", &bound.token).expect(200);
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [mine]);
    s.push(mine, &bound.token, &creates("dev-a", 1..=1))
        .expect(200);
    for path in [
        "/v1/projects/{id}",
        "/v1/projects/{id}/sync/status",
        "/v1/projects/{id}/sync/pull",
    ] {
        let a = s.get(&path.replace("{id}", &other), &bound.token);
        let b = s.get(&path.replace("{id}", missing), &bound.token);
        a.error(404, "not_found");
        assert_eq!(
            a.text().replace(&other, "<id>"),
            b.text().replace(missing, "<id>")
        );
    }
    let a = s.push(&other, &bound.token, &creates("dev-a", 2..=2));
    a.error(404, "not_found");
    assert_eq!(s.event_count(&team.tenant, &other), 0);
}

/// A run of bad requests over every route that writes: afterwards the projects, logs, tokens
/// and members are what they were.
fn bad_requests_change_nothing(s: TestServer) {
    let team = s.team("acme");
    let (p, t) = (team.project.as_str(), team.admin.token.as_str());
    s.push(p, t, &creates("dev-a", 1..=3)).expect(200);
    let minter = s.mint(&team.tenant, "write,mint", &[p], Some(TimeDelta::hours(1)));
    let before = (
        s.get("/v1/projects", t).expect(200),
        s.get("/v1/tokens", t).expect(200),
        s.get(&format!("/v1/projects/{p}/members"), t).expect(200),
        s.pull(p, t, "after_server_seq=0").expect(200),
        s.status(p, t),
    );
    let push = format!("/v1/projects/{p}/sync/push");
    s.with_body(
        "POST",
        &push,
        t,
        br#"{"device_id":"d","session_id":"s","events":[{"client_action_id":9}]}"#.to_vec(),
    )
    .error(400, "bad_request");
    let mut mixed = creates("dev-a", 4..=5);
    mixed["events"][1]["client_timestamp"] = json!("yesterday");
    s.push(p, t, &mixed).error(400, "bad_request");
    s.post("/v1/projects", t, &json!({"name": ""}))
        .error(400, "bad_request");
    s.post("/v1/projects", t, &json!({"name": "x".repeat(101)}))
        .error(400, "bad_request");
    s.post("/v1/tokens", &minter.token, &json!({"scopes": "bogus"}))
        .error(400, "bad_request");
    s.post(
        "/v1/tokens",
        &minter.token,
        &json!({"scopes": "read", "ttl": "forever"}),
    )
    .error(400, "bad_request");
    s.post(
        "/v1/tokens",
        &minter.token,
        &json!({"scopes": "read", "ttl": "2h"}),
    )
    .error(403, "insufficient_scope");
    s.post("/v1/tokens", &minter.token, &json!({"scopes": "admin"}))
        .error(403, "insufficient_scope");
    s.patch(
        &format!("/v1/projects/{p}/members/{}", minter.id),
        t,
        &json!({"role": "boss"}),
    )
    .error(400, "bad_request");
    s.delete("/v1/tokens/not-a-token-id", t)
        .error(404, "not_found");
    s.post(
        &format!("/v1/projects/{p}/conflicts/x/restore"),
        t,
        &json!({}),
    )
    .error(400, "bad_request");
    s.post(
        &format!("/v1/projects/{p}/conflicts/42/restore"),
        t,
        &json!({}),
    )
    .error(404, "not_found");
    let after = (
        s.get("/v1/projects", t).expect(200),
        s.get("/v1/tokens", t).expect(200),
        s.get(&format!("/v1/projects/{p}/members"), t).expect(200),
        s.pull(p, t, "after_server_seq=0").expect(200),
        s.status(p, t),
    );
    // Last-used times move with use; everything else must not.
    let strip = |mut v: serde_json::Value| {
        for t in v.as_array_mut().unwrap() {
            t.as_object_mut().unwrap().remove("last_used_at");
        }
        v
    };
    assert_eq!(before.0, after.0);
    assert_eq!(strip(before.1), strip(after.1));
    assert_eq!(before.2, after.2);
    assert_eq!(before.3, after.3);
    assert_eq!(before.4, after.4);
}

both_backends!(
    a_missing_malformed_or_unknown_token_is_401,
    an_expired_token_is_401_from_the_moment_it_expires,
    a_revocation_applies_to_the_very_next_request,
    a_revocation_by_another_process_applies_to_the_next_request,
    a_read_only_token_cannot_push_and_nothing_is_stored,
    a_project_of_another_tenant_answers_exactly_like_a_missing_one,
    a_project_bound_token_sees_only_its_projects,
    bad_requests_change_nothing,
);
