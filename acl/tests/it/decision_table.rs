//! The decision table: every combination of scope set × project binding × tenant × expiry ×
//! revocation × minted child, for every action, on every kind of target (the tenant, a project,
//! another token as a project's member or tenant-wide), on both backends — through the real
//! path (mint in the store, verify the bearer token, decide), against an oracle written here from
//! the rules in the issues, independently of `decision.rs`.

use std::collections::BTreeSet;

use chrono::TimeDelta;
use tdsync_acl::{
    Action, Actor, ManualClock, MintRequest, ProjectBinding, ProjectId, Scope, Scopes, Target,
    TenantId, TokenRecord,
};

use crate::support::{TestStore, acl_on, t0};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Binding {
    All,
    OnlyP1,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    Never,
    Later,
    Passed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lineage {
    Root,
    RootRevoked,
    Child,
    ChildRevoked,
    ParentRevoked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Allowed,
    /// 401: the token itself is not valid (revoked, expired).
    Unauthenticated,
    /// 403: a valid token that may not do this.
    Forbidden,
}

#[derive(Debug)]
struct Case {
    scopes: Vec<Scope>,
    binding: Binding,
    expiry: Expiry,
    lineage: Lineage,
}

/// Another token as a target: the projects it reaches, and the project it is reached through.
#[derive(Debug, Clone, Copy)]
struct Member {
    bound_to_p1_only: bool,
    via: Option<&'static str>,
}

/// The rules of issue 4, restated: write ⇒ read, admin ⇒ write; reader = read, writer = write,
/// owner = admin; per-project actions need the project bound; tenant-wide management needs all
/// projects; minting needs mint. And of issue 8: a token acts on another token only if that
/// token is a member of the project it is reached through and reaches nothing the caller does
/// not.
fn oracle(
    case: &Case,
    action: Action,
    own_tenant: bool,
    project: Option<&str>,
    member: Option<Member>,
) -> Outcome {
    if matches!(
        case.lineage,
        Lineage::RootRevoked | Lineage::ChildRevoked | Lineage::ParentRevoked
    ) || case.expiry == Expiry::Passed
    {
        return Outcome::Unauthenticated;
    }
    let has = |s: Scope| {
        case.scopes.contains(&s)
            || (s == Scope::Read
                && (case.scopes.contains(&Scope::Write) || case.scopes.contains(&Scope::Admin)))
            || (s == Scope::Write && case.scopes.contains(&Scope::Admin))
    };
    let needed = match action {
        Action::ReadEvents | Action::ListProjects => Scope::Read,
        Action::PushEvents | Action::CreateProject => Scope::Write,
        Action::ManageTokens | Action::ManageMembers | Action::ReadCursors | Action::Admin => {
            Scope::Admin
        }
        Action::MintChild => Scope::Mint,
    };
    let bound = |p: &str| case.binding == Binding::All || p == "p1";
    let allowed = own_tenant
        && has(needed)
        && match action {
            Action::ReadEvents
            | Action::PushEvents
            | Action::ManageMembers
            | Action::ReadCursors => project.is_some_and(bound),
            Action::CreateProject | Action::ManageTokens | Action::Admin => {
                case.binding == Binding::All
            }
            Action::ListProjects | Action::MintChild => true,
        }
        && member.is_none_or(|m| {
            let is_member = m.via.is_none_or(|p| !m.bound_to_p1_only || p == "p1");
            let within = case.binding == Binding::All || m.bound_to_p1_only;
            is_member && within
        });
    if allowed {
        Outcome::Allowed
    } else {
        Outcome::Forbidden
    }
}

fn all_scope_sets() -> Vec<Vec<Scope>> {
    (1u8..16)
        .map(|bits| {
            Scope::ALL
                .into_iter()
                .enumerate()
                .filter(|(i, _)| bits & (1 << i) != 0)
                .map(|(_, s)| s)
                .collect()
        })
        .collect()
}

async fn every_combination_decides_as_the_rules_say(t: TestStore) {
    let clock = ManualClock::new(t0());
    let acl = acl_on(t.store.clone(), &clock);
    let one = acl.create_tenant("one", &Actor::Cli).await.unwrap();
    let two = acl.create_tenant("two", &Actor::Cli).await.unwrap();
    let p1 = acl
        .create_project(&one.id, "p1", "", &Actor::Cli)
        .await
        .unwrap()
        .id;
    let p2 = acl
        .create_project(&one.id, "p2", "", &Actor::Cli)
        .await
        .unwrap()
        .id;
    let q1 = acl
        .create_project(&two.id, "q1", "", &Actor::Cli)
        .await
        .unwrap()
        .id;

    let mut cases = Vec::new();
    for scopes in all_scope_sets() {
        for binding in [Binding::All, Binding::OnlyP1] {
            for expiry in [Expiry::Never, Expiry::Later, Expiry::Passed] {
                for lineage in [
                    Lineage::Root,
                    Lineage::RootRevoked,
                    Lineage::Child,
                    Lineage::ChildRevoked,
                    Lineage::ParentRevoked,
                ] {
                    cases.push(Case {
                        scopes: scopes.clone(),
                        binding,
                        expiry,
                        lineage,
                    });
                }
            }
        }
    }
    assert_eq!(cases.len(), 15 * 2 * 3 * 5);

    // Mint every token at t0, revoke what the case says, then move past the short expiry.
    let mut bearers = Vec::new();
    for case in &cases {
        let request = MintRequest {
            name: Some(format!("{case:?}")),
            scopes: Scopes::of(&case.scopes),
            projects: match case.binding {
                Binding::All => None,
                Binding::OnlyP1 => Some(ProjectBinding::Only(BTreeSet::from([p1.clone()]))),
            },
            ttl: match case.expiry {
                Expiry::Never => None,
                Expiry::Later => Some(TimeDelta::days(10)),
                Expiry::Passed => Some(TimeDelta::hours(1)),
            },
        };
        let (issued, parent) = match case.lineage {
            Lineage::Root | Lineage::RootRevoked => {
                (acl.mint(&one.id, request, &Actor::Cli).await.unwrap(), None)
            }
            _ => {
                let mut parent_scopes = case.scopes.clone();
                parent_scopes.push(Scope::Mint);
                let parent = acl
                    .mint(
                        &one.id,
                        MintRequest::new(Scopes::of(&parent_scopes)),
                        &Actor::Cli,
                    )
                    .await
                    .unwrap();
                let grant = acl.verify(parent.token.expose()).await.unwrap();
                (
                    acl.mint_child(&grant, request).await.unwrap(),
                    Some(parent.record.id),
                )
            }
        };
        // Verify before revoking/expiring, so stale cache entries are what is being tested.
        acl.verify(issued.token.expose()).await.unwrap();
        match case.lineage {
            Lineage::RootRevoked | Lineage::ChildRevoked => {
                acl.revoke(&issued.record.id, &Actor::Cli).await.unwrap();
            }
            Lineage::ParentRevoked => {
                acl.revoke(parent.as_ref().unwrap(), &Actor::Cli)
                    .await
                    .unwrap();
            }
            Lineage::Root | Lineage::Child => {}
        }
        bearers.push(issued.token);
    }
    clock.advance(TimeDelta::hours(2));

    // Target tokens: one bound to p1, one to every project, and one of the other tenant.
    let target_token = |tenant: &TenantId, only: Option<&ProjectId>| {
        let acl = &acl;
        let tenant = tenant.clone();
        let only = only.cloned();
        async move {
            let mut request = MintRequest::new(Scopes::of(&[Scope::Read]));
            request.projects = only.map(|p| ProjectBinding::Only(BTreeSet::from([p])));
            acl.mint(&tenant, request, &Actor::Cli)
                .await
                .unwrap()
                .record
        }
    };
    let on_p1: TokenRecord = target_token(&one.id, Some(&p1)).await;
    let on_all: TokenRecord = target_token(&one.id, None).await;
    let stranger: TokenRecord = target_token(&two.id, Some(&q1)).await;
    let member = |bound_to_p1_only, via| {
        Some(Member {
            bound_to_p1_only,
            via,
        })
    };

    let targets: [(Target<'_>, bool, Option<&str>, Option<Member>); 10] = [
        (Target::Project(&one.id, &p1), true, Some("p1"), None),
        (Target::Project(&one.id, &p2), true, Some("p2"), None),
        (Target::Tenant(&one.id), true, None, None),
        (Target::Project(&two.id, &q1), false, Some("q1"), None),
        (Target::Tenant(&two.id), false, None, None),
        (
            Target::Token(&on_p1, Some(&p1)),
            true,
            Some("p1"),
            member(true, Some("p1")),
        ),
        (Target::Token(&on_p1, None), true, None, member(true, None)),
        (
            Target::Token(&on_all, Some(&p1)),
            true,
            Some("p1"),
            member(false, Some("p1")),
        ),
        (
            Target::Token(&on_all, None),
            true,
            None,
            member(false, None),
        ),
        (
            Target::Token(&stranger, Some(&q1)),
            false,
            Some("q1"),
            member(true, Some("q1")),
        ),
    ];
    let mut checked = 0;
    let mut allowed = 0;
    let mut allowed_on_tokens = 0;
    for (case, bearer) in cases.iter().zip(&bearers) {
        let grant = acl.verify(bearer.expose()).await;
        for action in Action::ALL {
            for (target, own, label, member) in targets {
                let got = match &grant {
                    Err(_) => Outcome::Unauthenticated,
                    Ok(grant) => match acl.decide(grant, action, target) {
                        Ok(()) => Outcome::Allowed,
                        Err(tdsync_acl::Denied::Expired { .. }) => Outcome::Unauthenticated,
                        Err(_) => Outcome::Forbidden,
                    },
                };
                let want = oracle(case, action, own, label, member);
                assert_eq!(got, want, "{case:?} {action:?} on {target:?}");
                checked += 1;
                allowed += usize::from(got == Outcome::Allowed);
                allowed_on_tokens += usize::from(got == Outcome::Allowed && member.is_some());
            }
        }
    }
    assert_eq!(checked, 450 * 9 * 10);
    assert!(
        allowed > 500 && allowed_on_tokens > 100,
        "the table is not all refusals: {allowed} allowed, {allowed_on_tokens} on tokens"
    );
}

crate::both_backends!(every_combination_decides_as_the_rules_say);
