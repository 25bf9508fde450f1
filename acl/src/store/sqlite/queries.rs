//! The SQLite backend's statements: [`ControlPlaneStore`] for [`SqliteStore`]. Every write is one
//! `BEGIN IMMEDIATE` transaction that checks what it needs (so messages name the missing tenant
//! or project) and writes its audit row; the schema's constraints back the checks up.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::{Failure, SqliteStore};
use crate::{
    clock::{format_time, parse_time},
    ids::{ProjectId, TenantId, TokenId},
    model::{
        Actor, AuditAction, AuditEvent, NewToken, Project, ProjectBinding, SecretHash, Tenant,
        TokenRecord, minted_detail, revoked_detail,
    },
    scope::Scopes,
    store::{ControlPlaneStore, StoreError, decode, msg},
};

pub(super) fn time(raw: &str) -> Result<DateTime<Utc>, StoreError> {
    parse_time(raw).ok_or_else(|| StoreError::Corrupt(format!("timestamp {raw:?}")))
}

pub(super) fn opt_time(raw: Option<String>) -> Result<Option<DateTime<Utc>>, StoreError> {
    raw.as_deref().map(time).transpose()
}

pub(super) fn exists(
    conn: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
) -> Result<bool, Failure> {
    Ok(conn
        .prepare_cached(sql)?
        .query_row(args, |_| Ok(()))
        .optional()?
        .is_some())
}

pub(super) fn write_tx(conn: &mut Connection) -> Result<Transaction<'_>, Failure> {
    Ok(conn.transaction_with_behavior(TransactionBehavior::Immediate)?)
}

pub(super) fn audit(
    tx: &Transaction<'_>,
    at: DateTime<Utc>,
    tenant: &TenantId,
    actor: &Actor,
    action: AuditAction,
    subject: &str,
    detail: serde_json::Value,
) -> Result<(), Failure> {
    tx.prepare_cached(
        "INSERT INTO audit_log (at, tenant_id, actor, action, subject, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        format_time(at),
        tenant.as_str(),
        actor.as_string(),
        action.as_str(),
        subject,
        detail.to_string()
    ])?;
    Ok(())
}

const TENANT_COLUMNS: &str = "id, name, created_at";

fn tenant_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, String)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
}

fn tenant_from((id, name, created_at): (String, String, String)) -> Result<Tenant, StoreError> {
    Ok(Tenant {
        id: decode::tenant_id(&id)?,
        name,
        created_at: time(&created_at)?,
    })
}

const PROJECT_COLUMNS: &str = "id, tenant_id, name, description, created_at, updated_at";

type ProjectRow = (String, String, String, String, String, String);

fn project_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ProjectRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    ))
}

fn project_from(
    (id, tenant, name, description, created_at, updated_at): ProjectRow,
) -> Result<Project, StoreError> {
    Ok(Project {
        id: decode::project_id(&id)?,
        tenant: decode::tenant_id(&tenant)?,
        name,
        description,
        created_at: time(&created_at)?,
        updated_at: time(&updated_at)?,
    })
}

const TOKEN_COLUMNS: &str = "id, tenant_id, name, scopes, all_projects, parent_id, expires_at, \
                             created_at, last_used_at, revoked_at, secret_hash, user_id";

/// A `tokens` row as stored.
struct TokenRow {
    id: String,
    tenant: String,
    name: String,
    scopes: String,
    all_projects: bool,
    parent: Option<String>,
    expires_at: Option<String>,
    created_at: String,
    last_used_at: Option<String>,
    revoked_at: Option<String>,
    secret_hash: String,
    user: Option<String>,
}

fn token_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok(TokenRow {
        id: row.get(0)?,
        tenant: row.get(1)?,
        name: row.get(2)?,
        scopes: row.get(3)?,
        all_projects: row.get(4)?,
        parent: row.get(5)?,
        expires_at: row.get(6)?,
        created_at: row.get(7)?,
        last_used_at: row.get(8)?,
        revoked_at: row.get(9)?,
        secret_hash: row.get(10)?,
        user: row.get(11)?,
    })
}

impl TokenRow {
    fn into_record(self, projects: &[String]) -> Result<(TokenRecord, SecretHash), StoreError> {
        let record = TokenRecord {
            id: decode::token_id(&self.id)?,
            tenant: decode::tenant_id(&self.tenant)?,
            name: self.name,
            scopes: decode::scopes(&self.scopes)?,
            projects: decode::binding(self.all_projects, projects)?,
            parent: self.parent.as_deref().map(decode::token_id).transpose()?,
            user: self.user.as_deref().map(decode::user_id).transpose()?,
            expires_at: opt_time(self.expires_at)?,
            created_at: time(&self.created_at)?,
            last_used_at: opt_time(self.last_used_at)?,
            revoked_at: opt_time(self.revoked_at)?,
        };
        Ok((record, SecretHash(self.secret_hash)))
    }
}

fn token_projects(conn: &Connection, id: &str) -> Result<Vec<String>, Failure> {
    let mut st = conn.prepare_cached(
        "SELECT project_id FROM token_projects WHERE token_id = ?1 ORDER BY project_id",
    )?;
    let rows = st.query_map([id], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn load_token(conn: &Connection, id: &str) -> Result<Option<(TokenRecord, SecretHash)>, Failure> {
    let row = conn
        .prepare_cached(&format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = ?1"))?
        .query_row([id], token_row)
        .optional()?;
    match row {
        None => Ok(None),
        Some(row) => {
            let projects = token_projects(conn, id)?;
            Ok(Some(row.into_record(&projects)?))
        }
    }
}

/// The token and its descendants that are not revoked yet, the token first.
pub(super) fn unrevoked_subtree(conn: &Connection, id: &str) -> Result<Vec<String>, Failure> {
    // UNION (not UNION ALL) so even a hand-made cycle terminates.
    let mut st = conn.prepare_cached(
        "WITH RECURSIVE tree(id) AS (
             SELECT ?1
             UNION
             SELECT t.id FROM tokens t JOIN tree ON t.parent_id = tree.id
         )
         SELECT tree.id FROM tree JOIN tokens USING (id)
         WHERE tokens.revoked_at IS NULL
         ORDER BY tree.id = ?1 DESC, tree.id",
    )?;
    let rows = st.query_map([id], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Moves the revocation generation (other processes notice through `data_version`).
pub(super) fn bump_generation(tx: &Transaction<'_>) -> Result<(), Failure> {
    tx.execute(
        "UPDATE revocation_generation SET generation = generation + 1 WHERE id = 1",
        [],
    )?;
    Ok(())
}

/// Inserts a token inside `tx` after the checks [`ControlPlaneStore::insert_token`] promises.
pub(super) fn insert_token_tx(
    tx: &Transaction<'_>,
    t: &NewToken,
    actor: &Actor,
) -> Result<(), Failure> {
    let r = &t.record;
    if !exists(
        tx,
        "SELECT 1 FROM tenants WHERE id = ?1",
        [r.tenant.as_str()],
    )? {
        return Err(StoreError::NotFound(msg::tenant(&r.tenant)).into());
    }
    if exists(tx, "SELECT 1 FROM tokens WHERE id = ?1", [r.id.as_str()])? {
        return Err(StoreError::Conflict(msg::duplicate("token", r.id.as_str())).into());
    }
    if let Some(parent) = &r.parent {
        let found: Option<Option<String>> = tx
            .prepare_cached("SELECT revoked_at FROM tokens WHERE id = ?1 AND tenant_id = ?2")?
            .query_row(params![parent.as_str(), r.tenant.as_str()], |row| {
                row.get(0)
            })
            .optional()?;
        match found {
            None => return Err(StoreError::NotFound(msg::parent_in(parent, &r.tenant)).into()),
            Some(Some(_)) => return Err(StoreError::ParentInactive(parent.clone()).into()),
            Some(None) => {}
        }
    }
    if let Some(user) = &r.user
        && !exists(tx, "SELECT 1 FROM users WHERE id = ?1", [user.as_str()])?
    {
        return Err(StoreError::NotFound(format!("user {user}")).into());
    }
    if let ProjectBinding::Only(set) = &r.projects {
        for p in set {
            let sql = "SELECT 1 FROM projects WHERE id = ?1 AND tenant_id = ?2";
            if !exists(tx, sql, params![p.as_str(), r.tenant.as_str()])? {
                return Err(StoreError::NotFound(msg::project_in(p, &r.tenant)).into());
            }
        }
    }
    tx.execute(
        "INSERT INTO tokens (id, tenant_id, name, secret_hash, scopes, all_projects, parent_id,
                             expires_at, created_at, last_used_at, revoked_at, user_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            r.id.as_str(),
            r.tenant.as_str(),
            r.name,
            t.secret_hash.0,
            r.scopes.to_string(),
            r.projects.is_all(),
            r.parent.as_ref().map(|p| p.as_str()),
            r.expires_at.map(format_time),
            format_time(r.created_at),
            r.last_used_at.map(format_time),
            r.revoked_at.map(format_time),
            r.user.as_ref().map(|u| u.as_str()),
        ],
    )?;
    if let ProjectBinding::Only(set) = &r.projects {
        let mut st = tx.prepare_cached(
            "INSERT INTO token_projects (token_id, tenant_id, project_id) VALUES (?1, ?2, ?3)",
        )?;
        for p in set {
            st.execute(params![r.id.as_str(), r.tenant.as_str(), p.as_str()])?;
        }
    }
    let action = AuditAction::TokenMinted;
    audit(
        tx,
        r.created_at,
        &r.tenant,
        actor,
        action,
        r.id.as_str(),
        minted_detail(r),
    )
}

/// Revokes the live subtree of `root` inside `tx`, each with its audit row; the caller moves the
/// generation when anything was revoked. Returns the ids revoked, `root` first.
pub(super) fn revoke_subtree(
    tx: &Transaction<'_>,
    tenant: &TenantId,
    root: &TokenId,
    actor: &Actor,
    at: DateTime<Utc>,
) -> Result<Vec<TokenId>, Failure> {
    let ids = unrevoked_subtree(tx, root.as_str())?
        .iter()
        .map(|raw| decode::token_id(raw))
        .collect::<Result<Vec<_>, _>>()?;
    for each in &ids {
        tx.prepare_cached("UPDATE tokens SET revoked_at = ?2 WHERE id = ?1")?
            .execute(params![each.as_str(), format_time(at)])?;
        let detail = revoked_detail(root, each);
        audit(
            tx,
            at,
            tenant,
            actor,
            AuditAction::TokenRevoked,
            each.as_str(),
            detail,
        )?;
    }
    Ok(ids)
}

impl ControlPlaneStore for SqliteStore {
    async fn create_tenant(&self, tenant: &Tenant, actor: &Actor) -> Result<(), StoreError> {
        let (t, actor) = (tenant.clone(), actor.clone());
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            if exists(&tx, "SELECT 1 FROM tenants WHERE name = ?1", [&t.name])? {
                return Err(StoreError::Conflict(msg::tenant_name_taken(&t.name)).into());
            }
            if exists(&tx, "SELECT 1 FROM tenants WHERE id = ?1", [t.id.as_str()])? {
                return Err(StoreError::Conflict(msg::duplicate("tenant", t.id.as_str())).into());
            }
            tx.execute(
                "INSERT INTO tenants (id, name, created_at) VALUES (?1, ?2, ?3)",
                params![t.id.as_str(), t.name, format_time(t.created_at)],
            )?;
            let detail = serde_json::json!({ "name": t.name });
            let action = AuditAction::TenantCreated;
            audit(
                &tx,
                t.created_at,
                &t.id,
                &actor,
                action,
                t.id.as_str(),
                detail,
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        self.run(|conn| {
            let mut st = conn.prepare_cached(&format!(
                "SELECT {TENANT_COLUMNS} FROM tenants ORDER BY created_at, id"
            ))?;
            let rows = st.query_map([], tenant_row)?;
            let mut out = Vec::new();
            for row in rows {
                out.push(tenant_from(row?)?);
            }
            Ok(out)
        })
        .await
    }

    async fn tenant(&self, id: &TenantId) -> Result<Option<Tenant>, StoreError> {
        let id = id.clone();
        self.run(move |conn| {
            let row = conn
                .prepare_cached(&format!(
                    "SELECT {TENANT_COLUMNS} FROM tenants WHERE id = ?1"
                ))?
                .query_row([id.as_str()], tenant_row)
                .optional()?;
            Ok(row.map(tenant_from).transpose()?)
        })
        .await
    }

    async fn create_project(&self, project: &Project, actor: &Actor) -> Result<(), StoreError> {
        let (p, actor) = (project.clone(), actor.clone());
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            if !exists(
                &tx,
                "SELECT 1 FROM tenants WHERE id = ?1",
                [p.tenant.as_str()],
            )? {
                return Err(StoreError::NotFound(msg::tenant(&p.tenant)).into());
            }
            let same_name = "SELECT 1 FROM projects WHERE tenant_id = ?1 AND name = ?2";
            if exists(&tx, same_name, params![p.tenant.as_str(), p.name])? {
                return Err(
                    StoreError::Conflict(msg::project_name_taken(&p.name, &p.tenant)).into(),
                );
            }
            if exists(&tx, "SELECT 1 FROM projects WHERE id = ?1", [p.id.as_str()])? {
                return Err(StoreError::Conflict(msg::duplicate("project", p.id.as_str())).into());
            }
            tx.execute(
                &format!(
                    "INSERT INTO projects ({PROJECT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                ),
                params![
                    p.id.as_str(),
                    p.tenant.as_str(),
                    p.name,
                    p.description,
                    format_time(p.created_at),
                    format_time(p.updated_at)
                ],
            )?;
            let detail = serde_json::json!({ "name": p.name });
            let action = AuditAction::ProjectCreated;
            audit(
                &tx,
                p.created_at,
                &p.tenant,
                &actor,
                action,
                p.id.as_str(),
                detail,
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn project(&self, id: &ProjectId) -> Result<Option<Project>, StoreError> {
        let id = id.clone();
        self.run(move |conn| {
            let row = conn
                .prepare_cached(&format!(
                    "SELECT {PROJECT_COLUMNS} FROM projects WHERE id = ?1"
                ))?
                .query_row([id.as_str()], project_row)
                .optional()?;
            Ok(row.map(project_from).transpose()?)
        })
        .await
    }

    async fn projects(&self, tenant: &TenantId) -> Result<Vec<Project>, StoreError> {
        let tenant = tenant.clone();
        self.run(move |conn| {
            let mut st = conn.prepare_cached(&format!(
                "SELECT {PROJECT_COLUMNS} FROM projects WHERE tenant_id = ?1 ORDER BY created_at, id"
            ))?;
            let rows = st.query_map([tenant.as_str()], project_row)?;
            let mut out = Vec::new();
            for row in rows {
                out.push(project_from(row?)?);
            }
            Ok(out)
        })
        .await
    }

    async fn insert_token(&self, token: &NewToken, actor: &Actor) -> Result<(), StoreError> {
        let (t, actor) = (token.clone(), actor.clone());
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            insert_token_tx(&tx, &t, &actor)?;
            tx.commit()?;
            Ok(())
        })
        .await
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
        let id = id.clone();
        self.run(move |conn| load_token(conn, id.as_str())).await
    }

    async fn tokens(&self, tenant: &TenantId) -> Result<Vec<TokenRecord>, StoreError> {
        let tenant = tenant.clone();
        self.run(move |conn| {
            let mut bound: HashMap<String, Vec<String>> = HashMap::new();
            let mut st = conn.prepare_cached(
                "SELECT token_id, project_id FROM token_projects WHERE tenant_id = ?1
                 ORDER BY project_id",
            )?;
            for row in st.query_map([tenant.as_str()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })? {
                let (token, project) = row?;
                bound.entry(token).or_default().push(project);
            }
            let mut st = conn.prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM tokens WHERE tenant_id = ?1 ORDER BY created_at, id"
            ))?;
            let rows = st.query_map([tenant.as_str()], token_row)?;
            let mut out = Vec::new();
            for row in rows {
                let row = row?;
                let projects = bound.remove(&row.id).unwrap_or_default();
                out.push(row.into_record(&projects)?.0);
            }
            Ok(out)
        })
        .await
    }

    async fn revoke_token(
        &self,
        id: &TokenId,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Result<Vec<TokenId>, StoreError> {
        let (id, actor) = (id.clone(), actor.clone());
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let tenant: Option<String> = tx
                .prepare_cached("SELECT tenant_id FROM tokens WHERE id = ?1")?
                .query_row([id.as_str()], |r| r.get(0))
                .optional()?;
            let Some(tenant) = tenant else {
                return Err(StoreError::NotFound(msg::token(&id)).into());
            };
            let tenant = decode::tenant_id(&tenant)?;
            let ids = revoke_subtree(&tx, &tenant, &id, &actor, at)?;
            if !ids.is_empty() {
                bump_generation(&tx)?;
            }
            tx.commit()?;
            Ok(ids)
        })
        .await
    }

    async fn record_last_used(&self, uses: &[(TokenId, DateTime<Utc>)]) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        let uses = uses.to_vec();
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            {
                // Text comparison is time order: every stored time has the same fixed format.
                let mut st = tx.prepare_cached(
                    "UPDATE tokens SET last_used_at = ?2
                     WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2)",
                )?;
                for (id, at) in &uses {
                    st.execute(params![id.as_str(), format_time(*at)])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn set_token_scopes(
        &self,
        id: &TokenId,
        scopes: Scopes,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Result<Vec<TokenId>, StoreError> {
        let (id, actor) = (id.clone(), actor.clone());
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let row: Option<(String, Option<String>)> = tx
                .prepare_cached("SELECT tenant_id, revoked_at FROM tokens WHERE id = ?1")?
                .query_row([id.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let Some((tenant, None)) = row else {
                return Err(StoreError::NotFound(msg::token(&id)).into());
            };
            let tenant = decode::tenant_id(&tenant)?;
            tx.prepare_cached("UPDATE tokens SET scopes = ?2 WHERE id = ?1")?
                .execute(params![id.as_str(), scopes.to_string()])?;
            let detail = serde_json::json!({ "scopes": scopes.names() });
            let action = AuditAction::TokenScopesChanged;
            audit(&tx, at, &tenant, &actor, action, id.as_str(), detail)?;
            let mut revoked: Vec<TokenId> = Vec::new();
            for raw in unrevoked_subtree(&tx, id.as_str())?.into_iter().skip(1) {
                if revoked.iter().any(|r| r.as_str() == raw) {
                    continue;
                }
                let child_scopes: String = tx
                    .prepare_cached("SELECT scopes FROM tokens WHERE id = ?1")?
                    .query_row([&raw], |r| r.get(0))?;
                if decode::scopes(&child_scopes)?.within(scopes) {
                    continue;
                }
                // A child over the new scopes goes, with everything minted from it.
                let child = decode::token_id(&raw)?;
                for each in unrevoked_subtree(&tx, &raw)? {
                    let each = decode::token_id(&each)?;
                    tx.prepare_cached("UPDATE tokens SET revoked_at = ?2 WHERE id = ?1")?
                        .execute(params![each.as_str(), format_time(at)])?;
                    let detail = revoked_detail(&child, &each);
                    audit(
                        &tx,
                        at,
                        &tenant,
                        &actor,
                        AuditAction::TokenRevoked,
                        each.as_str(),
                        detail,
                    )?;
                    revoked.push(each);
                }
            }
            // Cached grants carry the old scopes: move the generation so they are re-read.
            bump_generation(&tx)?;
            tx.commit()?;
            Ok(revoked)
        })
        .await
    }

    async fn audit_log(&self, tenant: &TenantId) -> Result<Vec<AuditEvent>, StoreError> {
        let tenant = tenant.clone();
        self.run(move |conn| {
            let mut st = conn.prepare_cached(
                "SELECT a.seq, a.at, a.tenant_id, a.actor, a.action, a.subject, a.detail,
                        u.email, u.github_login
                 FROM audit_log a
                 LEFT JOIN tokens t ON t.id = a.actor
                 LEFT JOIN users u ON u.id = coalesce(t.user_id, a.actor)
                 WHERE a.tenant_id = ?1 ORDER BY a.seq",
            )?;
            let rows = st.query_map([tenant.as_str()], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                    decode::person(r.get(7)?, r.get(8)?),
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (seq, at, tenant, actor, action, subject, detail, person) = row?;
                out.push(AuditEvent {
                    seq,
                    at: time(&at)?,
                    tenant: decode::tenant_id(&tenant)?,
                    actor: decode::actor(&actor)?,
                    person,
                    action: decode::audit_action(&action)?,
                    subject,
                    detail: decode::detail(&detail)?,
                });
            }
            Ok(out)
        })
        .await
    }

    fn revocation_generation(&self) -> Result<u64, StoreError> {
        self.generation_now()
    }
}
