//! Invitations by email over HTTP: td's invite (`POST …/members` with an email) and td-sync's
//! invitation routes (an owner lists and revokes; the invited person — with the token a
//! `td auth login` gave them — lists, accepts and declines), with a real SMTP server (see
//! `login.rs`; skipped loudly without the sink unless `TDSYNC_REQUIRE_SERVICES=1`).

use chrono::TimeDelta;
use serde_json::json;
use tdsync_acl::{AclError, Actor, AuditAction, ProjectId, Scopes, TdRole};
use tdsync_gateway::error::ApiError;
use tdsync_mail::testing::unique_address;

use crate::{
    login::{MAIL, delivered_to, invite, log_in, with_mail},
    support::t0,
};

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `td sync-project invite EMAIL ROLE`: an invitation, emailed; only an owner may, and only an
/// address with a known role is one.
#[test]
fn td_invite_makes_an_emailed_invitation_and_only_an_owner_may() {
    let Some((s, mail)) =
        with_mail("invitations::td_invite_makes_an_emailed_invitation_and_only_an_owner_may")
    else {
        return;
    };
    let team = s.team("acme");
    let p = team.project.as_str();
    let path = format!("/v1/projects/{p}/members");
    let email = unique_address("bob");

    let made = s
        .post(
            &path,
            &team.admin.token,
            &json!({"email": email.to_uppercase(), "role": "reader"}),
        )
        .expect(201);
    let id = made["user_id"].as_str().unwrap().to_string();
    assert!(id.starts_with("inv_") && id.len() == 16, "{made}");
    assert_eq!(
        made,
        json!({"project_id": p, "user_id": id, "email": email, "role": "reader",
               "invited_by": team.admin.id.as_str(), "created_at": rfc3339(t0())})
    );
    let sent = mail.wait_for_blocking(&email, MAIL);
    assert!(sent.subject.contains("acme-project"), "{}", sent.subject);
    for part in [
        "td auth login".to_string(),
        format!("TD_SYNC_URL={}", s.base),
        "as reader".to_string(),
        email.clone(),
    ] {
        assert!(
            sent.body_text.contains(&part),
            "no {part:?} in:\n{}",
            sent.body_text
        );
    }

    // Not an owner: refused, nothing sent.
    let other = unique_address("carol");
    let writer = s.mint(&team.tenant, "write,mint", &[], None);
    for role in ["reader", "owner"] {
        s.post(&path, &writer.token, &json!({"email": other, "role": role}))
            .error(403, "insufficient_scope");
    }
    // An owner of another project only: this one is not theirs.
    let elsewhere = s.create_project(&team.admin.token, "elsewhere");
    let owner_elsewhere = s.mint(&team.tenant, "admin", &[&elsewhere], None);
    s.post(
        &path,
        &owner_elsewhere.token,
        &json!({"email": other, "role": "reader"}),
    )
    .error(404, "not_found");

    // Bad requests say what is wrong and invite no one.
    for (body, expected) in [
        (
            json!({"email": other, "role": "admin"}),
            "role must be owner, writer or reader, got \"admin\"",
        ),
        (
            json!({"email": "carol", "role": "reader"}),
            "\"carol\" is not an email address",
        ),
        (
            json!({"email": "", "role": "reader"}),
            "not an email address",
        ),
        // Addresses a mailer could not send to are refused up front, not failed on delivery.
        (
            json!({"email": "carol@1.+o.example", "role": "reader"}),
            "not an email address",
        ),
        (
            json!({"email": "cärol@example.com", "role": "reader"}),
            "not an email address",
        ),
        (json!({"role": "reader"}), "email"),
    ] {
        let message = s
            .post(&path, &team.admin.token, &body)
            .error(400, "bad_request");
        assert!(
            message.contains(expected),
            "{body}: {message:?} does not say {expected:?}"
        );
    }
    s.with_body("POST", &path, &team.admin.token, b"{".to_vec())
        .error(400, "bad_request");
    assert_eq!(delivered_to(&mail, &other), 0);
    let listed = s
        .get(&format!("/v1/projects/{p}/invitations"), &team.admin.token)
        .expect(200);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["status"], "pending");

    // An invitation never grants more than its inviter holds. Over HTTP every inviter is an
    // owner (admin grants every role's scope), so the rule is checked where it lives, and its
    // refusal mapped as the routes would.
    let project = s
        .block_on(s.acl.project(&ProjectId::parse(p).unwrap()))
        .unwrap()
        .unwrap();
    let held = Scopes::parse("write,mint").unwrap();
    let refused = s
        .block_on(
            s.acl
                .invite(&project, &other, TdRole::Owner, &Actor::Cli, Some(held)),
        )
        .unwrap_err();
    assert!(matches!(refused, AclError::Invalid(_)), "{refused:?}");
    let api = ApiError::from(refused);
    assert_eq!(api.status.as_u16(), 400);
    assert!(
        api.message.contains("owner") && api.message.contains("admin"),
        "{}",
        api.message
    );
    // A project-bound owner may invite an owner of that project.
    let owner_here = s.mint(&team.tenant, "admin", &[p], None);
    let owner_invited = unique_address("dave");
    let made = s
        .post(
            &path,
            &owner_here.token,
            &json!({"email": owner_invited, "role": "owner"}),
        )
        .expect(201);
    assert_eq!(made["role"], "owner");
    mail.wait_for_blocking(&owner_invited, MAIL);
}

/// An owner lists a project's invitations and revokes pending ones; other tenants and other
/// projects see none of them.
#[test]
fn an_owner_lists_and_revokes_invitations() {
    let Some((s, mail)) = with_mail("invitations::an_owner_lists_and_revokes_invitations") else {
        return;
    };
    let team = s.team("acme");
    let p = team.project.as_str();
    let email = unique_address("erin");
    // No role: writer.
    let made = s
        .post(
            &format!("/v1/projects/{p}/invitations"),
            &team.admin.token,
            &json!({"email": email}),
        )
        .expect(201);
    mail.wait_for_blocking(&email, MAIL);
    let id = made["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("inv_") && id.len() == 16, "{made}");
    let expected = json!({
        "id": id, "project_id": p, "email": email, "role": "writer",
        "invited_by": team.admin.id.as_str(), "status": "pending",
        "created_at": rfc3339(t0()), "expires_at": rfc3339(t0() + TimeDelta::days(7)),
    });
    assert_eq!(made, expected);
    let list = format!("/v1/projects/{p}/invitations");
    assert_eq!(
        s.get(&list, &team.admin.token).expect(200),
        json!([expected])
    );
    let reader = s.mint(&team.tenant, "read", &[], None);
    s.get(&list, &reader.token).error(403, "insufficient_scope");
    let one = format!("{list}/{id}");
    s.delete(&one, &reader.token)
        .error(403, "insufficient_scope");

    // Another tenant: no such project; its own project holds no such invitation.
    let globex = s.team("globex");
    s.get(&list, &globex.admin.token).error(404, "not_found");
    s.delete(&one, &globex.admin.token).error(404, "not_found");
    s.delete(
        &format!("/v1/projects/{}/invitations/{id}", globex.project),
        &globex.admin.token,
    )
    .error(404, "not_found");
    // Another project of the same tenant holds no such invitation either.
    let elsewhere = s.create_project(&team.admin.token, "elsewhere");
    s.delete(
        &format!("/v1/projects/{elsewhere}/invitations/{id}"),
        &team.admin.token,
    )
    .error(404, "not_found");
    assert_eq!(
        s.get(
            &format!("/v1/projects/{elsewhere}/invitations"),
            &team.admin.token
        )
        .expect(200),
        json!([])
    );
    for unknown in ["inv_zzzzzzzzzzzz", "nope"] {
        let message = s
            .delete(&format!("{list}/{unknown}"), &team.admin.token)
            .error(404, "not_found");
        assert!(message.contains(unknown), "{message}");
    }

    let revoked = s.delete(&one, &team.admin.token);
    assert_eq!(revoked.status, 204, "{}", revoked.text());
    assert!(revoked.body.is_empty());
    let listed = s.get(&list, &team.admin.token).expect(200);
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["status"], "revoked", "{listed}");
    assert!(listed[0].get("accepted_at").is_none(), "{listed}");
    s.delete(&one, &team.admin.token).error(409, "conflict");

    // Past its 7 days a pending invitation shows expired, and cannot be revoked.
    let late = unique_address("late");
    let (made, _) = invite(&s, &mail, &team.admin.token, p, &late, "reader");
    s.clock.advance(TimeDelta::days(8));
    let listed = s.get(&list, &team.admin.token).expect(200);
    let shown = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == made["id"])
        .unwrap();
    assert_eq!(shown["status"], "expired", "{listed}");
    s.delete(
        &format!("{list}/{}", made["id"].as_str().unwrap()),
        &team.admin.token,
    )
    .error(410, "expired");

    let audit = s.block_on(s.acl.audit_log(&team.tenant)).unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == AuditAction::InvitationRevoked
                && e.subject == id
                && e.actor == Actor::Token(team.admin.id.clone())),
        "{audit:#?}"
    );
}

/// The invited person answers with their own token: lists what is addressed to them, accepts
/// (once), declines; nobody else's, nothing expired, and no second role in one tenant.
#[test]
fn a_person_answers_their_invitations_with_their_own_token() {
    let Some((s, mail)) =
        with_mail("invitations::a_person_answers_their_invitations_with_their_own_token")
    else {
        return;
    };
    let team = s.team("acme");
    let admin = team.admin.token.as_str();
    let a = team.project.as_str();
    let [b, c, d, e] = ["b", "c", "d", "e"].map(|name| s.create_project(admin, name));
    let email = unique_address("fay");
    invite(&s, &mail, admin, a, &email, "writer");
    let (fay, _) = log_in(&s, &mail, &email);
    assert_eq!(fay.email, email);
    let key = fay.api_key.as_str();

    let to_b = invite(&s, &mail, admin, &b, &email, "writer").0;
    let to_c = invite(&s, &mail, admin, &c, &email, "writer").0;
    let to_d = invite(&s, &mail, admin, &d, &email, "writer").0;
    let to_e = invite(&s, &mail, admin, &e, &email, "reader").0;
    let someone = unique_address("gus");
    let not_hers = invite(&s, &mail, admin, &b, &someone, "writer").0;
    let id = |inv: &serde_json::Value| inv["id"].as_str().unwrap().to_string();

    let mine = s.get("/v1/invitations", key).expect(200);
    let mut listed: Vec<String> = mine.as_array().unwrap().iter().map(&id).collect();
    listed.sort();
    let mut expected = vec![id(&to_b), id(&to_c), id(&to_d), id(&to_e)];
    expected.sort();
    assert_eq!(listed, expected, "{mine}");
    assert!(
        mine.as_array()
            .unwrap()
            .iter()
            .all(|i| i["status"] == "pending" && i["email"] == email.as_str()),
        "{mine}"
    );
    // A token minted for no one has no invitations, and cannot answer any.
    assert_eq!(s.get("/v1/invitations", admin).expect(200), json!([]));
    let accept = |inv: &str| format!("/v1/invitations/{inv}/accept");
    let decline = |inv: &str| format!("/v1/invitations/{inv}/decline");
    for path in [accept(&id(&to_d)), decline(&id(&to_d))] {
        let message = s
            .post(&path, admin, &json!({}))
            .error(403, "insufficient_scope");
        assert!(message.contains("td auth login"), "{message}");
    }

    // Accepted once: a membership with the invited role.
    let joined = s.post(&accept(&id(&to_b)), key, &json!({})).expect(200);
    assert_eq!(
        joined,
        json!({"project_id": b, "user_id": fay.user_id, "email": "", "role": "writer",
               "invited_by": team.admin.id.as_str(), "created_at": rfc3339(t0())})
    );
    s.post(&accept(&id(&to_b)), key, &json!({}))
        .error(409, "conflict");
    // Tokens minted before do not grow: the next login's does.
    s.pull(&b, key, "after_server_seq=0")
        .error(404, "not_found");

    assert_eq!(
        s.post(&decline(&id(&to_c)), key, &json!({})).expect(200),
        json!({"status": "declined"})
    );
    s.post(&decline(&id(&to_c)), key, &json!({}))
        .error(409, "conflict");
    s.post(&accept(&id(&to_c)), key, &json!({}))
        .error(409, "conflict");

    // Someone else's invitation, or none at all, is not found.
    for path in [
        accept(&id(&not_hers)),
        decline(&id(&not_hers)),
        accept("inv_zzzzzzzzzzzz"),
        decline("nope"),
    ] {
        s.post(&path, key, &json!({})).error(404, "not_found");
    }

    // One role per tenant: she is a writer here, so a reader invitation cannot be accepted.
    let message = s
        .post(&accept(&id(&to_e)), key, &json!({}))
        .error(409, "conflict");
    assert!(
        message.contains("writer") && message.contains("reader"),
        "{message}"
    );

    let list = |p: &str| {
        s.get(&format!("/v1/projects/{p}/invitations"), admin)
            .expect(200)
    };
    let b_list = list(&b);
    let b_shown = b_list
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == to_b["id"])
        .unwrap();
    assert_eq!(b_shown["status"], "accepted", "{b_shown}");
    assert_eq!(b_shown["accepted_at"], rfc3339(t0()).as_str(), "{b_shown}");
    assert_eq!(list(&c)[0]["status"], "declined");
    assert_eq!(list(&e)[0]["status"], "pending");

    // Past 7 days: expired, to answer either way.
    s.clock.advance(TimeDelta::days(8));
    s.post(&accept(&id(&to_d)), key, &json!({}))
        .error(410, "expired");
    s.post(&decline(&id(&to_d)), key, &json!({}))
        .error(410, "expired");
    assert_eq!(s.get("/v1/invitations", key).expect(200), json!([]));

    // The audit log names her for what she did.
    let audit = s.block_on(s.acl.audit_log(&team.tenant)).unwrap();
    let by_her = |action: AuditAction, subject: &str| {
        audit.iter().any(|ev| {
            ev.action == action
                && ev.subject == subject
                && ev.person.as_deref() == Some(email.as_str())
        })
    };
    assert!(
        by_her(AuditAction::InvitationAccepted, &id(&to_b)),
        "{audit:#?}"
    );
    assert!(
        by_her(AuditAction::InvitationDeclined, &id(&to_c)),
        "{audit:#?}"
    );
    assert!(by_her(AuditAction::MemberAdded, &fay.user_id), "{audit:#?}");

    // Her next login's token reaches what she joined (a and b), nothing else.
    let (fay, _) = log_in(&s, &mail, &email);
    for p in [a, b.as_str()] {
        s.pull(p, &fay.api_key, "after_server_seq=0").expect(200);
    }
    for p in [c.as_str(), d.as_str(), e.as_str()] {
        s.pull(p, &fay.api_key, "after_server_seq=0")
            .error(404, "not_found");
    }
}

/// Someone else's invitation answers like a missing one whatever its status, as `decline` does:
/// its id says nothing about it.
#[test]
fn someone_elses_invitation_is_not_found_whatever_its_status() {
    let Some((s, mail)) =
        with_mail("invitations::someone_elses_invitation_is_not_found_whatever_its_status")
    else {
        return;
    };
    let team = s.team("acme");
    let admin = team.admin.token.as_str();
    let p = team.project.as_str();
    let email = unique_address("hal");
    invite(&s, &mail, admin, p, &email, "writer");
    let (hal, _) = log_in(&s, &mail, &email);
    let revoked = invite(&s, &mail, admin, p, &unique_address("ivy"), "writer").0;
    let expiring = invite(&s, &mail, admin, p, &unique_address("jon"), "writer").0;
    let revoked = revoked["id"].as_str().unwrap();
    let revoke = s.delete(&format!("/v1/projects/{p}/invitations/{revoked}"), admin);
    assert_eq!(revoke.status, 204);
    s.clock.advance(TimeDelta::days(8));
    for id in [revoked, expiring["id"].as_str().unwrap()] {
        for answer in ["accept", "decline"] {
            s.post(
                &format!("/v1/invitations/{id}/{answer}"),
                &hal.api_key,
                &json!({}),
            )
            .error(404, "not_found");
        }
    }
}
