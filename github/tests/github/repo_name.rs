//! `OWNER/NAME` with GitHub's rules.

use tdsync_github::{RepoName, RepoNameError};

#[test]
fn accepts_githubs_names() {
    let long_owner = format!("{}/x", "a".repeat(39));
    let long_name = format!("o/{}", "n".repeat(100));
    for text in [
        "octocat/Hello-World",
        "a/b",
        "octo-org/repo.name_1",
        "o/.github",
        "o/...",
        "0/9",
        long_owner.as_str(),
        long_name.as_str(),
    ] {
        let name: RepoName = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(name.to_string(), text);
    }
    let name: RepoName = "octo-org/repo.name_1".parse().unwrap();
    assert_eq!((name.owner(), name.name()), ("octo-org", "repo.name_1"));
}

/// Whether an error is the expected one.
type Expect = fn(&RepoNameError) -> bool;

#[test]
fn refuses_and_says_why() {
    use RepoNameError::*;
    let cases: Vec<(String, Expect)> = vec![
        ("".into(), |e| matches!(e, Slashes(_, 0))),
        ("noslash".into(), |e| matches!(e, Slashes(_, 0))),
        ("a/b/c".into(), |e| matches!(e, Slashes(_, 2))),
        ("/name".into(), |e| matches!(e, EmptyOwner)),
        ("owner/".into(), |e| matches!(e, EmptyName)),
        ("-owner/x".into(), |e| matches!(e, OwnerHyphen(_))),
        ("owner-/x".into(), |e| matches!(e, OwnerHyphen(_))),
        ("ow--ner/x".into(), |e| matches!(e, OwnerHyphen(_))),
        ("own_er/x".into(), |e| {
            matches!(e, OwnerCharacter { found: '_', .. })
        }),
        ("own.er/x".into(), |e| {
            matches!(e, OwnerCharacter { found: '.', .. })
        }),
        ("öwner/x".into(), |e| {
            matches!(e, OwnerCharacter { found: 'ö', .. })
        }),
        (format!("{}/x", "a".repeat(40)), |e| {
            matches!(e, OwnerTooLong(_))
        }),
        (format!("o/{}", "n".repeat(101)), |e| {
            matches!(e, NameTooLong(_))
        }),
        ("o/.".into(), |e| matches!(e, NameDots(_))),
        ("o/..".into(), |e| matches!(e, NameDots(_))),
        ("o/na me".into(), |e| {
            matches!(e, NameCharacter { found: ' ', .. })
        }),
        ("o/ná".into(), |e| {
            matches!(e, NameCharacter { found: 'á', .. })
        }),
        ("o/a%2F".into(), |e| {
            matches!(e, NameCharacter { found: '%', .. })
        }),
    ];
    for (text, expected) in cases {
        let err = text.parse::<RepoName>().unwrap_err();
        assert!(expected(&err), "{text:?}: {err:?}");
        assert!(!err.to_string().is_empty());
    }
    let message = "acme/wid gets".parse::<RepoName>().unwrap_err().to_string();
    assert!(
        message.contains("wid gets") && message.contains("' '"),
        "{message}"
    );
}

#[test]
fn serde_uses_the_full_name() {
    let name: RepoName = "acme/widgets".parse().unwrap();
    let json = serde_json::to_string(&name).unwrap();
    assert_eq!(json, "\"acme/widgets\"");
    assert_eq!(serde_json::from_str::<RepoName>(&json).unwrap(), name);
    assert!(serde_json::from_str::<RepoName>("\"acme\"").is_err());
}
