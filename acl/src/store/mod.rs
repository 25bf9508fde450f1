//! The control-plane store: one trait, two backends (embedded SQLite, the default, and Postgres
//! through sqlx), each with its own migrations, both held to one conformance suite
//! (`tests/it/conformance.rs`). [`AnyStore`] picks one from a URL at run time.
//!
//! What every backend guarantees:
//! - each write and its audit row commit in one transaction;
//! - revoking a token revokes its descendants in the same transaction and moves the
//!   **revocation generation** forward;
//! - a child is inserted only while its parent is still unrevoked (checked inside the insert's
//!   transaction, so a concurrent revoke cannot be missed);
//! - [`ControlPlaneStore::revocation_generation`] is cheap (microseconds, no network round trip)
//!   and reflects revocations committed by *any* process: SQLite notices another connection's
//!   commit through `PRAGMA data_version` on every call; Postgres is told by `LISTEN/NOTIFY`
//!   and, while it cannot listen, answers "unknown" so callers fall back to reading the rows.
//!
//! The store never reads the clock and never sees a secret: timestamps and argon2id hashes come
//! from the [`crate::Acl`] service.

use std::{
    future::Future,
    path::{Path, PathBuf},
};

use chrono::{DateTime, Utc};

use crate::{
    ids::{InvitationId, ProjectId, TenantId, TokenId, UserId},
    model::{Actor, AuditEvent, NewToken, Project, SecretHash, Tenant, TokenRecord},
    people::{
        DeviceLogin, GithubAccount, GithubGrant, GithubLink, Invitation, InvitationStatus,
        Membership, User,
    },
    scope::Scopes,
};

mod decode;
mod people;
pub mod postgres;
pub mod sqlite;

pub use people::PeopleStore;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// The control plane's persistence. See the module documentation for the guarantees; people
/// (users, memberships, invitations, logins, GitHub grants) are in [`PeopleStore`].
pub trait ControlPlaneStore: PeopleStore {
    /// Inserts a tenant. A name already taken is a [`StoreError::Conflict`].
    fn create_tenant(
        &self,
        tenant: &Tenant,
        actor: &Actor,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// All tenants, oldest first.
    fn tenants(&self) -> impl Future<Output = Result<Vec<Tenant>, StoreError>> + Send;

    fn tenant(
        &self,
        id: &TenantId,
    ) -> impl Future<Output = Result<Option<Tenant>, StoreError>> + Send;

    /// Inserts a project of an existing tenant; its name must be new within the tenant.
    fn create_project(
        &self,
        project: &Project,
        actor: &Actor,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn project(
        &self,
        id: &ProjectId,
    ) -> impl Future<Output = Result<Option<Project>, StoreError>> + Send;

    /// A tenant's projects, oldest first.
    fn projects(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<Vec<Project>, StoreError>> + Send;

    /// Inserts a token. Its tenant must exist, every bound project must belong to that tenant,
    /// and a parent must exist in the same tenant and be unrevoked
    /// ([`StoreError::ParentInactive`] otherwise).
    fn insert_token(
        &self,
        token: &NewToken,
        actor: &Actor,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn token(
        &self,
        id: &TokenId,
    ) -> impl Future<Output = Result<Option<TokenRecord>, StoreError>> + Send;

    /// The token with the hash of its secret: only verification asks for this.
    fn token_for_verification(
        &self,
        id: &TokenId,
    ) -> impl Future<Output = Result<Option<(TokenRecord, SecretHash)>, StoreError>> + Send;

    /// A tenant's tokens, oldest first (revoked and expired ones included).
    fn tokens(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<Vec<TokenRecord>, StoreError>> + Send;

    /// Revokes a token and all its descendants at `at`. Returns the ids newly revoked (the token
    /// first when it was not revoked yet); empty when everything already was. Unknown id:
    /// [`StoreError::NotFound`].
    fn revoke_token(
        &self,
        id: &TokenId,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<TokenId>, StoreError>> + Send;

    /// Gives a live token new scopes, and revokes every descendant whose scopes would then
    /// exceed them (a child never exceeds its parent). The revocation generation moves, so
    /// caches re-read the token. Returns the descendants revoked. Unknown or revoked token:
    /// [`StoreError::NotFound`].
    fn set_token_scopes(
        &self,
        id: &TokenId,
        scopes: Scopes,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<TokenId>, StoreError>> + Send;

    /// Records when tokens were last used, in one transaction (times only move forward).
    fn record_last_used(
        &self,
        uses: &[(TokenId, DateTime<Utc>)],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A tenant's audit log, oldest first.
    fn audit_log(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<Vec<AuditEvent>, StoreError>> + Send;

    /// The current revocation generation (see the module documentation). Cheap enough to call
    /// on every request; an error means "unknown right now", never "nothing changed".
    fn revocation_generation(&self) -> Result<u64, StoreError>;
}

/// Control-plane store errors, each naming what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The tenant, project, token or parent does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A unique name is already taken, or a change conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// An invitation or a login is past its expiry.
    #[error("{0} has expired")]
    Expired(String),
    /// The parent of a token being minted was revoked meanwhile.
    #[error("token {0} is revoked: it can no longer mint")]
    ParentInactive(TokenId),
    #[error("invalid control-plane URL {url:?}: {why}")]
    BadUrl { url: String, why: String },
    /// The database holds something tdsync did not write, or a newer schema.
    #[error("control plane at {location}: {why}")]
    Foreign { location: String, why: String },
    /// A stored value does not parse (the database was edited by hand or is damaged).
    #[error("control plane holds an invalid value: {0}")]
    Corrupt(String),
    #[error("SQLite control plane {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("Postgres control plane: {0}")]
    Postgres(#[source] sqlx::Error),
    #[error("Postgres control plane migrations: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The revocation feed is not connected; callers must read the rows instead.
    #[error("revocation feed unavailable: {0}")]
    FeedDown(String),
    #[error("control-plane task failed: {0}")]
    Task(String),
}

/// Where the control plane lives: `sqlite://PATH` or `postgres://…` (also `postgresql://…`).
#[derive(Clone, PartialEq, Eq)]
pub enum ControlPlaneUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl ControlPlaneUrl {
    /// The default: one SQLite file in the data directory.
    pub fn default_for(data_dir: &Path) -> ControlPlaneUrl {
        ControlPlaneUrl::Sqlite(data_dir.join("control-plane.db"))
    }

    pub fn parse(raw: &str) -> Result<ControlPlaneUrl, StoreError> {
        let bad = |why: &str| StoreError::BadUrl {
            url: redact(raw),
            why: why.into(),
        };
        if let Some(path) = raw.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(bad(
                    "no file path after sqlite:// (such as sqlite://./tdsync-data/control-plane.db)",
                ));
            }
            Ok(ControlPlaneUrl::Sqlite(PathBuf::from(path)))
        } else if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            Ok(ControlPlaneUrl::Postgres(raw.to_string()))
        } else {
            Err(bad(
                "use sqlite://PATH or postgres://USER@HOST:PORT/DATABASE",
            ))
        }
    }
}

impl std::fmt::Display for ControlPlaneUrl {
    /// The URL with any password hidden (safe for logs and messages).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControlPlaneUrl::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            ControlPlaneUrl::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

impl std::fmt::Debug for ControlPlaneUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ControlPlaneUrl({self})")
    }
}

/// `scheme://user:secret@host` → `scheme://user:***@host`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].find(':') {
            Some(colon) => format!("{scheme}://{}:***{}", &rest[..colon], &rest[at..]),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// The store a URL names, chosen at run time (the gateway and the CLI use this). Cheap to clone.
#[derive(Clone)]
pub enum AnyStore {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl AnyStore {
    /// Opens (creating and migrating when needed) the store at `url`.
    pub async fn open(url: &ControlPlaneUrl) -> Result<AnyStore, StoreError> {
        Ok(match url {
            ControlPlaneUrl::Sqlite(path) => AnyStore::Sqlite(SqliteStore::open(path).await?),
            ControlPlaneUrl::Postgres(url) => {
                AnyStore::Postgres(PostgresStore::connect(url).await?)
            }
        })
    }

    /// Closes network connections politely (Postgres); nothing to do for SQLite.
    pub async fn close(&self) {
        if let AnyStore::Postgres(pg) = self {
            pg.close().await;
        }
    }
}

/// Forwards a call to whichever backend this is.
macro_rules! dispatch {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            AnyStore::Sqlite($s) => $call,
            AnyStore::Postgres($s) => $call,
        }
    };
}

impl ControlPlaneStore for AnyStore {
    async fn create_tenant(&self, tenant: &Tenant, actor: &Actor) -> Result<(), StoreError> {
        dispatch!(self, s => s.create_tenant(tenant, actor).await)
    }
    async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        dispatch!(self, s => s.tenants().await)
    }
    async fn tenant(&self, id: &TenantId) -> Result<Option<Tenant>, StoreError> {
        dispatch!(self, s => s.tenant(id).await)
    }
    async fn create_project(&self, project: &Project, actor: &Actor) -> Result<(), StoreError> {
        dispatch!(self, s => s.create_project(project, actor).await)
    }
    async fn project(&self, id: &ProjectId) -> Result<Option<Project>, StoreError> {
        dispatch!(self, s => s.project(id).await)
    }
    async fn projects(&self, tenant: &TenantId) -> Result<Vec<Project>, StoreError> {
        dispatch!(self, s => s.projects(tenant).await)
    }
    async fn insert_token(&self, token: &NewToken, actor: &Actor) -> Result<(), StoreError> {
        dispatch!(self, s => s.insert_token(token, actor).await)
    }
    async fn token(&self, id: &TokenId) -> Result<Option<TokenRecord>, StoreError> {
        dispatch!(self, s => s.token(id).await)
    }
    async fn token_for_verification(
        &self,
        id: &TokenId,
    ) -> Result<Option<(TokenRecord, SecretHash)>, StoreError> {
        dispatch!(self, s => s.token_for_verification(id).await)
    }
    async fn tokens(&self, tenant: &TenantId) -> Result<Vec<TokenRecord>, StoreError> {
        dispatch!(self, s => s.tokens(tenant).await)
    }
    async fn revoke_token(
        &self,
        id: &TokenId,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Result<Vec<TokenId>, StoreError> {
        dispatch!(self, s => s.revoke_token(id, actor, at).await)
    }
    async fn set_token_scopes(
        &self,
        id: &TokenId,
        scopes: Scopes,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Result<Vec<TokenId>, StoreError> {
        dispatch!(self, s => s.set_token_scopes(id, scopes, actor, at).await)
    }
    async fn record_last_used(&self, uses: &[(TokenId, DateTime<Utc>)]) -> Result<(), StoreError> {
        dispatch!(self, s => s.record_last_used(uses).await)
    }
    async fn audit_log(&self, tenant: &TenantId) -> Result<Vec<AuditEvent>, StoreError> {
        dispatch!(self, s => s.audit_log(tenant).await)
    }
    fn revocation_generation(&self) -> Result<u64, StoreError> {
        dispatch!(self, s => s.revocation_generation())
    }
}

impl PeopleStore for AnyStore {
    async fn user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        dispatch!(self, s => s.user(id).await)
    }
    async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        dispatch!(self, s => s.user_by_email(email).await)
    }
    async fn user_for_email(&self, email: &str, at: DateTime<Utc>) -> Result<User, StoreError> {
        dispatch!(self, s => s.user_for_email(email, at).await)
    }
    async fn user_for_github(
        &self,
        account: &GithubAccount,
        sealed_token: &str,
        at: DateTime<Utc>,
    ) -> Result<User, StoreError> {
        dispatch!(self, s => s.user_for_github(account, sealed_token, at).await)
    }
    async fn members(&self, tenant: &TenantId) -> Result<Vec<(User, Membership)>, StoreError> {
        dispatch!(self, s => s.members(tenant).await)
    }
    async fn memberships(&self, user: &UserId) -> Result<Vec<Membership>, StoreError> {
        dispatch!(self, s => s.memberships(user).await)
    }
    async fn remove_member(
        &self,
        tenant: &TenantId,
        user: &UserId,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Result<Vec<TokenId>, StoreError> {
        dispatch!(self, s => s.remove_member(tenant, user, actor, at).await)
    }
    async fn insert_invitation(&self, invitation: &Invitation) -> Result<(), StoreError> {
        dispatch!(self, s => s.insert_invitation(invitation).await)
    }
    async fn invitation(&self, id: &InvitationId) -> Result<Option<Invitation>, StoreError> {
        dispatch!(self, s => s.invitation(id).await)
    }
    async fn invitations(
        &self,
        tenant: &TenantId,
        project: Option<&ProjectId>,
    ) -> Result<Vec<Invitation>, StoreError> {
        dispatch!(self, s => s.invitations(tenant, project).await)
    }
    async fn invitations_for(
        &self,
        email: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Invitation>, StoreError> {
        dispatch!(self, s => s.invitations_for(email, now).await)
    }
    async fn accept_invitation(
        &self,
        id: &InvitationId,
        user: &UserId,
        at: DateTime<Utc>,
    ) -> Result<Membership, StoreError> {
        dispatch!(self, s => s.accept_invitation(id, user, at).await)
    }
    async fn close_invitation(
        &self,
        id: &InvitationId,
        to: InvitationStatus,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Result<Invitation, StoreError> {
        dispatch!(self, s => s.close_invitation(id, to, actor, at).await)
    }
    async fn insert_device_login(&self, login: &DeviceLogin) -> Result<(), StoreError> {
        dispatch!(self, s => s.insert_device_login(login).await)
    }
    async fn device_login(&self, code_hash: &str) -> Result<Option<DeviceLogin>, StoreError> {
        dispatch!(self, s => s.device_login(code_hash).await)
    }
    async fn device_login_by_link(&self, link_id: &str) -> Result<Option<DeviceLogin>, StoreError> {
        dispatch!(self, s => s.device_login_by_link(link_id).await)
    }
    async fn approve_device_login(
        &self,
        link_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.approve_device_login(link_id, at).await)
    }
    async fn consume_device_login(
        &self,
        code_hash: &str,
        token: &NewToken,
        actor: &Actor,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.consume_device_login(code_hash, token, actor).await)
    }
    async fn forget_device_logins(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        dispatch!(self, s => s.forget_device_logins(before).await)
    }
    async fn set_github_link(
        &self,
        project: &ProjectId,
        link: Option<&GithubLink>,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.set_github_link(project, link, actor, at).await)
    }
    async fn github_link(&self, project: &ProjectId) -> Result<Option<GithubLink>, StoreError> {
        dispatch!(self, s => s.github_link(project).await)
    }
    async fn insert_github_grant(
        &self,
        token: &NewToken,
        repo: &str,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.insert_github_grant(token, repo, actor).await)
    }
    async fn github_grants_due(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<GithubGrant>, StoreError> {
        dispatch!(self, s => s.github_grants_due(before, limit).await)
    }
    async fn record_github_check(
        &self,
        token: &TokenId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.record_github_check(token, at).await)
    }
}

/// Messages shared by both backends, so they say the same thing.
pub(crate) mod msg {
    use crate::ids::{ProjectId, TenantId, TokenId};

    pub fn tenant(id: &TenantId) -> String {
        format!("tenant {id}")
    }
    pub fn project_in(project: &ProjectId, tenant: &TenantId) -> String {
        format!("project {project} in tenant {tenant}")
    }
    pub fn token(id: &TokenId) -> String {
        format!("token {id}")
    }
    pub fn parent_in(parent: &TokenId, tenant: &TenantId) -> String {
        format!("parent token {parent} in tenant {tenant}")
    }
    pub fn tenant_name_taken(name: &str) -> String {
        format!("a tenant named {name:?} already exists")
    }
    pub fn project_name_taken(name: &str, tenant: &TenantId) -> String {
        format!("tenant {tenant} already has a project named {name:?}")
    }
    pub fn duplicate(what: &str, id: &str) -> String {
        format!("{what} {id} already exists")
    }
    pub fn invitation(id: &crate::ids::InvitationId) -> String {
        format!("invitation {id}")
    }
    pub fn not_pending(status: crate::people::InvitationStatus) -> String {
        format!("the invitation is {status}, not pending")
    }
    pub fn member(user: &crate::ids::UserId, tenant: &TenantId) -> String {
        format!("member {user} of tenant {tenant}")
    }
    pub fn role_clash(held: crate::scope::TdRole, asked: crate::scope::TdRole) -> String {
        format!(
            "this person is already a {held} of the tenant, not a {asked}: a person has one role \
             per tenant (invite them as {held}, or remove them and invite them again)",
            held = held.as_str(),
            asked = asked.as_str()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            ControlPlaneUrl::parse("sqlite://./d/cp.db").unwrap(),
            ControlPlaneUrl::Sqlite("./d/cp.db".into())
        );
        assert_eq!(
            ControlPlaneUrl::parse("sqlite:///abs/cp.db").unwrap(),
            ControlPlaneUrl::Sqlite("/abs/cp.db".into())
        );
        assert!(matches!(
            ControlPlaneUrl::parse("postgresql://u@h/db").unwrap(),
            ControlPlaneUrl::Postgres(_)
        ));
        for bad in ["", "sqlite://", "mysql://x", "./cp.db"] {
            assert!(ControlPlaneUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_never_show() {
        let url = ControlPlaneUrl::parse("postgres://app:s3cret@db:5432/cp").unwrap();
        assert_eq!(url.to_string(), "postgres://app:***@db:5432/cp");
        assert!(!format!("{url:?}").contains("s3cret"));
        let e = ControlPlaneUrl::parse("mysql://app:s3cret@db/cp").unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }
}
