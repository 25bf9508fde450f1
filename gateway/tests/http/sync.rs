//! td's push, pull and status, field for field (td-wire-protocol.md §1.7–1.9), the body limit,
//! and URLs built by concatenation (`//v1//…`).

use serde_json::{Value, json};

use crate::support::{
    TestServer,
    events::{self, create, creates, event, issue, push},
};

#[test]
fn a_push_acks_new_events_and_answers_duplicates_with_their_original_seq() {
    let s = TestServer::start();
    let team = s.team("acme");
    let (p, t) = (team.project.as_str(), team.admin.token.as_str());
    let first = s.push(p, t, &creates("dev-a", 1..=3));
    // td's exact body: no `rejected` key when nothing was rejected.
    assert_eq!(
        first.expect(200),
        json!({"accepted": 3, "acks": [
            {"client_action_id": 1, "server_seq": 1},
            {"client_action_id": 2, "server_seq": 2},
            {"client_action_id": 3, "server_seq": 3},
        ]})
    );
    assert_eq!(first.header("content-type"), Some("application/json"));
    // A retried batch (td re-sends when an earlier reply was lost): the old events are
    // duplicates with their original seq, the new one is acked.
    let retry = s.push(
        p,
        t,
        &push(
            "dev-a",
            vec![create(2, "td-2", "issue 2"), create(4, "td-4", "four")],
        ),
    );
    // Seqs strictly increase and are never reused; gaps are allowed (td-wire-protocol.md §1.8:
    // td's own insert-or-ignore leaves them where a duplicate was refused).
    let retry = retry.expect(200);
    assert_eq!(retry["accepted"], 1);
    assert_eq!(
        retry["rejected"],
        json!([{"client_action_id": 2, "reason": "duplicate", "server_seq": 2}])
    );
    let seq4 = ack_seq(&retry, 4);
    assert!(seq4 > 3, "{retry}");
    // A duplicate within one request is a duplicate of the first copy.
    let twice = s.push(
        p,
        t,
        &push(
            "dev-a",
            vec![create(5, "td-5", "five"), create(5, "td-5", "five")],
        ),
    );
    let twice = twice.expect(200);
    let seq5 = ack_seq(&twice, 5);
    assert!(seq5 > seq4, "{twice}");
    assert_eq!(
        twice["rejected"],
        json!([{"client_action_id": 5, "reason": "duplicate", "server_seq": seq5}])
    );
    // The key is (device, session, client action id): another device's action 1 is new.
    let other = s.push(p, t, &push("dev-b", vec![create(1, "td-b1", "b")]));
    let other = other.expect(200);
    assert_eq!(other["accepted"], 1);
    assert!(other.get("rejected").is_none(), "{other}");
    let seq_b = ack_seq(&other, 1);
    assert!(seq_b > seq5, "{other}");
    let status = s.status(p, t);
    assert_eq!((status.event_count, status.last_server_seq), (6, seq_b));
}

/// A client action id is a JSON integer, and `7.0` is the integer 7 in JSON (and in the API
/// document's `type: integer`): it is read as 7, and a retry written `7` is its duplicate. A
/// number with a fraction is refused and nothing is stored.
#[test]
fn a_client_action_id_written_with_a_zero_fraction_is_that_integer() {
    let s = TestServer::start();
    let team = s.team("acme");
    let (p, t) = (team.project.as_str(), team.admin.token.as_str());
    let whole = s.push(p, t, &push("dev-a", vec![create(7, "td-7", "seven")]));
    let mut float = push("dev-a", vec![create(8, "td-8", "eight")]);
    float["events"][0]["client_action_id"] = json!(8.0);
    let reply = s.push(p, t, &float).expect(200);
    assert_eq!(reply["acks"][0]["client_action_id"], json!(8), "{reply}");
    let seq8 = ack_seq(&reply, 8);
    assert!(seq8 > ack_seq(&whole.expect(200), 7));
    let retry = s.push(p, t, &push("dev-a", vec![create(8, "td-8", "eight")]));
    assert_eq!(
        retry.expect(200)["rejected"],
        json!([{"client_action_id": 8, "reason": "duplicate", "server_seq": seq8}])
    );
    let mut fraction = push("dev-a", vec![create(9, "td-9", "nine")]);
    fraction["events"][0]["client_action_id"] = json!(9.5);
    let refused = s.push(p, t, &fraction).error(400, "bad_request");
    assert!(
        refused.contains("client_action_id") || refused.contains("9.5"),
        "{refused}"
    );
    assert_eq!(s.status(p, t).event_count, 2);
}

/// The server_seq acked for `caid` (the reply must ack it exactly once).
fn ack_seq(reply: &serde_json::Value, caid: i64) -> i64 {
    let acks: Vec<i64> = reply["acks"]
        .as_array()
        .expect("acks")
        .iter()
        .filter(|a| a["client_action_id"] == caid)
        .map(|a| a["server_seq"].as_i64().unwrap())
        .collect();
    assert_eq!(acks.len(), 1, "{reply}");
    acks[0]
}

#[test]
fn an_event_without_entity_id_is_rejected_alone() {
    let s = TestServer::start();
    let team = s.team("acme");
    let (p, t) = (team.project.as_str(), team.admin.token.as_str());
    let mut nameless = create(1, "td-1", "x");
    nameless["entity_id"] = json!("");
    let reply = s.push(p, t, &push("dev-a", vec![nameless, create(2, "td-2", "y")]));
    assert_eq!(
        reply.expect(200),
        json!({"accepted": 1,
               "acks": [{"client_action_id": 2, "server_seq": 1}],
               "rejected": [{"client_action_id": 1, "reason": "empty entity_id"}]})
    );
    assert_eq!(s.status(p, t).event_count, 1);
}

/// Every whole-request refusal of td's server (§1.7), plus bodies that are not a push at all:
/// 400 `bad_request` naming the problem, and nothing stored.
#[test]
fn every_refusal_of_tds_validation_is_400_and_stores_nothing() {
    let s = TestServer::start();
    let team = s.team("acme");
    let (p, t) = (team.project.as_str(), team.admin.token.as_str());
    s.push(p, t, &creates("dev-a", 1..=1)).expect(200);
    let ok = || create(7, "td-7", "seven");
    let mut unknown_entity = ok();
    unknown_entity["entity_type"] = json!("widgets");
    let mut bad_time = ok();
    bad_time["client_timestamp"] = json!("21/08/2026 14:41");
    let mut no_payload = ok();
    no_payload.as_object_mut().unwrap().remove("payload");
    let mut string_caid = ok();
    string_caid["client_action_id"] = json!("7");
    let too_many = creates("dev-a", 10..=1010);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{".to_vec(), "invalid json body"),
        (b"".to_vec(), "invalid json body"),
        (b"[1,2]".to_vec(), "invalid json body"),
        (
            json!({"session_id": "s", "events": [ok()]})
                .to_string()
                .into(),
            "device_id is empty",
        ),
        (
            json!({"device_id": "", "session_id": "s", "events": [ok()]})
                .to_string()
                .into(),
            "device_id is empty",
        ),
        (
            json!({"device_id": "d", "session_id": "", "events": [ok()]})
                .to_string()
                .into(),
            "session_id is empty",
        ),
        (
            json!({"device_id": "d", "session_id": "s", "events": []})
                .to_string()
                .into(),
            "events is empty",
        ),
        (
            json!({"device_id": "d", "session_id": "s"})
                .to_string()
                .into(),
            "events is empty",
        ),
        (
            push("d", vec![ok(), unknown_entity]).to_string().into(),
            "unknown entity_type \"widgets\"",
        ),
        (
            push("d", vec![bad_time]).to_string().into(),
            "invalid client_timestamp",
        ),
        (
            push("d", vec![no_payload]).to_string().into(),
            "invalid json body",
        ),
        (
            push("d", vec![string_caid]).to_string().into(),
            "invalid json body",
        ),
        (
            too_many.to_string().into(),
            "too many events: 1001 in one push, the limit is 1000",
        ),
    ];
    for (body, needle) in cases {
        let shown = String::from_utf8_lossy(&body[..body.len().min(120)]).into_owned();
        let reply = s.with_body("POST", &format!("/v1/projects/{p}/sync/push"), t, body);
        let message = reply.error(400, "bad_request");
        assert!(
            message.contains(needle),
            "{shown}: {message:?} lacks {needle:?}"
        );
        let status = s.status(p, t);
        assert_eq!(
            (status.event_count, status.last_server_seq),
            (1, 1),
            "{shown}"
        );
    }
    // 1000 events is the limit, not over it.
    let full = s.push(p, t, &creates("dev-a", 2..=1001));
    assert_eq!(full.expect(200)["accepted"], 1000);
}

/// A body over 16 MiB is refused with 413 in td's envelope; one just under is a normal push
/// (td serve sends whole backlogs unchunked).
#[test]
fn the_body_limit_is_16_mib_answered_by_413_in_tds_envelope() {
    let s = TestServer::start();
    let team = s.team("acme");
    let (p, t) = (team.project.as_str(), team.admin.token.as_str());
    let sized = |total: usize| -> Vec<u8> {
        let shell = push(
            "dev-a",
            vec![event(
                1,
                "create",
                "issues",
                "td-big",
                events::with(issue("td-big", "big"), "description", json!("")),
                json!({}),
            )],
        )
        .to_string();
        let filler = "x".repeat(total - shell.len());
        let body = push(
            "dev-a",
            vec![event(
                1,
                "create",
                "issues",
                "td-big",
                events::with(issue("td-big", "big"), "description", json!(filler)),
                json!({}),
            )],
        )
        .to_string();
        assert_eq!(body.len(), total);
        body.into_bytes()
    };
    let over = s.with_body(
        "POST",
        &format!("/v1/projects/{p}/sync/push"),
        t,
        sized((16 << 20) + 1),
    );
    let message = over.error(413, "payload_too_large");
    assert!(message.contains("16 MiB"), "{message}");
    assert_eq!(s.status(p, t).event_count, 0);
    let under = s.with_body(
        "POST",
        &format!("/v1/projects/{p}/sync/push"),
        t,
        sized(16 << 20),
    );
    assert_eq!(under.expect(200)["accepted"], 1);
    assert_eq!(s.status(p, t).event_count, 1);
}

fn seqs(page: &Value) -> Vec<i64> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["server_seq"].as_i64().unwrap())
        .collect()
}

#[test]
fn pull_returns_events_in_order_with_tds_cursor_and_has_more() {
    let s = TestServer::start();
    let team = s.team("acme");
    let (p, t) = (team.project.as_str(), team.admin.token.as_str());
    // dev-a: seqs 1-3 and 7-8; dev-b: 4-6.
    s.push(p, t, &creates("dev-a", 1..=3)).expect(200);
    s.push(p, t, &creates("dev-b", 11..=13)).expect(200);
    s.push(p, t, &creates("dev-a", 4..=5)).expect(200);

    let all = s.pull(p, t, "after_server_seq=0&limit=1000").expect(200);
    assert_eq!(seqs(&all), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(
        (all["last_server_seq"].clone(), all["has_more"].clone()),
        (json!(8), json!(false))
    );
    // Every field td reads, and the payload as raw JSON exactly as pushed.
    let first = &all["events"][3];
    let mut keys: Vec<&str> = first
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "action_type",
            "client_action_id",
            "client_timestamp",
            "device_id",
            "entity_id",
            "entity_type",
            "payload",
            "server_seq",
            "session_id"
        ]
    );
    let pushed = create(11, "td-11", "issue 11");
    assert_eq!(first["device_id"], "dev-b");
    assert_eq!(first["session_id"], events::SESSION);
    assert_eq!(first["client_action_id"], 11);
    assert_eq!(
        (
            first["action_type"].as_str(),
            first["entity_type"].as_str(),
            first["entity_id"].as_str()
        ),
        (Some("create"), Some("issues"), Some("td-11"))
    );
    assert_eq!(first["payload"], pushed["payload"]);
    assert_eq!(first["client_timestamp"], "2026-08-21T14:41:18Z");

    // A full page says so; the cursor is the last returned seq.
    let page = s.pull(p, t, "after_server_seq=3&limit=2").expect(200);
    assert_eq!(seqs(&page), [4, 5]);
    assert_eq!(
        (page["last_server_seq"].clone(), page["has_more"].clone()),
        (json!(5), json!(true))
    );
    let last = s.pull(p, t, "after_server_seq=5&limit=3").expect(200);
    assert_eq!(seqs(&last), [6, 7, 8]);
    assert_eq!(last["has_more"], true, "td: has_more = (returned == limit)");
    // At or past the head: no events, the request's cursor back (never null events).
    for after in [8, 100] {
        let empty = s
            .pull(p, t, &format!("after_server_seq={after}&limit=1000"))
            .expect(200);
        assert_eq!(
            empty,
            json!({"events": [], "last_server_seq": after, "has_more": false})
        );
    }
    // exclude_client is accepted and ignored: the caller's own events come back too, so td's
    // autosync (which asks without them) re-applies them in server order, as `td sync` does.
    let with_own = s
        .pull(p, t, "after_server_seq=0&exclude_client=dev-a&limit=1000")
        .expect(200);
    assert_eq!(seqs(&with_own), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert!(
        with_own["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["device_id"] == "dev-a"),
        "dev-a's own events are returned: {with_own}"
    );
    assert_eq!(with_own, all, "the same page as without the parameter");
    let own_tail = s
        .pull(p, t, "after_server_seq=6&exclude_client=dev-a&limit=1000")
        .expect(200);
    assert_eq!(seqs(&own_tail), [7, 8]);
    assert_eq!(own_tail["last_server_seq"], 8);
    // Defaults: no parameters at all is after 0, limit 1000; an empty exclude_client is fine.
    assert_eq!(
        seqs(&s.pull(p, t, "").expect(200)),
        [1, 2, 3, 4, 5, 6, 7, 8]
    );
    assert_eq!(
        seqs(
            &s.pull(p, t, "after_server_seq=0&exclude_client=&limit=1000")
                .expect(200)
        )
        .len(),
        8
    );
}

#[test]
fn names_are_stored_canonical() {
    let s = TestServer::start();
    let team = s.team("acme");
    let (p, t) = (team.project.as_str(), team.admin.token.as_str());
    // Singular entity aliases and td's local action names travel canonical (§3.1, §3.2).
    let base = issue("td-1", "one");
    let started = events::with(base.clone(), "status", json!("in_progress"));
    let mut legacy = event(2, "start", "issue", "td-1", started, base.clone());
    legacy["entity_type"] = json!("Issue");
    s.push(
        p,
        t,
        &push(
            "dev-a",
            vec![event(1, "create", "issue", "td-1", base, json!({})), legacy],
        ),
    )
    .expect(200);
    let page = s.pull(p, t, "after_server_seq=0").expect(200);
    let names: Vec<(String, String)> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["entity_type"].as_str().unwrap().into(),
                e["action_type"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("issues".into(), "create".into()),
            ("issues".into(), "update".into())
        ]
    );
}

#[test]
fn pull_pages_default_to_1000_and_are_capped_at_10000() {
    let s = TestServer::start();
    let team = s.team("acme");
    let (p, t) = (team.project.as_str(), team.admin.token.as_str());
    for batch in 0..10 {
        let from = batch * 1000 + 1;
        s.push(p, t, &creates("dev-a", from..=from + 999))
            .expect(200);
    }
    s.push(p, t, &creates("dev-a", 10_001..=10_050)).expect(200);
    let page = |query: &str| s.pull(p, t, query).expect(200);
    let default = page("after_server_seq=0");
    assert_eq!(seqs(&default).len(), 1000);
    assert_eq!(
        (
            default["last_server_seq"].clone(),
            default["has_more"].clone()
        ),
        (json!(1000), json!(true))
    );
    let capped = page("after_server_seq=0&limit=20000");
    assert_eq!(seqs(&capped), (1..=10_000).collect::<Vec<i64>>());
    assert_eq!(capped["has_more"], true);
    let rest = page("after_server_seq=10000&limit=20000");
    assert_eq!(seqs(&rest), (10_001..=10_050).collect::<Vec<i64>>());
    assert_eq!(
        (rest["last_server_seq"].clone(), rest["has_more"].clone()),
        (json!(10_050), json!(false))
    );
}

#[test]
fn pull_parameters_that_are_not_integers_are_400() {
    let s = TestServer::start();
    let team = s.team("acme");
    let (p, t) = (team.project.as_str(), team.admin.token.as_str());
    s.push(p, t, &creates("dev-a", 1..=2)).expect(200);
    for (query, needle) in [
        ("after_server_seq=x", "after_server_seq must be an integer"),
        (
            "after_server_seq=1.5",
            "after_server_seq must be an integer",
        ),
        ("limit=abc", "limit must be an integer"),
        ("limit=10e2", "limit must be an integer"),
        ("limit=0", "limit must be at least 1"),
        ("limit=-5", "limit must be at least 1"),
        // At the head too (the gateway answers those from memory).
        ("after_server_seq=2&limit=0", "limit must be at least 1"),
        ("after_server_seq=99&limit=nope", "limit must be an integer"),
        // A plain 64-bit integer, as td's server reads it: no padding, nothing out of range.
        ("limit=%205", "limit must be an integer"),
        (
            "after_server_seq=1%20",
            "after_server_seq must be an integer",
        ),
        (
            "after_server_seq=9223372036854775808",
            "after_server_seq must be an integer",
        ),
    ] {
        let message = s.pull(p, t, query).error(400, "bad_request");
        assert!(message.contains(needle), "{query}: {message}");
    }
    // An empty value is an absent one (td's server; the document's `allowEmptyValue`).
    assert_eq!(
        s.pull(p, t, "after_server_seq=&limit=").expect(200),
        s.pull(p, t, "").expect(200)
    );
}

#[test]
fn status_counts_the_log() {
    let s = TestServer::start();
    let team = s.team("acme");
    let (p, t) = (team.project.as_str(), team.admin.token.as_str());
    let path = format!("/v1/projects/{p}/sync/status");
    // Empty: zeros and no last_event_time key (td's omitempty).
    assert_eq!(
        s.get(&path, t).expect(200),
        json!({"event_count": 0, "last_server_seq": 0})
    );
    s.push(p, t, &creates("dev-a", 1..=3)).expect(200);
    s.push(p, t, &creates("dev-a", 2..=4)).expect(200);
    let status = s.get(&path, t).expect(200);
    // Four events; the head is the newest one's seq (past 4 when a refused duplicate left a gap).
    assert_eq!(status["event_count"], 4);
    let head = s.pull(p, t, "after_server_seq=0").expect(200)["last_server_seq"].clone();
    assert_eq!(status["last_server_seq"], head);
    assert!(head.as_i64().unwrap() >= 4, "{status}");
    let time = status["last_event_time"]
        .as_str()
        .expect("the head's server time");
    assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{time}");
}

#[test]
fn duplicate_slashes_are_tolerated() {
    let s = TestServer::start();
    let team = s.team("acme");
    let (p, t) = (team.project.as_str(), team.admin.token.as_str());
    // TD_SYNC_URL with a trailing slash: td asks for `//v1/...`.
    let listed = s.get("//v1//projects", t).expect(200);
    assert_eq!(listed, s.get("/v1/projects", t).expect(200));
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(
        s.send("GET", "//healthz", &[], None).expect(200),
        json!({"status": "ok", "live": "in-process"})
    );
    let pushed = s.post(
        &format!("//v1/projects/{p}//sync/push"),
        t,
        &creates("dev-a", 1..=2),
    );
    assert_eq!(pushed.expect(200)["accepted"], 2);
    // The query survives the rewrite.
    let page = s.get(
        &format!("//v1//projects//{p}///sync//pull?after_server_seq=1&limit=1000"),
        t,
    );
    assert_eq!(seqs(&page.expect(200)), [2]);
    let created = s.post(
        "//v1/projects",
        t,
        &json!({"name": "via-slashes", "description": ""}),
    );
    created.expect(201);
}
