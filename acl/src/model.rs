//! What the control plane keeps: tenants, their projects, tokens and the audit log. These are
//! plain values; the stores persist them and the [`crate::Acl`] service makes the rules.

use std::{collections::BTreeSet, fmt};

use chrono::{DateTime, Utc};

use crate::{
    clock::format_time,
    ids::{ProjectId, TenantId, TokenId, UserId},
    scope::Scopes,
};

/// A team or account. It owns projects and tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    /// Unique across the control plane.
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// One synced td database (td's "project"). The id is global because td's URLs carry only the
/// project id; the registry says which tenant owns it. The shard itself is created by the
/// gateway in the tenants store: this is only the registry entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: ProjectId,
    pub tenant: TenantId,
    /// Unique within its tenant (td resolves `sync-project join NAME` by name).
    pub name: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Which of its tenant's projects a token reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectBinding {
    /// Every project of the tenant, including ones created later (the env-var token).
    All,
    /// Only these (never empty).
    Only(BTreeSet<ProjectId>),
}

impl ProjectBinding {
    pub fn covers(&self, project: &ProjectId) -> bool {
        match self {
            ProjectBinding::All => true,
            ProjectBinding::Only(set) => set.contains(project),
        }
    }

    /// Whether every project this binding reaches, `parent` reaches too.
    pub fn within(&self, parent: &ProjectBinding) -> bool {
        match (self, parent) {
            (_, ProjectBinding::All) => true,
            (ProjectBinding::All, ProjectBinding::Only(_)) => false,
            (ProjectBinding::Only(mine), ProjectBinding::Only(theirs)) => mine.is_subset(theirs),
        }
    }

    pub fn is_all(&self) -> bool {
        matches!(self, ProjectBinding::All)
    }

    /// `"all"` or the list of ids, as the CLI's `--json` prints it.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            ProjectBinding::All => serde_json::Value::String("all".into()),
            ProjectBinding::Only(set) => set.iter().map(|p| p.as_str()).collect::<Vec<_>>().into(),
        }
    }
}

impl fmt::Display for ProjectBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProjectBinding::All => f.write_str("all"),
            ProjectBinding::Only(set) => {
                let ids: Vec<&str> = set.iter().map(|p| p.as_str()).collect();
                f.write_str(&ids.join(","))
            }
        }
    }
}

/// A token as stored, without its secret or the secret's hash (so listings cannot leak them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: TokenId,
    pub tenant: TenantId,
    pub name: String,
    pub scopes: Scopes,
    pub projects: ProjectBinding,
    /// The token this one was minted from, if any.
    pub parent: Option<TokenId>,
    /// The person it was minted for (a login, an invitation, GitHub), if any.
    pub user: Option<UserId>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl TokenRecord {
    pub fn state(&self, now: DateTime<Utc>) -> TokenState {
        if self.revoked_at.is_some() {
            TokenState::Revoked
        } else if self.expires_at.is_some_and(|e| e <= now) {
            TokenState::Expired
        } else {
            TokenState::Active
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    Active,
    Expired,
    Revoked,
}

impl TokenState {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenState::Active => "active",
            TokenState::Expired => "expired",
            TokenState::Revoked => "revoked",
        }
    }
}

/// The argon2id hash of a token's secret, as a PHC string (`$argon2id$v=19$m=…`).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash(pub String);

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(…)")
    }
}

/// A token to insert: the record plus the hash of its secret.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub record: TokenRecord,
    pub secret_hash: SecretHash,
}

/// Who did something, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The admin command line (someone with access to the control plane itself).
    Cli,
    /// A request authenticated with this token.
    Token(TokenId),
    /// A person acting without a token (approving a login link, signing in with GitHub).
    User(UserId),
    /// tdsync itself (a GitHub grant revoked when a re-check finds the access gone).
    System,
}

impl Actor {
    pub fn as_string(&self) -> String {
        match self {
            Actor::Cli => "cli".into(),
            Actor::Token(id) => id.to_string(),
            Actor::User(id) => id.to_string(),
            Actor::System => "system".into(),
        }
    }

    pub fn parse(raw: &str) -> Option<Actor> {
        if raw == "cli" {
            Some(Actor::Cli)
        } else if raw == "system" {
            Some(Actor::System)
        } else if raw.starts_with(UserId::PREFIX) {
            UserId::parse(raw).ok().map(Actor::User)
        } else {
            TokenId::parse(raw).ok().map(Actor::Token)
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_string())
    }
}

/// What the audit log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    TenantCreated,
    ProjectCreated,
    TokenMinted,
    TokenRevoked,
    TokenScopesChanged,
    MemberAdded,
    MemberRemoved,
    InvitationCreated,
    InvitationAccepted,
    InvitationDeclined,
    InvitationRevoked,
    GithubLinked,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::TenantCreated => "tenant_created",
            AuditAction::ProjectCreated => "project_created",
            AuditAction::TokenMinted => "token_minted",
            AuditAction::TokenRevoked => "token_revoked",
            AuditAction::TokenScopesChanged => "token_scopes_changed",
            AuditAction::MemberAdded => "member_added",
            AuditAction::MemberRemoved => "member_removed",
            AuditAction::InvitationCreated => "invitation_created",
            AuditAction::InvitationAccepted => "invitation_accepted",
            AuditAction::InvitationDeclined => "invitation_declined",
            AuditAction::InvitationRevoked => "invitation_revoked",
            AuditAction::GithubLinked => "github_linked",
        }
    }

    pub fn parse(raw: &str) -> Option<AuditAction> {
        [
            AuditAction::TenantCreated,
            AuditAction::ProjectCreated,
            AuditAction::TokenMinted,
            AuditAction::TokenRevoked,
            AuditAction::TokenScopesChanged,
            AuditAction::MemberAdded,
            AuditAction::MemberRemoved,
            AuditAction::InvitationCreated,
            AuditAction::InvitationAccepted,
            AuditAction::InvitationDeclined,
            AuditAction::InvitationRevoked,
            AuditAction::GithubLinked,
        ]
        .into_iter()
        .find(|a| a.as_str() == raw)
    }
}

/// One audit log row: who did what to which subject, when, with details (never a secret).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    /// Increasing in insertion order within a store.
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub tenant: TenantId,
    pub actor: Actor,
    /// The person behind the actor (a person's own id, or the person a token was minted
    /// for), by email or GitHub login.
    pub person: Option<String>,
    pub action: AuditAction,
    /// The id of the tenant, project or token acted on.
    pub subject: String,
    pub detail: serde_json::Value,
}

/// The audit details of a minted token: everything about it but the secret.
pub(crate) fn minted_detail(record: &TokenRecord) -> serde_json::Value {
    serde_json::json!({
        "name": record.name,
        "scopes": record.scopes.names(),
        "projects": record.projects.to_json(),
        "expires_at": record.expires_at.map(format_time),
        "parent": record.parent.as_ref().map(|p| p.as_str()),
        "user": record.user.as_ref().map(|u| u.as_str()),
    })
}

/// The audit details of a revoked token: which revocation it came from.
pub(crate) fn revoked_detail(root: &TokenId, this: &TokenId) -> serde_json::Value {
    if root == this {
        serde_json::json!({ "cascade_from": null })
    } else {
        serde_json::json!({ "cascade_from": root.as_str() })
    }
}
