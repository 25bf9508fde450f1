//! td's member routes mapped onto tokens (td-wire-protocol.md §1.11): the list with td's role
//! names, invitations answered with the command to run instead, role changes that change what
//! the token may do, and removal that revokes.

use chrono::TimeDelta;
use serde_json::json;

use crate::{
    both_backends,
    support::{TestServer, events::creates},
};

fn members_are_the_tokens_that_reach_the_project_with_td_role_names(s: TestServer) {
    let team = s.team("acme");
    let p = team.project.as_str();
    let other = s.create_project(&team.admin.token, "other");
    s.clock.advance(TimeDelta::seconds(1));
    let writer = s.mint(&team.tenant, "write", &[p], None);
    let reader = s.mint(&team.tenant, "read", &[], Some(TimeDelta::hours(1)));
    let child = s
        .post(
            "/v1/tokens",
            &team.admin.token,
            &json!({"scopes": "write", "projects": [p], "name": "agent"}),
        )
        .expect(201);
    crate::support::logs::remember(child["token"].as_str().unwrap());
    // Not members: bound elsewhere, mint-only (no td role), revoked, expired.
    s.mint(&team.tenant, "write", &[&other], None);
    s.mint(&team.tenant, "mint", &[], None);
    let revoked = s.mint(&team.tenant, "write", &[p], None);
    s.block_on(s.acl.revoke(&revoked.id, &tdsync_acl::Actor::Cli))
        .unwrap();
    s.mint(&team.tenant, "read", &[p], Some(TimeDelta::minutes(30)));
    s.clock.advance(TimeDelta::minutes(31));

    let reply = s.get(&format!("/v1/projects/{p}/members"), &writer.token);
    let mut members: Vec<serde_json::Value> = reply.expect(200).as_array().unwrap().clone();
    let member = |id: &str, name: &str, role: &str, invited_by: &str, at: &str| json!({"project_id": p, "user_id": id, "email": name, "role": role, "invited_by": invited_by, "created_at": at});
    let later = "2026-11-01T12:00:01Z";
    let mut expected = vec![
        member(
            team.admin.id.as_str(),
            "admin,mint token",
            "owner",
            "",
            "2026-11-01T12:00:00Z",
        ),
        member(reader.id.as_str(), "read token", "reader", "", later),
        member(writer.id.as_str(), "write token", "writer", "", later),
        member(
            child["id"].as_str().unwrap(),
            "agent",
            "writer",
            team.admin.id.as_str(),
            later,
        ),
    ];
    // In a known order to compare: by role, then id.
    let key = |m: &serde_json::Value| {
        (
            m["role"].as_str().unwrap().to_string(),
            m["user_id"].as_str().unwrap().to_string(),
        )
    };
    members.sort_by_key(key);
    expected.sort_by_key(key);
    assert_eq!(members, expected);
}

fn an_invite_by_email_makes_an_invitation_and_only_an_owner_may(s: TestServer) {
    let team = s.team("acme");
    let p = team.project.as_str();
    let body = json!({"email": "Bob@Example.test", "role": "reader"});
    let path = format!("/v1/projects/{p}/members");
    let made = s.post(&path, &team.admin.token, &body).expect(201);
    // td prints `Added <email> as <role> (user <user_id>)`: the id is the invitation's.
    assert!(
        made["user_id"].as_str().unwrap().starts_with("inv_"),
        "{made}"
    );
    assert_eq!(made["email"], "bob@example.test");
    assert_eq!(made["role"], "reader");
    assert_eq!(made["invited_by"], team.admin.id.as_str());
    let listed = s
        .get(&format!("/v1/projects/{p}/invitations"), &team.admin.token)
        .expect(200);
    assert_eq!(listed[0]["id"], made["user_id"]);
    assert_eq!(listed[0]["status"], "pending");
    // Only an owner may invite, and an email must be an address.
    let writer = s.mint(&team.tenant, "write", &[], None);
    s.post(&path, &writer.token, &body)
        .error(403, "insufficient_scope");
    s.post(&path, &team.admin.token, &json!({"email": "bob"}))
        .error(400, "bad_request");
}

fn a_role_change_changes_what_the_token_may_do(s: TestServer) {
    let team = s.team("acme");
    let (p, owner) = (team.project.as_str(), team.admin.token.as_str());
    let member = s.mint(&team.tenant, "write", &[p], None);
    assert_eq!(
        s.push(p, &member.token, &creates("dev-m", 1..=1))
            .expect(200)["accepted"],
        1
    );
    let path = format!("/v1/projects/{p}/members/{}", member.id);

    let reply = s.patch(&path, owner, &json!({"role": "reader"}));
    assert_eq!(reply.expect(200), json!({"status": "updated"}));
    // The very next push is refused, and stores nothing; pulls still work.
    s.push(p, &member.token, &creates("dev-m", 2..=2))
        .error(403, "insufficient_scope");
    assert_eq!(s.event_count(&team.tenant, p), 1);
    s.pull(p, &member.token, "after_server_seq=0").expect(200);
    let roles = s
        .get(&format!("/v1/projects/{p}/members"), owner)
        .expect(200);
    let role = roles
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user_id"] == member.id.as_str())
        .unwrap()["role"]
        .clone();
    assert_eq!(role, "reader");
    // And back.
    s.patch(&path, owner, &json!({"role": "writer"}))
        .expect(200);
    assert_eq!(
        s.push(p, &member.token, &creates("dev-m", 2..=2))
            .expect(200)["accepted"],
        1
    );

    // Bad requests change nothing.
    s.patch(&path, owner, &json!({"role": "admin"}))
        .error(400, "bad_request");
    s.with_body("PATCH", &path, owner, b"{".to_vec())
        .error(400, "bad_request");
    s.patch(
        &format!("/v1/projects/{p}/members/nosuchtoken0"),
        owner,
        &json!({"role": "reader"}),
    )
    .error(404, "not_found");
    s.patch(
        &format!("/v1/projects/{p}/members/not-an-id"),
        owner,
        &json!({"role": "reader"}),
    )
    .error(404, "not_found");
    // Only an owner may change roles.
    let writer = s.mint(&team.tenant, "write", &[], None);
    s.patch(&path, &writer.token, &json!({"role": "reader"}))
        .error(403, "insufficient_scope");
    assert_eq!(
        s.push(p, &member.token, &creates("dev-m", 3..=3))
            .expect(200)["accepted"],
        1
    );
}

/// A token that does not reach the project is no member of it: an owner of one project cannot
/// change (or remove) the tokens of another through it.
fn only_members_of_the_project_can_be_changed_through_it(s: TestServer) {
    let team = s.team("acme");
    let p = team.project.as_str();
    let elsewhere = s.create_project(&team.admin.token, "elsewhere");
    let owner_of_p = s.mint(&team.tenant, "admin", &[p], None);
    let stranger = s.mint(&team.tenant, "write", &[&elsewhere], None);
    let path = format!("/v1/projects/{p}/members/{}", stranger.id);
    let changed = s.patch(&path, &owner_of_p.token, &json!({"role": "reader"}));
    let message = changed.error(404, "not_found");
    assert!(message.contains(stranger.id.as_str()), "{message}");
    let removed = s.delete(&path, &owner_of_p.token);
    removed.error(404, "not_found");
    // Untouched: it still writes to its own project.
    assert_eq!(
        s.push(&elsewhere, &stranger.token, &creates("dev-s", 1..=1))
            .expect(200)["accepted"],
        1
    );
    // A token of another tenant is no member either.
    let other = s.team("globex");
    let path = format!("/v1/projects/{p}/members/{}", other.admin.id);
    s.patch(&path, &team.admin.token, &json!({"role": "reader"}))
        .error(404, "not_found");
    s.delete(&path, &team.admin.token).error(404, "not_found");
    s.get("/v1/projects", &other.admin.token).expect(200);
}

fn removing_a_member_revokes_its_token(s: TestServer) {
    let team = s.team("acme");
    let (p, owner) = (team.project.as_str(), team.admin.token.as_str());
    let member = s.mint(&team.tenant, "write", &[p], None);
    s.pull(p, &member.token, "after_server_seq=0").expect(200);
    let path = format!("/v1/projects/{p}/members/{}", member.id);
    // Only an owner may remove.
    s.delete(&path, &member.token)
        .error(403, "insufficient_scope");
    let reply = s.delete(&path, owner);
    assert_eq!(reply.status, 204, "{}", reply.text());
    assert!(reply.body.is_empty());
    let message = s
        .pull(p, &member.token, "after_server_seq=0")
        .error(401, "unauthorized");
    assert!(message.contains("revoked"), "{message}");
    let members = s
        .get(&format!("/v1/projects/{p}/members"), owner)
        .expect(200);
    assert!(
        members
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["user_id"] != member.id.as_str()),
        "{members}"
    );
    s.delete(&format!("/v1/projects/{p}/members/nosuchtoken0"), owner)
        .error(404, "not_found");
}

both_backends!(
    members_are_the_tokens_that_reach_the_project_with_td_role_names,
    an_invite_by_email_makes_an_invitation_and_only_an_owner_may,
    a_role_change_changes_what_the_token_may_do,
    only_members_of_the_project_can_be_changed_through_it,
    removing_a_member_revokes_its_token,
);
