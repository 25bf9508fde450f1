//! Observability: a request id on every response, Prometheus metrics by route template and
//! status, and logs that carry request ids but never a token.

use std::collections::BTreeSet;

use serde_json::json;

use crate::support::{Reply, TestServer, events::creates, logs};

fn request_id(reply: &Reply) -> String {
    let id = reply.header("x-request-id").unwrap_or_else(|| {
        panic!(
            "HTTP {} without x-request-id: {}",
            reply.status,
            reply.text()
        )
    });
    assert!(
        id.len() == 32
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "not 16 random bytes in hex: {id}"
    );
    id.to_string()
}

#[test]
fn every_response_has_its_own_request_id() {
    let s = TestServer::start();
    let team = s.team("acme");
    let (p, t) = (team.project.as_str(), team.admin.token.as_str());
    let target = s.mint(&team.tenant, "read", &[], None);
    let reader = s.mint(&team.tenant, "read", &[], None);
    let big = vec![b' '; (16 << 20) + 10];
    let replies: Vec<(u16, Reply)> = vec![
        (200, s.send("GET", "/healthz", &[], None)),
        (200, s.send("GET", "/healthz", &[], None)),
        (200, s.send("GET", "/metrics", &[], None)),
        (200, s.send("GET", "/openapi.json", &[], None)),
        (201, s.post("/v1/projects", t, &json!({"name": "second"}))),
        (200, s.push(p, t, &creates("dev-a", 1..=2))),
        (200, s.pull(p, t, "after_server_seq=0")),
        (200, s.pull(p, t, "after_server_seq=2")),
        (200, s.get(&format!("/v1/projects/{p}/sync/snapshot"), t)),
        (204, s.delete(&format!("/v1/tokens/{}", target.id), t)),
        (400, s.pull(p, t, "limit=x")),
        (401, s.send("GET", "/v1/projects", &[], None)),
        (403, s.push(p, &reader.token, &creates("d", 1..=1))),
        (404, s.get("/v1/projects/p_missing", t)),
        (404, s.send("GET", "/no/such/route", &[], None)),
        (405, s.send("PATCH", "/healthz", &[], None)),
        (
            413,
            s.with_body("POST", &format!("/v1/projects/{p}/sync/push"), t, big),
        ),
        (
            400,
            s.post(&format!("/v1/projects/{p}/members"), t, &json!({})),
        ),
    ];
    let mut seen = BTreeSet::new();
    for (status, reply) in &replies {
        assert_eq!(reply.status, *status, "{}", reply.text());
        assert!(seen.insert(request_id(reply)), "a request id was repeated");
    }
}

/// The value of the sample `series` (exact name and labels) in exposition `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().unwrap())
    })
}

#[test]
fn metrics_count_requests_by_route_template_and_status() {
    let s = TestServer::start();
    let team = s.team("acme");
    let (p, t) = (team.project.as_str(), team.admin.token.as_str());
    s.push(p, t, &creates("dev-a", 1..=3)).expect(200);
    s.push(p, t, &creates("dev-a", 2..=4)).expect(200); // 1 new, 2 duplicates
    let head = s.pull(p, t, "after_server_seq=0").expect(200)["last_server_seq"].clone(); // 4 events
    s.pull(p, t, &format!("after_server_seq={head}"))
        .expect(200); // at the head: none
    s.pull(
        p,
        "tds_aaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
        "after_server_seq=0",
    );
    s.pull(p, t, "limit=0").error(400, "bad_request");
    s.send("GET", "/no/such/route", &[], None)
        .error(404, "not_found");
    s.send("GET", "/healthz", &[], None).expect(200);

    let reply = s.send("GET", "/metrics", &[], None);
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; version=0.0.4")
    );
    let text = reply.text();
    let requests = |route: &str, method: &str, status: u16| {
        sample(
            &text,
            &format!(
                "tdsync_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}}"
            ),
        )
    };
    assert_eq!(requests("/v1/projects", "POST", 201), Some(1.0), "{text}");
    assert_eq!(
        requests("/v1/projects/{id}/sync/push", "POST", 200),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        requests("/v1/projects/{id}/sync/pull", "GET", 200),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        requests("/v1/projects/{id}/sync/pull", "GET", 401),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        requests("/v1/projects/{id}/sync/pull", "GET", 400),
        Some(1.0),
        "{text}"
    );
    assert_eq!(requests("/healthz", "GET", 200), Some(1.0), "{text}");
    assert_eq!(
        requests("unmatched", "GET", 404),
        Some(1.0),
        "unknown routes are requests too: {text}"
    );
    assert_eq!(
        requests("/metrics", "GET", 200),
        None,
        "a scrape counts once served"
    );
    assert!(
        !text.contains(p),
        "a project id in the metrics: series must use route templates"
    );
    assert!(
        !text.contains("/no/such/route"),
        "a raw path in the metrics"
    );
    // Latency histograms per route.
    let pulls = "route=\"/v1/projects/{id}/sync/pull\"";
    assert_eq!(
        sample(
            &text,
            &format!("tdsync_http_request_duration_seconds_count{{{pulls}}}")
        ),
        Some(4.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!("tdsync_http_request_duration_seconds_bucket{{{pulls},le=\"+Inf\"}}")
        ),
        Some(4.0)
    );
    assert!(
        sample(
            &text,
            &format!("tdsync_http_request_duration_seconds_sum{{{pulls}}}")
        )
        .unwrap()
            > 0.0
    );
    // Events pushed (new ones only), pulls and events served, open shards.
    assert_eq!(
        sample(&text, "tdsync_events_pushed_total"),
        Some(4.0),
        "{text}"
    );
    assert_eq!(sample(&text, "tdsync_pulls_total"), Some(2.0), "{text}");
    assert_eq!(
        sample(&text, "tdsync_events_pulled_total"),
        Some(4.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "tdsync_open_shards"),
        Some(s.tenants.open_shards() as f64)
    );
    assert_eq!(s.tenants.open_shards(), 1);
    // A second project's shard opens; the gauge follows.
    let q = s.create_project(t, "second");
    s.push(&q, t, &creates("dev-a", 1..=1)).expect(200);
    let again = s.send("GET", "/metrics", &[], None).text();
    assert_eq!(sample(&again, "tdsync_open_shards"), Some(2.0), "{again}");
    assert_eq!(sample(&again, "tdsync_events_pushed_total"), Some(5.0));
    assert_eq!(
        sample(
            &again,
            "tdsync_http_requests_total{route=\"/metrics\",method=\"GET\",status=\"200\"}"
        ),
        Some(1.0)
    );
}

/// Everything the suite's servers logged so far — text and JSON, at debug level — names
/// requests by id and never holds a token secret: not of this test's tokens (used on every kind
/// of route, in good and bad requests) nor of any other test's.
#[test]
fn no_token_is_ever_logged() {
    let s = TestServer::start();
    let team = s.team("acme");
    let (p, t) = (team.project.as_str(), team.admin.token.as_str());
    let mut ids = Vec::new();
    let mut note = |reply: Reply| ids.push(request_id(&reply));
    note(s.push(p, t, &creates("dev-a", 1..=2)));
    note(s.pull(p, t, "after_server_seq=0"));
    note(s.get(&format!("/v1/projects/{p}/sync/snapshot"), t));
    note(s.get(&format!("/v1/projects/{p}/members"), t));
    note(s.get("/v1/tokens", t));
    let child = s.post("/v1/tokens", t, &json!({"scopes": "read", "ttl": "1h"}));
    let child_token = child.json()["token"].as_str().unwrap().to_string();
    logs::remember(&child_token);
    note(child);
    note(s.pull(p, &child_token, "after_server_seq=0"));
    note(s.push(p, &child_token, &creates("dev-c", 1..=1)));
    let (id, secret) = t.strip_prefix("tds_").unwrap().split_once('_').unwrap();
    let wrong = format!("tds_{id}_{}", secret.to_uppercase());
    logs::remember(&wrong);
    note(s.pull(p, &wrong, "after_server_seq=0"));
    note(s.send(
        "GET",
        "/v1/projects",
        &[("authorization", &format!("Basic {t}"))],
        None,
    ));
    note(s.send(
        "GET",
        "/v1/projects",
        &[("authorization", &format!("Bearer {t}x"))],
        None,
    ));
    let revoked = s.mint(&team.tenant, "write", &[], None);
    s.block_on(s.acl.revoke(&revoked.id, &tdsync_acl::Actor::Cli))
        .unwrap();
    note(s.pull(p, &revoked.token, "after_server_seq=0"));
    note(s.delete(&format!("/v1/projects/{p}/members/{}", revoked.id), t));

    let captured = logs::captured();
    for id in &ids {
        assert!(
            captured.contains(id.as_str()),
            "request {id} was not logged: the capture does not work"
        );
    }
    let secrets = logs::secrets();
    assert!(
        secrets.len() >= 5,
        "the secrets the suite saw: {}",
        secrets.len()
    );
    for secret in &secrets {
        assert!(
            !captured.contains(secret.as_str()),
            "a token secret is in the logs"
        );
    }
    assert!(
        !captured.to_lowercase().contains("authorization"),
        "a header was logged"
    );
}

/// Each request's log lines carry its own request id only: a request in flight (suspended on
/// the blocking pool) must not lend its span to the requests the same worker serves meanwhile.
#[test]
fn concurrent_requests_keep_their_own_request_ids_in_the_logs() {
    let s = TestServer::start();
    let team = s.team("acme");
    let (p, t) = (team.project.as_str(), team.admin.token.as_str());
    let ids: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let s = &s;
                scope.spawn(move || {
                    let from = i * 100 + 1;
                    let reply = s.push(p, t, &creates(&format!("dev-{i}"), from..=from + 99));
                    assert_eq!(reply.status, 200, "{}", reply.text());
                    let pulled = s.pull(p, t, "after_server_seq=0");
                    vec![request_id(&reply), request_id(&pulled)]
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let captured = logs::captured();
    for id in &ids {
        let lines: Vec<&str> = captured
            .lines()
            .filter(|l| l.contains(id.as_str()) && l.contains("served"))
            .collect();
        assert!(!lines.is_empty(), "no log line of request {id}");
        for line in lines {
            let found = ids_in(line);
            assert_eq!(
                found,
                BTreeSet::from([id.as_str()]),
                "a line of request {id} carries another request's id: {line}"
            );
        }
    }
}

/// The request ids a log line names (`request_id=ID` in text, `"request_id":"ID"` in JSON).
fn ids_in(line: &str) -> BTreeSet<&str> {
    line.match_indices("request_id")
        .filter_map(|(at, key)| {
            let rest = line[at + key.len()..].trim_start_matches(['=', '"', ':']);
            rest.get(..32)
        })
        .collect()
}
