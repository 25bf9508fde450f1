//! `OWNER/NAME`, checked with GitHub's own rules so that a link to a repository that cannot
//! exist is refused when it is made, not when GitHub answers 404 later.

use std::fmt;
use std::str::FromStr;

/// A GitHub repository's full name, `OWNER/NAME`.
///
/// Compared as written: GitHub itself treats both parts case-insensitively.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName {
    owner: String,
    name: String,
}

/// Why a string is not a repository's full name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepoNameError {
    #[error("a repository is written OWNER/NAME, with exactly one `/`: {0:?} has {1}")]
    Slashes(String, usize),
    #[error("the owner is empty")]
    EmptyOwner,
    #[error("the owner {0:?} is longer than 39 characters")]
    OwnerTooLong(String),
    #[error(
        "the owner {owner:?} has {found:?}: an owner has only ASCII letters, digits and hyphens"
    )]
    OwnerCharacter { owner: String, found: char },
    #[error("the owner {0:?} starts or ends with a hyphen or has two in a row")]
    OwnerHyphen(String),
    #[error("the repository name is empty")]
    EmptyName,
    #[error("the repository name {0:?} is longer than 100 characters")]
    NameTooLong(String),
    #[error(
        "the repository name {name:?} has {found:?}: a name has only ASCII letters, digits, `.`, `-` and `_`"
    )]
    NameCharacter { name: String, found: char },
    #[error("the repository name cannot be {0:?}")]
    NameDots(String),
}

impl RepoName {
    /// Checks both parts and makes the name.
    pub fn new(owner: &str, name: &str) -> Result<RepoName, RepoNameError> {
        check_owner(owner)?;
        check_name(name)?;
        Ok(RepoName {
            owner: owner.to_owned(),
            name: name.to_owned(),
        })
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

fn check_owner(owner: &str) -> Result<(), RepoNameError> {
    if owner.is_empty() {
        return Err(RepoNameError::EmptyOwner);
    }
    if let Some(found) = owner
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(RepoNameError::OwnerCharacter {
            owner: owner.to_owned(),
            found,
        });
    }
    // Checked after the characters so that the length counts ASCII bytes.
    if owner.len() > 39 {
        return Err(RepoNameError::OwnerTooLong(owner.to_owned()));
    }
    if owner.starts_with('-') || owner.ends_with('-') || owner.contains("--") {
        return Err(RepoNameError::OwnerHyphen(owner.to_owned()));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), RepoNameError> {
    if name.is_empty() {
        return Err(RepoNameError::EmptyName);
    }
    if let Some(found) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(RepoNameError::NameCharacter {
            name: name.to_owned(),
            found,
        });
    }
    if name.len() > 100 {
        return Err(RepoNameError::NameTooLong(name.to_owned()));
    }
    if name == "." || name == ".." {
        return Err(RepoNameError::NameDots(name.to_owned()));
    }
    Ok(())
}

impl FromStr for RepoName {
    type Err = RepoNameError;

    fn from_str(s: &str) -> Result<RepoName, RepoNameError> {
        let slashes = s.matches('/').count();
        if slashes != 1 {
            return Err(RepoNameError::Slashes(s.to_owned(), slashes));
        }
        let (owner, name) = s.split_once('/').unwrap_or((s, ""));
        RepoName::new(owner, name)
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

impl serde::Serialize for RepoName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for RepoName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
