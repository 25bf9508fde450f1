//! The Postgres backend's statements: [`ControlPlaneStore`] for [`PostgresStore`], the same
//! checks and audit rows as the SQLite backend, with writes serialized by one advisory lock.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{Postgres, Row, Transaction, postgres::PgRow};

use super::{PostgresStore, REVOCATION_CHANNEL, pg_error};
use crate::{
    ids::{ProjectId, TenantId, TokenId},
    model::{
        Actor, AuditAction, AuditEvent, NewToken, Project, ProjectBinding, SecretHash, Tenant,
        TokenRecord, minted_detail, revoked_detail,
    },
    scope::Scopes,
    store::{ControlPlaneStore, StoreError, decode, msg},
};

/// The advisory lock every control-plane write takes ("tdcp" in ASCII).
const WRITE_LOCK: i64 = 0x7464_6370;

pub(super) type Tx = Transaction<'static, Postgres>;

/// The live token `id` and its live descendants, `id` first.
pub(super) async fn unrevoked_subtree(
    tx: &mut Tx,
    id: &TokenId,
) -> Result<Vec<TokenId>, StoreError> {
    // UNION (not UNION ALL) so even a hand-made cycle terminates.
    let raw: Vec<String> = sqlx::query_scalar(
        "WITH RECURSIVE tree(id) AS (
             SELECT $1::text
             UNION
             SELECT t.id FROM tokens t JOIN tree ON t.parent_id = tree.id
         )
         SELECT tree.id FROM tree JOIN tokens USING (id)
         WHERE tokens.revoked_at IS NULL
         ORDER BY tree.id = $1 DESC, tree.id",
    )
    .bind(id.as_str())
    .fetch_all(&mut **tx)
    .await
    .map_err(pg_error)?;
    raw.iter().map(|r| decode::token_id(r)).collect()
}

/// Moves the revocation generation and tells every node, at commit.
pub(super) async fn bump_generation(tx: &mut Tx) -> Result<u64, StoreError> {
    let new: i64 = sqlx::query_scalar(
        "UPDATE revocation_generation SET generation = generation + 1 WHERE id = 1
         RETURNING generation",
    )
    .fetch_one(&mut **tx)
    .await
    .map_err(pg_error)?;
    // Delivered to every listener when (and only if) the transaction commits.
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(REVOCATION_CHANNEL)
        .bind(new.to_string())
        .execute(&mut **tx)
        .await
        .map_err(pg_error)?;
    Ok(new as u64)
}

impl PostgresStore {
    pub(super) async fn write_tx(&self) -> Result<Tx, StoreError> {
        let mut tx = self.pool.begin().await.map_err(pg_error)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITE_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(pg_error)?;
        Ok(tx)
    }
}

pub(super) async fn exists(
    tx: &mut Tx,
    sql: &'static str,
    args: &[&str],
) -> Result<bool, StoreError> {
    let mut q = sqlx::query(sql);
    for a in args {
        q = q.bind(*a);
    }
    Ok(q.fetch_optional(&mut **tx)
        .await
        .map_err(pg_error)?
        .is_some())
}

pub(super) async fn audit(
    tx: &mut Tx,
    at: DateTime<Utc>,
    tenant: &TenantId,
    actor: &Actor,
    action: AuditAction,
    subject: &str,
    detail: serde_json::Value,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_log (at, tenant_id, actor, action, subject, detail)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(at)
    .bind(tenant.as_str())
    .bind(actor.as_string())
    .bind(action.as_str())
    .bind(subject)
    .bind(detail.to_string())
    .execute(&mut **tx)
    .await
    .map_err(pg_error)?;
    Ok(())
}

pub(super) fn get<'r, T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>>(
    row: &'r PgRow,
    column: &str,
) -> Result<T, StoreError> {
    row.try_get(column).map_err(StoreError::Postgres)
}

fn tenant_from(row: &PgRow) -> Result<Tenant, StoreError> {
    Ok(Tenant {
        id: decode::tenant_id(get(row, "id")?)?,
        name: get(row, "name")?,
        created_at: get(row, "created_at")?,
    })
}

fn project_from(row: &PgRow) -> Result<Project, StoreError> {
    Ok(Project {
        id: decode::project_id(get(row, "id")?)?,
        tenant: decode::tenant_id(get(row, "tenant_id")?)?,
        name: get(row, "name")?,
        description: get(row, "description")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

/// The `tokens` columns [`token_from`] reads (a macro so queries stay literal strings).
macro_rules! token_columns {
    () => {
        "id, tenant_id, name, scopes, all_projects, parent_id, expires_at, \
         created_at, last_used_at, revoked_at, secret_hash, user_id"
    };
}

fn token_from(row: &PgRow, projects: &[String]) -> Result<(TokenRecord, SecretHash), StoreError> {
    let parent: Option<&str> = get(row, "parent_id")?;
    let user: Option<&str> = get(row, "user_id")?;
    let record = TokenRecord {
        id: decode::token_id(get(row, "id")?)?,
        tenant: decode::tenant_id(get(row, "tenant_id")?)?,
        name: get(row, "name")?,
        scopes: decode::scopes(get(row, "scopes")?)?,
        projects: decode::binding(get(row, "all_projects")?, projects)?,
        parent: parent.map(decode::token_id).transpose()?,
        user: user.map(decode::user_id).transpose()?,
        expires_at: get(row, "expires_at")?,
        created_at: get(row, "created_at")?,
        last_used_at: get(row, "last_used_at")?,
        revoked_at: get(row, "revoked_at")?,
    };
    Ok((record, SecretHash(get(row, "secret_hash")?)))
}

/// Inserts a token inside `tx` after the checks [`ControlPlaneStore::insert_token`] promises.
pub(super) async fn insert_token_tx(
    tx: &mut Tx,
    token: &NewToken,
    actor: &Actor,
) -> Result<(), StoreError> {
    let r = &token.record;
    if !exists(
        tx,
        "SELECT 1 FROM tenants WHERE id = $1",
        &[r.tenant.as_str()],
    )
    .await?
    {
        return Err(StoreError::NotFound(msg::tenant(&r.tenant)));
    }
    if exists(tx, "SELECT 1 FROM tokens WHERE id = $1", &[r.id.as_str()]).await? {
        return Err(StoreError::Conflict(msg::duplicate("token", r.id.as_str())));
    }
    if let Some(parent) = &r.parent {
        let found: Option<Option<DateTime<Utc>>> =
            sqlx::query_scalar("SELECT revoked_at FROM tokens WHERE id = $1 AND tenant_id = $2")
                .bind(parent.as_str())
                .bind(r.tenant.as_str())
                .fetch_optional(&mut **tx)
                .await
                .map_err(pg_error)?;
        match found {
            None => return Err(StoreError::NotFound(msg::parent_in(parent, &r.tenant))),
            Some(Some(_)) => return Err(StoreError::ParentInactive(parent.clone())),
            Some(None) => {}
        }
    }
    if let Some(user) = &r.user
        && !exists(tx, "SELECT 1 FROM users WHERE id = $1", &[user.as_str()]).await?
    {
        return Err(StoreError::NotFound(format!("user {user}")));
    }
    if let ProjectBinding::Only(set) = &r.projects {
        for p in set {
            let sql = "SELECT 1 FROM projects WHERE id = $1 AND tenant_id = $2";
            if !exists(tx, sql, &[p.as_str(), r.tenant.as_str()]).await? {
                return Err(StoreError::NotFound(msg::project_in(p, &r.tenant)));
            }
        }
    }
    sqlx::query(
        "INSERT INTO tokens (id, tenant_id, name, secret_hash, scopes, all_projects,
                             parent_id, expires_at, created_at, last_used_at, revoked_at,
                             user_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(r.id.as_str())
    .bind(r.tenant.as_str())
    .bind(&r.name)
    .bind(&token.secret_hash.0)
    .bind(r.scopes.to_string())
    .bind(r.projects.is_all())
    .bind(r.parent.as_ref().map(|p| p.as_str()))
    .bind(r.expires_at)
    .bind(r.created_at)
    .bind(r.last_used_at)
    .bind(r.revoked_at)
    .bind(r.user.as_ref().map(|u| u.as_str()))
    .execute(&mut **tx)
    .await
    .map_err(pg_error)?;
    if let ProjectBinding::Only(set) = &r.projects {
        for p in set {
            sqlx::query(
                "INSERT INTO token_projects (token_id, tenant_id, project_id) VALUES ($1, $2, $3)",
            )
            .bind(r.id.as_str())
            .bind(r.tenant.as_str())
            .bind(p.as_str())
            .execute(&mut **tx)
            .await
            .map_err(pg_error)?;
        }
    }
    let action = AuditAction::TokenMinted;
    let detail = minted_detail(r);
    audit(
        tx,
        r.created_at,
        &r.tenant,
        actor,
        action,
        r.id.as_str(),
        detail,
    )
    .await
}

/// Revokes the live subtree of `root` inside `tx`, each with its audit row; the caller moves the
/// generation when anything was revoked. Returns the ids revoked, `root` first.
pub(super) async fn revoke_subtree(
    tx: &mut Tx,
    tenant: &TenantId,
    root: &TokenId,
    actor: &Actor,
    at: DateTime<Utc>,
) -> Result<Vec<TokenId>, StoreError> {
    let ids = unrevoked_subtree(tx, root).await?;
    for each in &ids {
        sqlx::query("UPDATE tokens SET revoked_at = $2 WHERE id = $1")
            .bind(each.as_str())
            .bind(at)
            .execute(&mut **tx)
            .await
            .map_err(pg_error)?;
        let detail = revoked_detail(root, each);
        let action = AuditAction::TokenRevoked;
        audit(tx, at, tenant, actor, action, each.as_str(), detail).await?;
    }
    Ok(ids)
}

impl ControlPlaneStore for PostgresStore {
    async fn create_tenant(&self, tenant: &Tenant, actor: &Actor) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        if exists(
            &mut tx,
            "SELECT 1 FROM tenants WHERE name = $1",
            &[&tenant.name],
        )
        .await?
        {
            return Err(StoreError::Conflict(msg::tenant_name_taken(&tenant.name)));
        }
        if exists(
            &mut tx,
            "SELECT 1 FROM tenants WHERE id = $1",
            &[tenant.id.as_str()],
        )
        .await?
        {
            return Err(StoreError::Conflict(msg::duplicate(
                "tenant",
                tenant.id.as_str(),
            )));
        }
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(tenant.id.as_str())
            .bind(&tenant.name)
            .bind(tenant.created_at)
            .execute(&mut *tx)
            .await
            .map_err(pg_error)?;
        let detail = serde_json::json!({ "name": tenant.name });
        let (at, id) = (tenant.created_at, &tenant.id);
        audit(
            &mut tx,
            at,
            id,
            actor,
            AuditAction::TenantCreated,
            id.as_str(),
            detail,
        )
        .await?;
        tx.commit().await.map_err(pg_error)
    }

    async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        sqlx::query("SELECT id, name, created_at FROM tenants ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await
            .map_err(pg_error)?
            .iter()
            .map(tenant_from)
            .collect()
    }

    async fn tenant(&self, id: &TenantId) -> Result<Option<Tenant>, StoreError> {
        sqlx::query("SELECT id, name, created_at FROM tenants WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(pg_error)?
            .as_ref()
            .map(tenant_from)
            .transpose()
    }

    async fn create_project(&self, project: &Project, actor: &Actor) -> Result<(), StoreError> {
        let p = project;
        let mut tx = self.write_tx().await?;
        if !exists(
            &mut tx,
            "SELECT 1 FROM tenants WHERE id = $1",
            &[p.tenant.as_str()],
        )
        .await?
        {
            return Err(StoreError::NotFound(msg::tenant(&p.tenant)));
        }
        let same_name = "SELECT 1 FROM projects WHERE tenant_id = $1 AND name = $2";
        if exists(&mut tx, same_name, &[p.tenant.as_str(), &p.name]).await? {
            return Err(StoreError::Conflict(msg::project_name_taken(
                &p.name, &p.tenant,
            )));
        }
        if exists(
            &mut tx,
            "SELECT 1 FROM projects WHERE id = $1",
            &[p.id.as_str()],
        )
        .await?
        {
            return Err(StoreError::Conflict(msg::duplicate(
                "project",
                p.id.as_str(),
            )));
        }
        sqlx::query(
            "INSERT INTO projects (id, tenant_id, name, description, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(p.id.as_str())
        .bind(p.tenant.as_str())
        .bind(&p.name)
        .bind(&p.description)
        .bind(p.created_at)
        .bind(p.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(pg_error)?;
        let detail = serde_json::json!({ "name": p.name });
        let action = AuditAction::ProjectCreated;
        audit(
            &mut tx,
            p.created_at,
            &p.tenant,
            actor,
            action,
            p.id.as_str(),
            detail,
        )
        .await?;
        tx.commit().await.map_err(pg_error)
    }

    async fn project(&self, id: &ProjectId) -> Result<Option<Project>, StoreError> {
        sqlx::query(
            "SELECT id, tenant_id, name, description, created_at, updated_at
             FROM projects WHERE id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(pg_error)?
        .as_ref()
        .map(project_from)
        .transpose()
    }

    async fn projects(&self, tenant: &TenantId) -> Result<Vec<Project>, StoreError> {
        sqlx::query(
            "SELECT id, tenant_id, name, description, created_at, updated_at
             FROM projects WHERE tenant_id = $1 ORDER BY created_at, id",
        )
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(pg_error)?
        .iter()
        .map(project_from)
        .collect()
    }

    async fn insert_token(&self, token: &NewToken, actor: &Actor) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        insert_token_tx(&mut tx, token, actor).await?;
        tx.commit().await.map_err(pg_error)
    }

    async fn token(&self, id: &TokenId) -> Result<Option<TokenRecord>, StoreError> {
        Ok(self
            .token_for_verification(id)
            .await?
            .map(|(record, _)| record))
    }

    async fn token_for_verification(
        &self,
        id: &TokenId,
    ) -> Result<Option<(TokenRecord, SecretHash)>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            token_columns!(),
            " FROM tokens WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(pg_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let projects: Vec<String> = sqlx::query_scalar(
            "SELECT project_id FROM token_projects WHERE token_id = $1 ORDER BY project_id",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(pg_error)?;
        token_from(&row, &projects).map(Some)
    }

    async fn tokens(&self, tenant: &TenantId) -> Result<Vec<TokenRecord>, StoreError> {
        let mut bound: HashMap<String, Vec<String>> = HashMap::new();
        let pairs: Vec<(String, String)> = sqlx::query_as(
            "SELECT token_id, project_id FROM token_projects WHERE tenant_id = $1
             ORDER BY project_id",
        )
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(pg_error)?;
        for (token, project) in pairs {
            bound.entry(token).or_default().push(project);
        }
        let rows = sqlx::query(concat!(
            "SELECT ",
            token_columns!(),
            " FROM tokens WHERE tenant_id = $1 ORDER BY created_at, id"
        ))
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(pg_error)?;
        rows.iter()
            .map(|row| {
                let id: &str = get(row, "id")?;
                let projects = bound.remove(id).unwrap_or_default();
                Ok(token_from(row, &projects)?.0)
            })
            .collect()
    }

    async fn revoke_token(
        &self,
        id: &TokenId,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Result<Vec<TokenId>, StoreError> {
        let mut tx = self.write_tx().await?;
        let tenant: Option<String> =
            sqlx::query_scalar("SELECT tenant_id FROM tokens WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(pg_error)?;
        let Some(tenant) = tenant else {
            return Err(StoreError::NotFound(msg::token(id)));
        };
        let tenant = decode::tenant_id(&tenant)?;
        let ids = revoke_subtree(&mut tx, &tenant, id, actor, at).await?;
        let mut generation = None;
        if !ids.is_empty() {
            generation = Some(bump_generation(&mut tx).await?);
        }
        tx.commit().await.map_err(pg_error)?;
        // This instance knows at once; the others hear it from the notification.
        if let Some(g) = generation {
            self.feed.advance(g);
        }
        Ok(ids)
    }

    async fn set_token_scopes(
        &self,
        id: &TokenId,
        scopes: Scopes,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Result<Vec<TokenId>, StoreError> {
        let mut tx = self.write_tx().await?;
        let row: Option<(String, Option<DateTime<Utc>>)> =
            sqlx::query_as("SELECT tenant_id, revoked_at FROM tokens WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(pg_error)?;
        let Some((tenant, None)) = row else {
            return Err(StoreError::NotFound(msg::token(id)));
        };
        let tenant = decode::tenant_id(&tenant)?;
        sqlx::query("UPDATE tokens SET scopes = $2 WHERE id = $1")
            .bind(id.as_str())
            .bind(scopes.to_string())
            .execute(&mut *tx)
            .await
            .map_err(pg_error)?;
        let detail = serde_json::json!({ "scopes": scopes.names() });
        let action = AuditAction::TokenScopesChanged;
        audit(&mut tx, at, &tenant, actor, action, id.as_str(), detail).await?;
        let mut revoked: Vec<TokenId> = Vec::new();
        for child in unrevoked_subtree(&mut tx, id).await?.into_iter().skip(1) {
            if revoked.contains(&child) {
                continue;
            }
            let raw: String = sqlx::query_scalar("SELECT scopes FROM tokens WHERE id = $1")
                .bind(child.as_str())
                .fetch_one(&mut *tx)
                .await
                .map_err(pg_error)?;
            if decode::scopes(&raw)?.within(scopes) {
                continue;
            }
            // A child over the new scopes goes, with everything minted from it.
            for each in unrevoked_subtree(&mut tx, &child).await? {
                sqlx::query("UPDATE tokens SET revoked_at = $2 WHERE id = $1")
                    .bind(each.as_str())
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .map_err(pg_error)?;
                let detail = revoked_detail(&child, &each);
                audit(
                    &mut tx,
                    at,
                    &tenant,
                    actor,
                    AuditAction::TokenRevoked,
                    each.as_str(),
                    detail,
                )
                .await?;
                revoked.push(each);
            }
        }
        // Cached grants carry the old scopes: move the generation so every node re-reads.
        let generation = bump_generation(&mut tx).await?;
        tx.commit().await.map_err(pg_error)?;
        self.feed.advance(generation);
        Ok(revoked)
    }

    async fn record_last_used(&self, uses: &[(TokenId, DateTime<Utc>)]) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = uses.iter().map(|(id, _)| id.as_str()).collect();
        let times: Vec<DateTime<Utc>> = uses.iter().map(|(_, at)| *at).collect();
        // One statement for the whole batch; no advisory lock: it only moves times forward.
        sqlx::query(
            "UPDATE tokens SET last_used_at = u.at
             FROM UNNEST($1::text[], $2::timestamptz[]) AS u(id, at)
             WHERE tokens.id = u.id AND (tokens.last_used_at IS NULL OR tokens.last_used_at < u.at)",
        )
        .bind(&ids)
        .bind(&times)
        .execute(&self.pool)
        .await
        .map_err(pg_error)?;
        Ok(())
    }

    async fn audit_log(&self, tenant: &TenantId) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.seq, a.at, a.tenant_id, a.actor, a.action, a.subject, a.detail,
                    u.email, u.github_login
             FROM audit_log a
             LEFT JOIN tokens t ON t.id = a.actor
             LEFT JOIN users u ON u.id = coalesce(t.user_id, a.actor)
             WHERE a.tenant_id = $1 ORDER BY a.seq",
        )
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(pg_error)?;
        rows.iter()
            .map(|row| {
                Ok(AuditEvent {
                    seq: get(row, "seq")?,
                    at: get(row, "at")?,
                    tenant: decode::tenant_id(get(row, "tenant_id")?)?,
                    actor: decode::actor(get(row, "actor")?)?,
                    person: decode::person(get(row, "email")?, get(row, "github_login")?),
                    action: decode::audit_action(get(row, "action")?)?,
                    subject: get(row, "subject")?,
                    detail: decode::detail(get(row, "detail")?)?,
                })
            })
            .collect()
    }

    fn revocation_generation(&self) -> Result<u64, StoreError> {
        self.feed
            .current()
            .ok_or_else(|| StoreError::FeedDown("the revocation listener is not connected".into()))
    }
}
