//! The client library's HTTP transport against the real server: two td databases converge
//! through it, the server's refusals arrive as the error classes the client acts on, and the
//! live layer reaches the client — the long-poll offer and poll advice learnt from answers,
//! long polls answered by a push, at their deadline or cancelled, and the sync agent waiting at
//! the head with them (or polling at the advised interval).

use std::time::{Duration, Instant};

use tdsync_client::{
    AgentEvent, AgentOptions, SyncAgent,
    engine::{Identity, SyncClient},
    tddb::TdDatabase,
    transport::{Advice, Cancel, Transport, TransportError, http::Http},
};
use tdsync_harness::td_writer::{IssueChange, IssueSpec, TdWriter};
use tdsync_projection::Dump;
use tdsync_protocol::wire::PullQuery;

use crate::support::{TestServer, events::creates, eventually};

const SOON: Duration = Duration::from_secs(10);

fn replica(
    s: &TestServer,
    dir: &std::path::Path,
    name: &str,
    project: &str,
    token: &str,
) -> SyncClient<Http> {
    let db = TdDatabase::create(&dir.join(format!("{name}.db"))).unwrap();
    db.link(project).unwrap();
    SyncClient::new(
        db,
        Http::new(&s.base, project, Some(token)).unwrap(),
        Identity {
            device_id: format!("dev-{name}"),
            session_id: format!("ses_{name}"),
        },
    )
}

#[test]
fn two_td_databases_converge_through_the_http_transport() {
    let s = TestServer::start();
    let team = s.team("acme");
    let dir = tempfile::tempdir().unwrap();
    let a = replica(&s, dir.path(), "a", &team.project, &team.admin.token);
    let b = replica(&s, dir.path(), "b", &team.project, &team.admin.token);

    let id = {
        let mut w = TdWriter::new(a.db(), "ses_a", 1);
        let id = w.create_issue(&IssueSpec::new("over the wire ✓")).unwrap();
        w.add_comment(&id, "first").unwrap();
        id
    };
    let pushed = a.push().unwrap();
    assert_eq!(pushed.accepted, 2, "{pushed:?}");
    b.sync().unwrap();
    {
        let mut w = TdWriter::new(b.db(), "ses_b", 2);
        w.update_issue(
            &id,
            &IssueChange {
                title: Some("renamed by b".into()),
                ..IssueChange::default()
            },
        )
        .unwrap();
    }
    b.sync().unwrap();
    a.sync().unwrap();

    let dump = |c: &SyncClient<Http>| Dump::read(c.db().connection()).unwrap();
    let (da, db_) = (dump(&a), dump(&b));
    assert!(da.row_count() > 0);
    if let Some(d) = da.first_difference(&db_) {
        panic!("the replicas differ: {d:?}");
    }
    let title: String = a
        .db()
        .connection()
        .query_row("SELECT title FROM issues WHERE id = ?1", [&id], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(title, "renamed by b");
    assert_eq!(
        s.status(&team.project, &team.admin.token).last_server_seq,
        3
    );
}

#[test]
fn refusals_arrive_as_the_classes_the_client_acts_on() {
    let s = TestServer::start();
    let team = s.team("acme");
    let other = s.team("globex");
    let reader = s.mint(&team.tenant, "read", &[], None);

    let call =
        |project: &str, token: &str| Http::new(&s.base, project, Some(token)).unwrap().status();
    assert!(call(&team.project, &reader.token).is_ok());
    assert!(
        matches!(
            call(&team.project, "tds_nope_nope"),
            Err(TransportError::Unauthorized(_))
        ),
        "an unknown token is unauthorized"
    );
    // Another tenant's project is not found, exactly like a missing one.
    assert!(matches!(
        call(&other.project, &reader.token),
        Err(TransportError::NotFound(_))
    ));

    // A read-only token may not push.
    let dir = tempfile::tempdir().unwrap();
    let viewer = replica(&s, dir.path(), "viewer", &team.project, &reader.token);
    TdWriter::new(viewer.db(), "ses_viewer", 3)
        .create_issue(&IssueSpec::new("kept locally"))
        .unwrap();
    let err = viewer.push().unwrap_err().to_string();
    assert!(err.contains("forbidden"), "{err}");
    assert_eq!(
        viewer.pending_count().unwrap(),
        1,
        "the refused change stays pending"
    );

    // A token revoked is unauthorized at once.
    s.block_on(s.acl.revoke(&reader.id, &tdsync_acl::Actor::Cli))
        .unwrap();
    assert!(matches!(
        call(&team.project, &reader.token),
        Err(TransportError::Unauthorized(_))
    ));
}

/// Waits until the server holds `n` live subscribers (SSE streams or long polls) in all.
fn subscribed(s: &TestServer, token: &str, n: usize) {
    let line = format!("tdsync_live_subscribers {n}\n");
    eventually("the server holds the long poll", SOON, || {
        s.get("/metrics", token).text().contains(&line)
    });
}

fn at(after: i64) -> PullQuery {
    PullQuery {
        after_server_seq: after,
        limit: None,
        exclude_client: None,
    }
}

#[test]
fn the_transport_learns_the_long_poll_offer_and_the_poll_advice_from_answers() {
    let s = TestServer::start();
    let team = s.team("acme");
    let (p, t) = (team.project.as_str(), team.admin.token.as_str());
    let http = Http::new(&s.base, p, Some(t)).unwrap();
    assert_eq!(http.advice(), Advice::default(), "nothing asked yet");
    // A project without events is idle: ask again in 15 s. A status carries no offer.
    http.status().unwrap();
    assert_eq!(
        http.advice(),
        Advice {
            long_poll: None,
            poll_interval: Some(Duration::from_secs(15)),
        }
    );
    s.push(p, t, &creates("dev-a", 1..=2)).expect(200);
    // A page of events offers long polls and gives no interval: pull on.
    assert_eq!(http.pull(&at(0)).unwrap().events.len(), 2);
    assert_eq!(
        http.advice(),
        Advice {
            long_poll: Some(Duration::from_secs(25)),
            poll_interval: None,
        }
    );
    // At the head of a busy project: about a second.
    assert!(http.pull(&at(2)).unwrap().events.is_empty());
    assert_eq!(http.advice().poll_interval, Some(Duration::from_secs(1)));
    assert_eq!(http.advice().long_poll, Some(Duration::from_secs(25)));
}

#[test]
fn a_long_poll_answers_on_a_push_at_its_deadline_or_when_cancelled() {
    let s = TestServer::start();
    let team = s.team("acme");
    let (p, t) = (team.project.as_str(), team.admin.token.as_str());
    s.push(p, t, &creates("dev-a", 1..=1)).expect(200);
    let http = Http::new(&s.base, p, Some(t)).unwrap();

    // Nothing arrives: empty at the deadline.
    let started = Instant::now();
    let idle = http
        .pull_wait(&at(1), Duration::from_secs(1), &Cancel::new())
        .unwrap();
    let took = started.elapsed();
    assert!(idle.events.is_empty());
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "{took:?}"
    );

    // A push answers it.
    std::thread::scope(|scope| {
        let waiting = scope.spawn(|| {
            let page = http
                .pull_wait(&at(1), Duration::from_secs(25), &Cancel::new())
                .unwrap();
            (Instant::now(), page)
        });
        subscribed(&s, t, 1);
        let pushed = Instant::now();
        s.push(p, t, &creates("dev-b", 1..=1)).expect(200);
        let (answered, page) = waiting.join().unwrap();
        assert_eq!(page.events[0].server_seq, 2);
        let took = answered.duration_since(pushed);
        assert!(took < Duration::from_secs(2), "{took:?}");
    });

    // A cancel returns at once, without the answer.
    let cancel = Cancel::new();
    std::thread::scope(|scope| {
        let waiting = scope.spawn(|| {
            let result = http.pull_wait(&at(2), Duration::from_secs(25), &cancel);
            (Instant::now(), result)
        });
        subscribed(&s, t, 1);
        let cancelled = Instant::now();
        cancel.cancel();
        let (returned, result) = waiting.join().unwrap();
        assert_eq!(result.unwrap_err(), TransportError::Cancelled);
        let took = returned.duration_since(cancelled);
        assert!(took < Duration::from_secs(1), "{took:?}");
    });
    // The request it left behind ends with the next event.
    s.push(p, t, &creates("dev-b", 2..=2)).expect(200);
    subscribed(&s, t, 0);
}

fn slow() -> AgentOptions {
    AgentOptions {
        fast: Duration::from_secs(30),
        idle: Duration::from_secs(60),
        ..AgentOptions::default()
    }
}

#[test]
fn the_agent_waits_at_the_head_with_long_polls_and_stops_promptly() {
    let s = TestServer::start();
    let team = s.team("acme");
    let (p, t) = (team.project.as_str(), team.admin.token.as_str());
    let dir = tempfile::tempdir().unwrap();
    let a = replica(&s, dir.path(), "a", p, t);
    let b = replica(&s, dir.path(), "b", p, t);
    let agent = SyncAgent::start(a, slow());
    let events = agent.subscribe();
    eventually("a long poll in flight", SOON, || agent.stats().long_polling);
    subscribed(&s, t, 1);

    let id = TdWriter::new(b.db(), "ses_b", 1)
        .create_issue(&IssueSpec::new("live"))
        .unwrap();
    let pushed = Instant::now();
    b.push().unwrap();
    match events
        .recv_timeout(SOON)
        .expect("the agent heard of b's push")
    {
        AgentEvent::Changed { entities, .. } => {
            assert!(entities.iter().any(|(_, e)| *e == id), "{entities:?}")
        }
        other => panic!("{other:?}"),
    }
    let took = pushed.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "{took:?}: polling every 30 s could not have brought it"
    );
    let stats = agent.stats();
    assert_eq!(stats.syncs, 1, "brought by a long poll: {stats:?}");

    // Stop while the next long poll (25 s) is held.
    eventually("waiting again", SOON, || agent.stats().long_polling);
    subscribed(&s, t, 1);
    let asked = Instant::now();
    let (a, flushed) = agent.stop();
    let took = asked.elapsed();
    assert!(flushed.is_ok());
    assert!(took < Duration::from_secs(2), "stop took {took:?}");
    let title: String = a
        .db()
        .connection()
        .query_row("SELECT title FROM issues WHERE id = ?1", [&id], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(title, "live");
    // The abandoned request ends with the next event.
    s.push(p, t, &creates("dev-c", 1..=1)).expect(200);
    subscribed(&s, t, 0);
}

#[test]
fn without_long_polls_the_agent_polls_at_the_interval_the_server_advises() {
    let s = TestServer::start();
    let team = s.team("acme");
    let (p, t) = (team.project.as_str(), team.admin.token.as_str());
    let dir = tempfile::tempdir().unwrap();
    let a = replica(&s, dir.path(), "a", p, t);
    // On its own it would poll every 10–50 ms.
    let opts = AgentOptions {
        fast: Duration::from_millis(10),
        idle: Duration::from_millis(50),
        long_poll: false,
    };
    let agent = SyncAgent::start(a, opts);
    // An empty project is idle: the server says 15 s.
    eventually("the first sync", SOON, || agent.stats().syncs == 1);
    assert_eq!(agent.stats().interval, Duration::from_secs(15));
    // Busy now. The nudged sync pulls the new event (a page with events advises nothing: the
    // agent's own fast interval), the next one is at the head: about a second.
    s.push(p, t, &creates("dev-b", 1..=1)).expect(200);
    agent.notify_remote_change();
    eventually("polling at the advised second", SOON, || {
        let stats = agent.stats();
        stats.syncs >= 3 && stats.interval == Duration::from_secs(1)
    });
    let stats = agent.stats();
    assert_eq!((stats.long_polls, stats.long_polling), (0, false));
    agent.stop().1.unwrap();
}
