//! [`Acl`]: the control plane as the gateway and the CLI use it — tenants, projects, minting,
//! verification, decisions, revocation — over any [`ControlPlaneStore`].
//!
//! Verification, in order:
//! 1. SHA-256 of the presented token → the verified cache. A hit whose stamp (revocation
//!    generation + this process's revocation count) is current is answered from memory after an
//!    expiry check: this is steady state. A hit with an old stamp re-reads only that token's row
//!    (its secret was already verified) — so a revocation anywhere is seen by the next request.
//! 2. Refusals cache: a wrong secret, a revoked or an expired token presented again is refused
//!    without argon2.
//! 3. Otherwise parse, look the id up, and run argon2id on one of a few hashing threads (so a
//!    flood of bad tokens cannot take every core, and freed hash memory is not kept by dozens of
//!    threads: `hasher`).
//!
//! Last-used times are collected in memory and written in one batch by
//! [`Acl::flush_last_used`] (the gateway runs [`Acl::spawn_last_used_flusher`]).

use std::{
    sync::{
        Arc, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, TimeDelta, Utc};

use crate::{
    cache::{LastUsed, ProjectCache, Stamp, Verified, VerifyCache},
    clock::{Clock, SystemClock},
    decision::{Action, Denied, Target, TokenGrant, decide},
    error::{AclError, AuthError},
    hasher::Hasher,
    ids::{ProjectId, TenantId, TokenId, UserId},
    mint::{MintError, MintRequest, check_child},
    model::{
        Actor, AuditEvent, NewToken, Project, ProjectBinding, Tenant, TokenRecord, TokenState,
    },
    scope::Scopes,
    secret::{self, HashCost, Token, digest, hash_secret, secret_matches},
    store::{AnyStore, ControlPlaneStore, StoreError},
};

/// Tuning of an [`Acl`].
#[derive(Debug, Clone)]
pub struct AclConfig {
    /// Verified tokens kept in memory.
    pub cache_capacity: usize,
    /// Refused tokens kept in memory.
    pub refused_capacity: usize,
    pub hash_cost: HashCost,
    /// argon2 runs at once (each takes 19 MiB and a core for tens of milliseconds).
    pub max_parallel_hashes: usize,
}

impl Default for AclConfig {
    fn default() -> Self {
        AclConfig {
            cache_capacity: 10_000,
            refused_capacity: 10_000,
            hash_cost: HashCost::Standard,
            max_parallel_hashes: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// A freshly minted token: the only time its secret exists outside the holder's hands.
#[derive(Debug)]
pub struct IssuedToken {
    pub token: Token,
    pub record: TokenRecord,
}

/// A token to mint, before its secret exists.
pub(crate) struct Draft {
    pub tenant: TenantId,
    pub name: String,
    pub scopes: Scopes,
    pub projects: ProjectBinding,
    pub expires_at: Option<DateTime<Utc>>,
    pub parent: Option<TokenId>,
    pub user: Option<UserId>,
}

/// The longest project or token name, in characters (after trimming).
pub const MAX_NAME: usize = 100;
/// The longest project description, in characters (after trimming).
pub const MAX_DESCRIPTION: usize = 2000;

/// The control plane's service. Share it (`Arc<Acl>`) across requests.
pub struct Acl<S = AnyStore> {
    store: S,
    config: AclConfig,
    clock: Arc<dyn Clock>,
    cache: VerifyCache,
    projects: ProjectCache,
    last_used: LastUsed,
    hashing: Hasher,
    /// Revocations made through this `Acl`: part of every cache stamp.
    local_revocations: AtomicU64,
}

impl<S: ControlPlaneStore> Acl<S> {
    pub fn new(store: S, config: AclConfig) -> Acl<S> {
        Acl {
            cache: VerifyCache::new(config.cache_capacity, config.refused_capacity),
            projects: ProjectCache::new(config.cache_capacity),
            hashing: Hasher::new(config.max_parallel_hashes),
            store,
            config,
            clock: Arc::new(SystemClock),
            last_used: LastUsed::default(),
            local_revocations: AtomicU64::new(0),
        }
    }

    #[cfg(feature = "test-support")]
    /// Replaces the clock (tests make tokens expire with a [`crate::ManualClock`]).
    pub fn with_clock(mut self, clock: impl Clock) -> Acl<S> {
        self.clock = Arc::new(clock);
        self
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    // ---- tenants and projects -------------------------------------------------------------

    pub async fn create_tenant(&self, name: &str, actor: &Actor) -> Result<Tenant, AclError> {
        let tenant = Tenant {
            id: TenantId::generate(),
            name: clean_name("tenant name", name)?,
            created_at: self.now(),
        };
        self.store.create_tenant(&tenant, actor).await?;
        Ok(tenant)
    }

    pub async fn tenants(&self) -> Result<Vec<Tenant>, AclError> {
        Ok(self.store.tenants().await?)
    }

    /// The tenant, or a not-found error that helps when a name was given instead of an id.
    pub async fn tenant(&self, id: &str) -> Result<Tenant, AclError> {
        if let Ok(parsed) = TenantId::parse(id)
            && let Some(t) = self.store.tenant(&parsed).await?
        {
            return Ok(t);
        }
        let named = self
            .store
            .tenants()
            .await?
            .into_iter()
            .find(|t| t.name == id);
        Err(AclError::NotFound(match named {
            Some(t) => format!(
                "no tenant has the id {id:?}; the tenant named {id:?} has the id {}",
                t.id
            ),
            None => format!("no tenant has the id {id:?} (see `tdsync tenant list`)"),
        }))
    }

    /// Registers a project of `tenant` (the gateway creates its shard separately).
    pub async fn create_project(
        &self,
        tenant: &TenantId,
        name: &str,
        description: &str,
        actor: &Actor,
    ) -> Result<Project, AclError> {
        let now = self.now();
        let description = description.trim();
        if description.chars().count() > MAX_DESCRIPTION || description.chars().any(is_bad_char) {
            return Err(AclError::Invalid(format!(
                "project description must be at most {MAX_DESCRIPTION} characters without control characters"
            )));
        }
        let project = Project {
            id: ProjectId::generate(),
            tenant: tenant.clone(),
            name: clean_name("project name", name)?,
            description: description.to_string(),
            created_at: now,
            updated_at: now,
        };
        self.store.create_project(&project, actor).await?;
        Ok(project)
    }

    pub async fn projects(&self, tenant: &TenantId) -> Result<Vec<Project>, AclError> {
        if self.store.tenant(tenant).await?.is_none() {
            return Err(AclError::NotFound(format!("tenant {tenant} not found")));
        }
        Ok(self.store.projects(tenant).await?)
    }

    /// Project `id`, from memory once it was found (see `ProjectCache`).
    pub async fn project(&self, id: &ProjectId) -> Result<Option<Project>, AclError> {
        if let Some(found) = self.projects.get(id) {
            return Ok(Some((*found).clone()));
        }
        let found = self.store.project(id).await?;
        if let Some(p) = &found {
            self.projects.insert(Arc::new(p.clone()));
        }
        Ok(found)
    }

    // ---- tokens -----------------------------------------------------------------------------

    /// Mints a root token of `tenant` (the admin CLI, or an admin token through the gateway once
    /// [`Action::ManageTokens`] was decided). No projects: all of them; no ttl: no expiry.
    pub async fn mint(
        &self,
        tenant: &TenantId,
        request: MintRequest,
        actor: &Actor,
    ) -> Result<IssuedToken, AclError> {
        let now = self.now();
        let expires_at = match request.ttl {
            Some(ttl) if ttl <= TimeDelta::zero() => return Err(MintError::NonPositiveTtl.into()),
            Some(ttl) => Some(
                now.checked_add_signed(ttl)
                    .unwrap_or(DateTime::<Utc>::MAX_UTC),
            ),
            None => None,
        };
        let draft = Draft {
            tenant: tenant.clone(),
            name: request.name.unwrap_or_else(|| "token".into()),
            scopes: request.scopes,
            projects: request.projects.unwrap_or(ProjectBinding::All),
            expires_at,
            parent: None,
            user: None,
        };
        self.issue(draft, actor, now).await
    }

    /// Mints a child of a verified token; refused when it would exceed its parent.
    pub async fn mint_child(
        &self,
        parent: &TokenGrant,
        request: MintRequest,
    ) -> Result<IssuedToken, AclError> {
        let now = self.now();
        let spec = check_child(parent, &request, now)?;
        let draft = Draft {
            tenant: parent.tenant.clone(),
            name: request
                .name
                .unwrap_or_else(|| format!("child of {}", parent.id)),
            scopes: spec.scopes,
            projects: spec.projects,
            expires_at: spec.expires_at,
            parent: Some(parent.id.clone()),
            user: None,
        };
        self.issue(draft, &Actor::Token(parent.id.clone()), now)
            .await
    }

    async fn issue(
        &self,
        draft: Draft,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken, AclError> {
        let (issued, new) = self.seal(draft, now).await?;
        self.store.insert_token(&new, actor).await?;
        Ok(issued)
    }

    /// A checked record with a fresh secret, and what the store keeps of it (the secret's
    /// argon2id hash): not inserted yet.
    pub(crate) async fn seal(
        &self,
        draft: Draft,
        now: DateTime<Utc>,
    ) -> Result<(IssuedToken, NewToken), AclError> {
        if draft.scopes.is_empty() {
            return Err(AclError::Invalid("a token needs at least one scope".into()));
        }
        if matches!(&draft.projects, ProjectBinding::Only(set) if set.is_empty()) {
            return Err(AclError::Invalid(
                "a project list must name at least one project".into(),
            ));
        }
        let record = TokenRecord {
            id: TokenId::generate(),
            tenant: draft.tenant,
            name: clean_name("token name", &draft.name)?,
            scopes: draft.scopes,
            projects: draft.projects,
            parent: draft.parent,
            user: draft.user,
            expires_at: draft.expires_at,
            created_at: now,
            last_used_at: None,
            revoked_at: None,
        };
        let (token, secret) = secret::generate(&record.id);
        let cost = self.config.hash_cost;
        let secret_hash = self
            .blocking_hash(move || hash_secret(&secret, cost))
            .await?
            .map_err(AclError::Hash)?;
        let new = NewToken {
            record: record.clone(),
            secret_hash,
        };
        Ok((IssuedToken { token, record }, new))
    }

    /// Counts a revocation made here, so this process's cached grants are re-read at once.
    pub(crate) fn revoked_here(&self) {
        self.local_revocations.fetch_add(1, Ordering::AcqRel);
    }

    pub async fn token(&self, id: &TokenId) -> Result<TokenRecord, AclError> {
        self.store
            .token(id)
            .await?
            .ok_or_else(|| AclError::NotFound(format!("token {id} not found")))
    }

    pub async fn tokens(&self, tenant: &TenantId) -> Result<Vec<TokenRecord>, AclError> {
        if self.store.tenant(tenant).await?.is_none() {
            return Err(AclError::NotFound(format!("tenant {tenant} not found")));
        }
        Ok(self.store.tokens(tenant).await?)
    }

    /// Revokes a token and its descendants; effective for the next verification here, and on
    /// other nodes as soon as their store reports the new generation. Returns the ids newly
    /// revoked (empty if all already were).
    pub async fn revoke(&self, id: &TokenId, actor: &Actor) -> Result<Vec<TokenId>, AclError> {
        let revoked = self.store.revoke_token(id, actor, self.now()).await?;
        if !revoked.is_empty() {
            self.local_revocations.fetch_add(1, Ordering::AcqRel);
        }
        Ok(revoked)
    }

    /// Gives a token of `tenant` new scopes (td's `role` change). A child may not get more than
    /// its parent has; descendants that would exceed the new scopes are revoked. Returns them.
    pub async fn set_token_scopes(
        &self,
        tenant: &TenantId,
        id: &TokenId,
        scopes: Scopes,
        actor: &Actor,
    ) -> Result<Vec<TokenId>, AclError> {
        if scopes.is_empty() {
            return Err(AclError::Invalid("a token needs at least one scope".into()));
        }
        let record = self.store.token(id).await?;
        let Some(record) = record.filter(|r| r.tenant == *tenant) else {
            return Err(AclError::NotFound(format!("token {id} not found")));
        };
        if let Some(parent) = &record.parent
            && let Some(p) = self.store.token(parent).await?
            && !scopes.within(p.scopes)
        {
            return Err(AclError::Invalid(format!(
                "token {id} was minted from {parent}, which has only {}",
                p.scopes
            )));
        }
        let revoked = self
            .store
            .set_token_scopes(id, scopes, actor, self.now())
            .await?;
        self.local_revocations.fetch_add(1, Ordering::AcqRel);
        Ok(revoked)
    }

    /// Whether the control plane answers (for `/healthz`).
    pub async fn store_health(&self) -> Result<(), AclError> {
        self.store.tenants().await?;
        Ok(())
    }

    pub async fn audit_log(&self, tenant: &TenantId) -> Result<Vec<AuditEvent>, AclError> {
        Ok(self.store.audit_log(tenant).await?)
    }

    // ---- verification and decisions ---------------------------------------------------------

    /// Who is presenting `bearer`? See the module documentation for the steps.
    pub async fn verify(&self, bearer: &str) -> Result<Arc<TokenGrant>, AuthError> {
        let now = self.now();
        let key = digest(bearer);
        // Read before anything else, so any revocation after it is seen by a later request.
        let stamp = self.stamp();
        if let Some(hit) = self.cache.get(&key) {
            if hit.stamp.still_current(stamp) {
                if let Some(at) = hit.grant.expires_at.filter(|at| *at <= now) {
                    let why = AuthError::Expired {
                        id: hit.grant.id.clone(),
                        at,
                    };
                    self.cache.refuse(key, why.clone());
                    return Err(why);
                }
                self.last_used.record(&hit.grant.id, now);
                return Ok(hit.grant);
            }
            let record = self.store.token(&hit.grant.id).await.map_err(unavailable)?;
            return self.admit(key, record, stamp, now);
        }
        if let Some(why) = self.cache.refused(&key) {
            return Err(why);
        }
        let presented = secret::parse(bearer).ok_or(AuthError::Malformed)?;
        let Some((record, hash)) = self
            .store
            .token_for_verification(&presented.id)
            .await
            .map_err(unavailable)?
        else {
            return Err(AuthError::Invalid);
        };
        let secret = presented.secret.to_string();
        let matches = self
            .blocking_hash(move || secret_matches(&secret, &hash))
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        if !matches {
            self.cache.refuse(key, AuthError::Invalid);
            return Err(AuthError::Invalid);
        }
        self.admit(key, Some(record), stamp, now)
    }

    /// Caches a token whose secret is known to match, or refuses it for good.
    fn admit(
        &self,
        key: secret::Digest32,
        record: Option<TokenRecord>,
        stamp: Stamp,
        now: DateTime<Utc>,
    ) -> Result<Arc<TokenGrant>, AuthError> {
        let Some(record) = record else {
            self.cache.refuse(key, AuthError::Invalid);
            return Err(AuthError::Invalid);
        };
        let why = match record.state(now) {
            TokenState::Active => None,
            TokenState::Revoked => Some(AuthError::Revoked {
                id: record.id.clone(),
                at: record.revoked_at.unwrap_or(now),
            }),
            TokenState::Expired => Some(AuthError::Expired {
                id: record.id.clone(),
                at: record.expires_at.unwrap_or(now),
            }),
        };
        if let Some(why) = why {
            self.cache.refuse(key, why.clone());
            return Err(why);
        }
        let grant = Arc::new(TokenGrant::from(&record));
        self.cache.put(
            key,
            Verified {
                grant: grant.clone(),
                stamp,
            },
        );
        self.last_used.record(&grant.id, now);
        Ok(grant)
    }

    fn stamp(&self) -> Stamp {
        Stamp {
            store: self.store.revocation_generation().ok(),
            local: self.local_revocations.load(Ordering::Acquire),
        }
    }

    /// [`decide`] at this service's current time.
    pub fn decide(
        &self,
        token: &TokenGrant,
        action: Action,
        target: Target<'_>,
    ) -> Result<(), Denied> {
        decide(token, action, target, self.now())
    }

    // ---- last used ----------------------------------------------------------------------------

    /// Writes the last-used times collected since the previous flush, in one transaction.
    /// Returns how many tokens were written.
    pub async fn flush_last_used(&self) -> Result<usize, AclError> {
        let batch = self.last_used.take();
        if batch.is_empty() {
            return Ok(0);
        }
        match self.store.record_last_used(&batch).await {
            Ok(()) => Ok(batch.len()),
            Err(e) => {
                self.last_used.restore(batch);
                Err(e.into())
            }
        }
    }

    #[cfg(feature = "test-support")]
    /// Last-used times waiting for the next flush.
    pub fn pending_last_used(&self) -> usize {
        self.last_used.pending()
    }

    #[cfg(feature = "test-support")]
    /// Verified tokens in memory.
    pub fn cached_tokens(&self) -> usize {
        self.cache.len()
    }

    /// Runs `f` (argon2) on a hashing thread, at most `max_parallel_hashes` at once.
    async fn blocking_hash<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AclError> {
        self.hashing
            .run(f)
            .await
            .map_err(|e| AclError::Store(StoreError::Task(e.to_string())))
    }
}

impl<S: ControlPlaneStore> Acl<S> {
    /// Flushes last-used times every `every` until the `Acl` is dropped (then once more is not
    /// possible: call [`Acl::flush_last_used`] on shutdown).
    pub fn spawn_last_used_flusher(
        self: &Arc<Self>,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(acl) = weak.upgrade() else { return };
                if let Err(e) = acl.flush_last_used().await {
                    tracing::warn!(error = %e, "could not record token last-used times; will retry");
                }
            }
        })
    }
}

fn unavailable(e: StoreError) -> AuthError {
    AuthError::Unavailable(e.to_string())
}

fn is_bad_char(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
}

/// A trimmed, non-empty name of at most [`MAX_NAME`] characters without control characters.
fn clean_name(what: &str, raw: &str) -> Result<String, AclError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(AclError::Invalid(format!("{what} is empty")));
    }
    if name.chars().count() > MAX_NAME {
        return Err(AclError::Invalid(format!(
            "{what} is longer than {MAX_NAME} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(AclError::Invalid(format!(
            "{what} contains control characters"
        )));
    }
    Ok(name.to_string())
}
