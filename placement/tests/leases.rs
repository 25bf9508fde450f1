//! Leases against a real Postgres (a database per test, `infra/test.sh`'s server): one owner at
//! a time, epochs raised by every takeover, a stale owner fenced out of renewing and releasing,
//! concurrent claims with exactly one winner, and new projects placed on the least loaded live
//! node.

use std::time::Duration;

use tdsync_acl::testing::PostgresTestDb;
use tdsync_placement::{Claim, Lease, NodeId, Placement, least_loaded};
use tdsync_protocol::ids::{ProjectId, TenantId};

async fn placement(test: &str) -> Option<(PostgresTestDb, Placement)> {
    let db = PostgresTestDb::create(test).await?;
    let placement = Placement::connect(db.url()).await.unwrap();
    Some((db, placement))
}

fn ids() -> (TenantId, ProjectId) {
    (
        TenantId::parse("acme").unwrap(),
        ProjectId::parse("web").unwrap(),
    )
}

fn node(name: &str) -> NodeId {
    NodeId::parse(name).unwrap()
}

const LONG: Duration = Duration::from_secs(60);
/// Short enough that a test waits for it to run out (on Postgres's clock).
const SHORT: Duration = Duration::from_millis(150);

fn granted(claim: Claim) -> Lease {
    match claim {
        Claim::Granted(lease) => lease,
        Claim::Held { by, .. } => panic!("held by {by}"),
    }
}

/// Claims for `who` until it is granted (the holder's lease has run out), for at most 10 s.
async fn claim_when_free(p: &Placement, who: &NodeId) -> Lease {
    let (tenant, project) = ids();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Claim::Granted(lease) = p.claim(&tenant, &project, who, LONG).await.unwrap() {
            return lease;
        }
        assert!(std::time::Instant::now() < deadline, "never granted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_project_has_one_owner_until_its_lease_runs_out() {
    let Some((_db, p)) = placement("placement_one_owner").await else {
        return;
    };
    let (tenant, project) = ids();
    let (a, b) = (node("node-a"), node("node-b"));
    let first = granted(p.claim(&tenant, &project, &a, SHORT).await.unwrap());
    assert_eq!(first.epoch, 1);
    // The holder claiming again renews, same epoch.
    let again = granted(p.claim(&tenant, &project, &a, SHORT).await.unwrap());
    assert_eq!(again.epoch, 1);
    assert!(again.until >= first.until);
    match p.claim(&tenant, &project, &b, LONG).await.unwrap() {
        Claim::Held { by, .. } => assert_eq!(by, a),
        Claim::Granted(l) => panic!("two owners: {l:?}"),
    }
    // Once it has run out, the other node takes over with a higher epoch.
    let taken = claim_when_free(&p, &b).await;
    assert_eq!((taken.node.clone(), taken.epoch), (b.clone(), 2));
    p.register(&b, "http://10.0.0.2:8080").await.unwrap();
    let owner = p.owner(&tenant, &project).await.unwrap().unwrap();
    assert_eq!(
        (
            owner.lease.node,
            owner.lease.epoch,
            owner.url.as_str(),
            owner.live
        ),
        (b, 2, "http://10.0.0.2:8080", true)
    );
}

#[tokio::test]
async fn a_stale_owner_can_neither_renew_nor_release() {
    let Some((_db, p)) = placement("placement_stale_owner").await else {
        return;
    };
    let (a, b) = (node("node-a"), node("node-b"));
    let (tenant, project) = ids();
    let stale = granted(p.claim(&tenant, &project, &a, SHORT).await.unwrap());
    let current = claim_when_free(&p, &b).await;
    assert_eq!(p.renew(&stale, LONG).await.unwrap(), None);
    assert!(!p.release(&stale).await.unwrap());
    assert!(p.renew_all(&a, LONG).await.unwrap().is_empty());
    // The new owner is untouched by all of it.
    let owner = p.owner(&tenant, &project).await.unwrap();
    assert!(owner.is_none(), "node-b never registered: no URL to give");
    let renewed = p.renew(&current, LONG).await.unwrap().unwrap();
    assert_eq!(renewed.epoch, current.epoch);
    // Released, it goes to the next claimer with a raised epoch, at once.
    assert!(p.release(&renewed).await.unwrap());
    let next = granted(p.claim(&tenant, &project, &a, LONG).await.unwrap());
    assert_eq!(next.epoch, current.epoch + 1);
}

#[tokio::test]
async fn of_concurrent_claims_exactly_one_wins() {
    let Some((_db, p)) = placement("placement_concurrent").await else {
        return;
    };
    let (tenant, project) = ids();
    let claims = (0..8).map(|i| {
        let (p, tenant, project) = (p.clone(), tenant.clone(), project.clone());
        tokio::spawn(async move {
            p.claim(&tenant, &project, &node(&format!("node-{i}")), LONG)
                .await
                .unwrap()
        })
    });
    let outcomes = futures_util::future::join_all(claims).await;
    let winners: Vec<Lease> = outcomes
        .into_iter()
        .filter_map(|o| match o.unwrap() {
            Claim::Granted(l) => Some(l),
            Claim::Held { .. } => None,
        })
        .collect();
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(winners[0].epoch, 1);
}

#[tokio::test]
async fn renew_all_keeps_what_a_node_holds_and_expired_lists_what_it_lost() {
    let Some((_db, p)) = placement("placement_renew_all").await else {
        return;
    };
    let (a, b) = (node("node-a"), node("node-b"));
    let tenant = TenantId::parse("acme").unwrap();
    for name in ["p1", "p2", "p3"] {
        let project = ProjectId::parse(name).unwrap();
        granted(p.claim(&tenant, &project, &a, SHORT).await.unwrap());
    }
    let kept = granted(
        p.claim(&tenant, &ProjectId::parse("p4").unwrap(), &b, LONG)
            .await
            .unwrap(),
    );
    // a stops renewing: its three leases run out and are listed for takeover; b's is not.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let expired = loop {
        let expired = p.expired(&b, 100).await.unwrap();
        if expired.len() == 3 {
            break expired;
        }
        assert!(std::time::Instant::now() < deadline, "{expired:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(expired.iter().all(|l| l.node == a));
    assert!(p.renew_all(&a, LONG).await.unwrap().is_empty());
    let renewed = p.renew_all(&b, LONG).await.unwrap();
    assert_eq!(renewed.len(), 1);
    assert_eq!(renewed[0].project, kept.project);
}

#[tokio::test]
async fn new_projects_go_to_the_least_loaded_live_node() {
    let Some((_db, p)) = placement("placement_least_loaded").await else {
        return;
    };
    let (a, b, c) = (node("node-a"), node("node-b"), node("node-c"));
    let live = Duration::from_secs(30);
    assert!(p.nodes().await.unwrap().is_empty());
    for (n, url) in [(&a, "http://a"), (&b, "http://b"), (&c, "http://c")] {
        p.register(n, url).await.unwrap();
    }
    let tenant = TenantId::parse("acme").unwrap();
    for (project, n) in [("p1", &a), ("p2", &a), ("p3", &b)] {
        let project = ProjectId::parse(project).unwrap();
        granted(p.claim(&tenant, &project, n, LONG).await.unwrap());
    }
    let pick = |nodes: &[tdsync_placement::NodeInfo], skip: &str| {
        least_loaded(nodes, live, |n| n.url == skip).map(|n| n.id.clone())
    };
    let nodes = p.nodes().await.unwrap();
    assert_eq!(pick(&nodes, ""), Some(c.clone()));
    assert_eq!(pick(&nodes, "http://c"), Some(b.clone()));
    p.set_draining(&c, true).await.unwrap();
    let nodes = p.nodes().await.unwrap();
    assert_eq!(pick(&nodes, ""), Some(b.clone()));
    // A node whose heartbeat is older than the window is not live.
    assert_eq!(least_loaded(&nodes, Duration::ZERO, |_| false), None);
    let counts: Vec<(String, i64, bool)> = nodes
        .iter()
        .map(|n| (n.id.to_string(), n.projects, n.draining))
        .collect();
    assert_eq!(
        counts,
        [
            ("node-a".to_string(), 2, false),
            ("node-b".to_string(), 1, false),
            ("node-c".to_string(), 0, true)
        ]
    );
}

#[tokio::test]
async fn a_move_hands_a_project_to_the_named_node_only() {
    let Some((_db, p)) = placement("placement_move").await else {
        return;
    };
    let (a, b, c) = (node("node-a"), node("node-b"), node("node-c"));
    for (n, url) in [(&a, "http://a"), (&b, "http://b"), (&c, "http://c")] {
        p.register(n, url).await.unwrap();
    }
    let (tenant, project) = ids();
    let held = granted(p.claim(&tenant, &project, &a, LONG).await.unwrap());
    assert!(p.request_move(&tenant, &project, &b).await.unwrap());
    assert_eq!(p.moves_from(&a).await.unwrap(), std::slice::from_ref(&held));
    // While a holds it, a keeps it (renewing does not drop the move).
    assert_eq!(
        granted(p.claim(&tenant, &project, &a, LONG).await.unwrap()).epoch,
        1
    );
    assert_eq!(p.moves_from(&a).await.unwrap().len(), 1);
    let owner = p.owner(&tenant, &project).await.unwrap().unwrap();
    assert_eq!(owner.moving_to.as_deref(), Some("http://b"));
    // a releases: c may not take it, b may, and the move is done.
    assert!(p.release(&held).await.unwrap());
    match p.claim(&tenant, &project, &c, LONG).await.unwrap() {
        Claim::Held { by, .. } => assert_eq!(by, b),
        Claim::Granted(l) => panic!("c took a project moving to b: {l:?}"),
    }
    assert!(p.expired(&c, 10).await.unwrap().is_empty());
    assert_eq!(p.expired(&b, 10).await.unwrap().len(), 1);
    let moved = granted(p.claim(&tenant, &project, &b, LONG).await.unwrap());
    assert_eq!(moved.epoch, 2);
    let owner = p.owner(&tenant, &project).await.unwrap().unwrap();
    assert_eq!((owner.url.as_str(), owner.moving_to), ("http://b", None));
    let leases = p.leases().await.unwrap();
    assert_eq!(leases.len(), 1);
    assert!(leases[0].1 > 0.0 && leases[0].2.is_none(), "{leases:?}");
}

#[test]
fn node_ids_are_checked() {
    assert!(NodeId::parse("shard-1_a").is_ok());
    for bad in ["", "a b", "../x", &"x".repeat(65)] {
        assert!(NodeId::parse(bad).is_err(), "{bad:?}");
    }
}
