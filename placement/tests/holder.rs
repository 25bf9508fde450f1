//! A node's own leases against a real Postgres: it may write what it holds; a node that stops
//! renewing stops being allowed to write before anyone else can claim its projects; renewing
//! keeps the leases; a lease taken over is reported lost; Postgres unreachable means the
//! writes stop by themselves.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tdsync_acl::testing::PostgresTestDb;
use tdsync_placement::{Acquired, Claim, Holder, Lease, NodeId, Placement};
use tdsync_protocol::ids::{ProjectId, TenantId};

const LEASE: Duration = Duration::from_millis(600);
const MARGIN: Duration = Duration::from_millis(200);

fn ids() -> (TenantId, ProjectId) {
    (
        TenantId::parse("acme").unwrap(),
        ProjectId::parse("web").unwrap(),
    )
}

type Lost = Arc<Mutex<Vec<Lease>>>;

fn holder(p: &Placement, name: &str) -> (Arc<Holder>, Lost) {
    let lost: Lost = Arc::default();
    let seen = lost.clone();
    let h = Holder::new(
        p.clone(),
        NodeId::parse(name).unwrap(),
        LEASE,
        MARGIN,
        Box::new(move |l| seen.lock().unwrap().push(l.clone())),
    );
    (Arc::new(h), lost)
}

/// Polls `check` every 10 ms until it is true, for at most 10 s.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_node_that_stops_renewing_stops_writing_before_another_can_claim() {
    let Some(db) = PostgresTestDb::create("holder_stops_writing").await else {
        return;
    };
    let p = Placement::connect(db.url()).await.unwrap();
    let (tenant, project) = ids();
    let (a, _) = holder(&p, "node-a");
    let (b, _) = holder(&p, "node-b");
    assert_eq!(
        a.acquire(&tenant, &project).await.unwrap(),
        Acquired::Held {
            epoch: 1,
            new: true
        }
    );
    assert_eq!(a.may_write(&tenant, &project), Some(1));
    assert_eq!(
        b.acquire(&tenant, &project).await.unwrap(),
        Acquired::Elsewhere {
            by: a.node().clone()
        }
    );
    // a is "paused": it renews nothing. b keeps trying; the moment b is granted, a must
    // already have stopped writing.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Acquired::Held { epoch, new } = b.acquire(&tenant, &project).await.unwrap() {
            assert_eq!((epoch, new), (2, true));
            assert_eq!(a.may_write(&tenant, &project), None, "two writers");
            break;
        }
        assert!(Instant::now() < deadline, "b never took over");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn renewing_keeps_a_lease_and_a_takeover_is_reported_lost() {
    let Some(db) = PostgresTestDb::create("holder_renewing").await else {
        return;
    };
    let p = Placement::connect(db.url()).await.unwrap();
    let (tenant, project) = ids();
    let (a, lost) = holder(&p, "node-a");
    a.acquire(&tenant, &project).await.unwrap();
    let renewals = a.spawn_renewals(Duration::from_millis(100));
    // Three lease lengths later a still writes, and nobody else could claim.
    let started = Instant::now();
    while started.elapsed() < LEASE * 3 {
        assert_eq!(a.may_write(&tenant, &project), Some(1));
        match p
            .claim(&tenant, &project, &NodeId::parse("node-b").unwrap(), LEASE)
            .await
            .unwrap()
        {
            Claim::Held { by, .. } => assert_eq!(&by, a.node()),
            Claim::Granted(l) => panic!("taken while renewed: {l:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    renewals.abort();
    // Released and claimed again (a new epoch), then taken by b: a's next renewal reports it
    // lost.
    assert!(a.release(&tenant, &project).await.unwrap());
    assert_eq!(a.may_write(&tenant, &project), None);
    a.acquire(&tenant, &project).await.unwrap();
    assert_eq!(a.may_write(&tenant, &project), Some(2));
    let b = NodeId::parse("node-b").unwrap();
    // b takes it once a's lease runs out (a does not renew meanwhile).
    loop {
        if let Claim::Granted(l) = p.claim(&tenant, &project, &b, LEASE).await.unwrap() {
            assert_eq!(l.epoch, 3);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.renew().await.unwrap();
    let lost = lost.lock().unwrap().clone();
    assert_eq!(lost.len(), 1);
    assert_eq!(lost[0].epoch, 2);
    assert_eq!(a.may_write(&tenant, &project), None);
}

#[tokio::test]
async fn with_postgres_unreachable_the_writes_stop_by_themselves() {
    let Some(db) = PostgresTestDb::create("holder_unreachable").await else {
        return;
    };
    let p = Placement::connect(db.url()).await.unwrap();
    let (tenant, project) = ids();
    let (a, _) = holder(&p, "node-a");
    a.acquire(&tenant, &project).await.unwrap();
    let renewals = a.spawn_renewals(Duration::from_millis(100));
    db.set_reachable(false).await;
    until("a stops writing", || {
        a.may_write(&tenant, &project).is_none()
    })
    .await;
    db.set_reachable(true).await;
    renewals.abort();
}

/// Claims made while renewals run are never taken for lost ones: a renewal only judges the
/// leases that existed when it was sent.
#[tokio::test]
async fn claims_made_during_a_renewal_are_not_lost() {
    let Some(db) = PostgresTestDb::create("holder_claims_during_renewal").await else {
        return;
    };
    let p = Placement::connect(db.url()).await.unwrap();
    let (a, lost) = holder(&p, "node-a");
    let renewals = a.spawn_renewals(Duration::from_millis(5));
    let tenant = TenantId::parse("acme").unwrap();
    let claims = (0..200).map(|i| {
        let (a, tenant) = (a.clone(), tenant.clone());
        tokio::spawn(async move {
            let project = ProjectId::parse(&format!("p{i}")).unwrap();
            a.acquire(&tenant, &project).await.unwrap();
            project
        })
    });
    let projects: Vec<ProjectId> = futures_util::future::join_all(claims)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    a.renew().await.unwrap();
    renewals.abort();
    assert!(
        lost.lock().unwrap().is_empty(),
        "{:?}",
        lost.lock().unwrap()
    );
    for project in &projects {
        assert_eq!(a.may_write(&tenant, project), Some(1), "{project}");
    }
}
