//! The control plane of tdsync: tenants, their projects, scoped tokens, and who may do what.
//!
//! - [`Acl`] is the service the gateway and the CLI call: create tenants and projects, mint
//!   tokens (root tokens, and children that never exceed their parent), verify bearer tokens
//!   (argon2id on first sight, then a cache checked against a revocation generation), decide,
//!   revoke, and batch last-used times.
//! - [`decide`] is the one decision: may this token do [`Action`] on this project of this tenant.
//! - [`ControlPlaneStore`] is the persistence trait, with [`SqliteStore`] (the embedded default)
//!   and [`PostgresStore`]; [`AnyStore`] picks one from a [`ControlPlaneUrl`].
//! - [`cli`] holds the admin commands (`tdsync tenant|project|token|audit …`).
//!
//! Invariants: no token secret is stored or logged in clear (only argon2id hashes; [`Token`]
//! hides itself in `Debug`); this crate knows nothing of shards or events, and `tdsync-tenants`
//! knows nothing of it; every permission check goes through [`decide`].

mod cache;
pub mod cli;
mod clock;
mod decision;
mod duration;
mod error;
mod hasher;
mod ids;
mod mint;
mod model;
mod onboarding;
mod people;
mod scope;
mod secret;
mod service;
pub mod store;
#[cfg(feature = "test-support")]
pub mod testing;
#[cfg(feature = "test-support")]
pub use testing::ManualClock;

pub use clock::{Clock, SystemClock, format_time, parse_time};
pub use decision::{Action, Denied, Target, TokenGrant, decide};
pub use duration::{
    BadDuration, MAX_SECONDS as MAX_DURATION_SECONDS, format_duration, parse_duration,
};
pub use error::{AclError, AuthError};
pub use ids::{BadId, InvitationId, ProjectId, TenantId, TokenId, UserId};
pub use mint::{ChildSpec, MintError, MintRequest, check_child};
pub use model::{
    Actor, AuditAction, AuditEvent, NewToken, Project, ProjectBinding, SecretHash, Tenant,
    TokenRecord, TokenState,
};
pub use onboarding::{
    ApprovalLink, Approved, EMAIL_LOCAL_SYMBOLS, GITHUB_RECHECK, GITHUB_TOKEN_TTL, INVITATION_TTL,
    LOGIN_POLL_SECONDS, LOGIN_TOKEN_TTL, LOGIN_TTL, LoginError, LoginPoll, LoginStarted, MAX_EMAIL,
    MAX_EMAIL_LOCAL, clean_email,
};
pub use people::{
    DeviceLogin, GithubAccount, GithubGrant, GithubLink, Invitation, InvitationStatus, LoginStatus,
    Membership, User,
};
pub use scope::{BadScopes, Scope, Scopes, TdRole};
pub use secret::{HashCost, TOKEN_PREFIX, Token};
pub use service::{Acl, AclConfig, IssuedToken, MAX_DESCRIPTION, MAX_NAME};
pub use store::{
    AnyStore, ControlPlaneStore, ControlPlaneUrl, PeopleStore, PostgresStore, SqliteStore,
    StoreError,
};
