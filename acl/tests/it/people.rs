//! The people store conformance suite: what every backend must do for users, memberships,
//! invitations, device logins and GitHub grants, checked through the `PeopleStore` trait (with
//! `ControlPlaneStore` for the tenants, projects and tokens they hang off).

use std::collections::BTreeSet;

use chrono::{DateTime, TimeDelta, Utc};
use tdsync_acl::{
    Actor, AuditAction, AuditEvent, ControlPlaneStore, DeviceLogin, GithubAccount, GithubGrant,
    GithubLink, Invitation, InvitationId, InvitationStatus, LoginStatus, Membership, NewToken,
    PeopleStore, Project, ProjectBinding, ProjectId, Scopes, SecretHash, StoreError, TdRole,
    Tenant, TenantId, TokenId, TokenRecord, User, UserId,
};

use crate::support::{TestStore, t0};

/// `t0` plus some minutes: every time in these tests.
fn at(minute: i64) -> DateTime<Utc> {
    t0() + TimeDelta::minutes(minute)
}

fn tenant_id(raw: &str) -> TenantId {
    TenantId::parse(raw).unwrap()
}

fn project_id(raw: &str) -> ProjectId {
    ProjectId::parse(raw).unwrap()
}

fn token_id(raw: &str) -> TokenId {
    TokenId::parse(raw).unwrap()
}

fn invitation_id(raw: &str) -> InvitationId {
    InvitationId::parse(&format!("inv_{raw}")).unwrap()
}

/// A user id no store ever generated.
fn nobody() -> UserId {
    UserId::parse("u_zzzzzzzzzzzz").unwrap()
}

/// Two tenants: t_a with projects p_a1 and p_a2, t_b with p_b1.
async fn seed(s: &impl ControlPlaneStore) {
    for (id, name, minute) in [("t_a", "alpha", 0), ("t_b", "beta", 0)] {
        let tenant = Tenant {
            id: tenant_id(id),
            name: name.into(),
            created_at: at(minute),
        };
        s.create_tenant(&tenant, &Actor::Cli).await.unwrap();
    }
    for (id, tenant) in [("p_a1", "t_a"), ("p_a2", "t_a"), ("p_b1", "t_b")] {
        let project = Project {
            id: project_id(id),
            tenant: tenant_id(tenant),
            name: id.into(),
            description: String::new(),
            created_at: at(0),
            updated_at: at(0),
        };
        s.create_project(&project, &Actor::Cli).await.unwrap();
    }
}

/// A token of `tenant` minted for `user` (if any) at `minute`, bound to `projects` (all when
/// empty).
fn token(
    id: &str,
    tenant: &str,
    user: Option<&UserId>,
    parent: Option<&str>,
    projects: &[&str],
    minute: i64,
) -> NewToken {
    NewToken {
        record: TokenRecord {
            id: token_id(id),
            tenant: tenant_id(tenant),
            name: format!("token {id}"),
            scopes: Scopes::parse("write").unwrap(),
            projects: if projects.is_empty() {
                ProjectBinding::All
            } else {
                ProjectBinding::Only(projects.iter().map(|p| project_id(p)).collect())
            },
            parent: parent.map(token_id),
            user: user.cloned(),
            expires_at: Some(at(minute) + TimeDelta::days(30)),
            created_at: at(minute),
            last_used_at: None,
            revoked_at: None,
        },
        secret_hash: SecretHash(format!(
            "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$hash-of-{id}"
        )),
    }
}

/// A pending invitation made by the CLI at `minute`, for seven days.
fn invitation(
    id: &str,
    tenant: &str,
    project: &str,
    email: &str,
    role: TdRole,
    minute: i64,
) -> Invitation {
    Invitation {
        id: invitation_id(id),
        tenant: tenant_id(tenant),
        project: project_id(project),
        email: email.into(),
        role,
        invited_by: Actor::Cli,
        status: InvitationStatus::Pending,
        created_at: at(minute),
        expires_at: at(minute) + TimeDelta::days(7),
        closed_at: None,
    }
}

/// A pending login for `email`, started at `minute` and expiring at `expires`.
fn login(n: u32, email: &str, minute: i64, expires: i64) -> DeviceLogin {
    DeviceLogin {
        code_hash: format!("{n:064x}"),
        link_id: format!("link{n:08}"),
        link_secret_hash: format!("{:064x}", 1_000_000 + n),
        email: email.into(),
        device_name: format!("laptop {n}"),
        code_challenge: format!("challenge-{n}"),
        status: LoginStatus::Pending,
        created_at: at(minute),
        expires_at: at(expires),
        token: None,
    }
}

fn ids(invitations: &[Invitation]) -> Vec<InvitationId> {
    invitations.iter().map(|i| i.id.clone()).collect()
}

fn only(projects: &[&str]) -> ProjectBinding {
    ProjectBinding::Only(projects.iter().map(|p| project_id(p)).collect())
}

/// The audit rows of `tenant` with this action and subject.
async fn audit_rows(
    s: &impl ControlPlaneStore,
    tenant: &str,
    action: AuditAction,
    subject: &str,
) -> Vec<AuditEvent> {
    s.audit_log(&tenant_id(tenant))
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == action && e.subject == subject)
        .collect()
}

/// `email`'s user, made a member of `tenant` through an accepted invitation to `project`.
async fn member(
    s: &impl ControlPlaneStore,
    inv: &str,
    tenant: &str,
    project: &str,
    email: &str,
    role: TdRole,
    minute: i64,
) -> User {
    let user = s.user_for_email(email, at(minute)).await.unwrap();
    let i = invitation(inv, tenant, project, email, role, minute);
    s.insert_invitation(&i).await.unwrap();
    s.accept_invitation(&i.id, &user.id, at(minute))
        .await
        .unwrap();
    user
}

async fn user_for_email_creates_one_person_per_email_case_insensitively(t: TestStore) {
    let s = &t.store;
    let ada = s.user_for_email("Ada@Example.COM", at(1)).await.unwrap();
    assert_eq!(
        ada.email.as_deref(),
        Some("ada@example.com"),
        "stored lowercased"
    );
    assert_eq!(ada.github, None);
    assert_eq!(ada.created_at, at(1));
    let again = s.user_for_email("ada@example.com", at(5)).await.unwrap();
    assert_eq!(again, ada, "the same person, not created again");
    let shouting = s.user_for_email("ADA@EXAMPLE.COM", at(6)).await.unwrap();
    assert_eq!(shouting, ada);
    let bob = s.user_for_email("bob@example.com", at(7)).await.unwrap();
    assert_ne!(bob.id, ada.id);

    assert_eq!(
        s.user_by_email("aDa@example.com").await.unwrap(),
        Some(ada.clone())
    );
    assert_eq!(
        s.user_by_email("bob@EXAMPLE.com").await.unwrap(),
        Some(bob.clone())
    );
    assert_eq!(s.user_by_email("carol@example.com").await.unwrap(), None);
    assert_eq!(s.user(&ada.id).await.unwrap(), Some(ada));
    assert_eq!(s.user(&bob.id).await.unwrap(), Some(bob));
    assert_eq!(s.user(&nobody()).await.unwrap(), None);
}

async fn user_for_github_is_one_person_per_account_id_and_follows_a_rename(t: TestStore) {
    let s = &t.store;
    let account = GithubAccount {
        id: 583231,
        login: "octocat".into(),
    };
    let octo = s
        .user_for_github(&account, "sealed-1", at(1))
        .await
        .unwrap();
    assert_eq!(octo.github, Some(account.clone()));
    assert_eq!(octo.email, None);
    assert_eq!(octo.created_at, at(1));
    assert_eq!(s.user(&octo.id).await.unwrap(), Some(octo.clone()));

    let renamed = GithubAccount {
        id: 583231,
        login: "octo-renamed".into(),
    };
    let again = s
        .user_for_github(&renamed, "sealed-2", at(9))
        .await
        .unwrap();
    assert_eq!(
        again.id, octo.id,
        "the account id, not the login, is the person"
    );
    assert_eq!(again.github, Some(renamed.clone()));
    assert_eq!(again.created_at, at(1), "not created again");
    let stored = s.user(&octo.id).await.unwrap().unwrap();
    assert_eq!(stored.github, Some(renamed));

    // The old login on another account id is another person.
    let other = GithubAccount {
        id: 9919,
        login: "octocat".into(),
    };
    let mona = s.user_for_github(&other, "sealed-3", at(10)).await.unwrap();
    assert_ne!(mona.id, octo.id);
    assert_eq!(mona.github, Some(other));
}

async fn invitations_need_a_project_of_their_tenant_and_list_newest_first(t: TestStore) {
    let s = &t.store;
    seed(s).await;
    let wrong_tenant = invitation(
        "wrongtenant1",
        "t_a",
        "p_b1",
        "x@example.com",
        TdRole::Reader,
        1,
    );
    let no_project = invitation(
        "noproject001",
        "t_a",
        "p_zz",
        "x@example.com",
        TdRole::Reader,
        1,
    );
    for bad in [&wrong_tenant, &no_project] {
        let result = s.insert_invitation(bad).await;
        assert!(matches!(result, Err(StoreError::NotFound(_))), "{result:?}");
        assert_eq!(s.invitation(&bad.id).await.unwrap(), None);
    }
    assert!(
        audit_rows(
            s,
            "t_a",
            AuditAction::InvitationCreated,
            wrong_tenant.id.as_str()
        )
        .await
        .is_empty(),
        "a refused invitation is not audited"
    );

    let inviter = token("inviterinvit", "t_a", None, None, &[], 0);
    s.insert_token(&inviter, &Actor::Cli).await.unwrap();
    let mut first = invitation(
        "aaaaaaaaaaa1",
        "t_a",
        "p_a1",
        "Ada@Example.com",
        TdRole::Writer,
        1,
    );
    first.invited_by = Actor::Token(inviter.record.id.clone());
    let second = invitation(
        "aaaaaaaaaaa2",
        "t_a",
        "p_a2",
        "bob@example.com",
        TdRole::Reader,
        2,
    );
    let third = invitation(
        "aaaaaaaaaaa3",
        "t_a",
        "p_a1",
        "carol@example.com",
        TdRole::Owner,
        3,
    );
    let other = invitation(
        "bbbbbbbbbbb1",
        "t_b",
        "p_b1",
        "ada@example.com",
        TdRole::Reader,
        4,
    );
    for inv in [&first, &second, &third, &other] {
        s.insert_invitation(inv).await.unwrap();
    }
    let stored = s.invitation(&first.id).await.unwrap().unwrap();
    assert_eq!(
        stored,
        Invitation {
            email: "ada@example.com".into(),
            ..first.clone()
        },
        "round-trips, with the email lowercased"
    );
    assert_eq!(
        s.invitation(&second.id).await.unwrap(),
        Some(second.clone())
    );
    assert_eq!(
        s.invitation(&invitation_id("missing00000")).await.unwrap(),
        None
    );

    let a = tenant_id("t_a");
    assert_eq!(
        ids(&s.invitations(&a, None).await.unwrap()),
        [third.id.clone(), second.id.clone(), first.id.clone()]
    );
    assert_eq!(
        ids(&s.invitations(&a, Some(&project_id("p_a1"))).await.unwrap()),
        [third.id.clone(), first.id.clone()]
    );
    assert_eq!(
        ids(&s.invitations(&tenant_id("t_b"), None).await.unwrap()),
        std::slice::from_ref(&other.id)
    );
    assert!(
        s.invitations(&a, Some(&project_id("p_b1")))
            .await
            .unwrap()
            .is_empty()
    );

    // Each is audited as whoever invited.
    for inv in [&first, &second, &third] {
        let rows = audit_rows(s, "t_a", AuditAction::InvitationCreated, inv.id.as_str()).await;
        assert_eq!(rows.len(), 1, "{}", inv.id);
        assert_eq!(rows[0].actor, inv.invited_by);
    }
    let rows = audit_rows(s, "t_b", AuditAction::InvitationCreated, other.id.as_str()).await;
    assert_eq!(rows.len(), 1);
}

async fn invitations_for_lists_only_pending_unexpired_ones_of_that_email(t: TestStore) {
    let s = &t.store;
    seed(s).await;
    let older = invitation(
        "ccccccccccc1",
        "t_a",
        "p_a1",
        "ada@example.com",
        TdRole::Writer,
        1,
    );
    let mut short = invitation(
        "ccccccccccc2",
        "t_a",
        "p_a2",
        "ada@example.com",
        TdRole::Writer,
        2,
    );
    short.expires_at = at(60);
    let newer = invitation(
        "ccccccccccc3",
        "t_b",
        "p_b1",
        "ADA@example.com",
        TdRole::Reader,
        3,
    );
    let declined = invitation(
        "ccccccccccc4",
        "t_a",
        "p_a2",
        "ada@example.com",
        TdRole::Writer,
        4,
    );
    let bobs = invitation(
        "ccccccccccc5",
        "t_a",
        "p_a1",
        "bob@example.com",
        TdRole::Writer,
        5,
    );
    for inv in [&older, &short, &newer, &declined, &bobs] {
        s.insert_invitation(inv).await.unwrap();
    }
    s.close_invitation(&declined.id, InvitationStatus::Declined, &Actor::Cli, at(6))
        .await
        .unwrap();

    let before_expiry = s.invitations_for("Ada@Example.com", at(59)).await.unwrap();
    assert_eq!(
        ids(&before_expiry),
        [newer.id.clone(), short.id.clone(), older.id.clone()],
        "pending ones across tenants, newest first"
    );
    assert!(before_expiry.iter().all(|i| i.email == "ada@example.com"));
    // At its expiry an invitation is expired (`Invitation::status_at`).
    assert_eq!(
        ids(&s.invitations_for("ada@example.com", at(60)).await.unwrap()),
        [newer.id.clone(), older.id.clone()]
    );
    assert_eq!(
        ids(&s.invitations_for("bob@example.com", at(60)).await.unwrap()),
        std::slice::from_ref(&bobs.id)
    );
    assert!(
        s.invitations_for("carol@example.com", at(0))
            .await
            .unwrap()
            .is_empty()
    );
    let far = newer.expires_at;
    assert!(
        s.invitations_for("ada@example.com", far)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn accepting_an_invitation_makes_a_member_of_its_project_with_its_role(t: TestStore) {
    let s = &t.store;
    seed(s).await;
    let ada = s.user_for_email("ada@example.com", at(0)).await.unwrap();
    let first = invitation(
        "ddddddddddd1",
        "t_a",
        "p_a1",
        "Ada@Example.com",
        TdRole::Writer,
        1,
    );
    let second = invitation(
        "ddddddddddd2",
        "t_a",
        "p_a2",
        "ada@example.com",
        TdRole::Writer,
        2,
    );
    s.insert_invitation(&first).await.unwrap();
    s.insert_invitation(&second).await.unwrap();

    let membership = s
        .accept_invitation(&first.id, &ada.id, at(10))
        .await
        .unwrap();
    let expected = Membership {
        tenant: tenant_id("t_a"),
        user: ada.id.clone(),
        role: TdRole::Writer,
        projects: only(&["p_a1"]),
        created_at: at(10),
    };
    assert_eq!(membership, expected);
    let accepted = s.invitation(&first.id).await.unwrap().unwrap();
    assert_eq!(accepted.status, InvitationStatus::Accepted);
    assert_eq!(accepted.closed_at, Some(at(10)));
    assert_eq!(
        s.memberships(&ada.id).await.unwrap(),
        std::slice::from_ref(&expected)
    );
    assert_eq!(
        s.members(&tenant_id("t_a")).await.unwrap(),
        [(ada.clone(), expected.clone())]
    );

    // Both are audited as the person, who is named by their email.
    for (action, subject) in [
        (AuditAction::InvitationAccepted, first.id.as_str()),
        (AuditAction::MemberAdded, ada.id.as_str()),
    ] {
        let rows = audit_rows(s, "t_a", action, subject).await;
        assert_eq!(rows.len(), 1, "{action:?}");
        assert_eq!(rows[0].actor, Actor::User(ada.id.clone()), "{action:?}");
        assert_eq!(
            rows[0].person.as_deref(),
            Some("ada@example.com"),
            "{action:?}"
        );
        assert_eq!(rows[0].at, at(10), "{action:?}");
    }

    // Another invitation with the same role in the same tenant adds its project.
    let wider = s
        .accept_invitation(&second.id, &ada.id, at(20))
        .await
        .unwrap();
    let extended = Membership {
        projects: only(&["p_a1", "p_a2"]),
        ..expected
    };
    assert_eq!(wider, extended, "the same membership, one project more");
    assert_eq!(
        s.memberships(&ada.id).await.unwrap(),
        std::slice::from_ref(&extended)
    );
    assert_eq!(
        s.members(&tenant_id("t_a")).await.unwrap(),
        [(ada.clone(), extended)]
    );
    assert!(s.members(&tenant_id("t_b")).await.unwrap().is_empty());
}

async fn a_second_role_in_one_tenant_is_a_conflict_that_changes_nothing(t: TestStore) {
    let s = &t.store;
    seed(s).await;
    let ada = member(
        s,
        "eeeeeeeeeee1",
        "t_a",
        "p_a1",
        "ada@example.com",
        TdRole::Writer,
        1,
    )
    .await;
    let owner = invitation(
        "eeeeeeeeeee2",
        "t_a",
        "p_a2",
        "ada@example.com",
        TdRole::Owner,
        2,
    );
    s.insert_invitation(&owner).await.unwrap();
    let before = s.audit_log(&tenant_id("t_a")).await.unwrap();

    let clash = s.accept_invitation(&owner.id, &ada.id, at(3)).await;
    match &clash {
        Err(StoreError::Conflict(m)) => {
            assert!(
                m.contains("writer") && m.contains("owner"),
                "names both roles: {m}"
            )
        }
        other => panic!("{other:?}"),
    }
    let still = s.invitation(&owner.id).await.unwrap().unwrap();
    assert_eq!(still.status, InvitationStatus::Pending);
    assert_eq!(still.closed_at, None);
    let memberships = s.memberships(&ada.id).await.unwrap();
    assert_eq!(memberships.len(), 1);
    assert_eq!(memberships[0].role, TdRole::Writer);
    assert_eq!(
        memberships[0].projects,
        only(&["p_a1"]),
        "no wider than granted"
    );
    assert_eq!(
        s.audit_log(&tenant_id("t_a")).await.unwrap(),
        before,
        "nothing written, not even an audit row"
    );

    // A different role in another tenant is another membership.
    let reader = invitation(
        "eeeeeeeeeee3",
        "t_b",
        "p_b1",
        "ada@example.com",
        TdRole::Reader,
        4,
    );
    s.insert_invitation(&reader).await.unwrap();
    let in_b = s
        .accept_invitation(&reader.id, &ada.id, at(5))
        .await
        .unwrap();
    assert_eq!(in_b.role, TdRole::Reader);
    assert_eq!(in_b.projects, only(&["p_b1"]));
}

async fn only_the_invited_email_can_accept_a_pending_unexpired_invitation(t: TestStore) {
    let s = &t.store;
    seed(s).await;
    let ada = s.user_for_email("ada@example.com", at(0)).await.unwrap();
    let bob = s.user_for_email("bob@example.com", at(0)).await.unwrap();
    let octo = s
        .user_for_github(
            &GithubAccount {
                id: 7,
                login: "octo".into(),
            },
            "sealed",
            at(0),
        )
        .await
        .unwrap();
    let inv = invitation(
        "fffffffffff1",
        "t_a",
        "p_a1",
        "ada@example.com",
        TdRole::Reader,
        1,
    );
    s.insert_invitation(&inv).await.unwrap();

    for (who, user) in [("bob", &bob.id), ("a person with no email", &octo.id)] {
        let r = s.accept_invitation(&inv.id, user, at(2)).await;
        assert!(matches!(r, Err(StoreError::NotFound(_))), "{who}: {r:?}");
    }
    let r = s
        .accept_invitation(&invitation_id("missing00000"), &ada.id, at(2))
        .await;
    assert!(matches!(r, Err(StoreError::NotFound(_))), "{r:?}");
    assert!(s.memberships(&bob.id).await.unwrap().is_empty());
    assert_eq!(
        s.invitation(&inv.id).await.unwrap().unwrap().status,
        InvitationStatus::Pending
    );

    // Expired (at its expiry and after): refused, and still pending as stored.
    for late in [inv.expires_at, inv.expires_at + TimeDelta::hours(1)] {
        let r = s.accept_invitation(&inv.id, &ada.id, late).await;
        assert!(matches!(r, Err(StoreError::Expired(_))), "{late}: {r:?}");
    }
    assert_eq!(
        s.invitation(&inv.id).await.unwrap().unwrap().status,
        InvitationStatus::Pending
    );
    assert!(s.memberships(&ada.id).await.unwrap().is_empty());

    s.accept_invitation(&inv.id, &ada.id, at(3)).await.unwrap();
    let twice = s.accept_invitation(&inv.id, &ada.id, at(4)).await;
    assert!(matches!(twice, Err(StoreError::Conflict(_))), "{twice:?}");
    let accepted = s.invitation(&inv.id).await.unwrap().unwrap();
    assert_eq!(
        accepted.closed_at,
        Some(at(3)),
        "the first acceptance stands"
    );
    assert_eq!(
        audit_rows(s, "t_a", AuditAction::MemberAdded, ada.id.as_str())
            .await
            .len(),
        1
    );
}

async fn closing_an_invitation_declines_or_revokes_it_once(t: TestStore) {
    let s = &t.store;
    seed(s).await;
    let ada = s.user_for_email("ada@example.com", at(0)).await.unwrap();
    let declined = invitation(
        "ggggggggggg1",
        "t_a",
        "p_a1",
        "ada@example.com",
        TdRole::Reader,
        1,
    );
    let revoked = invitation(
        "ggggggggggg2",
        "t_a",
        "p_a2",
        "ada@example.com",
        TdRole::Reader,
        2,
    );
    let accepted = invitation(
        "ggggggggggg3",
        "t_a",
        "p_a2",
        "ada@example.com",
        TdRole::Reader,
        3,
    );
    let expired = invitation(
        "ggggggggggg4",
        "t_a",
        "p_a1",
        "bob@example.com",
        TdRole::Reader,
        4,
    );
    for inv in [&declined, &revoked, &accepted, &expired] {
        s.insert_invitation(inv).await.unwrap();
    }

    let by_ada = Actor::User(ada.id.clone());
    let closed = s
        .close_invitation(&declined.id, InvitationStatus::Declined, &by_ada, at(10))
        .await
        .unwrap();
    assert_eq!(closed.status, InvitationStatus::Declined);
    assert_eq!(closed.closed_at, Some(at(10)));
    assert_eq!(s.invitation(&declined.id).await.unwrap(), Some(closed));
    let closed = s
        .close_invitation(&revoked.id, InvitationStatus::Revoked, &Actor::Cli, at(11))
        .await
        .unwrap();
    assert_eq!(closed.status, InvitationStatus::Revoked);
    assert_eq!(closed.closed_at, Some(at(11)));
    assert_eq!(s.invitation(&revoked.id).await.unwrap(), Some(closed));

    let rows = audit_rows(
        s,
        "t_a",
        AuditAction::InvitationDeclined,
        declined.id.as_str(),
    )
    .await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].actor, by_ada);
    assert_eq!(rows[0].person.as_deref(), Some("ada@example.com"));
    let rows = audit_rows(
        s,
        "t_a",
        AuditAction::InvitationRevoked,
        revoked.id.as_str(),
    )
    .await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].actor, Actor::Cli);

    // A closed invitation stays as it was closed.
    s.accept_invitation(&accepted.id, &ada.id, at(12))
        .await
        .unwrap();
    for (inv, to) in [
        (&declined, InvitationStatus::Revoked),
        (&revoked, InvitationStatus::Declined),
        (&accepted, InvitationStatus::Revoked),
    ] {
        let before = s.invitation(&inv.id).await.unwrap().unwrap();
        let r = s.close_invitation(&inv.id, to, &Actor::Cli, at(13)).await;
        assert!(
            matches!(r, Err(StoreError::Conflict(_))),
            "{}: {r:?}",
            inv.id
        );
        assert_eq!(s.invitation(&inv.id).await.unwrap().unwrap(), before);
        let r = s.accept_invitation(&inv.id, &ada.id, at(13)).await;
        if inv.id != accepted.id {
            assert!(
                matches!(r, Err(StoreError::Conflict(_))),
                "{}: {r:?}",
                inv.id
            );
        }
    }
    assert_eq!(
        s.memberships(&ada.id).await.unwrap()[0].projects,
        only(&["p_a2"]),
        "a declined invitation never adds its project"
    );
    let r = s
        .close_invitation(
            &expired.id,
            InvitationStatus::Revoked,
            &Actor::Cli,
            expired.expires_at,
        )
        .await;
    assert!(matches!(r, Err(StoreError::Expired(_))), "{r:?}");
    let r = s
        .close_invitation(
            &invitation_id("missing00000"),
            InvitationStatus::Revoked,
            &Actor::Cli,
            at(13),
        )
        .await;
    assert!(matches!(r, Err(StoreError::NotFound(_))), "{r:?}");
}

async fn members_list_oldest_first_and_memberships_newest_first(t: TestStore) {
    let s = &t.store;
    seed(s).await;
    let bob = member(
        s,
        "hhhhhhhhhhh1",
        "t_a",
        "p_a1",
        "bob@example.com",
        TdRole::Reader,
        1,
    )
    .await;
    let ada = member(
        s,
        "hhhhhhhhhhh2",
        "t_a",
        "p_a2",
        "ada@example.com",
        TdRole::Owner,
        2,
    )
    .await;
    member(
        s,
        "hhhhhhhhhhh3",
        "t_b",
        "p_b1",
        "ada@example.com",
        TdRole::Writer,
        3,
    )
    .await;

    let members = s.members(&tenant_id("t_a")).await.unwrap();
    let summary: Vec<(UserId, TdRole, ProjectBinding, DateTime<Utc>)> = members
        .iter()
        .map(|(u, m)| {
            assert_eq!(u.id, m.user);
            assert_eq!(m.tenant, tenant_id("t_a"));
            (u.id.clone(), m.role, m.projects.clone(), m.created_at)
        })
        .collect();
    assert_eq!(
        summary,
        [
            (bob.id.clone(), TdRole::Reader, only(&["p_a1"]), at(1)),
            (ada.id.clone(), TdRole::Owner, only(&["p_a2"]), at(2)),
        ]
    );
    assert_eq!(members[1].0, ada, "with the person");

    let tenants: Vec<TenantId> = s
        .memberships(&ada.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.tenant)
        .collect();
    assert_eq!(tenants, [tenant_id("t_b"), tenant_id("t_a")]);
    assert_eq!(s.memberships(&bob.id).await.unwrap().len(), 1);
    assert!(s.memberships(&nobody()).await.unwrap().is_empty());
    assert!(s.members(&tenant_id("t_zz")).await.unwrap().is_empty());
}

async fn a_token_minted_for_a_person_names_them_in_the_audit_log(t: TestStore) {
    let s = &t.store;
    seed(s).await;
    let ada = s.user_for_email("ada@example.com", at(0)).await.unwrap();
    let octo = s
        .user_for_github(
            &GithubAccount {
                id: 1,
                login: "octo".into(),
            },
            "sealed",
            at(0),
        )
        .await
        .unwrap();

    let ghost = token("ghostghost01", "t_a", Some(&nobody()), None, &[], 1);
    let r = s.insert_token(&ghost, &Actor::Cli).await;
    assert!(matches!(r, Err(StoreError::NotFound(_))), "{r:?}");
    assert_eq!(s.token(&ghost.record.id).await.unwrap(), None);

    let adas = token("adaadaadaada", "t_a", Some(&ada.id), None, &["p_a1"], 2);
    let octos = token("octooctoocto", "t_a", Some(&octo.id), None, &["p_a1"], 3);
    let plain = token("plainplain01", "t_a", None, None, &["p_a1"], 4);
    for tok in [&adas, &octos, &plain] {
        s.insert_token(tok, &Actor::Cli).await.unwrap();
    }
    assert_eq!(
        s.token(&adas.record.id).await.unwrap(),
        Some(adas.record.clone())
    );
    let (record, _) = s
        .token_for_verification(&octos.record.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.user, Some(octo.id.clone()));
    let listed = s.tokens(&tenant_id("t_a")).await.unwrap();
    let users: Vec<Option<UserId>> = listed.iter().map(|r| r.user.clone()).collect();
    assert_eq!(users, [Some(ada.id.clone()), Some(octo.id.clone()), None]);

    // What each token does is the person's doing.
    for (n, (parent, who)) in [
        (&adas, Some("ada@example.com")),
        (&octos, Some("github:octo")),
        (&plain, None),
    ]
    .into_iter()
    .enumerate()
    {
        let child = token(
            &format!("child000000{n}"),
            "t_a",
            None,
            Some(parent.record.id.as_str()),
            &["p_a1"],
            5,
        );
        let actor = Actor::Token(parent.record.id.clone());
        s.insert_token(&child, &actor).await.unwrap();
        s.revoke_token(&child.record.id, &actor, at(6))
            .await
            .unwrap();
        for action in [AuditAction::TokenMinted, AuditAction::TokenRevoked] {
            let rows = audit_rows(s, "t_a", action, child.record.id.as_str()).await;
            assert_eq!(rows.len(), 1, "{action:?}");
            assert_eq!(rows[0].actor, actor);
            assert_eq!(rows[0].person.as_deref(), who, "{action:?} by {actor}");
        }
    }
    // The CLI minting for a person is the CLI's doing.
    let rows = audit_rows(s, "t_a", AuditAction::TokenMinted, adas.record.id.as_str()).await;
    assert_eq!(rows[0].person, None);
}

async fn removing_a_member_revokes_their_tokens_in_that_tenant_only(t: TestStore) {
    let s = &t.store;
    seed(s).await;
    let ada = member(
        s,
        "iiiiiiiiiii1",
        "t_a",
        "p_a1",
        "ada@example.com",
        TdRole::Writer,
        1,
    )
    .await;
    member(
        s,
        "iiiiiiiiiii2",
        "t_b",
        "p_b1",
        "ada@example.com",
        TdRole::Writer,
        1,
    )
    .await;
    let bob = member(
        s,
        "iiiiiiiiiii3",
        "t_a",
        "p_a1",
        "bob@example.com",
        TdRole::Writer,
        1,
    )
    .await;
    // ada's two logins in t_a, a token minted from one (for no one in particular), one already
    // revoked, her login in t_b; bob's token; an admin token.
    let tokens = [
        token("adaa00000001", "t_a", Some(&ada.id), None, &["p_a1"], 2),
        token("adaa00000002", "t_a", Some(&ada.id), None, &["p_a1"], 3),
        token(
            "adaachild001",
            "t_a",
            None,
            Some("adaa00000001"),
            &["p_a1"],
            4,
        ),
        token(
            "adaagrand001",
            "t_a",
            None,
            Some("adaachild001"),
            &["p_a1"],
            5,
        ),
        token("adaadead0001", "t_a", Some(&ada.id), None, &["p_a1"], 2),
        token("adab00000001", "t_b", Some(&ada.id), None, &["p_b1"], 2),
        token("boba00000001", "t_a", Some(&bob.id), None, &["p_a1"], 2),
        token("admina000001", "t_a", None, None, &[], 2),
    ];
    for tok in &tokens {
        s.insert_token(tok, &Actor::Cli).await.unwrap();
    }
    s.revoke_token(&token_id("adaadead0001"), &Actor::Cli, at(6))
        .await
        .unwrap();

    let g0 = s.revocation_generation().unwrap();
    let actor = Actor::Token(token_id("admina000001"));
    let revoked = s
        .remove_member(&tenant_id("t_a"), &ada.id, &actor, at(30))
        .await
        .unwrap();
    let revoked: BTreeSet<TokenId> = revoked.into_iter().collect();
    let expected: BTreeSet<TokenId> = [
        "adaa00000001",
        "adaa00000002",
        "adaachild001",
        "adaagrand001",
    ]
    .into_iter()
    .map(token_id)
    .collect();
    assert_eq!(
        revoked, expected,
        "her live tokens and what was minted from them"
    );
    let g1 = s.revocation_generation().unwrap();
    assert!(g1 > g0, "generation moves: {g0} → {g1}");
    for id in &expected {
        let record = s.token(id).await.unwrap().unwrap();
        assert_eq!(record.revoked_at, Some(at(30)), "{id}");
        assert_eq!(
            audit_rows(s, "t_a", AuditAction::TokenRevoked, id.as_str())
                .await
                .len(),
            1,
            "{id}"
        );
    }
    assert_eq!(
        s.token(&token_id("adaadead0001"))
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(at(6)),
        "an earlier revocation stands"
    );
    for untouched in ["adab00000001", "boba00000001", "admina000001"] {
        let record = s.token(&token_id(untouched)).await.unwrap().unwrap();
        assert_eq!(record.revoked_at, None, "{untouched}");
    }

    let members: Vec<UserId> = s
        .members(&tenant_id("t_a"))
        .await
        .unwrap()
        .into_iter()
        .map(|(u, _)| u.id)
        .collect();
    assert_eq!(members, std::slice::from_ref(&bob.id));
    let left: Vec<TenantId> = s
        .memberships(&ada.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.tenant)
        .collect();
    assert_eq!(left, [tenant_id("t_b")]);
    let rows = audit_rows(s, "t_a", AuditAction::MemberRemoved, ada.id.as_str()).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].actor, actor);
    assert_eq!(rows[0].at, at(30));

    // Not (or no longer) a member.
    for (tenant, user) in [("t_a", &ada.id), ("t_b", &bob.id), ("t_a", &nobody())] {
        let r = s
            .remove_member(&tenant_id(tenant), user, &Actor::Cli, at(31))
            .await;
        assert!(
            matches!(r, Err(StoreError::NotFound(_))),
            "{tenant} {user}: {r:?}"
        );
    }
    assert_eq!(
        s.revocation_generation().unwrap(),
        g1,
        "a refused removal revokes nothing"
    );

    // A member without tokens leaves all the same.
    let carol = member(
        s,
        "iiiiiiiiiii4",
        "t_b",
        "p_b1",
        "carol@example.com",
        TdRole::Reader,
        40,
    )
    .await;
    let none = s
        .remove_member(&tenant_id("t_b"), &carol.id, &Actor::Cli, at(41))
        .await
        .unwrap();
    assert!(none.is_empty());
    assert!(s.memberships(&carol.id).await.unwrap().is_empty());
}

async fn a_device_login_is_approved_once_while_pending_and_unexpired(t: TestStore) {
    let s = &t.store;
    let mut fresh = login(1, "Ada@Example.com", 0, 15);
    s.insert_device_login(&fresh).await.unwrap();
    let stale = login(2, "bob@example.com", 0, 10);
    s.insert_device_login(&stale).await.unwrap();

    fresh.email = "ada@example.com".into();
    assert_eq!(
        s.device_login(&fresh.code_hash).await.unwrap(),
        Some(fresh.clone()),
        "round-trips, the email lowercased"
    );
    assert_eq!(
        s.device_login_by_link(&fresh.link_id).await.unwrap(),
        Some(fresh.clone())
    );
    assert_eq!(
        s.device_login(&stale.code_hash).await.unwrap(),
        Some(stale.clone())
    );
    assert_eq!(s.device_login(&format!("{:064x}", 99)).await.unwrap(), None);
    assert_eq!(s.device_login_by_link("link-none").await.unwrap(), None);
    // The link id is not a code hash, nor the other way round.
    assert_eq!(s.device_login(&fresh.link_id).await.unwrap(), None);
    assert_eq!(
        s.device_login_by_link(&fresh.code_hash).await.unwrap(),
        None
    );

    assert!(
        !s.approve_device_login(&stale.link_id, at(11))
            .await
            .unwrap(),
        "expired"
    );
    assert_eq!(
        s.device_login(&stale.code_hash)
            .await
            .unwrap()
            .unwrap()
            .status,
        LoginStatus::Pending
    );
    assert!(!s.approve_device_login("link-none", at(1)).await.unwrap());

    assert!(s.approve_device_login(&fresh.link_id, at(5)).await.unwrap());
    let approved = s.device_login(&fresh.code_hash).await.unwrap().unwrap();
    assert_eq!(
        approved,
        DeviceLogin {
            status: LoginStatus::Approved,
            ..fresh.clone()
        }
    );
    assert!(
        !s.approve_device_login(&fresh.link_id, at(6)).await.unwrap(),
        "only a pending login is approved"
    );
    assert_eq!(
        s.device_login(&fresh.code_hash).await.unwrap(),
        Some(approved)
    );
}

async fn consuming_an_approved_login_inserts_its_token_with_it(t: TestStore) {
    let s = &t.store;
    seed(s).await;
    let ada = s.user_for_email("ada@example.com", at(0)).await.unwrap();
    let l = login(1, "ada@example.com", 0, 15);
    s.insert_device_login(&l).await.unwrap();
    let by_ada = Actor::User(ada.id.clone());
    let first = token("logintoken01", "t_a", Some(&ada.id), None, &["p_a1"], 2);

    assert!(
        !s.consume_device_login(&l.code_hash, &first, &by_ada)
            .await
            .unwrap(),
        "not approved yet"
    );
    assert_eq!(
        s.token(&first.record.id).await.unwrap(),
        None,
        "no token without approval"
    );
    assert!(
        audit_rows(s, "t_a", AuditAction::TokenMinted, first.record.id.as_str())
            .await
            .is_empty()
    );
    assert_eq!(s.device_login(&l.code_hash).await.unwrap(), Some(l.clone()));

    assert!(s.approve_device_login(&l.link_id, at(1)).await.unwrap());
    assert!(
        s.consume_device_login(&l.code_hash, &first, &by_ada)
            .await
            .unwrap()
    );
    assert_eq!(
        s.token(&first.record.id).await.unwrap(),
        Some(first.record.clone())
    );
    let consumed = s.device_login(&l.code_hash).await.unwrap().unwrap();
    assert_eq!(consumed.status, LoginStatus::Consumed);
    assert_eq!(consumed.token, Some(first.record.id.clone()));
    let rows = audit_rows(s, "t_a", AuditAction::TokenMinted, first.record.id.as_str()).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].actor, by_ada);
    assert_eq!(rows[0].person.as_deref(), Some("ada@example.com"));

    // The code is spent: a second poll gets nothing.
    let second = token("logintoken02", "t_a", Some(&ada.id), None, &["p_a1"], 3);
    assert!(
        !s.consume_device_login(&l.code_hash, &second, &by_ada)
            .await
            .unwrap()
    );
    assert_eq!(s.token(&second.record.id).await.unwrap(), None);
    assert_eq!(s.device_login(&l.code_hash).await.unwrap(), Some(consumed));
    assert!(
        !s.consume_device_login(&format!("{:064x}", 99), &second, &by_ada)
            .await
            .unwrap(),
        "no such login"
    );
    assert_eq!(s.token(&second.record.id).await.unwrap(), None);
    assert_eq!(s.tokens(&tenant_id("t_a")).await.unwrap(), [first.record]);
}

async fn forgetting_device_logins_deletes_only_the_expired_ones(t: TestStore) {
    let s = &t.store;
    let logins = [
        login(1, "a@example.com", 0, 10),
        login(2, "b@example.com", 0, 20),
        login(3, "c@example.com", 0, 30),
    ];
    for l in &logins {
        s.insert_device_login(l).await.unwrap();
    }
    assert_eq!(s.forget_device_logins(at(5)).await.unwrap(), 0);
    assert_eq!(
        s.forget_device_logins(at(10)).await.unwrap(),
        0,
        "expiring at `before` is not expiring before it"
    );
    assert_eq!(s.forget_device_logins(at(25)).await.unwrap(), 2);
    assert_eq!(s.device_login(&logins[0].code_hash).await.unwrap(), None);
    assert_eq!(
        s.device_login_by_link(&logins[1].link_id).await.unwrap(),
        None
    );
    assert_eq!(
        s.device_login(&logins[2].code_hash).await.unwrap(),
        Some(logins[2].clone())
    );
    assert_eq!(s.forget_device_logins(at(25)).await.unwrap(), 0);
}

async fn a_github_link_is_set_replaced_and_removed_with_audit_rows(t: TestStore) {
    let s = &t.store;
    seed(s).await;
    let octo = s
        .user_for_github(
            &GithubAccount {
                id: 5,
                login: "octo".into(),
            },
            "sealed",
            at(0),
        )
        .await
        .unwrap();
    let p = project_id("p_a1");
    assert_eq!(s.github_link(&p).await.unwrap(), None);
    let link = GithubLink {
        project: p.clone(),
        repo: "acme/web".into(),
        allow_write: false,
    };
    s.set_github_link(&p, Some(&link), &Actor::Cli, at(1))
        .await
        .unwrap();
    assert_eq!(s.github_link(&p).await.unwrap(), Some(link));
    assert_eq!(s.github_link(&project_id("p_a2")).await.unwrap(), None);

    let moved = GithubLink {
        project: p.clone(),
        repo: "acme/website".into(),
        allow_write: true,
    };
    let by_octo = Actor::User(octo.id.clone());
    s.set_github_link(&p, Some(&moved), &by_octo, at(2))
        .await
        .unwrap();
    assert_eq!(s.github_link(&p).await.unwrap(), Some(moved));
    s.set_github_link(&p, None, &Actor::Cli, at(3))
        .await
        .unwrap();
    assert_eq!(s.github_link(&p).await.unwrap(), None);

    let rows = audit_rows(s, "t_a", AuditAction::GithubLinked, "p_a1").await;
    let summary: Vec<(Actor, Option<String>, DateTime<Utc>)> = rows
        .into_iter()
        .map(|e| (e.actor, e.person, e.at))
        .collect();
    assert_eq!(
        summary,
        [
            (Actor::Cli, None, at(1)),
            (by_octo, Some("github:octo".into()), at(2)),
            (Actor::Cli, None, at(3)),
        ]
    );
}

async fn a_github_grant_is_a_persons_token_for_one_project(t: TestStore) {
    let s = &t.store;
    seed(s).await;
    let octo = s
        .user_for_github(
            &GithubAccount {
                id: 5,
                login: "octo".into(),
            },
            "sealed",
            at(0),
        )
        .await
        .unwrap();
    let bad = [
        (
            "no person",
            token("grantbad0001", "t_a", None, None, &["p_a1"], 1),
        ),
        (
            "every project",
            token("grantbad0002", "t_a", Some(&octo.id), None, &[], 1),
        ),
        (
            "two projects",
            token(
                "grantbad0003",
                "t_a",
                Some(&octo.id),
                None,
                &["p_a1", "p_a2"],
                1,
            ),
        ),
    ];
    for (what, tok) in &bad {
        let r = s.insert_github_grant(tok, "acme/web", &Actor::Cli).await;
        assert!(matches!(r, Err(StoreError::Conflict(_))), "{what}: {r:?}");
        assert_eq!(s.token(&tok.record.id).await.unwrap(), None, "{what}");
    }
    assert!(s.github_grants_due(at(100), 10).await.unwrap().is_empty());

    let good = token("grantgood001", "t_a", Some(&octo.id), None, &["p_a1"], 1);
    let by_octo = Actor::User(octo.id.clone());
    s.insert_github_grant(&good, "acme/web", &by_octo)
        .await
        .unwrap();
    assert_eq!(
        s.token(&good.record.id).await.unwrap(),
        Some(good.record.clone())
    );
    let rows = audit_rows(s, "t_a", AuditAction::TokenMinted, good.record.id.as_str()).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].actor, by_octo);
    assert_eq!(
        s.github_grants_due(at(100), 10).await.unwrap(),
        [GithubGrant {
            token: good.record.id.clone(),
            tenant: tenant_id("t_a"),
            project: project_id("p_a1"),
            user: octo.id.clone(),
            repo: "acme/web".into(),
            sealed_github_token: "sealed".into(),
            checked_at: at(1),
        }],
        "checked at the token's creation"
    );
}

async fn github_grants_come_due_oldest_check_first_until_rechecked(t: TestStore) {
    let s = &t.store;
    seed(s).await;
    let account = |id, login: &str| GithubAccount {
        id,
        login: login.into(),
    };
    let octo = s
        .user_for_github(&account(5, "octo"), "sealed-octo", at(0))
        .await
        .unwrap();
    let mona = s
        .user_for_github(&account(6, "mona"), "sealed-mona", at(0))
        .await
        .unwrap();
    let grants = [
        (
            token("grant0000001", "t_a", Some(&octo.id), None, &["p_a1"], 1),
            "acme/web",
        ),
        (
            token("grant0000002", "t_a", Some(&mona.id), None, &["p_a2"], 10),
            "acme/api",
        ),
        (
            token("grant0000003", "t_b", Some(&octo.id), None, &["p_b1"], 20),
            "beta/app",
        ),
        (
            token("grant0000004", "t_a", Some(&octo.id), None, &["p_a2"], 5),
            "acme/api",
        ),
    ];
    for (tok, repo) in &grants {
        s.insert_github_grant(tok, repo, &Actor::Cli).await.unwrap();
    }
    s.revoke_token(&token_id("grant0000004"), &Actor::Cli, at(6))
        .await
        .unwrap();
    let due = |before: DateTime<Utc>, limit: u32| async move {
        s.github_grants_due(before, limit)
            .await
            .unwrap()
            .into_iter()
            .map(|g| g.token.to_string())
            .collect::<Vec<_>>()
    };

    assert_eq!(
        due(at(30), 10).await,
        ["grant0000001", "grant0000002", "grant0000003"],
        "a revoked token's grant is not due"
    );
    let full = s.github_grants_due(at(30), 10).await.unwrap();
    assert_eq!(
        full[2],
        GithubGrant {
            token: token_id("grant0000003"),
            tenant: tenant_id("t_b"),
            project: project_id("p_b1"),
            user: octo.id.clone(),
            repo: "beta/app".into(),
            sealed_github_token: "sealed-octo".into(),
            checked_at: at(20),
        }
    );
    assert_eq!(full[1].sealed_github_token, "sealed-mona");
    assert_eq!(due(at(30), 2).await, ["grant0000001", "grant0000002"]);
    assert_eq!(
        due(at(10), 10).await,
        ["grant0000001"],
        "checked before, not at"
    );
    assert!(due(at(1), 10).await.is_empty());

    s.record_github_check(&token_id("grant0000001"), at(40))
        .await
        .unwrap();
    assert_eq!(due(at(30), 10).await, ["grant0000002", "grant0000003"]);
    assert_eq!(
        due(at(50), 10).await,
        ["grant0000002", "grant0000003", "grant0000001"]
    );
    let rechecked = s.github_grants_due(at(50), 10).await.unwrap();
    assert_eq!(rechecked[2].checked_at, at(40));

    // A new sign-in refreshes the sealed token every grant is checked with.
    s.user_for_github(&account(5, "octo"), "sealed-octo-2", at(45))
        .await
        .unwrap();
    let sealed: Vec<String> = s
        .github_grants_due(at(50), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.sealed_github_token)
        .collect();
    assert_eq!(sealed, ["sealed-mona", "sealed-octo-2", "sealed-octo-2"]);

    // Revoking (or removing the person) ends the checks.
    s.revoke_token(&token_id("grant0000002"), &Actor::Cli, at(46))
        .await
        .unwrap();
    assert_eq!(due(at(50), 10).await, ["grant0000003", "grant0000001"]);
}

/// Two processes on one control plane answering the same login or invitation at once: the
/// status change is conditional, so exactly one wins and the loser writes nothing.
async fn racing_requests_on_one_login_or_invitation_have_exactly_one_winner(t: TestStore) {
    let s = &t.store;
    let other = t.another_instance().await;
    seed(s).await;
    let ada = s.user_for_email("ada@example.com", at(0)).await.unwrap();
    let by_ada = Actor::User(ada.id.clone());
    for round in 0..8u32 {
        let l = login(round, "ada@example.com", 0, 60);
        s.insert_device_login(&l).await.unwrap();
        let (a, b) = tokio::join!(
            s.approve_device_login(&l.link_id, at(1)),
            other.approve_device_login(&l.link_id, at(1)),
        );
        assert!(a.unwrap() ^ b.unwrap(), "round {round}: one approval wins");

        let mine = token(
            &format!("racemine{round:04}"),
            "t_a",
            Some(&ada.id),
            None,
            &[],
            2,
        );
        let theirs = token(
            &format!("racetheir{round:03}"),
            "t_a",
            Some(&ada.id),
            None,
            &[],
            2,
        );
        let (a, b) = tokio::join!(
            s.consume_device_login(&l.code_hash, &mine, &by_ada),
            other.consume_device_login(&l.code_hash, &theirs, &by_ada),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(a ^ b, "round {round}: one consumption wins");
        let (winner, loser) = if a {
            (&mine, &theirs)
        } else {
            (&theirs, &mine)
        };
        assert!(
            s.token(&winner.record.id).await.unwrap().is_some(),
            "round {round}"
        );
        assert_eq!(
            s.token(&loser.record.id).await.unwrap(),
            None,
            "round {round}"
        );
        let consumed = s.device_login(&l.code_hash).await.unwrap().unwrap();
        assert_eq!(
            consumed.token,
            Some(winner.record.id.clone()),
            "round {round}"
        );

        let inv = invitation(
            &format!("race{round:08}"),
            "t_a",
            "p_a1",
            "ada@example.com",
            TdRole::Writer,
            3,
        );
        s.insert_invitation(&inv).await.unwrap();
        let (accepted, revoked) = tokio::join!(
            s.accept_invitation(&inv.id, &ada.id, at(4)),
            other.close_invitation(&inv.id, InvitationStatus::Revoked, &Actor::Cli, at(4)),
        );
        let status = s.invitation(&inv.id).await.unwrap().unwrap().status;
        match (&accepted, &revoked) {
            (Ok(_), Err(StoreError::Conflict(_))) => {
                assert_eq!(status, InvitationStatus::Accepted, "round {round}")
            }
            (Err(StoreError::Conflict(_)), Ok(_)) => {
                assert_eq!(status, InvitationStatus::Revoked, "round {round}")
            }
            other => panic!("round {round}: not exactly one winner: {other:?}"),
        }
        let closings = s
            .audit_log(&tenant_id("t_a"))
            .await
            .unwrap()
            .into_iter()
            .filter(|e| {
                e.subject == inv.id.as_str()
                    && matches!(
                        e.action,
                        AuditAction::InvitationAccepted | AuditAction::InvitationRevoked
                    )
            })
            .count();
        assert_eq!(closings, 1, "round {round}: the loser wrote no audit row");
    }
}

crate::both_backends!(
    user_for_email_creates_one_person_per_email_case_insensitively,
    user_for_github_is_one_person_per_account_id_and_follows_a_rename,
    invitations_need_a_project_of_their_tenant_and_list_newest_first,
    invitations_for_lists_only_pending_unexpired_ones_of_that_email,
    accepting_an_invitation_makes_a_member_of_its_project_with_its_role,
    a_second_role_in_one_tenant_is_a_conflict_that_changes_nothing,
    only_the_invited_email_can_accept_a_pending_unexpired_invitation,
    closing_an_invitation_declines_or_revokes_it_once,
    members_list_oldest_first_and_memberships_newest_first,
    a_token_minted_for_a_person_names_them_in_the_audit_log,
    removing_a_member_revokes_their_tokens_in_that_tenant_only,
    a_device_login_is_approved_once_while_pending_and_unexpired,
    consuming_an_approved_login_inserts_its_token_with_it,
    forgetting_device_logins_deletes_only_the_expired_ones,
    a_github_link_is_set_replaced_and_removed_with_audit_rows,
    a_github_grant_is_a_persons_token_for_one_project,
    github_grants_come_due_oldest_check_first_until_rechecked,
    racing_requests_on_one_login_or_invitation_have_exactly_one_winner,
);
