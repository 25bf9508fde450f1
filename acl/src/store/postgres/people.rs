//! The Postgres backend's people statements: [`PeopleStore`] for [`PostgresStore`], the same
//! checks and audit rows as the SQLite backend, writes under the one advisory lock.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;

use super::{
    PostgresStore, pg_error,
    queries::{Tx, audit, bump_generation, exists, get, insert_token_tx, revoke_subtree},
};
use crate::{
    ids::{InvitationId, ProjectId, TenantId, TokenId, UserId},
    model::{Actor, AuditAction, NewToken, ProjectBinding},
    people::{
        DeviceLogin, GithubAccount, GithubGrant, GithubLink, Invitation, InvitationStatus,
        Membership, User,
    },
    store::{PeopleStore, StoreError, decode, msg},
};

fn user_from(row: &PgRow) -> Result<User, StoreError> {
    let github_id: Option<i64> = get(row, "github_id")?;
    let login: Option<String> = get(row, "github_login")?;
    let github = match (github_id, login) {
        (Some(id), Some(login)) => Some(GithubAccount {
            id: u64::try_from(id).map_err(|_| StoreError::Corrupt(format!("github id {id}")))?,
            login,
        }),
        _ => None,
    };
    Ok(User {
        id: decode::user_id(get(row, "id")?)?,
        email: get(row, "email")?,
        github,
        created_at: get(row, "created_at")?,
    })
}

/// `SELECT … FROM users WHERE <column> = $1` (the column is one of ours, never input).
async fn load_user<'e, E>(db: E, column: &str, arg: &str) -> Result<Option<User>, StoreError>
where
    E: sqlx::PgExecutor<'e>,
{
    let sql = format!(
        "SELECT id, email, github_id, github_login, created_at FROM users WHERE {column} = $1"
    );
    let query = sqlx::query(sqlx::AssertSqlSafe(sql));
    let query = if column == "github_id" {
        query.bind(arg.parse::<i64>().unwrap_or(-1))
    } else {
        query.bind(arg)
    };
    query
        .fetch_optional(db)
        .await
        .map_err(pg_error)?
        .as_ref()
        .map(user_from)
        .transpose()
}

async fn load_membership(
    db: &mut sqlx::PgConnection,
    tenant: &str,
    user: &str,
) -> Result<Option<Membership>, StoreError> {
    let row: Option<(String, bool, DateTime<Utc>)> = sqlx::query_as(
        "SELECT role, all_projects, created_at FROM memberships
         WHERE tenant_id = $1 AND user_id = $2",
    )
    .bind(tenant)
    .bind(user)
    .fetch_optional(&mut *db)
    .await
    .map_err(pg_error)?;
    let Some((role, all, created_at)) = row else {
        return Ok(None);
    };
    let projects: Vec<String> = sqlx::query_scalar(
        "SELECT project_id FROM member_projects WHERE tenant_id = $1 AND user_id = $2
         ORDER BY project_id",
    )
    .bind(tenant)
    .bind(user)
    .fetch_all(&mut *db)
    .await
    .map_err(pg_error)?;
    Ok(Some(Membership {
        tenant: decode::tenant_id(tenant)?,
        user: decode::user_id(user)?,
        role: decode::role(&role)?,
        projects: decode::binding(all, &projects)?,
        created_at,
    }))
}

fn invitation_from(row: &PgRow) -> Result<Invitation, StoreError> {
    Ok(Invitation {
        id: decode::invitation_id(get(row, "id")?)?,
        tenant: decode::tenant_id(get(row, "tenant_id")?)?,
        project: decode::project_id(get(row, "project_id")?)?,
        email: get(row, "email")?,
        role: decode::role(get(row, "role")?)?,
        invited_by: decode::actor(get(row, "invited_by")?)?,
        status: decode::invitation_status(get(row, "status")?)?,
        created_at: get(row, "created_at")?,
        expires_at: get(row, "expires_at")?,
        closed_at: get(row, "closed_at")?,
    })
}

const INVITATIONS: &str = "SELECT id, tenant_id, project_id, email, role, invited_by, status, \
                           created_at, expires_at, closed_at FROM invitations";

async fn load_invitation<'e, E>(db: E, id: &str) -> Result<Option<Invitation>, StoreError>
where
    E: sqlx::PgExecutor<'e>,
{
    sqlx::query(sqlx::AssertSqlSafe(format!("{INVITATIONS} WHERE id = $1")))
        .bind(id)
        .fetch_optional(db)
        .await
        .map_err(pg_error)?
        .as_ref()
        .map(invitation_from)
        .transpose()
}

async fn pending_invitation(
    tx: &mut Tx,
    id: &InvitationId,
    at: DateTime<Utc>,
) -> Result<Invitation, StoreError> {
    let Some(inv) = load_invitation(&mut **tx, id.as_str()).await? else {
        return Err(StoreError::NotFound(msg::invitation(id)));
    };
    match inv.status_at(at) {
        InvitationStatus::Pending => Ok(inv),
        InvitationStatus::Expired => Err(StoreError::Expired(msg::invitation(id))),
        other => Err(StoreError::Conflict(msg::not_pending(other))),
    }
}

async fn close(
    tx: &mut Tx,
    inv: &Invitation,
    to: InvitationStatus,
    actor: &Actor,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE invitations SET status = $2, closed_at = $3 WHERE id = $1")
        .bind(inv.id.as_str())
        .bind(to.as_str())
        .bind(at)
        .execute(&mut **tx)
        .await
        .map_err(pg_error)?;
    let action = match to {
        InvitationStatus::Accepted => AuditAction::InvitationAccepted,
        InvitationStatus::Declined => AuditAction::InvitationDeclined,
        _ => AuditAction::InvitationRevoked,
    };
    let detail = serde_json::json!({ "email": inv.email, "project": inv.project.as_str() });
    audit(tx, at, &inv.tenant, actor, action, inv.id.as_str(), detail).await
}

fn login_from(row: &PgRow) -> Result<DeviceLogin, StoreError> {
    let token: Option<&str> = get(row, "token_id")?;
    Ok(DeviceLogin {
        code_hash: get(row, "code_hash")?,
        link_id: get(row, "link_id")?,
        link_secret_hash: get(row, "link_secret_hash")?,
        email: get(row, "email")?,
        device_name: get(row, "device_name")?,
        code_challenge: get(row, "code_challenge")?,
        status: decode::login_status(get(row, "status")?)?,
        created_at: get(row, "created_at")?,
        expires_at: get(row, "expires_at")?,
        token: token.map(decode::token_id).transpose()?,
    })
}

impl PostgresStore {
    async fn login_where(
        &self,
        column: &str,
        arg: &str,
    ) -> Result<Option<DeviceLogin>, StoreError> {
        let sql = format!(
            "SELECT code_hash, link_id, link_secret_hash, email, device_name, code_challenge,
                    status, created_at, expires_at, token_id
             FROM device_logins WHERE {column} = $1"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(arg)
            .fetch_optional(&self.pool)
            .await
            .map_err(pg_error)?
            .as_ref()
            .map(login_from)
            .transpose()
    }

    async fn invitations_where(
        &self,
        where_: &str,
        args: &[&str],
        now: Option<DateTime<Utc>>,
    ) -> Result<Vec<Invitation>, StoreError> {
        let sql = format!("{INVITATIONS} WHERE {where_} ORDER BY created_at DESC, id DESC");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for a in args {
            q = q.bind(*a);
        }
        if let Some(now) = now {
            q = q.bind(now);
        }
        q.fetch_all(&self.pool)
            .await
            .map_err(pg_error)?
            .iter()
            .map(invitation_from)
            .collect()
    }
}

impl PeopleStore for PostgresStore {
    async fn user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        load_user(&self.pool, "id", id.as_str()).await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        load_user(&self.pool, "email", &email.to_lowercase()).await
    }

    async fn user_for_email(&self, email: &str, at: DateTime<Utc>) -> Result<User, StoreError> {
        let email = email.to_lowercase();
        let mut tx = self.write_tx().await?;
        if let Some(user) = load_user(&mut *tx, "email", &email).await? {
            return Ok(user);
        }
        let user = User {
            id: UserId::generate(),
            email: Some(email),
            github: None,
            created_at: at,
        };
        sqlx::query("INSERT INTO users (id, email, created_at) VALUES ($1, $2, $3)")
            .bind(user.id.as_str())
            .bind(&user.email)
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
        Ok(user)
    }

    async fn user_for_github(
        &self,
        account: &GithubAccount,
        sealed_token: &str,
        at: DateTime<Utc>,
    ) -> Result<User, StoreError> {
        let gh_id = i64::try_from(account.id)
            .map_err(|_| StoreError::Conflict(format!("GitHub id {} too large", account.id)))?;
        let mut tx = self.write_tx().await?;
        let id = match load_user(&mut *tx, "github_id", &gh_id.to_string()).await? {
            Some(user) => {
                sqlx::query(
                    "UPDATE users SET github_login = $2, github_token_sealed = $3 WHERE id = $1",
                )
                .bind(user.id.as_str())
                .bind(&account.login)
                .bind(sealed_token)
                .execute(&mut *tx)
                .await
                .map_err(pg_error)?;
                user.id
            }
            None => {
                let id = UserId::generate();
                sqlx::query(
                    "INSERT INTO users (id, github_id, github_login, github_token_sealed, created_at)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(id.as_str())
                .bind(gh_id)
                .bind(&account.login)
                .bind(sealed_token)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(pg_error)?;
                id
            }
        };
        let user = load_user(&mut *tx, "id", id.as_str())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("user {id}")))?;
        tx.commit().await.map_err(pg_error)?;
        Ok(user)
    }

    async fn members(&self, tenant: &TenantId) -> Result<Vec<(User, Membership)>, StoreError> {
        let users: Vec<String> = sqlx::query_scalar(
            "SELECT user_id FROM memberships WHERE tenant_id = $1 ORDER BY created_at, user_id",
        )
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(pg_error)?;
        let mut conn = self.pool.acquire().await.map_err(pg_error)?;
        let mut out = Vec::new();
        for user in users {
            let u = load_user(&mut *conn, "id", &user)
                .await?
                .ok_or_else(|| StoreError::Corrupt(format!("member {user} has no user")))?;
            if let Some(m) = load_membership(&mut conn, tenant.as_str(), &user).await? {
                out.push((u, m));
            }
        }
        Ok(out)
    }

    async fn memberships(&self, user: &UserId) -> Result<Vec<Membership>, StoreError> {
        let tenants: Vec<String> = sqlx::query_scalar(
            "SELECT tenant_id FROM memberships WHERE user_id = $1
             ORDER BY created_at DESC, tenant_id",
        )
        .bind(user.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(pg_error)?;
        let mut conn = self.pool.acquire().await.map_err(pg_error)?;
        let mut out = Vec::new();
        for tenant in tenants {
            if let Some(m) = load_membership(&mut conn, &tenant, user.as_str()).await? {
                out.push(m);
            }
        }
        Ok(out)
    }

    async fn remove_member(
        &self,
        tenant: &TenantId,
        user: &UserId,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Result<Vec<TokenId>, StoreError> {
        let mut tx = self.write_tx().await?;
        let (t, u) = (tenant.as_str(), user.as_str());
        let member = "SELECT 1 FROM memberships WHERE tenant_id = $1 AND user_id = $2";
        if !exists(&mut tx, member, &[t, u]).await? {
            return Err(StoreError::NotFound(msg::member(user, tenant)));
        }
        for sql in [
            "DELETE FROM member_projects WHERE tenant_id = $1 AND user_id = $2",
            "DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2",
        ] {
            sqlx::query(sql)
                .bind(t)
                .bind(u)
                .execute(&mut *tx)
                .await
                .map_err(pg_error)?;
        }
        let tokens: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM tokens WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL
             ORDER BY created_at, id",
        )
        .bind(t)
        .bind(u)
        .fetch_all(&mut *tx)
        .await
        .map_err(pg_error)?;
        let mut revoked = Vec::new();
        for raw in tokens {
            let root = decode::token_id(&raw)?;
            if revoked.contains(&root) {
                continue;
            }
            revoked.extend(revoke_subtree(&mut tx, tenant, &root, actor, at).await?);
        }
        let detail = serde_json::json!({ "revoked": revoked.len() });
        audit(
            &mut tx,
            at,
            tenant,
            actor,
            AuditAction::MemberRemoved,
            u,
            detail,
        )
        .await?;
        let mut generation = None;
        if !revoked.is_empty() {
            generation = Some(bump_generation(&mut tx).await?);
        }
        tx.commit().await.map_err(pg_error)?;
        if let Some(g) = generation {
            self.feed.advance(g);
        }
        Ok(revoked)
    }

    async fn insert_invitation(&self, invitation: &Invitation) -> Result<(), StoreError> {
        let inv = invitation;
        let mut tx = self.write_tx().await?;
        let in_tenant = "SELECT 1 FROM projects WHERE id = $1 AND tenant_id = $2";
        if !exists(
            &mut tx,
            in_tenant,
            &[inv.project.as_str(), inv.tenant.as_str()],
        )
        .await?
        {
            return Err(StoreError::NotFound(msg::project_in(
                &inv.project,
                &inv.tenant,
            )));
        }
        if exists(
            &mut tx,
            "SELECT 1 FROM invitations WHERE id = $1",
            &[inv.id.as_str()],
        )
        .await?
        {
            return Err(StoreError::Conflict(msg::duplicate(
                "invitation",
                inv.id.as_str(),
            )));
        }
        let email = inv.email.to_lowercase();
        sqlx::query(
            "INSERT INTO invitations (id, tenant_id, project_id, email, role, invited_by, status,
                                      created_at, expires_at, closed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(inv.id.as_str())
        .bind(inv.tenant.as_str())
        .bind(inv.project.as_str())
        .bind(&email)
        .bind(inv.role.as_str())
        .bind(inv.invited_by.as_string())
        .bind(inv.status.as_str())
        .bind(inv.created_at)
        .bind(inv.expires_at)
        .bind(inv.closed_at)
        .execute(&mut *tx)
        .await
        .map_err(pg_error)?;
        let detail = serde_json::json!({
            "email": email,
            "project": inv.project.as_str(),
            "role": inv.role.as_str(),
            "expires_at": crate::clock::format_time(inv.expires_at),
        });
        let action = AuditAction::InvitationCreated;
        let (at, tenant, by) = (inv.created_at, &inv.tenant, &inv.invited_by);
        audit(&mut tx, at, tenant, by, action, inv.id.as_str(), detail).await?;
        tx.commit().await.map_err(pg_error)
    }

    async fn invitation(&self, id: &InvitationId) -> Result<Option<Invitation>, StoreError> {
        load_invitation(&self.pool, id.as_str()).await
    }

    async fn invitations(
        &self,
        tenant: &TenantId,
        project: Option<&ProjectId>,
    ) -> Result<Vec<Invitation>, StoreError> {
        match project {
            Some(p) => {
                let args = [tenant.as_str(), p.as_str()];
                self.invitations_where("tenant_id = $1 AND project_id = $2", &args, None)
                    .await
            }
            None => {
                self.invitations_where("tenant_id = $1", &[tenant.as_str()], None)
                    .await
            }
        }
    }

    async fn invitations_for(
        &self,
        email: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Invitation>, StoreError> {
        let email = email.to_lowercase();
        let where_ = "email = $1 AND status = 'pending' AND expires_at > $2";
        self.invitations_where(where_, &[&email], Some(now)).await
    }

    async fn accept_invitation(
        &self,
        id: &InvitationId,
        user: &UserId,
        at: DateTime<Utc>,
    ) -> Result<Membership, StoreError> {
        let mut tx = self.write_tx().await?;
        let person = load_user(&mut *tx, "id", user.as_str()).await?;
        let addressed = load_invitation(&mut *tx, id.as_str())
            .await?
            .map(|i| i.email);
        // Someone else's invitation answers like a missing one, whatever its status.
        if addressed.is_none() || person.and_then(|p| p.email) != addressed {
            return Err(StoreError::NotFound(msg::invitation(id)));
        }
        let inv = pending_invitation(&mut tx, id, at).await?;
        let (t, u) = (inv.tenant.as_str(), user.as_str());
        match load_membership(&mut tx, t, u).await? {
            Some(m) if m.role != inv.role => {
                return Err(StoreError::Conflict(msg::role_clash(m.role, inv.role)));
            }
            Some(_) => {}
            None => {
                sqlx::query(
                    "INSERT INTO memberships (tenant_id, user_id, role, all_projects, created_at)
                     VALUES ($1, $2, $3, false, $4)",
                )
                .bind(t)
                .bind(u)
                .bind(inv.role.as_str())
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(pg_error)?;
            }
        }
        sqlx::query(
            "INSERT INTO member_projects (tenant_id, user_id, project_id)
             SELECT $1, $2, $3 FROM memberships
             WHERE tenant_id = $1 AND user_id = $2 AND NOT all_projects
             ON CONFLICT DO NOTHING",
        )
        .bind(t)
        .bind(u)
        .bind(inv.project.as_str())
        .execute(&mut *tx)
        .await
        .map_err(pg_error)?;
        let actor = Actor::User(user.clone());
        close(&mut tx, &inv, InvitationStatus::Accepted, &actor, at).await?;
        let detail = serde_json::json!({
            "project": inv.project.as_str(),
            "role": inv.role.as_str(),
            "invitation": inv.id.as_str(),
        });
        let action = AuditAction::MemberAdded;
        audit(&mut tx, at, &inv.tenant, &actor, action, u, detail).await?;
        let membership = load_membership(&mut tx, t, u)
            .await?
            .ok_or_else(|| StoreError::NotFound(msg::member(user, &inv.tenant)))?;
        tx.commit().await.map_err(pg_error)?;
        Ok(membership)
    }

    async fn close_invitation(
        &self,
        id: &InvitationId,
        to: InvitationStatus,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Result<Invitation, StoreError> {
        let mut tx = self.write_tx().await?;
        let inv = pending_invitation(&mut tx, id, at).await?;
        close(&mut tx, &inv, to, actor, at).await?;
        let closed = load_invitation(&mut *tx, id.as_str())
            .await?
            .ok_or_else(|| StoreError::NotFound(msg::invitation(id)))?;
        tx.commit().await.map_err(pg_error)?;
        Ok(closed)
    }

    async fn insert_device_login(&self, login: &DeviceLogin) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO device_logins (code_hash, link_id, link_secret_hash, email, device_name,
                                        code_challenge, status, created_at, expires_at, token_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&login.code_hash)
        .bind(&login.link_id)
        .bind(&login.link_secret_hash)
        .bind(login.email.to_lowercase())
        .bind(&login.device_name)
        .bind(&login.code_challenge)
        .bind(login.status.as_str())
        .bind(login.created_at)
        .bind(login.expires_at)
        .bind(login.token.as_ref().map(|t| t.as_str()))
        .execute(&self.pool)
        .await
        .map_err(pg_error)?;
        Ok(())
    }

    async fn device_login(&self, code_hash: &str) -> Result<Option<DeviceLogin>, StoreError> {
        self.login_where("code_hash", code_hash).await
    }

    async fn device_login_by_link(&self, link_id: &str) -> Result<Option<DeviceLogin>, StoreError> {
        self.login_where("link_id", link_id).await
    }

    async fn approve_device_login(
        &self,
        link_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE device_logins SET status = 'approved'
             WHERE link_id = $1 AND status = 'pending' AND expires_at > $2",
        )
        .bind(link_id)
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(pg_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn consume_device_login(
        &self,
        code_hash: &str,
        token: &NewToken,
        actor: &Actor,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write_tx().await?;
        // The token first: the login row points at it. Dropping `tx` rolls it back when the
        // login was not approved (or another poll consumed it first).
        insert_token_tx(&mut tx, token, actor).await?;
        let done = sqlx::query(
            "UPDATE device_logins SET status = 'consumed', token_id = $2
             WHERE code_hash = $1 AND status = 'approved'",
        )
        .bind(code_hash)
        .bind(token.record.id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(pg_error)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        tx.commit().await.map_err(pg_error)?;
        Ok(true)
    }

    async fn forget_device_logins(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM device_logins WHERE expires_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(pg_error)?;
        Ok(done.rows_affected())
    }

    async fn set_github_link(
        &self,
        project: &ProjectId,
        link: Option<&GithubLink>,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let tenant: Option<String> =
            sqlx::query_scalar("SELECT tenant_id FROM projects WHERE id = $1")
                .bind(project.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(pg_error)?;
        let Some(tenant) = tenant else {
            return Err(StoreError::NotFound(format!("project {project}")));
        };
        let tenant = decode::tenant_id(&tenant)?;
        sqlx::query("DELETE FROM github_links WHERE project_id = $1")
            .bind(project.as_str())
            .execute(&mut *tx)
            .await
            .map_err(pg_error)?;
        if let Some(l) = link {
            sqlx::query(
                "INSERT INTO github_links (project_id, repo, allow_write) VALUES ($1, $2, $3)",
            )
            .bind(project.as_str())
            .bind(&l.repo)
            .bind(l.allow_write)
            .execute(&mut *tx)
            .await
            .map_err(pg_error)?;
        }
        let detail = match link {
            Some(l) => serde_json::json!({ "repo": l.repo, "allow_write": l.allow_write }),
            None => serde_json::json!({ "repo": null }),
        };
        let action = AuditAction::GithubLinked;
        audit(
            &mut tx,
            at,
            &tenant,
            actor,
            action,
            project.as_str(),
            detail,
        )
        .await?;
        tx.commit().await.map_err(pg_error)
    }

    async fn github_link(&self, project: &ProjectId) -> Result<Option<GithubLink>, StoreError> {
        let row: Option<(String, bool)> =
            sqlx::query_as("SELECT repo, allow_write FROM github_links WHERE project_id = $1")
                .bind(project.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(pg_error)?;
        Ok(row.map(|(repo, allow_write)| GithubLink {
            project: project.clone(),
            repo,
            allow_write,
        }))
    }

    async fn insert_github_grant(
        &self,
        token: &NewToken,
        repo: &str,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        let r = &token.record;
        let one_project = match &r.projects {
            ProjectBinding::Only(set) if set.len() == 1 => set.iter().next(),
            _ => None,
        };
        let (Some(user), Some(project)) = (&r.user, one_project) else {
            return Err(StoreError::Conflict(
                "a GitHub grant is a person's token for one project".into(),
            ));
        };
        let mut tx = self.write_tx().await?;
        insert_token_tx(&mut tx, token, actor).await?;
        sqlx::query(
            "INSERT INTO github_grants (token_id, project_id, user_id, repo, checked_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(r.id.as_str())
        .bind(project.as_str())
        .bind(user.as_str())
        .bind(repo)
        .bind(r.created_at)
        .execute(&mut *tx)
        .await
        .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)
    }

    async fn github_grants_due(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<GithubGrant>, StoreError> {
        let rows = sqlx::query(
            "SELECT g.token_id, t.tenant_id, g.project_id, g.user_id, g.repo,
                    u.github_token_sealed, g.checked_at
             FROM github_grants g
             JOIN tokens t ON t.id = g.token_id
             JOIN users u ON u.id = g.user_id
             WHERE t.revoked_at IS NULL AND g.checked_at < $1
             ORDER BY g.checked_at, g.token_id LIMIT $2",
        )
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(pg_error)?;
        rows.iter()
            .map(|row| {
                let sealed: Option<String> = get(row, "github_token_sealed")?;
                Ok(GithubGrant {
                    token: decode::token_id(get(row, "token_id")?)?,
                    tenant: decode::tenant_id(get(row, "tenant_id")?)?,
                    project: decode::project_id(get(row, "project_id")?)?,
                    user: decode::user_id(get(row, "user_id")?)?,
                    repo: get(row, "repo")?,
                    // Nothing kept to check with: the empty seal fails to open, so the grant is
                    // revoked.
                    sealed_github_token: sealed.unwrap_or_default(),
                    checked_at: get(row, "checked_at")?,
                })
            })
            .collect()
    }

    async fn record_github_check(
        &self,
        token: &TokenId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE github_grants SET checked_at = $2 WHERE token_id = $1")
            .bind(token.as_str())
            .bind(at)
            .execute(&self.pool)
            .await
            .map_err(pg_error)?;
        Ok(())
    }
}
