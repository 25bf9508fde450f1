//! The device flow, whose answers GitHub sends as HTTP 200 with an `error` field.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use tdsync_github::DevicePoll;

use crate::common::*;

#[tokio::test]
async fn start_gives_codes_to_show_and_poll_with() {
    let (fake, github) = signed_in().await;
    let start = github.device_start().await.unwrap();
    let (letters, digits) = start.user_code.split_once('-').expect("XXXX-XXXX");
    assert!(letters.len() == 4 && letters.chars().all(|c| c.is_ascii_uppercase()));
    assert!(digits.len() == 4 && digits.chars().all(|c| c.is_ascii_digit()));
    assert_eq!(
        start.verification_uri,
        fake.web_url().join("login/device").unwrap()
    );
    assert_eq!(
        start.interval, 0,
        "the fake's default, so tests need not wait"
    );
    assert_eq!(start.expires_in, 900);
    assert!(!start.device_code.is_empty());
    assert!(!format!("{start:?}").contains(&start.device_code));
}

#[tokio::test]
async fn pending_is_a_200_with_an_error_and_reads_as_pending() {
    let (fake, github) = signed_in().await;
    let start = github.device_start().await.unwrap();

    // What GitHub sends on the wire: 200 and `error`, which is why the poll is done by hand.
    let raw = reqwest::Client::new()
        .post(fake.web_url().join("login/oauth/access_token").unwrap())
        .header(ACCEPT, "application/json")
        .form(&[
            ("client_id", CLIENT_ID),
            ("device_code", start.device_code.as_str()),
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::OK);
    let body: serde_json::Value = serde_json::from_slice(&raw.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"], "authorization_pending");

    assert_eq!(
        github.device_poll(&start.device_code).await.unwrap(),
        DevicePoll::Pending
    );
}

#[tokio::test]
async fn without_accept_json_github_answers_a_form() {
    let (fake, github) = signed_in().await;
    let start = github.device_start().await.unwrap();
    let raw = reqwest::Client::new()
        .post(fake.web_url().join("login/oauth/access_token").unwrap())
        .form(&[
            ("client_id", CLIENT_ID),
            ("device_code", start.device_code.as_str()),
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ])
        .send()
        .await
        .unwrap();
    let content_type = raw.headers()[CONTENT_TYPE].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("application/x-www-form-urlencoded"));
    assert!(
        raw.text()
            .await
            .unwrap()
            .contains("error=authorization_pending")
    );
}

#[tokio::test]
async fn polling_too_fast_is_told_to_slow_down() {
    let (fake, github) = signed_in().await;
    fake.set_device_interval(1);
    let start = github.device_start().await.unwrap();
    assert_eq!(start.interval, 1);
    // At once, not a second after the start: GitHub adds 5 s to the interval.
    assert_eq!(
        github.device_poll(&start.device_code).await.unwrap(),
        DevicePoll::SlowDown { interval: 6 }
    );
}

#[tokio::test]
async fn approval_gives_the_token_once() {
    let (fake, github) = signed_in().await;
    let start = github.device_start().await.unwrap();
    assert_eq!(
        github.device_poll(&start.device_code).await.unwrap(),
        DevicePoll::Pending
    );
    // The person types the code however they like.
    fake.approve_device(&start.user_code.to_lowercase().replace('-', ""), "alice");

    let DevicePoll::Authorized(token) = github.device_poll(&start.device_code).await.unwrap()
    else {
        panic!("approved, so authorized");
    };
    assert!(token.secret().starts_with("gho_"));
    assert_eq!(github.user(&token).await.unwrap().login, "alice");

    let err = github.device_poll(&start.device_code).await.unwrap_err();
    assert_eq!(err.oauth_error(), Some("bad_verification_code"), "{err}");
    assert!(!err.is_transient());
}

#[tokio::test]
async fn unanswered_codes_expire() {
    let (fake, github) = signed_in().await;
    fake.set_device_expires_in(Duration::from_millis(200));
    let start = github.device_start().await.unwrap();
    assert_eq!(start.expires_in, 1, "rounded up to whole seconds");
    assert_eq!(
        github.device_poll(&start.device_code).await.unwrap(),
        DevicePoll::Pending
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        github.device_poll(&start.device_code).await.unwrap(),
        DevicePoll::Expired
    );
}

#[tokio::test]
async fn a_refusal_reads_as_denied() {
    let (fake, github) = signed_in().await;
    let start = github.device_start().await.unwrap();
    fake.deny_device(&start.user_code);
    assert_eq!(
        github.device_poll(&start.device_code).await.unwrap(),
        DevicePoll::Denied
    );
}

#[tokio::test]
async fn an_unknown_device_code_is_an_oauth_error() {
    let (_fake, github) = signed_in().await;
    let err = github.device_poll("not-a-device-code").await.unwrap_err();
    assert_eq!(err.oauth_error(), Some("incorrect_device_code"), "{err}");
}

#[tokio::test]
async fn an_unknown_client_cannot_start() {
    let (fake, _) = signed_in().await;
    let mut config = fake.config();
    config.client_id = "Iv1.unknown".into();
    let github = tdsync_github::Github::new(config).unwrap();
    let err = github.device_start().await.unwrap_err();
    assert_eq!(
        err.oauth_error(),
        Some("incorrect_client_credentials"),
        "{err}"
    );
}
