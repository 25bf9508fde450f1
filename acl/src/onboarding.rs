//! How people get in without an admin minting for them: `td auth login` (an emailed link,
//! td's PKCE device flow), invitations, and GitHub grants; and how they are taken out. Every way
//! in ends in a token ([`IssuedToken`]) that is exactly what the person was granted.
//!
//! The rules kept here (the gateway only maps them to HTTP):
//! - a login answers the same whether or not the email is known, so emails cannot be probed;
//!   only a known email (a member, or someone with a pending invitation) gets a link;
//! - a link approves once, and only by an explicit approval (the gateway's POST), never by
//!   being opened; approving accepts the person's pending invitations;
//! - a device code completes once, and only with the verifier of its challenge;
//! - an invitation never grants more than its inviter holds.

use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};
use sha2::{Digest, Sha256};
use tdsync_protocol::ids::{ID_ALPHABET, random_chars};

use crate::{
    error::AclError,
    ids::{InvitationId, ProjectId, TenantId, TokenId, UserId},
    model::{Actor, Project, ProjectBinding},
    people::{
        DeviceLogin, GithubAccount, GithubGrant, GithubLink, Invitation, InvitationStatus,
        LoginStatus, Membership, User,
    },
    scope::{Scope, Scopes, TdRole},
    service::{Acl, Draft, IssuedToken},
    store::ControlPlaneStore,
};

/// How long a `td auth login` waits for its link to be clicked (td's own server: 15 minutes).
pub const LOGIN_TTL: TimeDelta = TimeDelta::minutes(15);
/// Seconds between td's polls.
pub const LOGIN_POLL_SECONDS: u64 = 5;
/// How long a token from `td auth login` lives.
pub const LOGIN_TOKEN_TTL: TimeDelta = TimeDelta::days(90);
/// How long an invitation can be accepted (td's own server: 7 days).
pub const INVITATION_TTL: TimeDelta = TimeDelta::days(7);
/// How long a token granted from GitHub access lives; logging in again renews it.
pub const GITHUB_TOKEN_TTL: TimeDelta = TimeDelta::days(30);
/// How often a GitHub grant's access is checked again while its token lives.
pub const GITHUB_RECHECK: TimeDelta = TimeDelta::hours(24);

/// Why a login step was refused. The gateway maps each to a status td understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    #[error("{0:?} is not an email address")]
    BadEmail(String),
    #[error("{0}")]
    BadChallenge(String),
    #[error("this approval link is not valid (copy the whole link from the email)")]
    BadLink,
    #[error("this login has expired: run `td auth login` again")]
    Expired,
    #[error("this login was already completed: run `td auth login` again")]
    Used,
    #[error("code_verifier does not match this login's code_challenge")]
    WrongVerifier,
    #[error(
        "{0} has no access to any project here: ask a project owner to invite you, then log in again"
    )]
    NoAccess(String),
}

/// A login just started: what td is told, and the link to email when the email is known.
#[derive(Debug)]
pub struct LoginStarted {
    pub device_code: String,
    pub expires_in: u64,
    pub interval: u64,
    pub approval: Option<ApprovalLink>,
}

/// What the approval email carries: `token` is `<link id>.<secret>` (the secret exists only
/// in the email).
#[derive(Debug)]
pub struct ApprovalLink {
    pub email: String,
    pub device_name: String,
    pub token: String,
}

/// A poll's answer.
#[derive(Debug)]
pub enum LoginPoll {
    Pending,
    Complete {
        issued: Box<IssuedToken>,
        user: User,
    },
}

/// What approving did.
#[derive(Debug)]
pub struct Approved {
    pub email: String,
    pub device_name: String,
    /// Invitations accepted on the way: (project, role).
    pub joined: Vec<(ProjectId, TdRole)>,
    /// Invitations left pending, with why.
    pub not_joined: Vec<String>,
}

/// The longest email address taken, in characters (as typed, before trimming).
pub const MAX_EMAIL: usize = 254;

/// The longest local part (before the `@`) taken, in characters (RFC 5321's limit).
pub const MAX_EMAIL_LOCAL: usize = 64;

/// What an email's local part may hold besides ASCII letters, digits and inner dots (the
/// unquoted `atext` of RFC 5322).
pub const EMAIL_LOCAL_SYMBOLS: &str = "!#$%&'*+/=?^_`{|}~-";

/// Lowercased, or why it is not an address: at most [`MAX_EMAIL`] characters; once trimmed, an
/// ASCII dot-atom local part of at most 64 characters, `@`, and a domain of two or more labels of
/// letters, digits and inner hyphens (at most 63 each). Narrower than RFC 5322 on purpose: every
/// address taken is one the mailer can send to. The emailed link proves the rest.
pub fn clean_email(raw: &str) -> Result<String, LoginError> {
    let bad = || LoginError::BadEmail(raw.to_string());
    if raw.chars().count() > MAX_EMAIL {
        return Err(bad());
    }
    let email = raw.trim();
    let (local, domain) = email.split_once('@').ok_or_else(bad)?;
    let atom = |a: &str| {
        !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_alphanumeric() || EMAIL_LOCAL_SYMBOLS.contains(c))
    };
    let label = |l: &str| {
        (1..=63).contains(&l.len())
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let ok = local.len() <= MAX_EMAIL_LOCAL
        && local.split('.').all(atom)
        && domain.split('.').count() >= 2
        && domain.split('.').all(label);
    if ok {
        Ok(email.to_ascii_lowercase())
    } else {
        Err(bad())
    }
}

fn sha256_hex(raw: &str) -> String {
    hex::encode(Sha256::digest(raw.as_bytes()))
}

/// td's S256: base64url without padding of SHA-256 over the verifier's ASCII.
fn s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn is_pkce_text(raw: &str, min: usize) -> bool {
    (min..=128).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

impl<S: ControlPlaneStore> Acl<S> {
    // ---- td auth login ----------------------------------------------------------------------

    /// Starts a `td auth login`. The answer is the same for any well-formed email; only a known
    /// one carries an [`ApprovalLink`] to send.
    pub async fn start_login(
        &self,
        email: &str,
        code_challenge: &str,
        method: &str,
        device_name: &str,
    ) -> Result<LoginStarted, AclError> {
        let email = clean_email(email)?;
        if method != "S256" {
            return Err(LoginError::BadChallenge(format!(
                "code_challenge_method must be S256, got {method:?}"
            ))
            .into());
        }
        if !is_pkce_text(code_challenge, 43) {
            return Err(LoginError::BadChallenge(
                "code_challenge must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~".into(),
            )
            .into());
        }
        let device_name: String = match device_name.trim() {
            "" => "a device".into(),
            name => name.chars().filter(|c| !c.is_control()).take(100).collect(),
        };
        let now = self.now();
        // Old logins go now and then; a login is never read after its expiry plus a day.
        if rand::random::<u8>() == 0 {
            self.store()
                .forget_device_logins(now - TimeDelta::days(1))
                .await?;
        }
        let device_code = random_chars(ID_ALPHABET, 48);
        let link_id = random_chars(ID_ALPHABET, 16);
        let link_secret = random_chars(ID_ALPHABET, 40);
        let login = DeviceLogin {
            code_hash: sha256_hex(&device_code),
            link_id: link_id.clone(),
            link_secret_hash: sha256_hex(&link_secret),
            email: email.clone(),
            device_name: device_name.clone(),
            code_challenge: code_challenge.to_string(),
            status: LoginStatus::Pending,
            created_at: now,
            expires_at: now + LOGIN_TTL,
            token: None,
        };
        // Stored for unknown emails too: their code polls `pending` until it expires, exactly
        // like a known email whose link is never clicked.
        self.store().insert_device_login(&login).await?;
        let known = match self.store().user_by_email(&email).await? {
            Some(user) => !self.store().memberships(&user.id).await?.is_empty(),
            None => false,
        } || !self.store().invitations_for(&email, now).await?.is_empty();
        Ok(LoginStarted {
            device_code,
            expires_in: LOGIN_TTL.num_seconds() as u64,
            interval: LOGIN_POLL_SECONDS,
            approval: known.then(|| ApprovalLink {
                email,
                device_name,
                token: format!("{link_id}.{link_secret}"),
            }),
        })
    }

    /// The login an approval link names, if the link is genuine (for the approval page).
    pub async fn login_for_link(&self, link: &str) -> Result<DeviceLogin, AclError> {
        let (id, secret) = link.split_once('.').ok_or(LoginError::BadLink)?;
        let login = self
            .store()
            .device_login_by_link(id)
            .await?
            .ok_or(LoginError::BadLink)?;
        // Both sides are SHA-256 digests of random secrets: comparing them leaks nothing useful.
        if login.link_secret_hash != sha256_hex(secret) {
            return Err(LoginError::BadLink.into());
        }
        Ok(login)
    }

    /// Approves the login a genuine link names (the person clicked "Approve"): the person's
    /// email is verified, their pending invitations are accepted, and td's next poll completes.
    pub async fn approve_login(&self, link: &str) -> Result<Approved, AclError> {
        let login = self.login_for_link(link).await?;
        let now = self.now();
        match login.status {
            LoginStatus::Pending if login.expires_at <= now => {
                return Err(LoginError::Expired.into());
            }
            LoginStatus::Pending => {}
            LoginStatus::Approved | LoginStatus::Consumed => return Err(LoginError::Used.into()),
        }
        if !self
            .store()
            .approve_device_login(&login.link_id, now)
            .await?
        {
            return Err(LoginError::Used.into());
        }
        let user = self.store().user_for_email(&login.email, now).await?;
        let (joined, not_joined) = self.accept_pending(&user, now).await?;
        Ok(Approved {
            email: login.email,
            device_name: login.device_name,
            joined,
            not_joined,
        })
    }

    /// Accepts every pending invitation for the person's email, oldest first; one that cannot
    /// be (a role other than the one they hold) stays pending and is reported.
    async fn accept_pending(
        &self,
        user: &User,
        now: DateTime<Utc>,
    ) -> Result<(Vec<(ProjectId, TdRole)>, Vec<String>), AclError> {
        let Some(email) = &user.email else {
            return Ok((Vec::new(), Vec::new()));
        };
        let (mut joined, mut not_joined) = (Vec::new(), Vec::new());
        let mut pending = self.store().invitations_for(email, now).await?;
        pending.reverse();
        for inv in pending {
            match self.store().accept_invitation(&inv.id, &user.id, now).await {
                Ok(_) => joined.push((inv.project.clone(), inv.role)),
                Err(crate::store::StoreError::Conflict(why)) => {
                    not_joined.push(format!("{}: {why}", inv.project));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok((joined, not_joined))
    }

    /// td's poll: pending until approved, then — with the right verifier, once — a token for
    /// the person's membership (the most recent one if they belong to several tenants).
    pub async fn poll_login(
        &self,
        device_code: &str,
        code_verifier: &str,
    ) -> Result<LoginPoll, AclError> {
        let hash = sha256_hex(device_code);
        let login = self
            .store()
            .device_login(&hash)
            .await?
            .ok_or(LoginError::Expired)?;
        let now = self.now();
        match login.status {
            LoginStatus::Pending if login.expires_at <= now => Err(LoginError::Expired.into()),
            LoginStatus::Pending => Ok(LoginPoll::Pending),
            LoginStatus::Consumed => Err(LoginError::Used.into()),
            LoginStatus::Approved => {
                if s256(code_verifier) != login.code_challenge {
                    return Err(LoginError::WrongVerifier.into());
                }
                let user = self
                    .store()
                    .user_by_email(&login.email)
                    .await?
                    .ok_or_else(|| LoginError::NoAccess(login.email.clone()))?;
                let membership = self
                    .store()
                    .memberships(&user.id)
                    .await?
                    .into_iter()
                    .next()
                    .ok_or_else(|| LoginError::NoAccess(login.email.clone()))?;
                let name = format!("{} ({})", login.device_name, login.email);
                let draft = membership_draft(&membership, &user, name, now + LOGIN_TOKEN_TTL);
                let (issued, new) = self.seal(draft, now).await?;
                let actor = Actor::User(user.id.clone());
                if !self
                    .store()
                    .consume_device_login(&hash, &new, &actor)
                    .await?
                {
                    return Err(LoginError::Used.into());
                }
                Ok(LoginPoll::Complete {
                    issued: Box::new(issued),
                    user,
                })
            }
        }
    }

    // ---- invitations ------------------------------------------------------------------------

    /// Invites `email` to `project` as `role`. `inviter` limits the role to scopes the inviter
    /// holds (`None`: the admin command line).
    pub async fn invite(
        &self,
        project: &Project,
        email: &str,
        role: TdRole,
        invited_by: &Actor,
        inviter: Option<Scopes>,
    ) -> Result<Invitation, AclError> {
        let email = clean_email(email)?;
        if let Some(held) = inviter
            && !held.grants(role.scope())
        {
            return Err(AclError::Invalid(format!(
                "you hold {held}: you cannot invite someone as {} (it needs {})",
                role.as_str(),
                role.scope().as_str()
            )));
        }
        let now = self.now();
        let invitation = Invitation {
            id: InvitationId::generate(),
            tenant: project.tenant.clone(),
            project: project.id.clone(),
            email,
            role,
            invited_by: invited_by.clone(),
            status: InvitationStatus::Pending,
            created_at: now,
            expires_at: now + INVITATION_TTL,
            closed_at: None,
        };
        self.store().insert_invitation(&invitation).await?;
        Ok(invitation)
    }

    /// A tenant's invitations (or one project's), newest first.
    pub async fn invitations(
        &self,
        tenant: &TenantId,
        project: Option<&ProjectId>,
    ) -> Result<Vec<Invitation>, AclError> {
        Ok(self.store().invitations(tenant, project).await?)
    }

    /// One invitation of `tenant`; another tenant's answers like a missing one.
    pub async fn invitation_in(
        &self,
        tenant: &TenantId,
        id: &InvitationId,
    ) -> Result<Invitation, AclError> {
        self.store()
            .invitation(id)
            .await?
            .filter(|i| i.tenant == *tenant)
            .ok_or_else(|| AclError::NotFound(format!("invitation {id} not found")))
    }

    /// The pending invitations addressed to a person's verified email.
    pub async fn invitations_of(&self, user: &UserId) -> Result<Vec<Invitation>, AclError> {
        match self.person(user).await?.email {
            Some(email) => Ok(self.store().invitations_for(&email, self.now()).await?),
            None => Ok(Vec::new()),
        }
    }

    /// The person accepts an invitation addressed to their email: the invitation as accepted,
    /// and the membership it extended. Their tokens minted before do not grow: the next login's
    /// token includes the project.
    pub async fn accept_invitation(
        &self,
        id: &InvitationId,
        user: &UserId,
    ) -> Result<(Invitation, Membership), AclError> {
        let membership = self.store().accept_invitation(id, user, self.now()).await?;
        let invitation = self
            .store()
            .invitation(id)
            .await?
            .ok_or_else(|| AclError::NotFound(format!("invitation {id} not found")))?;
        Ok((invitation, membership))
    }

    pub async fn decline_invitation(
        &self,
        id: &InvitationId,
        user: &UserId,
    ) -> Result<Invitation, AclError> {
        let person = self.person(user).await?;
        let inv = self.store().invitation(id).await?;
        // Someone else's invitation answers like a missing one.
        if inv.is_none_or(|i| Some(&i.email) != person.email.as_ref()) {
            return Err(AclError::NotFound(format!("invitation {id} not found")));
        }
        let actor = Actor::User(user.clone());
        Ok(self
            .store()
            .close_invitation(id, InvitationStatus::Declined, &actor, self.now())
            .await?)
    }

    pub async fn revoke_invitation(
        &self,
        tenant: &TenantId,
        id: &InvitationId,
        actor: &Actor,
    ) -> Result<Invitation, AclError> {
        self.invitation_in(tenant, id).await?;
        Ok(self
            .store()
            .close_invitation(id, InvitationStatus::Revoked, actor, self.now())
            .await?)
    }

    // ---- people -----------------------------------------------------------------------------

    pub async fn person(&self, id: &UserId) -> Result<User, AclError> {
        self.store()
            .user(id)
            .await?
            .ok_or_else(|| AclError::NotFound(format!("user {id} not found")))
    }

    /// A person by id (`u_…`) or email.
    pub async fn find_person(&self, who: &str) -> Result<User, AclError> {
        let found = match UserId::parse(who) {
            Ok(id) => self.store().user(&id).await?,
            Err(_) => self.store().user_by_email(who.trim()).await?,
        };
        found.ok_or_else(|| AclError::NotFound(format!("no person {who:?}")))
    }

    /// A tenant's members, oldest first.
    pub async fn members(&self, tenant: &TenantId) -> Result<Vec<(User, Membership)>, AclError> {
        if self.store().tenant(tenant).await?.is_none() {
            return Err(AclError::NotFound(format!("tenant {tenant} not found")));
        }
        Ok(self.store().members(tenant).await?)
    }

    /// Takes a person out of a tenant and revokes their tokens there. Returns the ids revoked.
    pub async fn remove_member(
        &self,
        tenant: &TenantId,
        user: &UserId,
        actor: &Actor,
    ) -> Result<Vec<TokenId>, AclError> {
        let revoked = self
            .store()
            .remove_member(tenant, user, actor, self.now())
            .await?;
        if !revoked.is_empty() {
            self.revoked_here();
        }
        Ok(revoked)
    }

    // ---- GitHub -----------------------------------------------------------------------------

    /// Links `project` to a GitHub repository (`OWNER/NAME`, checked by the caller), or unlinks
    /// it (`None`).
    pub async fn link_github(
        &self,
        project: &ProjectId,
        link: Option<GithubLink>,
        actor: &Actor,
    ) -> Result<(), AclError> {
        Ok(self
            .store()
            .set_github_link(project, link.as_ref(), actor, self.now())
            .await?)
    }

    pub async fn github_link(&self, project: &ProjectId) -> Result<Option<GithubLink>, AclError> {
        Ok(self.store().github_link(project).await?)
    }

    /// A token for a person whose GitHub access to the project's repository was just checked:
    /// read-only, or write when `write` (the tenant opted in and they can push).
    pub async fn grant_github(
        &self,
        project: &Project,
        link: &GithubLink,
        account: &GithubAccount,
        sealed_github_token: &str,
        write: bool,
    ) -> Result<IssuedToken, AclError> {
        let now = self.now();
        let user = self
            .store()
            .user_for_github(account, sealed_github_token, now)
            .await?;
        let scope = if write && link.allow_write {
            Scope::Write
        } else {
            Scope::Read
        };
        let draft = Draft {
            tenant: project.tenant.clone(),
            name: format!("github:{} ({})", account.login, link.repo),
            scopes: Scopes::of(&[scope]),
            projects: ProjectBinding::Only([project.id.clone()].into()),
            expires_at: Some(now + GITHUB_TOKEN_TTL),
            parent: None,
            user: Some(user.id.clone()),
        };
        let (issued, new) = self.seal(draft, now).await?;
        self.store()
            .insert_github_grant(&new, &link.repo, &Actor::User(user.id))
            .await?;
        Ok(issued)
    }

    /// GitHub grants whose last check is older than [`GITHUB_RECHECK`], at most `limit`.
    pub async fn github_grants_due(&self, limit: u32) -> Result<Vec<GithubGrant>, AclError> {
        self.github_grants_older_than(GITHUB_RECHECK, limit).await
    }

    /// GitHub grants whose last check is older than `age`, at most `limit`: the re-check's age
    /// is a server setting (tests re-check at once).
    pub async fn github_grants_older_than(
        &self,
        age: TimeDelta,
        limit: u32,
    ) -> Result<Vec<GithubGrant>, AclError> {
        let before = self.now() - age;
        Ok(self.store().github_grants_due(before, limit).await?)
    }

    pub async fn github_checked(&self, token: &TokenId) -> Result<(), AclError> {
        Ok(self.store().record_github_check(token, self.now()).await?)
    }
}

/// The token a login mints: exactly the person's membership.
fn membership_draft(
    membership: &Membership,
    user: &User,
    name: String,
    expires_at: DateTime<Utc>,
) -> Draft {
    Draft {
        tenant: membership.tenant.clone(),
        name: name.chars().take(crate::service::MAX_NAME).collect(),
        scopes: membership.scopes(),
        projects: membership.projects.clone(),
        expires_at: Some(expires_at),
        parent: None,
        user: Some(user.id.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_matches_rfc_7636_appendix_b() {
        // The verifier and challenge printed in RFC 7636, Appendix B.
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn emails_are_lowercased_and_checked() {
        assert_eq!(
            clean_email("  Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
        for good in [
            "o'brien+td@mail.example.co",
            "a.b.c@x-1.example",
            &format!("{}@{}.io", "a".repeat(64), "x".repeat(63)),
        ] {
            assert!(clean_email(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "ada@example",
            "a b@example.com",
            "ada@.com",
            "ada@-x.com",
            "ada@x-.com",
            ".ada@example.com",
            "ada.@example.com",
            "a..da@example.com",
            "ada@exa_mple.com",
            "ad(a)@example.com",
            "ädä@example.com",
            "ada@ëxample.com",
            &format!("{}@example.com", "a".repeat(65)),
            &format!("ada@{}.com", "x".repeat(64)),
        ] {
            assert!(clean_email(bad).is_err(), "{bad}");
        }
    }
}
