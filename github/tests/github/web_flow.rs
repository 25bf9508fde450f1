//! The OAuth web flow: authorize page, callback, code exchange with PKCE.

use reqwest::StatusCode;
use tdsync_github::{GithubError, Url};

use crate::common::*;

#[tokio::test]
async fn web_flow_end_to_end() {
    let (fake, github) = signed_in().await;
    let alice = fake.user("alice").expect("added by signed_in");

    let authorization = github.authorize(&callback());
    let url = &authorization.url;
    assert_eq!(url.path(), "/login/oauth/authorize");
    assert_eq!(query(url, "client_id").as_deref(), Some(CLIENT_ID));
    assert_eq!(query(url, "response_type").as_deref(), Some("code"));
    assert_eq!(query(url, "code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(query(url, "scope").as_deref(), Some("repo"));
    assert_eq!(query(url, "state"), Some(authorization.state.clone()));
    assert_eq!(
        query(url, "redirect_uri").as_deref(),
        Some(callback().as_str())
    );
    assert!(
        query(url, "code_challenge").is_some_and(|c| c != authorization.pkce_verifier),
        "the URL carries the challenge, never the verifier"
    );

    let Outcome::Redirected(back) = run_browser(&fake.web_url(), url).await else {
        panic!("the browser was not sent back to the callback");
    };
    assert_eq!(back.origin(), callback().origin());
    assert_eq!(back.path(), callback().path());
    assert_eq!(query(&back, "state"), Some(authorization.state.clone()));
    let code = query(&back, "code").expect("a code in the callback");

    let token = github
        .exchange(&code, &authorization.pkce_verifier, &callback())
        .await
        .unwrap();
    assert!(token.secret().starts_with("gho_"), "GitHub's token prefix");
    assert_eq!(token.secret().len(), 40);
    assert!(
        token.secret()["gho_".len()..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric())
    );

    let user = github.user(&token).await.unwrap();
    assert_eq!(user.login, "alice");
    assert_eq!(user.id, alice.id);
}

#[tokio::test]
async fn each_authorization_has_its_own_state_and_verifier() {
    let (_fake, github) = signed_in().await;
    let a = github.authorize(&callback());
    let b = github.authorize(&callback());
    assert_ne!(a.state, b.state);
    assert_ne!(a.pkce_verifier, b.pkce_verifier);
    assert!(
        a.pkce_verifier.len() >= 43,
        "RFC 7636: at least 43 characters"
    );
}

#[tokio::test]
async fn a_redirect_uri_outside_the_callback_is_refused_without_a_code() {
    let (fake, github) = signed_in().await;
    for wrong in [
        "http://127.0.0.1:9/elsewhere",
        "http://127.0.0.1:9/auth/github/callbackx",
        "http://127.0.0.1:10/auth/github/callback",
        "https://127.0.0.1:9/auth/github/callback",
        "http://localhost:9/auth/github/callback",
    ] {
        let authorization = github.authorize(&Url::parse(wrong).unwrap());
        match run_browser(&fake.web_url(), &authorization.url).await {
            Outcome::Page(status, html) => {
                assert_eq!(status, StatusCode::OK, "{wrong}");
                assert!(
                    html.contains("The redirect_uri is not associated with this application"),
                    "{wrong}: {html}"
                );
                assert!(!html.contains("<form"), "{wrong}: no way on");
            }
            Outcome::Redirected(to) => panic!("{wrong}: redirected to {to}"),
        }
    }
    // A form posted by hand with a wrong redirect_uri gets no code either.
    let answer = browser()
        .post(fake.web_url().join("login/oauth/authorize").unwrap())
        .form(&[
            ("client_id", CLIENT_ID),
            ("redirect_uri", "http://127.0.0.1:9/elsewhere"),
            ("state", "s"),
            ("authorize", "1"),
        ])
        .send()
        .await
        .unwrap();
    assert!(answer.headers().get("location").is_none());
    assert_eq!(fake.codes_issued(), 0);
}

#[tokio::test]
async fn a_redirect_uri_under_the_callback_is_accepted() {
    let (fake, github) = signed_in().await;
    let deeper = callback().join("callback/next").unwrap();
    assert!(deeper.path().starts_with(callback().path()));
    let authorization = github.authorize(&deeper);
    let Outcome::Redirected(back) = run_browser(&fake.web_url(), &authorization.url).await else {
        panic!("a path under the callback is GitHub's rule");
    };
    assert_eq!(back.path(), deeper.path());
    let code = query(&back, "code").unwrap();
    // The exchange must name the same redirect URI.
    let err = github
        .exchange(&code, &authorization.pkce_verifier, &callback())
        .await
        .unwrap_err();
    assert_eq!(err.oauth_error(), Some("redirect_uri_mismatch"), "{err}");
}

#[tokio::test]
async fn an_unknown_client_gets_a_404_page() {
    let fake = fake().await;
    fake.add_user("alice");
    fake.sign_in("alice");
    let mut config = fake.config();
    config.client_id = "Iv1.unknown".into();
    let github = tdsync_github::Github::new(config).unwrap();
    let authorization = github.authorize(&callback());
    match run_browser(&fake.web_url(), &authorization.url).await {
        Outcome::Page(status, _) => assert_eq!(status, StatusCode::NOT_FOUND),
        Outcome::Redirected(to) => panic!("redirected to {to}"),
    }
    assert_eq!(fake.codes_issued(), 0);
}

#[tokio::test]
async fn without_a_session_github_asks_to_sign_in() {
    let fake = fake().await;
    fake.add_user("alice");
    let github = fake.github();
    let authorization = github.authorize(&callback());
    match run_browser(&fake.web_url(), &authorization.url).await {
        Outcome::Page(status, html) => {
            assert_eq!(status, StatusCode::OK);
            assert!(html.contains("Sign in to GitHub"), "{html}");
        }
        Outcome::Redirected(to) => panic!("redirected to {to}"),
    }
    assert_eq!(fake.codes_issued(), 0);
}

#[tokio::test]
async fn the_session_decides_who_signs_in() {
    let (fake, github) = signed_in().await;
    let bob = fake.add_user("bob");
    fake.sign_in("bob");
    let token = sign_in_with_browser(&fake, &github).await;
    let user = github.user(&token).await.unwrap();
    assert_eq!((user.id, user.login.as_str()), (bob.id, "bob"));
}

#[tokio::test]
async fn a_wrong_pkce_verifier_is_refused() {
    let (fake, github) = signed_in().await;
    let authorization = github.authorize(&callback());
    let Outcome::Redirected(back) = run_browser(&fake.web_url(), &authorization.url).await else {
        panic!("no callback");
    };
    let code = query(&back, "code").unwrap();
    let other = github.authorize(&callback()).pkce_verifier;
    let err = github
        .exchange(&code, &other, &callback())
        .await
        .unwrap_err();
    assert_eq!(err.oauth_error(), Some("bad_verification_code"), "{err}");
    assert!(!err.is_transient() && !err.is_unauthorized());
    // The code was spent by the failed attempt: the right verifier is too late.
    let err = github
        .exchange(&code, &authorization.pkce_verifier, &callback())
        .await
        .unwrap_err();
    assert_eq!(err.oauth_error(), Some("bad_verification_code"), "{err}");
}

#[tokio::test]
async fn a_code_works_once() {
    let (fake, github) = signed_in().await;
    let authorization = github.authorize(&callback());
    let Outcome::Redirected(back) = run_browser(&fake.web_url(), &authorization.url).await else {
        panic!("no callback");
    };
    let code = query(&back, "code").unwrap();
    let first = github
        .exchange(&code, &authorization.pkce_verifier, &callback())
        .await;
    assert!(first.is_ok(), "{first:?}");
    let err = github
        .exchange(&code, &authorization.pkce_verifier, &callback())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, GithubError::OAuth { error, .. } if error == "bad_verification_code"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_made_up_code_is_refused() {
    let (_fake, github) = signed_in().await;
    let authorization = github.authorize(&callback());
    let err = github
        .exchange(
            "0123456789abcdef0123",
            &authorization.pkce_verifier,
            &callback(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.oauth_error(), Some("bad_verification_code"), "{err}");
}

#[tokio::test]
async fn a_wrong_client_secret_is_refused_and_not_repeated() {
    let (fake, _) = signed_in().await;
    let mut config = fake.config();
    config.client_secret = Some("not-the-secret-xyz".into());
    let github = tdsync_github::Github::new(config).unwrap();
    let authorization = github.authorize(&callback());
    let Outcome::Redirected(back) = run_browser(&fake.web_url(), &authorization.url).await else {
        panic!("no callback");
    };
    let code = query(&back, "code").unwrap();
    let err = github
        .exchange(&code, &authorization.pkce_verifier, &callback())
        .await
        .unwrap_err();
    assert_eq!(err.oauth_error(), Some("incorrect_client_credentials"));
    let text = format!("{err} {err:?}");
    assert!(!text.contains("not-the-secret-xyz"), "{text}");
    assert!(!text.contains(&authorization.pkce_verifier), "{text}");
}

#[tokio::test]
async fn secrets_stay_out_of_debug_output() {
    let (fake, github) = signed_in().await;
    let authorization = github.authorize(&callback());
    let shown = format!("{authorization:?}");
    assert!(!shown.contains(&authorization.pkce_verifier), "{shown}");
    assert!(shown.contains(&authorization.state));

    let token = fake.issue_token("alice");
    assert!(!format!("{token:?}").contains(token.secret()));

    let config = fake.config();
    assert!(!format!("{config:?}").contains(CLIENT_SECRET));
    assert!(!format!("{github:?}").contains(CLIENT_SECRET));
}
