//! Rate limits (`limits.rs`): per token for push, pull and other routes, per client address for
//! requests without a token and for failed authentications; td's `429 rate_limited` with
//! `Retry-After`; `X-Forwarded-For` believed only from a trusted proxy; refusals in `/metrics`.
//! Time is the test server's clock: moving it refills buckets.

use chrono::TimeDelta;
use serde_json::json;
use tdsync_gateway::limits::{Limits, TrustedProxies};
use tdsync_live::Rate;

use crate::support::{
    Reply, TestServer,
    events::{create, creates, push},
};

const PLENTY: Rate = Rate {
    per_minute: 1_000_000,
    burst: 1_000_000,
};

/// Every class at `PLENTY` (so reading `/metrics` never runs out), then `tighten`.
fn limits(tighten: impl FnOnce(&mut Limits)) -> Limits {
    let mut limits = Limits {
        push: PLENTY,
        pull: PLENTY,
        other: PLENTY,
        unauthenticated: PLENTY,
        failed_auth: PLENTY,
        ..Limits::default()
    };
    tighten(&mut limits);
    limits
}

fn rate(per_minute: u32, burst: u32) -> Rate {
    Rate { per_minute, burst }
}

/// A 429 in td's envelope with a whole-seconds `Retry-After`: its message and the seconds.
#[track_caller]
fn limited(reply: &Reply) -> (String, u64) {
    let message = reply.error(429, "rate_limited");
    let retry = reply
        .header("retry-after")
        .unwrap_or_else(|| panic!("a 429 without Retry-After: {message}"));
    let secs: u64 = retry
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After is not whole seconds: {retry:?}"));
    assert!(secs >= 1, "Retry-After {secs}");
    (message, secs)
}

/// The value of the metrics line starting with `series` (0 when absent).
fn metric(s: &TestServer, series: &str) -> u64 {
    let text = s.send("GET", "/metrics", &[], None).text();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

fn refused(s: &TestServer, class: &str) -> u64 {
    metric(
        s,
        &format!("tdsync_rate_limited_total{{class=\"{class}\"}}"),
    )
}

fn no_token(s: &TestServer, path: &str, headers: &[(&str, &str)]) -> Reply {
    s.send("GET", path, headers, None)
}

#[test]
fn a_burst_of_pushes_past_the_limit_gets_429_with_retry_after_then_succeeds() {
    let s = TestServer::start_limited(limits(|l| l.push = rate(60, 3)));
    let team = s.team("acme");
    let (p, t) = (team.project.as_str(), team.admin.token.as_str());
    for n in 1..=3 {
        s.push(
            p,
            t,
            &push("dev-a", vec![create(n, &format!("td-{n}"), "x")]),
        )
        .expect(200);
    }
    let refused_push = s.push(p, t, &push("dev-a", vec![create(4, "td-4", "x")]));
    let (message, secs) = limited(&refused_push);
    assert_eq!(secs, 1, "one push a second: the next is a second away");
    assert!(
        message.contains("pushes are limited to 60 a minute (bursts of 3)"),
        "{message}"
    );
    assert!(
        !message.contains(team.admin.id.as_str()) && !message.contains("tds_"),
        "{message}"
    );
    assert_eq!(
        s.event_count(&team.tenant, p),
        3,
        "a refused push stores nothing"
    );

    // Other classes of the same token, and the same class of another token, are not limited.
    s.pull(p, t, "after_server_seq=0").expect(200);
    assert_eq!(s.status(p, t).event_count, 3);
    let other = s.mint(&team.tenant, "write", &[], None);
    s.push(p, &other.token, &creates("dev-b", 1..=1))
        .expect(200);

    // Retry-After later, the push goes through; right away again, it is refused again.
    s.clock.advance(TimeDelta::seconds(secs as i64));
    let acks = s
        .push(p, t, &push("dev-a", vec![create(4, "td-4", "x")]))
        .expect(200);
    assert_eq!(acks["accepted"], 1);
    limited(&s.push(p, t, &push("dev-a", vec![create(5, "td-5", "x")])));

    assert_eq!(refused(&s, "push"), 2);
    assert_eq!(refused(&s, "pull"), 0);
    assert_eq!(refused(&s, "other"), 0);
    assert_eq!(
        metric(
            &s,
            "tdsync_http_requests_total{route=\"/v1/projects/{id}/sync/push\",method=\"POST\",status=\"429\"}"
        ),
        2,
        "refusals are answers like any other in the request counters"
    );
}

#[test]
fn pulls_and_other_routes_have_their_own_limits() {
    let s = TestServer::start_limited(limits(|l| {
        l.pull = rate(6, 2);
        l.other = rate(30, 2);
    }));
    let team = s.team("acme"); // creating the project is this token's first "other" request
    let (p, t) = (team.project.as_str(), team.admin.token.as_str());
    s.pull(p, t, "").expect(200);
    s.pull(p, t, "after_server_seq=0&limit=5").expect(200);
    let (message, secs) = limited(&s.pull(p, t, ""));
    assert!(
        message.contains("pulls are limited to 6 a minute (bursts of 2)"),
        "{message}"
    );
    assert_eq!(secs, 10, "six a minute: one every ten seconds");
    // Pushes are their own class.
    s.push(p, t, &creates("dev-a", 1..=2)).expect(200);

    s.get(&format!("/v1/projects/{p}/sync/status"), t)
        .expect(200);
    let (message, secs) = limited(&s.get(&format!("/v1/projects/{p}"), t));
    assert!(
        message.contains("requests other than push and pull are limited to 30 a minute"),
        "{message}"
    );
    assert_eq!(secs, 2);
    // Every route under /v1/ but push and pull is "other", a missing one too.
    limited(&s.get("/v1/tokens", t));
    limited(&s.get(&format!("/v1/projects/{p}/sync/snapshot"), t));

    s.clock.advance(TimeDelta::seconds(10));
    s.pull(p, t, "").expect(200);
    s.get("/v1/tokens", t).expect(200);
    assert_eq!(refused(&s, "pull"), 1);
    assert_eq!(refused(&s, "other"), 3);
    assert_eq!(refused(&s, "push"), 0);
}

/// A long poll is counted when it arrives, once, however long it is held.
#[test]
fn a_long_poll_counts_once() {
    let s = TestServer::start_limited(limits(|l| l.pull = rate(1, 2)));
    let team = s.team("acme");
    let (p, t) = (team.project.as_str(), team.admin.token.as_str());
    std::thread::scope(|scope| {
        let held = scope.spawn(|| s.pull(p, t, "after_server_seq=0&wait=25"));
        crate::support::eventually(
            "the long poll waits",
            std::time::Duration::from_secs(10),
            || metric(&s, "tdsync_live_subscribers") == 1,
        );
        s.push(p, t, &creates("dev-a", 1..=1)).expect(200);
        let page = held.join().unwrap().expect(200);
        assert_eq!(page["events"].as_array().unwrap().len(), 1);
    });
    s.pull(p, t, "").expect(200);
    limited(&s.pull(p, t, ""));
}

#[test]
fn requests_without_a_token_are_limited_per_client_address() {
    let s = TestServer::start_limited(limits(|l| l.unauthenticated = rate(60, 3)));
    let team = s.team("acme");
    let (p, t) = (team.project.as_str(), team.admin.token.as_str());
    no_token(&s, "/healthz", &[]).expect(200);
    no_token(&s, "/openapi.json", &[]).expect(200);
    // A /v1/ route without a token is this address's too (it answers 401 while there is room).
    no_token(&s, "/v1/projects", &[]).error(401, "unauthorized");
    let (message, secs) = limited(&no_token(&s, "/metrics", &[]));
    assert!(
        message.contains(
            "requests without a token are limited to 60 a minute (bursts of 3) per client address"
        ),
        "{message}"
    );
    assert_eq!(secs, 1);
    limited(&no_token(&s, "/healthz", &[]));
    limited(&no_token(&s, "/no/such/route", &[]));
    // A token is counted on its own: the address's limit does not touch it.
    s.pull(p, t, "").expect(200);
    s.push(p, t, &creates("dev-a", 1..=1)).expect(200);

    s.clock.advance(TimeDelta::seconds(1));
    let text = no_token(&s, "/metrics", &[]).text();
    assert!(
        text.contains("tdsync_rate_limited_total{class=\"unauthenticated\"} 3"),
        "{text}"
    );
}

/// Tokens that do not verify are counted against the address they come from: made-up token
/// ids buy no fresh buckets, and guessing a token's secret does not spend its owner's limits.
#[test]
fn failed_authentications_are_limited_per_client_address() {
    let s = TestServer::start_limited(limits(|l| {
        l.failed_auth = rate(60, 3);
        l.push = rate(60, 2);
    }));
    let team = s.team("acme");
    let (p, t) = (team.project.as_str(), team.admin.token.as_str());
    let path = format!("/v1/projects/{p}/sync/push");
    let body = serde_json::to_vec(&creates("dev-x", 1..=1)).unwrap();
    let guess = format!("tds_{}_{}", team.admin.id.as_str(), "x".repeat(32));
    let made_up = [
        "tds_aaaaaaaaaaaa_secretsecretsecretsecretsecret12",
        "tds_bbbbbbbbbbbb_secretsecretsecretsecretsecret12",
    ];
    for token in [guess.as_str(), made_up[0], made_up[1]] {
        s.with_body("POST", &path, token, body.clone())
            .error(401, "unauthorized");
    }
    // The fourth failure from this address is over the limit; a fresh made-up id too.
    let (message, secs) = limited(&s.with_body(
        "POST",
        &path,
        "tds_cccccccccccc_secretsecretsecretsecretsecret12",
        body.clone(),
    ));
    assert!(
        message.contains("too many failed authentications from this client address (at most 60 a minute, bursts of 3)"),
        "{message}"
    );
    assert_eq!(secs, 1);
    // Until the failures refill, no token from this address is verified, a good one neither.
    limited(&s.push(p, t, &creates("dev-a", 1..=1)));
    assert_eq!(s.event_count(&team.tenant, p), 0);

    s.clock.advance(TimeDelta::seconds(1));
    // The owner's push limit (burst 2) is whole: the guesses were not charged to it.
    s.push(p, t, &creates("dev-a", 1..=1)).expect(200);
    s.push(p, t, &creates("dev-a", 2..=2)).expect(200);
    limited(&s.push(p, t, &creates("dev-a", 3..=3)));
    assert_eq!(refused(&s, "failed_auth"), 2);
    assert_eq!(refused(&s, "push"), 1);
}

/// The test server listens on 127.0.0.1: with 127.0.0.0/8 trusted, `X-Forwarded-For` names the
/// client — its right-most address that is not a trusted proxy, so what a client writes into
/// the header itself changes nothing.
#[test]
fn forwarded_for_names_the_client_when_the_peer_is_a_trusted_proxy() {
    let s = TestServer::start_limited(limits(|l| {
        l.unauthenticated = rate(60, 1);
        l.trusted_proxies = "10.0.0.0/8,127.0.0.0/8".parse::<TrustedProxies>().unwrap();
    }));
    let from = |xff: &str| no_token(&s, "/healthz", &[("x-forwarded-for", xff)]);
    from("203.0.113.1").expect(200);
    limited(&from("203.0.113.1"));
    from("203.0.113.2").expect(200);
    // Through two trusted proxies: still 203.0.113.1.
    limited(&from("203.0.113.1, 10.1.1.1"));
    // A client that prepends an address of its choosing is still itself.
    limited(&from("198.51.100.7, 203.0.113.1"));
    // Without the header, the proxy itself is the client.
    no_token(&s, "/healthz", &[]).expect(200);
    limited(&no_token(&s, "/healthz", &[]));
    s.clock.advance(TimeDelta::seconds(1));
    from("203.0.113.1").expect(200);
}

#[test]
fn forwarded_for_is_ignored_from_a_peer_that_is_not_a_trusted_proxy() {
    let s = TestServer::start_limited(limits(|l| {
        l.unauthenticated = rate(60, 1);
        l.trusted_proxies = "10.0.0.0/8".parse::<TrustedProxies>().unwrap();
    }));
    let from = |xff: &str| no_token(&s, "/healthz", &[("x-forwarded-for", xff)]);
    from("203.0.113.1").expect(200);
    // Every request is 127.0.0.1's, whatever it claims.
    limited(&from("203.0.113.2"));
    limited(&no_token(&s, "/healthz", &[]));
}

/// Limits off: nothing is counted or refused.
#[test]
fn with_limits_off_nothing_is_refused() {
    let s = TestServer::start_limited(Limits {
        push: rate(1, 1),
        unauthenticated: rate(1, 1),
        failed_auth: rate(1, 1),
        ..Limits::off()
    });
    let team = s.team("acme");
    let (p, t) = (team.project.as_str(), team.admin.token.as_str());
    for n in 1..=5 {
        s.push(p, t, &creates("dev-a", n..=n)).expect(200);
        no_token(&s, "/healthz", &[]).expect(200);
        s.get(
            "/v1/tokens",
            "tds_aaaaaaaaaaaa_secretsecretsecretsecretsecret12",
        )
        .error(401, "unauthorized");
    }
    let text = no_token(&s, "/metrics", &[]).text();
    assert!(
        text.contains("tdsync_rate_limited_total{class=\"push\"} 0"),
        "{text}"
    );
}

/// Every operation of the document says it may answer 429 with `Retry-After`: by address
/// without a token, else by token (one of two shared answers).
#[test]
fn every_route_documents_429_with_retry_after() {
    let s = TestServer::start();
    let doc = no_token(&s, "/openapi.json", &[]).expect(200);
    let mut seen = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
            let name = if secured {
                "RateLimited"
            } else {
                "RateLimitedByAddress"
            };
            assert_eq!(
                op["responses"]["429"],
                json!({"$ref": format!("#/components/responses/{name}")}),
                "{method} {path}"
            );
            seen += 1;
        }
    }
    assert!(seen >= 20, "{seen} operations");
    for name in ["RateLimited", "RateLimitedByAddress"] {
        let answer = &doc["components"]["responses"][name];
        assert_eq!(
            answer["content"]["application/json"]["schema"],
            json!({"$ref": "#/components/schemas/ErrorBody"}),
            "{name}"
        );
        let seconds = &answer["headers"]["Retry-After"]["schema"];
        assert_eq!(
            (&seconds["minimum"], &seconds["maximum"]),
            (&json!(1), &json!(60)),
            "{name}"
        );
    }
}
