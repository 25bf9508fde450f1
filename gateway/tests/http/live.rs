//! The live layer over HTTP: the SSE stream of a project's changes, long-polled pulls,
//! poll-interval advice and device cursors.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use tdsync_client::events::EventStream;

use crate::support::{
    TestServer,
    events::{create, creates, event, issue, push},
};

const SOON: Duration = Duration::from_secs(10);

fn stream(s: &TestServer, p: &str, token: &str, last_id: Option<&str>) -> EventStream {
    EventStream::open(&s.base, p, token, last_id).expect("the stream opens")
}

/// Waits until the server has `n` live subscribers (SSE streams or long-polls) in all.
fn subscribed(s: &TestServer, token: &str, n: usize) {
    let line = format!("tdsync_live_subscribers {n}");
    crate::support::eventually("the subscriber is registered", SOON, || {
        s.get("/metrics", token).text().contains(&line)
    });
}

#[test]
fn every_push_and_restore_reaches_the_stream_as_a_change_and_tds_issue_events() {
    let s = TestServer::start();
    let team = s.team("acme");
    let (p, t) = (team.project.as_str(), team.admin.token.as_str());
    let sse = stream(&s, p, t, None);
    subscribed(&s, t, 1);

    s.push(p, t, &creates("dev-a", 1..=2)).expect(200);
    let change = sse.next(SOON).expect("a change event");
    assert_eq!(change.event, "change");
    assert_eq!(change.id.as_deref(), Some("2"));
    let body = change.json();
    assert_eq!(
        (
            body["cause"].clone(),
            body["head"].clone(),
            body["first"].clone()
        ),
        (json!("push"), json!(2), json!(1))
    );
    assert_eq!(
        body["touched"][1],
        json!({"entity_type": "issues", "entity_id": "td-2", "action": "create"})
    );
    for id in ["td-1", "td-2"] {
        let e = sse.next(SOON).expect("td-sync's issue event");
        assert_eq!(e.event, "issue.upserted");
        assert_eq!(e.json()["issue_id"], id);
        assert_eq!(e.json()["change_token"], "2");
    }
    // A delete is td-sync's issue.deleted.
    let gone = event(
        3,
        "delete",
        "issues",
        "td-1",
        json!({}),
        issue("td-1", "issue 1"),
    );
    s.push(p, t, &push("dev-a", vec![gone])).expect(200);
    assert_eq!(sse.next(SOON).unwrap().event, "change");
    let deleted = sse.next(SOON).unwrap();
    assert_eq!(
        (deleted.event.as_str(), deleted.json()["issue_id"].clone()),
        ("issue.deleted", json!("td-1"))
    );
    // A push of duplicates only changes nothing, and says nothing.
    s.push(p, t, &creates("dev-a", 1..=2)).expect(200);
    assert!(sse.next(Duration::from_millis(300)).is_none());
}

#[test]
fn a_restore_is_a_change_too() {
    let s = TestServer::start();
    let team = s.team("acme");
    let (p, t) = (team.project.as_str(), team.admin.token.as_str());
    let base = issue("td-1", "base");
    s.push(p, t, &push("dev-a", vec![create(1, "td-1", "base")]))
        .expect(200);
    s.push(
        p,
        t,
        &push(
            "dev-a",
            vec![crate::support::events::rename(2, &base, "alice's")],
        ),
    )
    .expect(200);
    s.push(
        p,
        t,
        &push(
            "dev-b",
            vec![crate::support::events::rename(1, &base, "bob's")],
        ),
    )
    .expect(200);
    let sse = stream(&s, p, t, None);
    subscribed(&s, t, 1);
    let restored = s
        .post(
            &format!("/v1/projects/{p}/conflicts/1/restore"),
            t,
            &json!({}),
        )
        .expect(200);
    assert_eq!(
        (
            restored["entity_type"].clone(),
            restored["entity_id"].clone()
        ),
        (json!("issues"), json!("td-1"))
    );
    let change = sse.next(SOON).expect("the restore's change");
    assert_eq!(change.json()["cause"], "restore");
    assert_eq!(change.json()["head"], restored["server_seq"]);
    assert_eq!(sse.next(SOON).unwrap().event, "issue.upserted");
}

#[test]
fn a_reconnecting_client_gets_refresh_then_what_it_missed() {
    let s = TestServer::start();
    let team = s.team("acme");
    let (p, t) = (team.project.as_str(), team.admin.token.as_str());
    s.push(p, t, &creates("dev-a", 1..=3)).expect(200);
    let sse = stream(&s, p, t, Some("1"));
    let refresh = sse.next(SOON).expect("refresh first, as td-sync");
    assert_eq!(
        (
            refresh.event.as_str(),
            refresh.json()["change_token"].clone()
        ),
        ("refresh", json!("1"))
    );
    let missed = sse.next(SOON).expect("the events after seq 1");
    assert_eq!(missed.event, "change");
    assert_eq!(
        (
            missed.json()["first"].clone(),
            missed.json()["head"].clone()
        ),
        (json!(2), json!(3))
    );
    let ids: Vec<Value> = (0..2)
        .map(|_| sse.next(SOON).unwrap().json()["issue_id"].clone())
        .collect();
    assert_eq!(ids, vec![json!("td-2"), json!("td-3")]);
    // td-sync's own tokens (not seqs) get the refresh alone; nonsense is refused, not echoed.
    let other = stream(&s, p, t, Some("1733312345678901234x"));
    assert_eq!(other.next(SOON).unwrap().event, "refresh");
    assert!(other.next(Duration::from_millis(300)).is_none());
    let huge = "9".repeat(65);
    let refused = EventStream::open(&s.base, p, t, Some(&huge));
    assert!(
        matches!(
            refused,
            Err(tdsync_client::TransportError::Rejected { status: 400, .. })
        ),
        "a Last-Event-ID of 65 characters is refused"
    );
}

#[test]
fn a_long_poll_waits_at_the_head_and_answers_when_events_arrive() {
    let s = TestServer::start();
    let team = s.team("acme");
    let (p, t) = (team.project.as_str(), team.admin.token.as_str());
    s.push(p, t, &creates("dev-a", 1..=1)).expect(200);
    // Every pull says how long this server holds one.
    let offer = s.get(&format!("/v1/projects/{p}/sync/pull?after_server_seq=0"), t);
    assert_eq!(offer.header("x-tdsync-long-poll"), Some("25"));

    // Nothing arrives: the answer comes at the deadline, empty.
    let started = Instant::now();
    let idle = s
        .get(
            &format!("/v1/projects/{p}/sync/pull?after_server_seq=1&wait=1"),
            t,
        )
        .expect(200);
    let took = started.elapsed();
    assert_eq!(idle["events"], json!([]));
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "{took:?}"
    );

    // A push wakes it (wait=10^9 is held for at most 25 s, not refused).
    let url = format!("/v1/projects/{p}/sync/pull?after_server_seq=1&wait=1000000000");
    let (base, token) = (s.base.clone(), t.to_string());
    let waiting = std::thread::spawn(move || {
        let mut r = ureq::get(format!("{base}{url}"))
            .header("authorization", format!("Bearer {token}"))
            .call()
            .unwrap();
        let body: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
        (Instant::now(), body)
    });
    subscribed(&s, t, 1);
    let pushed = Instant::now();
    s.push(p, t, &creates("dev-b", 1..=1)).expect(200);
    let (answered, body) = waiting.join().unwrap();
    assert_eq!(body["events"][0]["server_seq"], 2, "{body}");
    assert!(
        answered.duration_since(pushed) < Duration::from_secs(2),
        "woken by the push, not the deadline"
    );

    for bad in ["-1", "x", "1.5"] {
        s.get(
            &format!("/v1/projects/{p}/sync/pull?after_server_seq=1&wait={bad}"),
            t,
        )
        .error(400, "bad_request");
    }
}

#[test]
fn pulls_and_status_at_the_head_advise_a_poll_interval() {
    let s = TestServer::start();
    let team = s.team("acme");
    let (p, t) = (team.project.as_str(), team.admin.token.as_str());
    let status = format!("/v1/projects/{p}/sync/status");
    // No events yet: idle.
    assert_eq!(s.get(&status, t).header("x-poll-interval"), Some("15"));
    s.push(p, t, &creates("dev-a", 1..=1)).expect(200);
    assert_eq!(s.get(&status, t).header("x-poll-interval"), Some("1"));
    let at_head = s.get(&format!("/v1/projects/{p}/sync/pull?after_server_seq=1"), t);
    assert_eq!(at_head.header("x-poll-interval"), Some("1"));
    // A page with events is no answer to "when again": pull on.
    let page = s.get(&format!("/v1/projects/{p}/sync/pull?after_server_seq=0"), t);
    assert_eq!(page.header("x-poll-interval"), None);
}

#[test]
fn admins_see_where_every_device_is() {
    let s = TestServer::start();
    let team = s.team("acme");
    let (p, admin) = (team.project.as_str(), team.admin.token.as_str());
    let writer = s.mint(&team.tenant, "write", &[], None);
    s.push(p, &writer.token, &creates("dev-a", 1..=3))
        .expect(200);
    s.get(
        &format!("/v1/projects/{p}/sync/pull?after_server_seq=0&limit=1&exclude_client=dev-b"),
        &writer.token,
    )
    .expect(200);
    let cursors = format!("/v1/projects/{p}/sync/cursors");
    s.get(&cursors, &writer.token)
        .error(403, "insufficient_scope");
    let seen = s.get(&cursors, admin).expect(200);
    assert_eq!(seen["head"], 3);
    let devices: Vec<(Value, Value, Value)> = seen["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["device_id"].clone(),
                d["last_seq"].clone(),
                d["behind"].clone(),
            )
        })
        .collect();
    assert_eq!(
        devices,
        vec![
            (json!("dev-a"), json!(3), json!(0)),
            (json!("dev-b"), json!(1), json!(2))
        ]
    );
}
