//! People: who a token was minted for, how they got in, and what they may reach. Plain values,
//! like [`crate::model`]; the stores persist them and [`crate::Acl`] makes the rules.
//!
//! Tokens stay the one unit of access. A person is known by a verified email and/or a GitHub
//! account, and is a *member* of tenants: a membership is token-shaped (one role, a set of
//! projects or all of them), and every token a login mints for the person is exactly their
//! membership. Invitations and GitHub links are the two ways a membership or a token comes to
//! exist without an admin minting one.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::{
    ids::{InvitationId, ProjectId, TenantId, TokenId, UserId},
    model::{Actor, ProjectBinding},
    scope::{Scopes, TdRole},
};

/// A person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    /// Lowercased; known only once verified (a clicked login link or an accepted invitation).
    pub email: Option<String>,
    pub github: Option<GithubAccount>,
    pub created_at: DateTime<Utc>,
}

impl User {
    /// The email or, failing that, `github:LOGIN` (for listings and the audit log).
    pub fn label(&self) -> String {
        match (&self.email, &self.github) {
            (Some(email), _) => email.clone(),
            (None, Some(gh)) => format!("github:{}", gh.login),
            (None, None) => self.id.to_string(),
        }
    }
}

/// A GitHub account, by its immutable numeric id (logins can be renamed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubAccount {
    pub id: u64,
    pub login: String,
}

/// A person's access within one tenant: one role over a set of its projects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub tenant: TenantId,
    pub user: UserId,
    pub role: TdRole,
    pub projects: ProjectBinding,
    pub created_at: DateTime<Utc>,
}

impl Membership {
    pub fn scopes(&self) -> Scopes {
        Scopes::of(&[self.role.scope()])
    }
}

/// An invitation to one project with a role, for whoever proves they own the email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub id: InvitationId,
    pub tenant: TenantId,
    pub project: ProjectId,
    /// Lowercased.
    pub email: String,
    pub role: TdRole,
    pub invited_by: Actor,
    pub status: InvitationStatus,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// When it was accepted, declined or revoked.
    pub closed_at: Option<DateTime<Utc>>,
}

impl Invitation {
    /// The status as of `now`: a pending invitation past its expiry reads `expired`.
    pub fn status_at(&self, now: DateTime<Utc>) -> InvitationStatus {
        if self.status == InvitationStatus::Pending && self.expires_at <= now {
            InvitationStatus::Expired
        } else {
            self.status
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationStatus {
    Pending,
    Accepted,
    Declined,
    Revoked,
    /// Never stored: see [`Invitation::status_at`].
    Expired,
}

impl InvitationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InvitationStatus::Pending => "pending",
            InvitationStatus::Accepted => "accepted",
            InvitationStatus::Declined => "declined",
            InvitationStatus::Revoked => "revoked",
            InvitationStatus::Expired => "expired",
        }
    }

    pub fn parse(raw: &str) -> Option<InvitationStatus> {
        [
            InvitationStatus::Pending,
            InvitationStatus::Accepted,
            InvitationStatus::Declined,
            InvitationStatus::Revoked,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }
}

impl fmt::Display for InvitationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `td auth login` in progress. The device code and the link's secret exist only in the
/// client's and the email's hands: the store keeps their SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceLogin {
    /// SHA-256 (hex) of the device code td polls with.
    pub code_hash: String,
    /// The public half of the approval link.
    pub link_id: String,
    /// SHA-256 (hex) of the link's secret half.
    pub link_secret_hash: String,
    /// Lowercased, as typed.
    pub email: String,
    pub device_name: String,
    /// td's PKCE S256 challenge.
    pub code_challenge: String,
    pub status: LoginStatus,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The token it ended in, once consumed.
    pub token: Option<TokenId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginStatus {
    /// Waiting for the link to be clicked.
    Pending,
    /// Approved in a browser; the next poll with the right verifier gets a token.
    Approved,
    /// A token was issued: the code is spent.
    Consumed,
}

impl LoginStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LoginStatus::Pending => "pending",
            LoginStatus::Approved => "approved",
            LoginStatus::Consumed => "consumed",
        }
    }

    pub fn parse(raw: &str) -> Option<LoginStatus> {
        [
            LoginStatus::Pending,
            LoginStatus::Approved,
            LoginStatus::Consumed,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }
}

/// A project's GitHub repository: people who can read it get read-only tokens for the project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubLink {
    pub project: ProjectId,
    /// `OWNER/NAME`.
    pub repo: String,
    /// Whether `push` access on GitHub grants `write` here (off unless the tenant opts in).
    pub allow_write: bool,
}

/// `OWNER/NAME` checked with GitHub's rules (surrounding spaces dropped), or why it is not a
/// repository: an owner is 1–39 letters, digits or single hyphens, not starting or ending with
/// one; a name is 1–100 of `A-Z a-z 0-9 . _ -`, and not `.` or `..`.
pub fn check_github_repo(raw: &str) -> Result<String, String> {
    let repo = raw.trim();
    let bad = |why: String| format!("{raw:?} is not a GitHub repository: {why}");
    let Some((owner, name)) = repo.split_once('/') else {
        return Err(bad("expected OWNER/NAME, such as octo/widgets".into()));
    };
    if name.contains('/') {
        return Err(bad("expected exactly one / (OWNER/NAME)".into()));
    }
    if owner.is_empty() || owner.len() > 39 {
        return Err(bad(format!(
            "the owner {owner:?} must be 1 to 39 characters"
        )));
    }
    if !owner
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(bad(format!(
            "the owner {owner:?} may hold only letters, digits and hyphens"
        )));
    }
    if owner.starts_with('-') || owner.ends_with('-') || owner.contains("--") {
        return Err(bad(format!(
            "the owner {owner:?} cannot start or end with a hyphen, nor hold two in a row"
        )));
    }
    if name.is_empty() || name.len() > 100 {
        return Err(bad(format!(
            "the repository name {name:?} must be 1 to 100 characters"
        )));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(bad(format!(
            "the repository name {name:?} may hold only letters, digits, '.', '_' and '-'"
        )));
    }
    if name == "." || name == ".." {
        return Err(bad(format!("the repository name cannot be {name:?}")));
    }
    Ok(format!("{owner}/{name}"))
}

/// A token granted from GitHub access, due for a re-check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubGrant {
    pub token: TokenId,
    pub tenant: TenantId,
    pub project: ProjectId,
    pub user: UserId,
    pub repo: String,
    /// The person's GitHub token, sealed by the gateway (the store never sees it in clear).
    pub sealed_github_token: String,
    pub checked_at: DateTime<Utc>,
}
