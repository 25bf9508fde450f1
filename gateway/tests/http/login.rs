//! `td auth login` against the gateway, the way td drives it: td's email + PKCE device flow
//! (`POST /v1/auth/device/start`, `POST /v1/auth/device/poll`) and the page the emailed link
//! opens (`/auth/device/approve`), with a real SMTP server (the sink of `infra/services.sh`'s
//! `ensure_smtp`; these tests skip loudly without it unless `TDSYNC_REQUIRE_SERVICES=1`).
//!
//! The helpers here (`pub(crate)`) are shared with `invitations.rs`: a person gets in only through
//! an invitation, and answers further ones with the token a login gives them.

use std::{sync::Barrier, time::Duration};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::TimeDelta;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tdsync_acl::{AuditAction, TenantId};
use tdsync_gateway::{people::PeopleSettings, routes::login::PER_CLIENT};
use tdsync_mail::testing::{Maildir, ReceivedMail, smtp_url, unique_address};

use crate::support::{Reply, TestServer, events::creates, logs, t0};

/// How long an email may take to reach the sink.
pub(crate) const MAIL: Duration = Duration::from_secs(30);

/// A server (default rate limits) whose emails go to the test SMTP sink, and the sink's maildir;
/// `None` (said loudly) when there is no sink and services are not required.
pub(crate) fn with_mail(test: &str) -> Option<(TestServer, Maildir)> {
    let smtp = smtp_url(test)?;
    let mail = Maildir::from_env(test)?;
    let server = TestServer::start_with_people(PeopleSettings {
        smtp_url: Some(smtp),
        ..PeopleSettings::default()
    });
    Some((server, mail))
}

/// How many messages the sink has taken for `address` so far. The server sends inside the
/// request (the sink writes the file before it answers 250), so once a start or an invite has
/// been answered, whatever it sent is here: no waiting is needed to see that nothing was.
pub(crate) fn delivered_to(mail: &Maildir, address: &str) -> usize {
    std::fs::read_dir(mail.dir())
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| {
            // `<sequence>-<first recipient>.eml`; hidden names are messages being written.
            !name.starts_with('.')
                && name
                    .strip_suffix(".eml")
                    .and_then(|n| n.split_once('-'))
                    .is_some_and(|(_, to)| to.eq_ignore_ascii_case(address))
        })
        .count()
}

/// A PKCE pair as td makes one: a 43-character base64url verifier and its S256 challenge.
#[derive(Debug, Clone)]
pub(crate) struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub(crate) fn new() -> Pkce {
        Pkce::of(&URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>()))
    }

    fn of(verifier: &str) -> Pkce {
        assert_eq!(verifier.len(), 43, "{verifier}");
        Pkce {
            verifier: verifier.to_string(),
            challenge: URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
        }
    }
}

/// A JSON POST without a token (td's login calls carry none).
pub(crate) fn post_json(s: &TestServer, path: &str, body: &Value) -> Reply {
    post_raw(s, path, serde_json::to_vec(body).unwrap())
}

fn post_raw(s: &TestServer, path: &str, body: Vec<u8>) -> Reply {
    s.send(
        "POST",
        path,
        &[("content-type", "application/json")],
        Some(body),
    )
}

/// td's start request.
pub(crate) fn start(s: &TestServer, email: &str, pkce: &Pkce, device: &str) -> Reply {
    post_json(
        s,
        "/v1/auth/device/start",
        &json!({
            "email": email,
            "code_challenge": pkce.challenge,
            "code_challenge_method": "S256",
            "device_name": device,
        }),
    )
}

/// td's poll request.
pub(crate) fn poll(s: &TestServer, device_code: &str, verifier: &str) -> Reply {
    post_json(
        s,
        "/v1/auth/device/poll",
        &json!({"device_code": device_code, "code_verifier": verifier}),
    )
}

/// A started login: what td keeps while it polls.
#[derive(Debug, Clone)]
pub(crate) struct Started {
    pub pkce: Pkce,
    pub device_code: String,
}

impl Started {
    pub(crate) fn poll(&self, s: &TestServer) -> Reply {
        poll(s, &self.device_code, &self.pkce.verifier)
    }
}

/// Starts a login for `email` and checks the answer's shape (the same for every address).
#[track_caller]
pub(crate) fn begin(s: &TestServer, email: &str, device: &str) -> Started {
    let pkce = Pkce::new();
    let answer = start(s, email, &pkce, device).expect(200);
    assert_started_shape(&answer);
    Started {
        pkce,
        device_code: answer["device_code"].as_str().unwrap().to_string(),
    }
}

#[track_caller]
fn assert_started_shape(answer: &Value) {
    let mut keys: Vec<&str> = answer
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["device_code", "email_sent", "expires_in", "interval"],
        "{answer}"
    );
    assert_eq!(answer["expires_in"], 900, "{answer}");
    assert_eq!(answer["interval"], 5, "{answer}");
    assert_eq!(answer["email_sent"], true, "{answer}");
    let code = answer["device_code"].as_str().unwrap();
    assert!(code.len() >= 32, "a short device code: {answer}");
}

/// Waits for the next login email to `email` and returns it with its approval link.
pub(crate) fn approval_email(
    s: &TestServer,
    mail: &Maildir,
    email: &str,
) -> (ReceivedMail, String) {
    let received = mail.wait_for_blocking(email, MAIL);
    let prefix = format!("{}/auth/device/approve?token=", s.base);
    let link = received
        .link_starting_with(&prefix)
        .unwrap_or_else(|| panic!("no link starting with {prefix} in:\n{}", received.body_text));
    (received, link)
}

/// The `token` of an approval link.
pub(crate) fn link_token(link: &str) -> String {
    let token = link.split_once("token=").unwrap().1;
    assert!(
        token.chars().all(|c| c.is_ascii_alphanumeric() || c == '.'),
        "a link token that needs encoding: {token}"
    );
    token.to_string()
}

/// Opens the link as a browser (or a mail scanner) would.
pub(crate) fn open_link(s: &TestServer, link: &str) -> Reply {
    let path = link.strip_prefix(&s.base).expect("a link to this server");
    s.send("GET", path, &[], None)
}

/// The approval page's form, submitted.
pub(crate) fn approve(s: &TestServer, token: &str) -> Reply {
    s.send(
        "POST",
        "/auth/device/approve",
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(format!("token={token}").into_bytes()),
    )
}

/// Someone logged in with `td auth login`.
#[derive(Debug, Clone)]
pub(crate) struct Person {
    pub email: String,
    pub api_key: String,
    pub user_id: String,
}

/// A whole `td auth login` for `email` (who must be known: a member or invited): start, the
/// emailed link approved, the poll's token.
pub(crate) fn log_in(s: &TestServer, mail: &Maildir, email: &str) -> (Person, Reply) {
    let started = begin(s, email, "td-cli@laptop");
    let (_, link) = approval_email(s, mail, email);
    let approved = approve(s, &link_token(&link));
    assert_eq!(approved.status, 200, "{}", approved.text());
    let done = started.poll(s).expect(200);
    assert_eq!(done["status"], "complete", "{done}");
    let api_key = done["api_key"].as_str().unwrap().to_string();
    logs::remember(&api_key);
    let person = Person {
        email: email.to_string(),
        api_key,
        user_id: done["user_id"].as_str().unwrap().to_string(),
    };
    (person, approved)
}

/// `POST /v1/projects/{p}/invitations` by `token`, 201, and the invitation email received.
pub(crate) fn invite(
    s: &TestServer,
    mail: &Maildir,
    token: &str,
    project: &str,
    email: &str,
    role: &str,
) -> (Value, ReceivedMail) {
    let path = format!("/v1/projects/{project}/invitations");
    let made = s
        .post(&path, token, &json!({"email": email, "role": role}))
        .expect(201);
    (made, mail.wait_for_blocking(email, MAIL))
}

/// The tokens of `tenant` minted for a person.
pub(crate) fn person_tokens(s: &TestServer, tenant: &TenantId) -> usize {
    s.block_on(s.acl.tokens(tenant))
        .unwrap()
        .iter()
        .filter(|t| t.user.is_some())
        .count()
}

/// The headers every page with a link secret in its URL or form carries, and HTML.
#[track_caller]
fn assert_hardened(page: &Reply) {
    assert!(
        page.header("content-type")
            .is_some_and(|c| c.starts_with("text/html")),
        "{:?}",
        page.headers
    );
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("frame-ancestors 'none'"), "CSP: {csp:?}");
}

#[test]
fn the_pkce_helper_is_rfc_7636s_s256() {
    // The verifier and challenge printed in RFC 7636, Appendix B.
    let pkce = Pkce::of("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
    assert_eq!(
        pkce.challenge,
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
    assert_eq!(Pkce::new().verifier.len(), 43);
}

/// The whole flow: invited, emailed, started, the link opened (which approves nothing), approved
/// by the form, a wrong verifier refused, the token issued once and exactly the invitation.
#[test]
fn an_invited_person_logs_in_once_with_exactly_the_invitation() {
    let Some((s, mail)) =
        with_mail("login::an_invited_person_logs_in_once_with_exactly_the_invitation")
    else {
        return;
    };
    let team = s.team("acme");
    let p = team.project.as_str();
    let elsewhere = s.create_project(&team.admin.token, "elsewhere");
    let email = unique_address("ada");

    let (_, invitation) = invite(&s, &mail, &team.admin.token, p, &email, "writer");
    assert!(
        invitation.subject.contains("acme-project"),
        "{}",
        invitation.subject
    );
    for line in [
        "td auth login".to_string(),
        format!("TD_SYNC_URL={}", s.base),
    ] {
        assert!(
            invitation.body_text.contains(&line),
            "no {line:?} in:\n{}",
            invitation.body_text
        );
    }

    let device = "td-cli@ada-laptop";
    let started = begin(&s, &email, device);
    let (approval, link) = approval_email(&s, &mail, &email);
    assert!(approval.subject.contains(device), "{}", approval.subject);
    let token = link_token(&link);
    assert_eq!(started.poll(&s).expect(200), json!({"status": "pending"}));

    // Opening the link shows what would be approved, and approves nothing.
    let page = open_link(&s, &link);
    assert_eq!(page.status, 200, "{}", page.text());
    assert_hardened(&page);
    let html = page.text();
    for part in [
        device,
        email.as_str(),
        "<form method=\"post\" action=\"/auth/device/approve\">",
        &format!("name=\"token\" value=\"{token}\""),
        "Approve</button>",
    ] {
        assert!(html.contains(part), "no {part:?} in:\n{html}");
    }
    assert_eq!(started.poll(&s).expect(200), json!({"status": "pending"}));

    // The form approves, and accepts the invitation on the way.
    let approved = approve(&s, &token);
    assert_eq!(approved.status, 200, "{}", approved.text());
    assert_hardened(&approved);
    let html = approved.text();
    for part in ["approved", device, p, "writer"] {
        assert!(html.contains(part), "no {part:?} in:\n{html}");
    }

    // A wrong verifier is refused and completes nothing; an empty one is no request.
    let message =
        poll(&s, &started.device_code, &Pkce::new().verifier).error(401, "invalid_verifier");
    assert!(message.contains("code_verifier"), "{message}");
    poll(&s, &started.device_code, "").error(400, "bad_request");
    assert_eq!(person_tokens(&s, &team.tenant), 0);

    let done = started.poll(&s).expect(200);
    let mut keys: Vec<&str> = done
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["api_key", "email", "expires_at", "status", "user_id"],
        "{done}"
    );
    assert_eq!(done["status"], "complete");
    assert_eq!(done["email"], email.as_str());
    let key = done["api_key"].as_str().unwrap();
    logs::remember(key);
    assert!(key.starts_with("tds_"), "{done}");
    assert!(
        done["user_id"].as_str().unwrap().starts_with("u_"),
        "{done}"
    );
    let expires = (t0() + TimeDelta::days(90)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(done["expires_at"], expires.as_str());
    chrono::DateTime::parse_from_rfc3339(done["expires_at"].as_str().unwrap()).unwrap();

    // The token is the invitation: this project, as a writer, and nothing else.
    s.pull(p, key, "after_server_seq=0").expect(200);
    let pushed = s.push(p, key, &creates("dev-ada", 1..=1)).expect(200);
    assert_eq!(pushed["accepted"], 1, "{pushed}");
    s.pull(&elsewhere, key, "after_server_seq=0")
        .error(404, "not_found");
    s.push(&elsewhere, key, &creates("dev-ada", 2..=2))
        .error(404, "not_found");
    let listed = s.get("/v1/projects", key).expect(200);
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [p], "{listed}");
    s.get(&format!("/v1/projects/{p}/invitations"), key)
        .error(403, "insufficient_scope");

    // It completes once; the link works once.
    started.poll(&s).error(410, "expired");
    assert_eq!(person_tokens(&s, &team.tenant), 1);
    // (What these refusals say to the person: `the_approval_links_refusals_are_pages`.)
    assert_eq!(open_link(&s, &link).status, 410);
    assert_eq!(approve(&s, &token).status, 410);
    started.poll(&s).error(410, "expired");

    // The owner sees whose token it is; the audit log names the person.
    let members = s
        .get(&format!("/v1/projects/{p}/members"), &team.admin.token)
        .expect(200);
    let member = members
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["email"] == email.as_str())
        .unwrap_or_else(|| panic!("{email} is not among the members: {members}"));
    assert_eq!(member["role"], "writer", "{member}");
    let audit = s.block_on(s.acl.audit_log(&team.tenant)).unwrap();
    for action in [AuditAction::MemberAdded, AuditAction::TokenMinted] {
        assert!(
            audit
                .iter()
                .any(|e| e.action == action && e.person.as_deref() == Some(email.as_str())),
            "no {action:?} naming {email}: {audit:#?}"
        );
    }

    // Nothing secret in the logs: the token's secret, the device code, the link's secret.
    let captured = logs::captured();
    let link_secret = token.split_once('.').unwrap().1;
    for secret in [logs::secret_of(key), &started.device_code, link_secret] {
        assert!(!captured.contains(secret), "a login secret is in the logs");
    }
}

/// Emails cannot be probed: an unknown address gets the same answer and no email, and its code
/// only ever polls `pending`.
#[test]
fn an_unknown_email_is_answered_alike_and_sent_nothing() {
    let Some((s, mail)) = with_mail("login::an_unknown_email_is_answered_alike_and_sent_nothing")
    else {
        return;
    };
    let team = s.team("acme");
    let known = unique_address("known");
    invite(
        &s,
        &mail,
        &team.admin.token,
        &team.project,
        &known,
        "reader",
    );
    let stranger = unique_address("stranger");

    let (pkce_stranger, pkce_known) = (Pkce::new(), Pkce::new());
    let to_stranger = start(&s, &stranger, &pkce_stranger, "td-cli@x").expect(200);
    // Addresses are compared lowercased.
    let to_known = start(&s, &known.to_uppercase(), &pkce_known, "td-cli@x").expect(200);
    assert_started_shape(&to_stranger);
    assert_started_shape(&to_known);
    for field in ["expires_in", "interval", "email_sent"] {
        assert_eq!(to_stranger[field], to_known[field], "{field}");
    }
    assert_eq!(
        to_stranger["device_code"].as_str().unwrap().len(),
        to_known["device_code"].as_str().unwrap().len()
    );

    // The known address's email, started after the stranger's, arrives; none for the stranger.
    let (_, link) = approval_email(&s, &mail, &known);
    assert_eq!(delivered_to(&mail, &stranger), 0);
    let code = to_stranger["device_code"].as_str().unwrap();
    assert_eq!(
        poll(&s, code, &pkce_stranger.verifier).expect(200),
        json!({"status": "pending"})
    );

    // A made-up or altered link approves nothing.
    let token = link_token(&link);
    let (id, secret) = token.split_once('.').unwrap();
    let forged = format!("{id}.{}", secret.chars().rev().collect::<String>());
    for bad in ["nope", "a.b", forged.as_str()] {
        let page = s.send(
            "GET",
            &format!("/auth/device/approve?token={bad}"),
            &[],
            None,
        );
        assert_eq!(page.status, 400, "{bad}: {}", page.text());
        let refused = approve(&s, bad);
        assert_eq!(refused.status, 400, "{bad}: {}", refused.text());
    }
    let known_code = to_known["device_code"].as_str().unwrap();
    assert_eq!(
        poll(&s, known_code, &pkce_known.verifier).expect(200),
        json!({"status": "pending"})
    );
    // The stranger's code never completes: it expires like an unclicked link.
    s.clock.advance(TimeDelta::minutes(15));
    poll(&s, code, &pkce_stranger.verifier).error(410, "expired");
    assert_eq!(delivered_to(&mail, &stranger), 0);
}

#[test]
fn a_login_not_approved_within_15_minutes_expires() {
    let Some((s, mail)) = with_mail("login::a_login_not_approved_within_15_minutes_expires") else {
        return;
    };
    let team = s.team("acme");
    let email = unique_address("late");
    let (made, _) = invite(
        &s,
        &mail,
        &team.admin.token,
        &team.project,
        &email,
        "writer",
    );
    let started = begin(&s, &email, "td-cli@slow");
    let (_, link) = approval_email(&s, &mail, &email);

    s.clock
        .advance(TimeDelta::minutes(15) - TimeDelta::seconds(1));
    assert_eq!(started.poll(&s).expect(200), json!({"status": "pending"}));
    assert_eq!(open_link(&s, &link).status, 200);

    s.clock.advance(TimeDelta::seconds(1));
    started.poll(&s).error(410, "expired");
    // (What these refusals say to the person: `the_approval_links_refusals_are_pages`.)
    assert_eq!(open_link(&s, &link).status, 410);
    assert_eq!(approve(&s, &link_token(&link)).status, 410);
    started.poll(&s).error(410, "expired");
    assert_eq!(person_tokens(&s, &team.tenant), 0);
    // Refusing the late approval accepted nothing either.
    let listed = s
        .get(
            &format!("/v1/projects/{}/invitations", team.project),
            &team.admin.token,
        )
        .expect(200);
    assert_eq!(listed[0]["id"], made["id"]);
    assert_eq!(listed[0]["status"], "pending", "{listed}");
}

#[test]
fn of_polls_racing_after_approval_exactly_one_completes() {
    let Some((s, mail)) = with_mail("login::of_polls_racing_after_approval_exactly_one_completes")
    else {
        return;
    };
    let team = s.team("acme");
    let email = unique_address("racer");
    invite(
        &s,
        &mail,
        &team.admin.token,
        &team.project,
        &email,
        "writer",
    );
    let started = begin(&s, &email, "td-cli@racer");
    let (_, link) = approval_email(&s, &mail, &email);
    assert_eq!(approve(&s, &link_token(&link)).status, 200);

    const POLLS: usize = 4;
    let barrier = Barrier::new(POLLS);
    let replies: Vec<Reply> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..POLLS)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    started.poll(&s)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let (complete, refused): (Vec<&Reply>, Vec<&Reply>) =
        replies.iter().partition(|r| r.status == 200);
    assert_eq!(complete.len(), 1, "{replies:#?}");
    let key = complete[0].json()["api_key"].as_str().unwrap().to_string();
    logs::remember(&key);
    for reply in refused {
        reply.error(410, "expired");
    }
    assert_eq!(person_tokens(&s, &team.tenant), 1);
    s.pull(&team.project, &key, "after_server_seq=0")
        .expect(200);
}

/// 3 logins a minute per address, 20 per client (burst 10): no email is needed to see them, so
/// this runs without the sink (the addresses are unknown: nothing would be sent).
#[test]
fn logins_are_limited_per_address_and_per_client() {
    let s = TestServer::start_with_people(PeopleSettings::default());
    let pkce = Pkce::new();
    let email = "limited@tdsync.test";
    for _ in 0..3 {
        start(&s, email, &pkce, "td-cli@x").expect(200);
    }
    let refused = start(&s, email, &pkce, "td-cli@x");
    let message = refused.error(429, "rate_limited");
    assert!(message.contains("3 a minute"), "{message}");
    let retry: u64 = refused
        .header("retry-after")
        .expect("a 429 says when to retry")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After: {retry}");
    // The same address however written; another address is still let in.
    start(&s, "LIMITED@tdsync.test", &pkce, "td-cli@x").error(429, "rate_limited");
    start(&s, "other@tdsync.test", &pkce, "td-cli@x").expect(200);
    // One more every 20 s.
    s.clock.advance(TimeDelta::seconds(20));
    start(&s, email, &pkce, "td-cli@x").expect(200);
    start(&s, email, &pkce, "td-cli@x").error(429, "rate_limited");

    // Per client (the TCP peer, 127.0.0.1): a burst of 10 at once, then 20 a minute.
    let s = TestServer::start_with_people(PeopleSettings::default());
    assert_eq!((PER_CLIENT.per_minute, PER_CLIENT.burst), (20, 10));
    let mut answers = Vec::new();
    for n in 0..21 {
        let reply = start(&s, &format!("client-{n}@tdsync.test"), &pkce, "td-cli@x");
        answers.push(reply.status);
        if n >= 10 {
            let message = reply.error(429, "rate_limited");
            assert!(message.contains("20"), "{message}");
            assert!(reply.header("retry-after").is_some());
        }
    }
    assert_eq!(answers[..10], [200; 10], "{answers:?}");
    assert_eq!(answers[10..], [429; 11], "{answers:?}");
    s.clock.advance(TimeDelta::seconds(3));
    start(&s, "client-a@tdsync.test", &pkce, "td-cli@x").expect(200);
    start(&s, "client-b@tdsync.test", &pkce, "td-cli@x").error(429, "rate_limited");
}

/// Malformed starts and polls are 400s that say what is wrong, and send nothing — even for an
/// invited address.
#[test]
fn malformed_starts_are_refused_and_send_nothing() {
    let Some((s, mail)) = with_mail("login::malformed_starts_are_refused_and_send_nothing") else {
        return;
    };
    let team = s.team("acme");
    let known = unique_address("careful");
    invite(
        &s,
        &mail,
        &team.admin.token,
        &team.project,
        &known,
        "writer",
    );
    let good = Pkce::new();
    let standard_base64 =
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(good.verifier.as_bytes()));
    let with = |email: Value, challenge: &str, method: &str| {
        json!({"email": email, "code_challenge": challenge, "code_challenge_method": method,
               "device_name": "td-cli@x"})
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{\"email\": ".to_vec(), "invalid json body"),
        (b"not json".to_vec(), "invalid json body"),
        (
            serde_json::to_vec(
                &json!({"code_challenge": good.challenge, "code_challenge_method": "S256"}),
            )
            .unwrap(),
            "email",
        ),
        (
            serde_json::to_vec(&json!({"email": known, "code_challenge_method": "S256"})).unwrap(),
            "code_challenge",
        ),
        (
            serde_json::to_vec(&with(json!(42), &good.challenge, "S256")).unwrap(),
            "invalid json body",
        ),
        (
            serde_json::to_vec(&with(json!("careful.tdsync.test"), &good.challenge, "S256"))
                .unwrap(),
            "\"careful.tdsync.test\" is not an email address",
        ),
        (
            serde_json::to_vec(&with(json!(known), &good.verifier, "plain")).unwrap(),
            "code_challenge_method must be S256, got \"plain\"",
        ),
        (
            serde_json::to_vec(&with(json!(known), "abcdefghij", "S256")).unwrap(),
            "code_challenge must be 43 to 128 characters",
        ),
    ];
    for (body, expected) in cases {
        let shown = String::from_utf8_lossy(&body).into_owned();
        let message = post_raw(&s, "/v1/auth/device/start", body).error(400, "bad_request");
        assert!(
            message.contains(expected),
            "{shown}: {message:?} does not say {expected:?}"
        );
    }
    // Standard base64 (`+`, `/`, `=`) is not base64url: td never sends it.
    if standard_base64.contains(['+', '/', '=']) {
        let body = with(json!(known), &standard_base64, "S256");
        post_json(&s, "/v1/auth/device/start", &body).error(400, "bad_request");
    }
    for (body, expected) in [
        (b"nope".to_vec(), "invalid json body"),
        (
            serde_json::to_vec(&json!({"device_code": "x"})).unwrap(),
            "code_verifier",
        ),
        (
            serde_json::to_vec(&json!({"device_code": "", "code_verifier": good.verifier}))
                .unwrap(),
            "device_code and code_verifier are required",
        ),
    ] {
        let message = post_raw(&s, "/v1/auth/device/poll", body).error(400, "bad_request");
        assert!(message.contains(expected), "{message:?}");
    }
    poll(&s, "no-such-device-code", &good.verifier).error(410, "expired");
    assert_eq!(delivered_to(&mail, &known), 1, "only the invitation");

    // Refused starts count against the address's limit: a minute later, a good one goes out.
    s.clock.advance(TimeDelta::minutes(1));
    let started = begin(&s, &known, "td-cli@x");
    approval_email(&s, &mail, &known);
    assert_eq!(
        delivered_to(&mail, &known),
        2,
        "the invitation and one login"
    );
    assert_eq!(started.poll(&s).expect(200), json!({"status": "pending"}));
}

/// An invitation revoked before the link is approved leaves the person with nothing: the
/// approval joins nothing and the poll is a 403 that says why.
#[test]
fn a_person_whose_only_invitation_was_revoked_gets_no_token() {
    let Some((s, mail)) =
        with_mail("login::a_person_whose_only_invitation_was_revoked_gets_no_token")
    else {
        return;
    };
    let team = s.team("acme");
    let p = team.project.as_str();
    let email = unique_address("revoked");
    let (made, _) = invite(&s, &mail, &team.admin.token, p, &email, "writer");
    let started = begin(&s, &email, "td-cli@revoked");
    let (_, link) = approval_email(&s, &mail, &email);
    let id = made["id"].as_str().unwrap();
    let revoked = s.delete(
        &format!("/v1/projects/{p}/invitations/{id}"),
        &team.admin.token,
    );
    assert_eq!(revoked.status, 204, "{}", revoked.text());

    let approved = approve(&s, &link_token(&link));
    assert_eq!(approved.status, 200, "{}", approved.text());
    assert!(!approved.text().contains(p), "{}", approved.text());
    for _ in 0..2 {
        let message = started.poll(&s).error(403, "forbidden");
        assert!(
            message.contains(&email) && message.contains("invite"),
            "{message}"
        );
    }
    assert_eq!(person_tokens(&s, &team.tenant), 0);
    s.get(&format!("/v1/projects/{p}/members"), &team.admin.token)
        .expect(200)
        .as_array()
        .unwrap()
        .iter()
        .for_each(|m| assert_ne!(m["email"], email.as_str(), "{m}"));
    // No longer known: a new login is answered alike and sends nothing.
    begin(&s, &email, "td-cli@revoked");
    assert_eq!(
        delivered_to(&mail, &email),
        2,
        "the invitation and the first login"
    );
}

/// The pages that carry a link secret are not cached, framed or scripted, whatever the device
/// name says.
#[test]
fn the_approval_pages_are_not_cached_framed_or_scripted() {
    let Some((s, mail)) = with_mail("login::the_approval_pages_are_not_cached_framed_or_scripted")
    else {
        return;
    };
    let team = s.team("acme");
    let email = unique_address("xss");
    invite(
        &s,
        &mail,
        &team.admin.token,
        &team.project,
        &email,
        "writer",
    );
    let device = "<script>alert(1)</script>";
    let started = begin(&s, &email, device);
    let (_, link) = approval_email(&s, &mail, &email);
    let escaped = "&lt;script&gt;alert(1)&lt;/script&gt;";

    let page = open_link(&s, &link);
    assert_eq!(page.status, 200, "{}", page.text());
    assert_hardened(&page);
    assert!(page.text().contains(escaped), "{}", page.text());
    assert!(!page.text().contains("<script"), "{}", page.text());

    let approved = approve(&s, &link_token(&link));
    assert_eq!(approved.status, 200, "{}", approved.text());
    assert_hardened(&approved);
    assert!(approved.text().contains(escaped), "{}", approved.text());
    assert!(!approved.text().contains("<script"), "{}", approved.text());

    let done = started.poll(&s).expect(200);
    logs::remember(done["api_key"].as_str().unwrap());
    // The token's name carries the device name as given (it is data, never markup).
    let tokens = s.block_on(s.acl.tokens(&team.tenant)).unwrap();
    assert!(
        tokens.iter().any(|t| t.name.contains(device)),
        "{tokens:#?}"
    );
}

/// The link's refusals are pages for a person in a browser: each says what happened, with the
/// approval page's headers — not td's JSON error envelope.
#[test]
fn the_approval_links_refusals_are_pages() {
    let Some((s, mail)) = with_mail("login::the_approval_links_refusals_are_pages") else {
        return;
    };
    let team = s.team("acme");
    let (used, late) = (unique_address("used"), unique_address("late"));
    for email in [&used, &late] {
        invite(&s, &mail, &team.admin.token, &team.project, email, "writer");
    }
    begin(&s, &used, "td-cli@used");
    let (_, used_link) = approval_email(&s, &mail, &used);
    assert_eq!(approve(&s, &link_token(&used_link)).status, 200);
    begin(&s, &late, "td-cli@late");
    let (_, late_link) = approval_email(&s, &mail, &late);

    #[track_caller]
    fn assert_page(page: Reply, status: u16, says: &str) {
        assert_eq!(page.status, status, "{}", page.text());
        assert_hardened(&page);
        assert!(
            page.text().contains(says),
            "no {says:?} in:\n{}",
            page.text()
        );
    }
    let bad = "/auth/device/approve?token=nope.nope";
    assert_page(s.send("GET", bad, &[], None), 400, "not valid");
    assert_page(approve(&s, "nope.nope"), 400, "not valid");
    assert_page(open_link(&s, &used_link), 410, "already used");
    assert_page(approve(&s, &link_token(&used_link)), 410, "already used");
    s.clock.advance(TimeDelta::minutes(15));
    assert_page(open_link(&s, &late_link), 410, "expired");
    assert_page(approve(&s, &link_token(&late_link)), 410, "expired");
}
