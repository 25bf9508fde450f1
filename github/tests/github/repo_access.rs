//! `GET /user` and `GET /repos/{owner}/{name}` with the person's own token.

use tdsync_github::testing::Perm;
use tdsync_github::{AccessToken, GithubError, RepoAccess, RepoName};

use crate::common::*;

fn repo(name: &str) -> RepoName {
    name.parse().unwrap()
}

#[tokio::test]
async fn user_names_the_tokens_owner() {
    let (fake, github) = signed_in().await;
    let alice = fake.user("alice").unwrap();
    let token = fake.issue_token("alice");
    let user = github.user(&token).await.unwrap();
    assert_eq!(
        (user.id, user.login.as_str(), user.email),
        (alice.id, "alice", None)
    );

    fake.set_email("alice", Some("alice@example.com"));
    let user = github.user(&token).await.unwrap();
    assert_eq!(user.email.as_deref(), Some("alice@example.com"));
    assert_eq!(fake.api_calls("/user"), 2);
}

#[tokio::test]
async fn roles_map_to_read_and_write() {
    let (fake, github) = signed_in().await;
    let token = sign_in_with_browser(&fake, &github).await;
    let cases = [
        (Perm::Read, RepoAccess::Read),
        (Perm::Triage, RepoAccess::Read),
        (Perm::Write, RepoAccess::Write),
        (Perm::Maintain, RepoAccess::Write),
        (Perm::Admin, RepoAccess::Write),
    ];
    for (perm, expected) in cases {
        fake.set_access("alice", "acme/widgets", Some(perm));
        assert_eq!(
            github
                .repo_access(&token, &repo("acme/widgets"))
                .await
                .unwrap(),
            expected,
            "{perm:?}"
        );
    }
    assert_eq!(fake.api_calls("/repos/acme/widgets"), cases.len());
}

#[tokio::test]
async fn no_access_is_none() {
    let (fake, github) = signed_in().await;
    fake.add_user("bob");
    let token = fake.issue_token("alice");
    fake.set_access("bob", "acme/private", Some(Perm::Admin));
    // Someone else's private repository and one that does not exist look alike: 404.
    for name in ["acme/private", "acme/nothing-here"] {
        assert_eq!(
            github.repo_access(&token, &repo(name)).await.unwrap(),
            RepoAccess::None,
            "{name}"
        );
    }
    // Access taken away is noticed at the next check.
    fake.set_access("alice", "acme/widgets", Some(Perm::Read));
    assert_eq!(
        github
            .repo_access(&token, &repo("acme/widgets"))
            .await
            .unwrap(),
        RepoAccess::Read
    );
    fake.set_access("alice", "acme/widgets", None);
    assert_eq!(
        github
            .repo_access(&token, &repo("acme/widgets"))
            .await
            .unwrap(),
        RepoAccess::None
    );
    assert_eq!(fake.api_calls("/api/repos/acme/widgets"), 2);
}

#[tokio::test]
async fn a_revoked_token_is_unauthorized_not_no_access() {
    let (fake, github) = signed_in().await;
    fake.set_access("alice", "acme/widgets", Some(Perm::Write));
    let token = fake.issue_token("alice");
    assert_eq!(
        github
            .repo_access(&token, &repo("acme/widgets"))
            .await
            .unwrap(),
        RepoAccess::Write
    );

    fake.revoke_tokens("alice");
    let err = github
        .repo_access(&token, &repo("acme/widgets"))
        .await
        .unwrap_err();
    assert!(err.is_unauthorized() && !err.is_transient(), "{err:?}");
    assert!(
        matches!(&err, GithubError::Unauthorized { message, .. } if message == "Bad credentials"),
        "{err:?}"
    );
    assert!(!err.to_string().contains(token.secret()));

    let err = github.user(&token).await.unwrap_err();
    assert!(err.is_unauthorized(), "{err:?}");

    // A new sign-in works again.
    let fresh = fake.issue_token("alice");
    assert_eq!(github.user(&fresh).await.unwrap().login, "alice");
}

#[tokio::test]
async fn an_unknown_token_is_unauthorized() {
    let (fake, github) = signed_in().await;
    let err = github
        .user(&AccessToken::new(
            "gho_000000000000000000000000000000000000",
        ))
        .await
        .unwrap_err();
    assert!(err.is_unauthorized(), "{err:?}");
    assert_eq!(fake.api_calls("/user"), 1);
}

#[tokio::test]
async fn a_malformed_token_is_refused_without_being_sent() {
    let (fake, github) = signed_in().await;
    for bad in ["", "gho_with space", "gho_with\nnewline"] {
        let err = github.user(&AccessToken::new(bad)).await.unwrap_err();
        assert!(err.is_unauthorized(), "{bad:?}: {err:?}");
    }
    assert_eq!(fake.api_calls("/user"), 0);
}

#[tokio::test]
async fn names_are_case_insensitive_at_github() {
    let (fake, github) = signed_in().await;
    fake.set_access("alice", "Acme/Widgets", Some(Perm::Read));
    let token = fake.issue_token("alice");
    assert_eq!(
        github
            .repo_access(&token, &repo("acme/widgets"))
            .await
            .unwrap(),
        RepoAccess::Read
    );
}

#[tokio::test]
async fn the_fake_refuses_api_requests_without_a_user_agent() {
    let (fake, github) = signed_in().await;
    let token = fake.issue_token("alice");
    // GitHub's rule, which the client must meet: it sends `User-Agent: tdsync`.
    let bare = reqwest::Client::new()
        .get(fake.api_url().join("user").unwrap())
        .bearer_auth(token.secret())
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), reqwest::StatusCode::FORBIDDEN);
    assert_eq!(github.user(&token).await.unwrap().login, "alice");
}
