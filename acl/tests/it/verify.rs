//! Token verification through the `Acl` service: caching, immediate revocation and expiry,
//! refusals, batched last-used times, minting against a live store.

use std::{collections::BTreeSet, sync::Arc};

use chrono::TimeDelta;
use tdsync_acl::{
    AclError, Action, Actor, AuthError, Denied, ManualClock, MintError, MintRequest,
    ProjectBinding, Scopes, TOKEN_PREFIX, Target,
};

use crate::support::{TestStore, acl_on, t0};

fn scopes(list: &str) -> Scopes {
    Scopes::parse(list).unwrap()
}

async fn steady_state_is_served_from_the_cache(t: TestStore) {
    let clock = ManualClock::new(t0());
    let acl = acl_on(t.store.clone(), &clock);
    let tenant = acl.create_tenant("acme", &Actor::Cli).await.unwrap();
    let issued = acl
        .mint(&tenant.id, MintRequest::new(scopes("read")), &Actor::Cli)
        .await
        .unwrap();
    let first = acl.verify(issued.token.expose()).await.unwrap();
    let second = acl.verify(issued.token.expose()).await.unwrap();
    assert!(
        Arc::ptr_eq(&first, &second),
        "the second verification is the cached grant"
    );
    assert_eq!(acl.cached_tokens(), 1);
    assert_eq!(first.id, issued.record.id);
    assert_eq!(first.scopes, scopes("read"));
}

async fn revocation_is_immediate_and_reaches_children(t: TestStore) {
    let clock = ManualClock::new(t0());
    let acl = acl_on(t.store.clone(), &clock);
    let tenant = acl.create_tenant("acme", &Actor::Cli).await.unwrap();
    let parent = acl
        .mint(
            &tenant.id,
            MintRequest::new(scopes("write,mint")),
            &Actor::Cli,
        )
        .await
        .unwrap();
    let grant = acl.verify(parent.token.expose()).await.unwrap();
    let child = acl
        .mint_child(&grant, MintRequest::new(scopes("read")))
        .await
        .unwrap();
    let other = acl
        .mint(&tenant.id, MintRequest::new(scopes("read")), &Actor::Cli)
        .await
        .unwrap();
    for tok in [&parent, &child, &other] {
        acl.verify(tok.token.expose()).await.unwrap();
        acl.verify(tok.token.expose()).await.unwrap();
    }
    let revoked = acl.revoke(&parent.record.id, &Actor::Cli).await.unwrap();
    assert_eq!(revoked, [parent.record.id.clone(), child.record.id.clone()]);
    for tok in [&parent, &child] {
        let e = acl.verify(tok.token.expose()).await.unwrap_err();
        assert!(matches!(e, AuthError::Revoked { .. }), "{e}");
        // …and stays refused (from the refusal cache).
        assert!(matches!(
            acl.verify(tok.token.expose()).await,
            Err(AuthError::Revoked { .. })
        ));
    }
    acl.verify(other.token.expose())
        .await
        .expect("unrelated tokens stay valid");
    // A revoked parent cannot mint any more, even with a grant verified before.
    let late = acl
        .mint_child(&grant, MintRequest::new(scopes("read")))
        .await
        .unwrap_err();
    assert!(
        matches!(late, AclError::Mint(MintError::ParentRevoked(_))),
        "{late}"
    );
}

async fn expiry_is_immediate(t: TestStore) {
    let clock = ManualClock::new(t0());
    let acl = acl_on(t.store.clone(), &clock);
    let tenant = acl.create_tenant("acme", &Actor::Cli).await.unwrap();
    let mut request = MintRequest::new(scopes("read"));
    request.ttl = Some(TimeDelta::minutes(30));
    let issued = acl.mint(&tenant.id, request, &Actor::Cli).await.unwrap();
    assert_eq!(
        issued.record.expires_at,
        Some(t0() + TimeDelta::minutes(30))
    );
    acl.verify(issued.token.expose()).await.unwrap();
    clock.advance(TimeDelta::minutes(29));
    acl.verify(issued.token.expose()).await.unwrap();
    clock.advance(TimeDelta::minutes(1));
    let e = acl.verify(issued.token.expose()).await.unwrap_err();
    assert!(matches!(e, AuthError::Expired { .. }), "{e}");
    assert!(
        e.to_string().contains("expired at 2026-11-01T12:30:00"),
        "{e}"
    );
}

async fn bad_tokens_are_refused_without_saying_which_part_is_wrong(t: TestStore) {
    let clock = ManualClock::new(t0());
    let acl = acl_on(t.store.clone(), &clock);
    let tenant = acl.create_tenant("acme", &Actor::Cli).await.unwrap();
    let issued = acl
        .mint(&tenant.id, MintRequest::new(scopes("read")), &Actor::Cli)
        .await
        .unwrap();
    let good = issued.token.expose();
    let wrong_secret = format!(
        "{}{}",
        &good[..good.len() - 1],
        if good.ends_with('a') { 'b' } else { 'a' }
    );
    let unknown_id = format!(
        "{TOKEN_PREFIX}zzzzzzzzzzzz{}",
        &good[TOKEN_PREFIX.len() + 12..]
    );
    for bad in [&wrong_secret, &unknown_id] {
        assert_eq!(acl.verify(bad).await.unwrap_err(), AuthError::Invalid);
        assert_eq!(
            acl.verify(bad).await.unwrap_err(),
            AuthError::Invalid,
            "remembered"
        );
    }
    for malformed in [
        "",
        "Bearer x",
        "td_live_0123456789abcdefghijklmnopqrstuv",
        &good[1..],
        "tds_é",
    ] {
        assert_eq!(
            acl.verify(malformed).await.unwrap_err(),
            AuthError::Malformed,
            "{malformed:?}"
        );
    }
    acl.verify(good).await.expect("the real token still works");
}

async fn last_used_is_written_in_batches(t: TestStore) {
    let clock = ManualClock::new(t0());
    let acl = acl_on(t.store.clone(), &clock);
    let tenant = acl.create_tenant("acme", &Actor::Cli).await.unwrap();
    let a = acl
        .mint(&tenant.id, MintRequest::new(scopes("read")), &Actor::Cli)
        .await
        .unwrap();
    let b = acl
        .mint(&tenant.id, MintRequest::new(scopes("read")), &Actor::Cli)
        .await
        .unwrap();
    for i in 0..100 {
        clock.advance(TimeDelta::seconds(1));
        acl.verify(a.token.expose()).await.unwrap();
        if i == 10 {
            acl.verify(b.token.expose()).await.unwrap();
        }
    }
    assert_eq!(
        acl.pending_last_used(),
        2,
        "one pending time per token, not per request"
    );
    assert_eq!(
        acl.token(&a.record.id).await.unwrap().last_used_at,
        None,
        "no write per request"
    );
    assert_eq!(acl.flush_last_used().await.unwrap(), 2);
    assert_eq!(acl.pending_last_used(), 0);
    assert_eq!(
        acl.token(&a.record.id).await.unwrap().last_used_at,
        Some(t0() + TimeDelta::seconds(100))
    );
    assert_eq!(
        acl.token(&b.record.id).await.unwrap().last_used_at,
        Some(t0() + TimeDelta::seconds(11))
    );
    assert_eq!(acl.flush_last_used().await.unwrap(), 0);
}

async fn minting_checks_the_live_store(t: TestStore) {
    let clock = ManualClock::new(t0());
    let acl = acl_on(t.store.clone(), &clock);
    let acme = acl.create_tenant("acme", &Actor::Cli).await.unwrap();
    let other = acl.create_tenant("other", &Actor::Cli).await.unwrap();
    let web = acl
        .create_project(&acme.id, "web", "the site", &Actor::Cli)
        .await
        .unwrap();
    let theirs = acl
        .create_project(&other.id, "theirs", "", &Actor::Cli)
        .await
        .unwrap();
    // A root token bound to another tenant's project is refused by the store.
    let mut request = MintRequest::new(scopes("read"));
    request.projects = Some(ProjectBinding::Only(BTreeSet::from([theirs.id.clone()])));
    let e = acl.mint(&acme.id, request, &Actor::Cli).await.unwrap_err();
    assert!(
        matches!(&e, AclError::NotFound(m) if m.contains(theirs.id.as_str())),
        "{e}"
    );
    // A child inherits what it does not ask for.
    let mut request = MintRequest::new(scopes("write,mint"));
    request.projects = Some(ProjectBinding::Only(BTreeSet::from([web.id.clone()])));
    request.ttl = Some(TimeDelta::hours(12));
    let parent = acl.mint(&acme.id, request, &Actor::Cli).await.unwrap();
    let grant = acl.verify(parent.token.expose()).await.unwrap();
    let child = acl
        .mint_child(&grant, MintRequest::new(scopes("read")))
        .await
        .unwrap();
    assert_eq!(child.record.projects, parent.record.projects);
    assert_eq!(child.record.expires_at, parent.record.expires_at);
    assert_eq!(child.record.parent.as_ref(), Some(&parent.record.id));
    assert_eq!(child.record.tenant, acme.id);
    let child_grant = acl.verify(child.token.expose()).await.unwrap();
    let on_web = Target::Project(&acme.id, &web.id);
    acl.decide(&child_grant, Action::ReadEvents, on_web)
        .unwrap();
    acl.decide(&child_grant, Action::PushEvents, on_web)
        .unwrap_err();
    // Names and inputs are checked.
    let mut request = MintRequest::new(scopes("read"));
    request.name = Some("  ".into());
    assert!(matches!(
        acl.mint(&acme.id, request, &Actor::Cli).await,
        Err(AclError::Invalid(_))
    ));
    assert!(matches!(
        acl.create_tenant("\u{7}", &Actor::Cli).await,
        Err(AclError::Invalid(_))
    ));
    assert!(matches!(
        acl.create_tenant("acme", &Actor::Cli).await,
        Err(AclError::Conflict(_))
    ));
}

async fn verified_grants_feed_the_decision(t: TestStore) {
    let clock = ManualClock::new(t0());
    let acl = acl_on(t.store.clone(), &clock);
    let acme = acl.create_tenant("acme", &Actor::Cli).await.unwrap();
    let web = acl
        .create_project(&acme.id, "web", "", &Actor::Cli)
        .await
        .unwrap();
    let reader = acl
        .mint(&acme.id, MintRequest::new(scopes("read")), &Actor::Cli)
        .await
        .unwrap();
    let on_web = Target::Project(&acme.id, &web.id);
    let grant = acl.verify(reader.token.expose()).await.unwrap();
    acl.decide(&grant, Action::ReadEvents, on_web).unwrap();
    let e = acl.decide(&grant, Action::PushEvents, on_web).unwrap_err();
    assert!(matches!(e, Denied::MissingScope { .. }), "{e}");
    assert!(e.to_string().contains("needs the write scope"), "{e}");
    let e = acl.verify("tds_nope").await.unwrap_err();
    assert_eq!(e, AuthError::Malformed, "{e}");
}

async fn the_flusher_writes_last_used_in_the_background(t: TestStore) {
    let clock = ManualClock::new(t0());
    let acl = Arc::new(acl_on(t.store.clone(), &clock));
    let tenant = acl.create_tenant("acme", &Actor::Cli).await.unwrap();
    let issued = acl
        .mint(&tenant.id, MintRequest::new(scopes("read")), &Actor::Cli)
        .await
        .unwrap();
    let flusher = acl.spawn_last_used_flusher(std::time::Duration::from_millis(20));
    acl.verify(issued.token.expose()).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while acl
        .token(&issued.record.id)
        .await
        .unwrap()
        .last_used_at
        .is_none()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the flusher never wrote"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // The flusher holds only a weak reference: dropping the service stops it.
    drop(acl);
    tokio::time::timeout(std::time::Duration::from_secs(5), flusher)
        .await
        .expect("the flusher stops with its service")
        .unwrap();
}

crate::both_backends!(
    the_flusher_writes_last_used_in_the_background,
    steady_state_is_served_from_the_cache,
    revocation_is_immediate_and_reaches_children,
    expiry_is_immediate,
    bad_tokens_are_refused_without_saying_which_part_is_wrong,
    last_used_is_written_in_batches,
    minting_checks_the_live_store,
    verified_grants_feed_the_decision,
);
