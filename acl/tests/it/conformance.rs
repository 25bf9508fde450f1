//! The control-plane store conformance suite: what every backend must do, checked through the
//! `ControlPlaneStore` trait (and the `Acl` service where the rule lives there).

use std::collections::BTreeSet;

use chrono::{SubsecRound, TimeDelta};
use tdsync_acl::{
    Actor, AuditAction, ControlPlaneStore, ManualClock, MintRequest, NewToken, Project,
    ProjectBinding, ProjectId, Scopes, SecretHash, StoreError, Tenant, TenantId, TokenId,
    TokenRecord,
};

use crate::support::{TestStore, acl_on, t0};

fn tenant(id: &str, name: &str, minute: i64) -> Tenant {
    Tenant {
        id: TenantId::parse(id).unwrap(),
        name: name.into(),
        created_at: t0() + TimeDelta::minutes(minute),
    }
}

fn project(id: &str, tenant: &str, name: &str, minute: i64) -> Project {
    let at = t0() + TimeDelta::minutes(minute);
    Project {
        id: ProjectId::parse(id).unwrap(),
        tenant: TenantId::parse(tenant).unwrap(),
        name: name.into(),
        description: format!("{name} description"),
        created_at: at,
        updated_at: at,
    }
}

fn token(id: &str, tenant: &str, parent: Option<&str>, projects: &[&str]) -> NewToken {
    NewToken {
        record: TokenRecord {
            id: TokenId::parse(id).unwrap(),
            tenant: TenantId::parse(tenant).unwrap(),
            name: format!("token {id}"),
            scopes: Scopes::parse("write,mint").unwrap(),
            projects: if projects.is_empty() {
                ProjectBinding::All
            } else {
                ProjectBinding::Only(
                    projects
                        .iter()
                        .map(|p| ProjectId::parse(p).unwrap())
                        .collect(),
                )
            },
            parent: parent.map(|p| TokenId::parse(p).unwrap()),
            user: None,
            expires_at: Some(t0() + TimeDelta::days(3)),
            created_at: t0() + TimeDelta::minutes(10),
            last_used_at: None,
            revoked_at: None,
        },
        secret_hash: SecretHash(format!(
            "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$hash-of-{id}"
        )),
    }
}

fn id(raw: &str) -> TokenId {
    TokenId::parse(raw).unwrap()
}

/// Two tenants, projects a1, a2 (tenant t_a) and b1 (tenant t_b).
async fn seed(s: &impl ControlPlaneStore) {
    s.create_tenant(&tenant("t_a", "alpha", 0), &Actor::Cli)
        .await
        .unwrap();
    s.create_tenant(&tenant("t_b", "beta", 1), &Actor::Cli)
        .await
        .unwrap();
    for (p, t, m) in [("p_a1", "t_a", 2), ("p_a2", "t_a", 3), ("p_b1", "t_b", 4)] {
        s.create_project(&project(p, t, p, m), &Actor::Cli)
            .await
            .unwrap();
    }
}

async fn tenants_are_unique_by_name_and_listed_oldest_first(t: TestStore) {
    let s = &t.store;
    s.create_tenant(&tenant("t_2", "second", 5), &Actor::Cli)
        .await
        .unwrap();
    s.create_tenant(&tenant("t_1", "first", 1), &Actor::Cli)
        .await
        .unwrap();
    let names: Vec<String> = s
        .tenants()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["first", "second"]);
    let again = s
        .create_tenant(&tenant("t_3", "first", 6), &Actor::Cli)
        .await;
    assert!(
        matches!(&again, Err(StoreError::Conflict(m)) if m.contains("\"first\"")),
        "{again:?}"
    );
    let dup_id = s
        .create_tenant(&tenant("t_1", "other", 6), &Actor::Cli)
        .await;
    assert!(matches!(dup_id, Err(StoreError::Conflict(_))));
    assert_eq!(
        s.tenant(&TenantId::parse("t_1").unwrap()).await.unwrap(),
        Some(tenant("t_1", "first", 1))
    );
    assert_eq!(
        s.tenant(&TenantId::parse("t_9").unwrap()).await.unwrap(),
        None
    );
    assert_eq!(
        s.tenants().await.unwrap().len(),
        2,
        "failed inserts change nothing"
    );
}

async fn projects_belong_to_one_tenant(t: TestStore) {
    let s = &t.store;
    seed(s).await;
    let a = TenantId::parse("t_a").unwrap();
    let ids: Vec<String> = s
        .projects(&a)
        .await
        .unwrap()
        .iter()
        .map(|p| p.id.to_string())
        .collect();
    assert_eq!(ids, ["p_a1", "p_a2"]);
    assert_eq!(
        s.project(&ProjectId::parse("p_b1").unwrap()).await.unwrap(),
        Some(project("p_b1", "t_b", "p_b1", 4))
    );
    // Names are unique per tenant, not globally.
    let same_name = project("p_a3", "t_a", "p_a1", 9);
    assert!(matches!(
        s.create_project(&same_name, &Actor::Cli).await,
        Err(StoreError::Conflict(_))
    ));
    s.create_project(&project("p_b2", "t_b", "p_a1", 9), &Actor::Cli)
        .await
        .unwrap();
    let orphan = project("p_x", "t_none", "x", 9);
    assert!(matches!(
        s.create_project(&orphan, &Actor::Cli).await,
        Err(StoreError::NotFound(_))
    ));
    let taken_id = project("p_a1", "t_b", "fresh", 9);
    assert!(matches!(
        s.create_project(&taken_id, &Actor::Cli).await,
        Err(StoreError::Conflict(_))
    ));
}

async fn tokens_round_trip_with_bindings_and_hash(t: TestStore) {
    let s = &t.store;
    seed(s).await;
    let all = token("aaaaaaaaaaa1", "t_a", None, &[]);
    let listed = token("aaaaaaaaaaa2", "t_a", None, &["p_a2", "p_a1"]);
    s.insert_token(&all, &Actor::Cli).await.unwrap();
    s.insert_token(&listed, &Actor::Cli).await.unwrap();
    assert_eq!(
        s.token(&all.record.id).await.unwrap(),
        Some(all.record.clone())
    );
    let (record, hash) = s
        .token_for_verification(&listed.record.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record, listed.record);
    assert_eq!(hash, listed.secret_hash);
    let a = TenantId::parse("t_a").unwrap();
    assert_eq!(s.tokens(&a).await.unwrap(), vec![all.record, listed.record]);
    assert!(
        s.tokens(&TenantId::parse("t_b").unwrap())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.token(&id("zzzzzzzzzzzz")).await.unwrap(), None);
}

async fn token_inserts_check_tenant_projects_and_parent(t: TestStore) {
    let s = &t.store;
    seed(s).await;
    let cases = [
        (token("bbbbbbbbbbb1", "t_none", None, &[]), "tenant"),
        (
            token("bbbbbbbbbbb2", "t_a", None, &["p_b1"]),
            "project p_b1",
        ),
        (
            token("bbbbbbbbbbb3", "t_a", None, &["p_zz"]),
            "project p_zz",
        ),
        (
            token("bbbbbbbbbbb4", "t_a", Some("cccccccccccc"), &[]),
            "parent",
        ),
    ];
    for (bad, what) in cases {
        match s.insert_token(&bad, &Actor::Cli).await {
            Err(StoreError::NotFound(m)) => assert!(m.contains(what), "{m}"),
            other => panic!("{what}: {other:?}"),
        }
    }
    // A parent of another tenant is not a parent.
    s.insert_token(&token("bbbbbbbbbbb5", "t_b", None, &[]), &Actor::Cli)
        .await
        .unwrap();
    let cross = token("bbbbbbbbbbb6", "t_a", Some("bbbbbbbbbbb5"), &[]);
    assert!(matches!(
        s.insert_token(&cross, &Actor::Cli).await,
        Err(StoreError::NotFound(_))
    ));
    // A revoked parent cannot have new children.
    s.insert_token(&token("bbbbbbbbbbb7", "t_a", None, &[]), &Actor::Cli)
        .await
        .unwrap();
    s.revoke_token(&id("bbbbbbbbbbb7"), &Actor::Cli, t0())
        .await
        .unwrap();
    let late = token("bbbbbbbbbbb8", "t_a", Some("bbbbbbbbbbb7"), &[]);
    assert!(matches!(
        s.insert_token(&late, &Actor::Cli).await,
        Err(StoreError::ParentInactive(_))
    ));
    // The same id twice.
    let twice = token("bbbbbbbbbbb5", "t_b", None, &[]);
    assert!(matches!(
        s.insert_token(&twice, &Actor::Cli).await,
        Err(StoreError::Conflict(_))
    ));
    let a = TenantId::parse("t_a").unwrap();
    assert_eq!(
        s.tokens(&a).await.unwrap().len(),
        1,
        "refused inserts leave nothing behind"
    );
}

async fn revoke_cascades_to_descendants_and_moves_the_generation(t: TestStore) {
    let s = &t.store;
    seed(s).await;
    // root → child → grandchild, root → child2; sibling is unrelated.
    for (tok, parent) in [
        ("rrrrrrrrrrr0", None),
        ("rrrrrrrrrrr1", Some("rrrrrrrrrrr0")),
        ("rrrrrrrrrrr2", Some("rrrrrrrrrrr1")),
        ("rrrrrrrrrrr3", Some("rrrrrrrrrrr0")),
        ("sssssssssss0", None),
    ] {
        s.insert_token(&token(tok, "t_a", parent, &[]), &Actor::Cli)
            .await
            .unwrap();
    }
    let g0 = s.revocation_generation().unwrap();
    let at = t0() + TimeDelta::hours(1);
    // Revoking the middle revokes only its subtree.
    let first = s
        .revoke_token(&id("rrrrrrrrrrr1"), &Actor::Cli, at)
        .await
        .unwrap();
    assert_eq!(first, [id("rrrrrrrrrrr1"), id("rrrrrrrrrrr2")]);
    let g1 = s.revocation_generation().unwrap();
    assert!(g1 > g0, "generation moves: {g0} → {g1}");
    let actor = Actor::Token(id("sssssssssss0"));
    let second = s
        .revoke_token(&id("rrrrrrrrrrr0"), &actor, at)
        .await
        .unwrap();
    assert_eq!(
        second,
        [id("rrrrrrrrrrr0"), id("rrrrrrrrrrr3")],
        "already revoked ones are not repeated"
    );
    let g2 = s.revocation_generation().unwrap();
    assert!(g2 > g1);
    // Idempotent: nothing new, no generation move.
    assert!(
        s.revoke_token(&id("rrrrrrrrrrr0"), &Actor::Cli, at)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.revocation_generation().unwrap(), g2);
    for tok in [
        "rrrrrrrrrrr0",
        "rrrrrrrrrrr1",
        "rrrrrrrrrrr2",
        "rrrrrrrrrrr3",
    ] {
        assert_eq!(
            s.token(&id(tok)).await.unwrap().unwrap().revoked_at,
            Some(at),
            "{tok}"
        );
    }
    assert_eq!(
        s.token(&id("sssssssssss0"))
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None
    );
    assert!(matches!(
        s.revoke_token(&id("nnnnnnnnnnnn"), &Actor::Cli, at).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn last_used_moves_forward_only(t: TestStore) {
    let s = &t.store;
    seed(s).await;
    s.insert_token(&token("llllllllllll", "t_a", None, &[]), &Actor::Cli)
        .await
        .unwrap();
    s.insert_token(&token("lllllllllll2", "t_a", None, &[]), &Actor::Cli)
        .await
        .unwrap();
    let later = t0() + TimeDelta::hours(2);
    let earlier = t0() + TimeDelta::hours(1);
    s.record_last_used(&[(id("llllllllllll"), later), (id("lllllllllll2"), earlier)])
        .await
        .unwrap();
    s.record_last_used(&[(id("llllllllllll"), earlier), (id("nnnnnnnnnnnn"), later)])
        .await
        .unwrap();
    s.record_last_used(&[]).await.unwrap();
    assert_eq!(
        s.token(&id("llllllllllll"))
            .await
            .unwrap()
            .unwrap()
            .last_used_at,
        Some(later)
    );
    assert_eq!(
        s.token(&id("lllllllllll2"))
            .await
            .unwrap()
            .unwrap()
            .last_used_at,
        Some(earlier)
    );
}

async fn audit_log_records_who_did_what(t: TestStore) {
    let clock = ManualClock::new(t0());
    let acl = acl_on(t.store.clone(), &clock);
    let tenant = acl.create_tenant("acme", &Actor::Cli).await.unwrap();
    let project = acl
        .create_project(&tenant.id, "web", "", &Actor::Cli)
        .await
        .unwrap();
    clock.advance(TimeDelta::minutes(1));
    let parent = acl
        .mint(
            &tenant.id,
            MintRequest::new(Scopes::parse("write,mint").unwrap()),
            &Actor::Cli,
        )
        .await
        .unwrap();
    let grant = acl.verify(parent.token.expose()).await.unwrap();
    let mut request = MintRequest::new(Scopes::parse("read").unwrap());
    request.projects = Some(ProjectBinding::Only(BTreeSet::from([project.id.clone()])));
    let child = acl.mint_child(&grant, request).await.unwrap();
    clock.advance(TimeDelta::minutes(1));
    acl.revoke(&parent.record.id, &Actor::Cli).await.unwrap();

    let log = acl.audit_log(&tenant.id).await.unwrap();
    let summary: Vec<(AuditAction, String, String)> = log
        .iter()
        .map(|e| (e.action, e.actor.to_string(), e.subject.clone()))
        .collect();
    let (p, c) = (parent.record.id.to_string(), child.record.id.to_string());
    assert_eq!(
        summary,
        [
            (
                AuditAction::TenantCreated,
                "cli".into(),
                tenant.id.to_string()
            ),
            (
                AuditAction::ProjectCreated,
                "cli".into(),
                project.id.to_string()
            ),
            (AuditAction::TokenMinted, "cli".into(), p.clone()),
            (AuditAction::TokenMinted, p.clone(), c.clone()),
            (AuditAction::TokenRevoked, "cli".into(), p.clone()),
            (AuditAction::TokenRevoked, "cli".into(), c.clone()),
        ]
    );
    assert!(
        log.windows(2)
            .all(|w| w[0].seq < w[1].seq && w[0].at <= w[1].at)
    );
    assert_eq!(log[3].detail["scopes"], serde_json::json!(["read"]));
    assert_eq!(
        log[3].detail["projects"],
        serde_json::json!([project.id.as_str()])
    );
    assert_eq!(log[3].detail["parent"], serde_json::json!(p));
    assert_eq!(log[5].detail["cascade_from"], serde_json::json!(p));
    assert_eq!(log[4].at, t0() + TimeDelta::minutes(2));
    // Another tenant's log is separate.
    let other = acl.create_tenant("other", &Actor::Cli).await.unwrap();
    assert_eq!(acl.audit_log(&other.id).await.unwrap().len(), 1);
}

async fn reopening_keeps_everything(t: TestStore) {
    seed(&t.store).await;
    t.store
        .insert_token(&token("oooooooooooo", "t_a", None, &["p_a1"]), &Actor::Cli)
        .await
        .unwrap();
    // A second instance on the same database (migrations run again, and are a no-op).
    let again = t.another_instance().await;
    assert_eq!(
        again.tenants().await.unwrap(),
        t.store.tenants().await.unwrap()
    );
    assert_eq!(
        again.token(&id("oooooooooooo")).await.unwrap(),
        t.store.token(&id("oooooooooooo")).await.unwrap()
    );
    let a = TenantId::parse("t_a").unwrap();
    assert_eq!(again.projects(&a).await.unwrap().len(), 2);
}

async fn times_keep_microseconds(t: TestStore) {
    let s = &t.store;
    let at = (t0() + TimeDelta::nanoseconds(123_456_789)).trunc_subsecs(6);
    s.create_tenant(
        &Tenant {
            id: TenantId::parse("t_m").unwrap(),
            name: "m".into(),
            created_at: at,
        },
        &Actor::Cli,
    )
    .await
    .unwrap();
    assert_eq!(
        s.tenant(&TenantId::parse("t_m").unwrap())
            .await
            .unwrap()
            .unwrap()
            .created_at,
        at
    );
}

async fn a_revocation_by_another_instance_is_seen_by_the_next_verification(t: TestStore) {
    // Two processes on one control plane: a server verifying (A), the admin CLI revoking (B).
    let clock = ManualClock::new(t0());
    let server = acl_on(t.store.clone(), &clock);
    let admin = acl_on(t.another_instance().await, &clock);
    let tenant = admin.create_tenant("acme", &Actor::Cli).await.unwrap();
    let issued = admin
        .mint(
            &tenant.id,
            MintRequest::new(Scopes::parse("write").unwrap()),
            &Actor::Cli,
        )
        .await
        .unwrap();
    let bearer = issued.token.expose();
    server.verify(bearer).await.unwrap();
    server.verify(bearer).await.unwrap(); // cached now
    admin.revoke(&issued.record.id, &Actor::Cli).await.unwrap();
    let revoked_at = std::time::Instant::now();
    match t.backend {
        // data_version is read on every verification: the very next one sees it.
        crate::support::Backend::Sqlite => {
            let e = server.verify(bearer).await.unwrap_err();
            assert!(e.to_string().contains("revoked"), "{e}");
        }
        // NOTIFY arrives within a round trip; verifications see it as soon as it does.
        crate::support::Backend::Postgres => {
            let seen = loop {
                if server.verify(bearer).await.is_err() {
                    break revoked_at.elapsed();
                }
                assert!(
                    revoked_at.elapsed() < std::time::Duration::from_secs(1),
                    "still valid after 1 s"
                );
                tokio::task::yield_now().await;
            };
            eprintln!(
                "postgres: revocation by another instance seen {seen:?} after its commit returned"
            );
        }
    }
}

/// td's role change: new scopes for a live token; children over them go (with their own
/// children), children within them stay; caches notice through the generation; the audit log
/// says who changed what.
async fn a_scope_change_keeps_children_within_it_and_revokes_the_rest(t: TestStore) {
    let s = &t.store;
    seed(s).await;
    // root (write,mint) → reader child (read), writer child (write) → grandchild (write).
    let mut reader = token("ccccccccccc1", "t_a", Some("ccccccccccc0"), &[]);
    reader.record.scopes = Scopes::parse("read").unwrap();
    for t in [
        token("ccccccccccc0", "t_a", None, &[]),
        reader,
        token("ccccccccccc2", "t_a", Some("ccccccccccc0"), &[]),
        token("ccccccccccc3", "t_a", Some("ccccccccccc2"), &[]),
    ] {
        s.insert_token(&t, &Actor::Cli).await.unwrap();
    }
    let g0 = s.revocation_generation().unwrap();
    let at = t0() + TimeDelta::hours(2);
    let read = Scopes::parse("read").unwrap();
    let revoked = s
        .set_token_scopes(&id("ccccccccccc0"), read, &Actor::Cli, at)
        .await
        .unwrap();
    assert_eq!(revoked, [id("ccccccccccc2"), id("ccccccccccc3")]);
    assert!(
        s.revocation_generation().unwrap() > g0,
        "caches must re-read the token"
    );
    let root = s.token(&id("ccccccccccc0")).await.unwrap().unwrap();
    assert_eq!(root.scopes, read);
    assert_eq!(root.revoked_at, None);
    assert_eq!(
        s.token(&id("ccccccccccc1"))
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None
    );
    assert_eq!(
        s.token(&id("ccccccccccc3"))
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(at)
    );
    let audit = s.audit_log(&TenantId::parse("t_a").unwrap()).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == AuditAction::TokenScopesChanged && e.subject == "ccccccccccc0")
    );
    // A revoked or unknown token cannot change.
    for gone in ["ccccccccccc2", "nnnnnnnnnnnn"] {
        assert!(
            matches!(
                s.set_token_scopes(&id(gone), read, &Actor::Cli, at).await,
                Err(StoreError::NotFound(_))
            ),
            "{gone}"
        );
    }
}

crate::both_backends!(
    tenants_are_unique_by_name_and_listed_oldest_first,
    projects_belong_to_one_tenant,
    tokens_round_trip_with_bindings_and_hash,
    token_inserts_check_tenant_projects_and_parent,
    revoke_cascades_to_descendants_and_moves_the_generation,
    last_used_moves_forward_only,
    audit_log_records_who_did_what,
    reopening_keeps_everything,
    times_keep_microseconds,
    a_revocation_by_another_instance_is_seen_by_the_next_verification,
    a_scope_change_keeps_children_within_it_and_revokes_the_rest,
);

/// Postgres only: the revocation listeners' connections die. A revocation committed meanwhile is
/// still refused — at once if the listener noticed the loss first (verification then reads the
/// rows), at worst after the one-second reconciliation read — and the listener comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_listener_loss_never_serves_a_revoked_token_for_long() {
    use std::time::{Duration, Instant};

    use crate::support::Backend;
    let Some(t) = TestStore::open(Backend::Postgres, "listener_loss").await else {
        return;
    };
    let tdsync_acl::AnyStore::Postgres(pg) = &t.store else {
        unreachable!()
    };
    let clock = ManualClock::new(t0());
    let server = acl_on(t.store.clone(), &clock);
    let admin = acl_on(t.another_instance().await, &clock);
    let tenant = admin.create_tenant("acme", &Actor::Cli).await.unwrap();
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let scopes = Scopes::parse("read").unwrap();
        let issued = admin
            .mint(&tenant.id, MintRequest::new(scopes), &Actor::Cli)
            .await
            .unwrap();
        server.verify(issued.token.expose()).await.unwrap();
        tokens.push(issued);
    }
    let refused_within = |bearer: String, limit: Duration| {
        let server = &server;
        async move {
            let start = Instant::now();
            while server.verify(&bearer).await.is_ok() {
                assert!(
                    start.elapsed() < limit,
                    "a revoked token still served after {limit:?}"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            start.elapsed()
        }
    };
    // Kill every listener (the server's and the admin's), then revoke before they reconnect.
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'LISTEN%'",
    )
    .fetch_all(pg.pool())
    .await
    .unwrap();
    assert!(!killed.is_empty());
    admin
        .revoke(&tokens[0].record.id, &Actor::Cli)
        .await
        .unwrap();
    let during = refused_within(tokens[0].token.expose().into(), Duration::from_millis(1500)).await;
    server
        .verify(tokens[1].token.expose())
        .await
        .expect("others still verify");
    // The listener comes back and notifications flow again.
    assert!(
        pg.wait_listening(Duration::from_secs(10)).await,
        "listener back"
    );
    admin
        .revoke(&tokens[2].record.id, &Actor::Cli)
        .await
        .unwrap();
    let after = refused_within(tokens[2].token.expose().into(), Duration::from_millis(1500)).await;
    eprintln!(
        "listener loss: revocation seen after {during:?}; after reconnecting, after {after:?}"
    );
}
