//! The people half of the control-plane store (see [`crate::people`]). Every backend keeps the
//! guarantees of [`super::ControlPlaneStore`] here too (one transaction per write with its audit
//! rows; revocations move the generation), and these:
//! - an email is stored lowercased, and one email or one GitHub account is one person;
//! - a membership is never wider than what was granted: an accepted invitation adds its project
//!   under its role, and a different role than the person already holds in the tenant is a
//!   [`StoreError::Conflict`] (a person has one role per tenant);
//! - closing an invitation or approving / consuming a login is conditional on its current
//!   status, so of two racing requests exactly one wins;
//! - a consumed login and the token it issued commit together.

use std::future::Future;

use chrono::{DateTime, Utc};

use crate::{
    ids::{InvitationId, ProjectId, TenantId, TokenId, UserId},
    model::{Actor, NewToken},
    people::{
        DeviceLogin, GithubAccount, GithubGrant, GithubLink, Invitation, InvitationStatus,
        Membership, User,
    },
    store::StoreError,
};

pub trait PeopleStore: Send + Sync + 'static {
    fn user(&self, id: &UserId) -> impl Future<Output = Result<Option<User>, StoreError>> + Send;

    /// The person with this email (compared lowercased), if any.
    fn user_by_email(
        &self,
        email: &str,
    ) -> impl Future<Output = Result<Option<User>, StoreError>> + Send;

    /// The person who proved they own `email` (lowercased), created at `at` if new.
    fn user_for_email(
        &self,
        email: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<User, StoreError>> + Send;

    /// The person with this GitHub account (by id), created at `at` if new; their login and
    /// sealed GitHub token are updated either way.
    fn user_for_github(
        &self,
        account: &GithubAccount,
        sealed_token: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<User, StoreError>> + Send;

    /// A tenant's members, oldest membership first.
    fn members(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<Vec<(User, Membership)>, StoreError>> + Send;

    /// A person's memberships, newest first.
    fn memberships(
        &self,
        user: &UserId,
    ) -> impl Future<Output = Result<Vec<Membership>, StoreError>> + Send;

    /// Takes a person out of a tenant: the membership goes and every live token minted for them
    /// in the tenant is revoked with its descendants. Returns the ids revoked. Not a member:
    /// [`StoreError::NotFound`].
    fn remove_member(
        &self,
        tenant: &TenantId,
        user: &UserId,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<TokenId>, StoreError>> + Send;

    /// Inserts a pending invitation; its project must belong to its tenant. Audited as its
    /// `invited_by`.
    fn insert_invitation(
        &self,
        invitation: &Invitation,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn invitation(
        &self,
        id: &InvitationId,
    ) -> impl Future<Output = Result<Option<Invitation>, StoreError>> + Send;

    /// A tenant's invitations (or one project's), newest first, whatever their status.
    fn invitations(
        &self,
        tenant: &TenantId,
        project: Option<&ProjectId>,
    ) -> impl Future<Output = Result<Vec<Invitation>, StoreError>> + Send;

    /// The pending invitations for `email` not expired at `now`, newest first.
    fn invitations_for(
        &self,
        email: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<Invitation>, StoreError>> + Send;

    /// Accepts a pending invitation for `user`, whose email must be the invitation's
    /// ([`StoreError::NotFound`] otherwise, as for an unknown id, whatever the invitation's
    /// status): the membership is created, or extended by the project. Not pending: [`StoreError::Conflict`]; expired at `at`:
    /// [`StoreError::Expired`].
    fn accept_invitation(
        &self,
        id: &InvitationId,
        user: &UserId,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Membership, StoreError>> + Send;

    /// Declines or revokes a pending invitation (`to` is `Declined` or `Revoked`), with the
    /// same errors as [`PeopleStore::accept_invitation`].
    fn close_invitation(
        &self,
        id: &InvitationId,
        to: InvitationStatus,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Invitation, StoreError>> + Send;

    fn insert_device_login(
        &self,
        login: &DeviceLogin,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The login td polls for, by the SHA-256 of its device code.
    fn device_login(
        &self,
        code_hash: &str,
    ) -> impl Future<Output = Result<Option<DeviceLogin>, StoreError>> + Send;

    /// The login an approval link names.
    fn device_login_by_link(
        &self,
        link_id: &str,
    ) -> impl Future<Output = Result<Option<DeviceLogin>, StoreError>> + Send;

    /// Pending and not expired at `at` → approved. Whether it was.
    fn approve_device_login(
        &self,
        link_id: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Approved → consumed, and `token` inserted, in one transaction (audited as `actor`).
    /// Whether it was approved (false: nothing written).
    fn consume_device_login(
        &self,
        code_hash: &str,
        token: &NewToken,
        actor: &Actor,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Forgets logins that expired before `before`. Returns how many.
    fn forget_device_logins(
        &self,
        before: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Links a project to a GitHub repository, or unlinks it (`None`).
    fn set_github_link(
        &self,
        project: &ProjectId,
        link: Option<&GithubLink>,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn github_link(
        &self,
        project: &ProjectId,
    ) -> impl Future<Output = Result<Option<GithubLink>, StoreError>> + Send;

    /// Inserts a token granted from GitHub access (its record names the person and binds the one
    /// project) with the grant to re-check, checked at the token's creation.
    fn insert_github_grant(
        &self,
        token: &NewToken,
        repo: &str,
        actor: &Actor,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Grants of unrevoked tokens last checked before `before`, oldest check first, at most
    /// `limit`, with the person's sealed GitHub token.
    fn github_grants_due(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<GithubGrant>, StoreError>> + Send;

    fn record_github_check(
        &self,
        token: &TokenId,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
