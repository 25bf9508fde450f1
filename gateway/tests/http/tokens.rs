//! tdsync's token routes: an agent mints its own child (`POST /v1/tokens`), never more than its
//! parent; admins list (never a secret) and revoke (own tenant only).

use chrono::TimeDelta;
use serde_json::{Value, json};

use crate::{
    both_backends,
    support::{Minted, TestServer, events::creates, logs},
};

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

/// POST /v1/tokens with `body` by `caller`, expecting 201; the new token (remembered).
fn mint_child(s: &TestServer, caller: &str, body: Value) -> Value {
    let minted = s.post("/v1/tokens", caller, &body).expect(201);
    logs::remember(minted["token"].as_str().unwrap());
    minted
}

fn a_child_is_minted_by_its_parent_and_works_at_once(s: TestServer) {
    let team = s.team("acme");
    let p = team.project.as_str();
    let parent = s.mint(&team.tenant, "write,mint", &[p], Some(TimeDelta::hours(2)));
    let child = mint_child(
        &s,
        &parent.token,
        json!({"scopes": "read", "ttl": "1h", "name": "agent"}),
    );
    assert_eq!(
        keys(&child),
        ["expires_at", "id", "projects", "scopes", "token"]
    );
    let id = child["id"].as_str().unwrap();
    let token = child["token"].as_str().unwrap();
    assert!(token.starts_with(&format!("tds_{id}_")), "{token}");
    assert_eq!(child["scopes"], json!(["read"]));
    assert_eq!(
        child["projects"],
        json!([p]),
        "the parent's binding is inherited"
    );
    assert_eq!(child["expires_at"], "2026-11-01T13:00:00Z");
    // It works immediately, within its scopes.
    s.pull(p, token, "after_server_seq=0").expect(200);
    s.push(p, token, &creates("agent", 1..=1))
        .error(403, "insufficient_scope");
    // Scopes as a list; no ttl: the parent's expiry.
    let writer = mint_child(&s, &parent.token, json!({"scopes": ["write"]}));
    assert_eq!(writer["expires_at"], "2026-11-01T14:00:00Z");
    let writer_token = writer["token"].as_str().unwrap();
    assert_eq!(
        s.push(p, writer_token, &creates("agent", 1..=1))
            .expect(200)["accepted"],
        1
    );
    // The listing shows who minted it, under the default name.
    let listed = s.get("/v1/tokens", &team.admin.token).expect(200);
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == writer["id"])
        .unwrap()
        .clone();
    assert_eq!(entry["parent"], parent.id.as_str());
    assert_eq!(entry["name"], format!("child of {}", parent.id));
    // A child expires with the clock like any token.
    s.clock.advance(TimeDelta::hours(1));
    s.pull(p, token, "after_server_seq=0")
        .error(401, "unauthorized");
    s.pull(p, writer_token, "after_server_seq=0").expect(200);
}

fn a_child_that_would_exceed_its_parent_is_refused_naming_what_exceeds(s: TestServer) {
    let team = s.team("acme");
    let p = team.project.as_str();
    let q = s.create_project(&team.admin.token, "q");
    let parent = s.mint(&team.tenant, "write,mint", &[p], Some(TimeDelta::hours(2)));
    let refused = |body: Value, status: u16, code: &str, needles: &[&str]| {
        let message = s
            .post("/v1/tokens", &parent.token, &body)
            .error(status, code);
        for needle in needles {
            assert!(
                message.contains(needle),
                "{body}: {message:?} lacks {needle:?}"
            );
        }
    };
    refused(
        json!({"scopes": "admin"}),
        403,
        "insufficient_scope",
        &["exceed", "scope admin"],
    );
    refused(
        json!({"scopes": "read,admin"}),
        403,
        "insufficient_scope",
        &["scope admin"],
    );
    refused(
        json!({"scopes": "read", "projects": [p, &q]}),
        403,
        "insufficient_scope",
        &["exceed", &format!("project {q}")],
    );
    refused(
        json!({"scopes": "read", "ttl": "3h"}),
        403,
        "insufficient_scope",
        &["exceed", "expire", "after the parent"],
    );
    refused(
        json!({"scopes": "read", "ttl": "-1h"}),
        400,
        "bad_request",
        &[],
    );
    refused(json!({"scopes": "bogus"}), 400, "bad_request", &["bogus"]);
    refused(json!({"scopes": ""}), 400, "bad_request", &[]);
    refused(json!({"ttl": "1h"}), 400, "bad_request", &["scopes"]);
    refused(
        json!({"scopes": "read", "ttl": "soon"}),
        400,
        "bad_request",
        &["soon"],
    );
    refused(
        json!({"scopes": "read", "projects": ["bad id!"]}),
        400,
        "bad_request",
        &[],
    );
    refused(
        json!({"scopes": "read", "projects": []}),
        400,
        "bad_request",
        &["at least one project"],
    );
    let message = s
        .with_body("POST", "/v1/tokens", &parent.token, b"{".to_vec())
        .error(400, "bad_request");
    assert!(message.contains("invalid json body"), "{message}");
    // Without the mint scope there is no minting at all.
    let plain = s.mint(&team.tenant, "admin", &[], None);
    let message = s
        .post("/v1/tokens", &plain.token, &json!({"scopes": "read"}))
        .error(403, "insufficient_scope");
    assert!(message.contains("mint"), "{message}");
    // Nothing was minted by any of that.
    let listed = s.get("/v1/tokens", &team.admin.token).expect(200);
    let mut ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut expected = vec![
        team.admin.id.as_str(),
        parent.id.as_str(),
        plain.id.as_str(),
    ];
    expected.sort_unstable();
    assert_eq!(ids, expected);
}

fn revoking_a_parent_revokes_its_children(s: TestServer) {
    let team = s.team("acme");
    let p = team.project.as_str();
    let parent = s.mint(&team.tenant, "write,mint", &[], None);
    let child = mint_child(&s, &parent.token, json!({"scopes": "write,mint"}));
    let grandchild = mint_child(
        &s,
        child["token"].as_str().unwrap(),
        json!({"scopes": "read"}),
    );
    for t in [
        &parent.token,
        child["token"].as_str().unwrap(),
        grandchild["token"].as_str().unwrap(),
    ] {
        s.pull(p, t, "after_server_seq=0").expect(200);
    }
    let reply = s.delete(&format!("/v1/tokens/{}", parent.id), &team.admin.token);
    assert_eq!(reply.status, 204, "{}", reply.text());
    assert!(reply.body.is_empty());
    for t in [
        &parent.token,
        child["token"].as_str().unwrap(),
        grandchild["token"].as_str().unwrap(),
    ] {
        let message = s
            .pull(p, t, "after_server_seq=0")
            .error(401, "unauthorized");
        assert!(message.contains("revoked"), "{message}");
    }
    // A revoked parent mints no more.
    s.post("/v1/tokens", &parent.token, &json!({"scopes": "read"}))
        .error(401, "unauthorized");
}

fn only_admins_list_tokens_and_never_see_a_secret(s: TestServer) {
    let team = s.team("acme");
    let p = team.project.as_str();
    let reader = s.mint(&team.tenant, "read", &[], None);
    let writer = s.mint(&team.tenant, "write,mint", &[p], Some(TimeDelta::hours(1)));
    let bound_admin = s.mint(&team.tenant, "admin", &[p], None);
    let revoked = s.mint(&team.tenant, "read", &[], None);
    s.block_on(s.acl.revoke(&revoked.id, &tdsync_acl::Actor::Cli))
        .unwrap();
    let child = mint_child(&s, &writer.token, json!({"scopes": "read", "ttl": "30m"}));
    let other = s.team("globex");
    for t in [&reader, &writer] {
        s.get("/v1/tokens", &t.token)
            .error(403, "insufficient_scope");
    }
    let message = s
        .get("/v1/tokens", &bound_admin.token)
        .error(403, "insufficient_scope");
    assert!(message.contains("all projects"), "{message}");

    s.clock.advance(TimeDelta::minutes(45)); // the child has expired, the writer not yet
    let reply = s.get("/v1/tokens", &team.admin.token);
    let listed = reply.expect(200);
    let text = reply.text();
    let all: Vec<&Minted> = vec![&team.admin, &reader, &writer, &bound_admin, &revoked];
    for t in &all {
        assert!(
            !text.contains(logs::secret_of(&t.token)),
            "a secret in the listing: {text}"
        );
    }
    assert!(!text.contains(logs::secret_of(child["token"].as_str().unwrap())));
    assert!(!text.contains("argon2"), "{text}");
    assert!(
        !text.contains(other.admin.id.as_str()),
        "another tenant's token is listed"
    );
    let entries = listed.as_array().unwrap();
    assert_eq!(entries.len(), 6);
    let entry = |id: &str| -> Value {
        let mut e = entries
            .iter()
            .find(|t| t["id"] == id)
            .unwrap_or_else(|| panic!("{id} not listed"))
            .clone();
        assert!(
            e.as_object_mut().unwrap().remove("last_used_at").is_some(),
            "no last_used_at key"
        );
        e
    };
    assert_eq!(
        entry(writer.id.as_str()),
        json!({"id": writer.id.as_str(), "name": "write,mint token", "scopes": ["write", "mint"],
               "projects": [p], "expires_at": "2026-11-01T13:00:00Z", "parent": null,
               "created_at": "2026-11-01T12:00:00Z", "revoked_at": null, "state": "active"})
    );
    assert_eq!(entry(reader.id.as_str())["projects"], "all");
    let r = entry(revoked.id.as_str());
    assert_eq!(
        (r["state"].as_str(), r["revoked_at"].as_str()),
        (Some("revoked"), Some("2026-11-01T12:00:00Z"))
    );
    let c = entry(child["id"].as_str().unwrap());
    assert_eq!(
        (c["state"].as_str(), c["parent"].as_str()),
        (Some("expired"), Some(writer.id.as_str()))
    );
}

fn tokens_are_revoked_within_the_tenant_only(s: TestServer) {
    let team = s.team("acme");
    let p = team.project.as_str();
    let other = s.team("globex");
    let victim = s.mint(&other.tenant, "read", &[], None);
    // Another tenant's token: not found, and untouched.
    let message = s
        .delete(&format!("/v1/tokens/{}", victim.id), &team.admin.token)
        .error(404, "not_found");
    assert!(message.contains(victim.id.as_str()), "{message}");
    s.get("/v1/projects", &victim.token).expect(200);
    s.delete("/v1/tokens/zzzzzzzzzzzz", &team.admin.token)
        .error(404, "not_found");
    s.delete("/v1/tokens/not-an-id", &team.admin.token)
        .error(404, "not_found");
    // Only admins revoke.
    let target = s.mint(&team.tenant, "write", &[], None);
    let writer = s.mint(&team.tenant, "write,mint", &[], None);
    s.delete(&format!("/v1/tokens/{}", target.id), &writer.token)
        .error(403, "insufficient_scope");
    s.pull(p, &target.token, "after_server_seq=0").expect(200);
    let reply = s.delete(&format!("/v1/tokens/{}", target.id), &team.admin.token);
    assert_eq!(reply.status, 204, "{}", reply.text());
    s.pull(p, &target.token, "after_server_seq=0")
        .error(401, "unauthorized");
    // Revoking again is not an error.
    assert_eq!(
        s.delete(&format!("/v1/tokens/{}", target.id), &team.admin.token)
            .status,
        204
    );
}

both_backends!(
    a_child_is_minted_by_its_parent_and_works_at_once,
    a_child_that_would_exceed_its_parent_is_refused_naming_what_exceeds,
    revoking_a_parent_revokes_its_children,
    only_admins_list_tokens_and_never_see_a_secret,
    tokens_are_revoked_within_the_tenant_only,
);
