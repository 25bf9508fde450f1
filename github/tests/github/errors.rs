//! Transient failures are told apart from refusals: a caller revokes on neither kind alone.

use tdsync_github::testing::Perm;
use tdsync_github::{Github, GithubConfig, GithubError, RepoName, Url};

use crate::common::*;

fn unreachable_config(port: u16) -> GithubConfig {
    GithubConfig {
        web_url: Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap(),
        api_url: Url::parse(&format!("http://127.0.0.1:{port}/api/")).unwrap(),
        client_id: CLIENT_ID.into(),
        client_secret: Some(CLIENT_SECRET.into()),
    }
}

#[tokio::test]
async fn an_unreachable_github_is_transient() {
    let port = closed_port().await;
    let github = Github::new(unreachable_config(port)).unwrap();
    let token = tdsync_github::AccessToken::new("gho_unreachablexxxxxxxxxxxxxxxxxxxxxxxxxx");
    let repo: RepoName = "acme/widgets".parse().unwrap();

    let errors: Vec<GithubError> = vec![
        github.user(&token).await.unwrap_err(),
        github.repo_access(&token, &repo).await.unwrap_err(),
        github.device_start().await.unwrap_err(),
        github.device_poll("device-code").await.unwrap_err(),
        github
            .exchange("code", &"v".repeat(43), &callback())
            .await
            .unwrap_err(),
    ];
    for err in errors {
        assert!(err.is_transient() && !err.is_unauthorized(), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("could not connect"), "{text}");
        assert!(!text.contains(token.secret()), "{text}");
        assert!(!text.contains(CLIENT_SECRET), "{text}");
    }
}

#[tokio::test]
async fn a_github_outage_is_transient_and_passes() {
    let (fake, github) = signed_in().await;
    fake.set_access("alice", "acme/widgets", Some(Perm::Read));
    let token = fake.issue_token("alice");
    let repo: RepoName = "acme/widgets".parse().unwrap();

    fake.set_unavailable(true);
    let err = github.repo_access(&token, &repo).await.unwrap_err();
    assert!(err.is_transient(), "a 503 is not 'no access': {err:?}");
    assert!(err.to_string().contains("503"), "{err}");
    assert!(github.user(&token).await.unwrap_err().is_transient());
    assert!(github.device_start().await.unwrap_err().is_transient());
    let authorization = github.authorize(&callback());
    let err = github
        .exchange("code", &authorization.pkce_verifier, &callback())
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");

    fake.set_unavailable(false);
    assert_eq!(
        github.repo_access(&token, &repo).await.unwrap(),
        tdsync_github::RepoAccess::Read
    );
}

#[tokio::test]
async fn a_rate_limit_403_is_transient_not_no_access() {
    let (fake, github) = signed_in().await;
    fake.set_access("alice", "acme/widgets", Some(Perm::Read));
    let token = fake.issue_token("alice");
    let repo: RepoName = "acme/widgets".parse().unwrap();

    fake.set_rate_limited(true);
    let err = github.repo_access(&token, &repo).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(err.to_string().contains("rate limited"), "{err}");
    assert!(github.user(&token).await.unwrap_err().is_transient());
    fake.set_rate_limited(false);
    assert_eq!(
        github.repo_access(&token, &repo).await.unwrap(),
        tdsync_github::RepoAccess::Read
    );
}

#[test]
fn unusable_configurations_are_refused() {
    let mut config = GithubConfig::new("", None);
    assert!(matches!(
        Github::new(config.clone()),
        Err(GithubError::Config(_))
    ));
    config.client_id = "id".into();
    config.api_url = Url::parse("ftp://example.com/").unwrap();
    assert!(matches!(
        Github::new(config.clone()),
        Err(GithubError::Config(_))
    ));
    config.api_url = Url::parse("https://api.github.com").unwrap();
    assert!(Github::new(config).is_ok());
}

#[test]
fn the_defaults_are_github_com() {
    let config = GithubConfig::new("id", Some("secret".into()));
    assert_eq!(config.web_url.as_str(), "https://github.com/");
    assert_eq!(config.api_url.as_str(), "https://api.github.com/");
}
