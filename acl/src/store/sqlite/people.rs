//! The SQLite backend's people statements: [`PeopleStore`] for [`SqliteStore`], with the same
//! transaction and audit discipline as `queries.rs`.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::{
    Failure, SqliteStore,
    queries::{
        audit, bump_generation, exists, insert_token_tx, opt_time, revoke_subtree, time, write_tx,
    },
};
use crate::{
    clock::format_time,
    ids::{InvitationId, ProjectId, TenantId, TokenId, UserId},
    model::{Actor, AuditAction, NewToken, ProjectBinding},
    people::{
        DeviceLogin, GithubAccount, GithubGrant, GithubLink, Invitation, InvitationStatus,
        Membership, User,
    },
    store::{PeopleStore, StoreError, decode, msg},
};

const USER_COLUMNS: &str = "id, email, github_id, github_login, created_at";

type UserRow = (String, Option<String>, Option<i64>, Option<String>, String);

fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn user_from((id, email, github_id, login, created_at): UserRow) -> Result<User, StoreError> {
    let github = match (github_id, login) {
        (Some(id), Some(login)) => Some(GithubAccount {
            id: u64::try_from(id).map_err(|_| StoreError::Corrupt(format!("github id {id}")))?,
            login,
        }),
        _ => None,
    };
    Ok(User {
        id: decode::user_id(&id)?,
        email,
        github,
        created_at: time(&created_at)?,
    })
}

fn load_user(conn: &Connection, where_: &str, arg: &str) -> Result<Option<User>, Failure> {
    let row = conn
        .prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE {where_}"))?
        .query_row([arg], user_row)
        .optional()?;
    Ok(row.map(user_from).transpose()?)
}

fn load_membership(
    conn: &Connection,
    tenant: &str,
    user: &str,
) -> Result<Option<Membership>, Failure> {
    let row: Option<(String, bool, String)> = conn
        .prepare_cached(
            "SELECT role, all_projects, created_at FROM memberships
             WHERE tenant_id = ?1 AND user_id = ?2",
        )?
        .query_row([tenant, user], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((role, all, created_at)) = row else {
        return Ok(None);
    };
    let mut st = conn.prepare_cached(
        "SELECT project_id FROM member_projects WHERE tenant_id = ?1 AND user_id = ?2
         ORDER BY project_id",
    )?;
    let projects: Vec<String> = st
        .query_map([tenant, user], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(Some(Membership {
        tenant: decode::tenant_id(tenant)?,
        user: decode::user_id(user)?,
        role: decode::role(&role)?,
        projects: decode::binding(all, &projects)?,
        created_at: time(&created_at)?,
    }))
}

const INVITATION_COLUMNS: &str = "id, tenant_id, project_id, email, role, invited_by, status, \
                                  created_at, expires_at, closed_at";

type InvitationRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
);

fn invitation_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<InvitationRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
    ))
}

fn invitation_from(row: InvitationRow) -> Result<Invitation, StoreError> {
    let (id, tenant, project, email, role, by, status, created, expires, closed) = row;
    Ok(Invitation {
        id: decode::invitation_id(&id)?,
        tenant: decode::tenant_id(&tenant)?,
        project: decode::project_id(&project)?,
        email,
        role: decode::role(&role)?,
        invited_by: decode::actor(&by)?,
        status: decode::invitation_status(&status)?,
        created_at: time(&created)?,
        expires_at: time(&expires)?,
        closed_at: opt_time(closed)?,
    })
}

fn query_invitations(
    conn: &Connection,
    where_: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<Invitation>, Failure> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {INVITATION_COLUMNS} FROM invitations WHERE {where_}
         ORDER BY created_at DESC, id DESC"
    ))?;
    let rows = st.query_map(args, invitation_row)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(invitation_from(row?)?);
    }
    Ok(out)
}

fn load_invitation(conn: &Connection, id: &str) -> Result<Option<Invitation>, Failure> {
    Ok(query_invitations(conn, "id = ?1", [id])?.pop())
}

/// The invitation `id` if it is pending and unexpired at `at` (the errors of
/// [`PeopleStore::accept_invitation`] otherwise).
fn pending_invitation(
    tx: &Transaction<'_>,
    id: &InvitationId,
    at: DateTime<Utc>,
) -> Result<Invitation, Failure> {
    let Some(inv) = load_invitation(tx, id.as_str())? else {
        return Err(StoreError::NotFound(msg::invitation(id)).into());
    };
    match inv.status_at(at) {
        InvitationStatus::Pending => Ok(inv),
        InvitationStatus::Expired => Err(StoreError::Expired(msg::invitation(id)).into()),
        other => Err(StoreError::Conflict(msg::not_pending(other)).into()),
    }
}

fn close(
    tx: &Transaction<'_>,
    inv: &Invitation,
    to: InvitationStatus,
    actor: &Actor,
    at: DateTime<Utc>,
) -> Result<(), Failure> {
    tx.prepare_cached("UPDATE invitations SET status = ?2, closed_at = ?3 WHERE id = ?1")?
        .execute(params![inv.id.as_str(), to.as_str(), format_time(at)])?;
    let action = match to {
        InvitationStatus::Accepted => AuditAction::InvitationAccepted,
        InvitationStatus::Declined => AuditAction::InvitationDeclined,
        _ => AuditAction::InvitationRevoked,
    };
    let detail = serde_json::json!({ "email": inv.email, "project": inv.project.as_str() });
    audit(tx, at, &inv.tenant, actor, action, inv.id.as_str(), detail)
}

const LOGIN_COLUMNS: &str = "code_hash, link_id, link_secret_hash, email, device_name, \
                             code_challenge, status, created_at, expires_at, token_id";

fn load_login(conn: &Connection, where_: &str, arg: &str) -> Result<Option<DeviceLogin>, Failure> {
    type Row = (
        String,
        String,
        String,
        String,
        String,
        String,
        String,
        String,
        String,
        Option<String>,
    );
    let row: Option<Row> = conn
        .prepare_cached(&format!(
            "SELECT {LOGIN_COLUMNS} FROM device_logins WHERE {where_}"
        ))?
        .query_row([arg], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
                r.get(9)?,
            ))
        })
        .optional()?;
    let Some((
        code_hash,
        link_id,
        secret,
        email,
        device,
        challenge,
        status,
        created,
        expires,
        token,
    )) = row
    else {
        return Ok(None);
    };
    Ok(Some(DeviceLogin {
        code_hash,
        link_id,
        link_secret_hash: secret,
        email,
        device_name: device,
        code_challenge: challenge,
        status: decode::login_status(&status)?,
        created_at: time(&created)?,
        expires_at: time(&expires)?,
        token: token.as_deref().map(decode::token_id).transpose()?,
    }))
}

impl PeopleStore for SqliteStore {
    async fn user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        let id = id.clone();
        self.run(move |conn| load_user(conn, "id = ?1", id.as_str()))
            .await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let email = email.to_lowercase();
        self.run(move |conn| load_user(conn, "email = ?1", &email))
            .await
    }

    async fn user_for_email(&self, email: &str, at: DateTime<Utc>) -> Result<User, StoreError> {
        let email = email.to_lowercase();
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            if let Some(user) = load_user(&tx, "email = ?1", &email)? {
                return Ok(user);
            }
            let user = User {
                id: UserId::generate(),
                email: Some(email),
                github: None,
                created_at: at,
            };
            tx.execute(
                "INSERT INTO users (id, email, created_at) VALUES (?1, ?2, ?3)",
                params![user.id.as_str(), user.email, format_time(at)],
            )?;
            tx.commit()?;
            Ok(user)
        })
        .await
    }

    async fn user_for_github(
        &self,
        account: &GithubAccount,
        sealed_token: &str,
        at: DateTime<Utc>,
    ) -> Result<User, StoreError> {
        let (account, sealed) = (account.clone(), sealed_token.to_string());
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let gh_id = i64::try_from(account.id)
                .map_err(|_| StoreError::Conflict(format!("GitHub id {} too large", account.id)))?;
            let found = load_user(&tx, "github_id = ?1", &gh_id.to_string())?;
            let id = match found {
                Some(user) => {
                    tx.execute(
                        "UPDATE users SET github_login = ?2, github_token_sealed = ?3 WHERE id = ?1",
                        params![user.id.as_str(), account.login, sealed],
                    )?;
                    user.id
                }
                None => {
                    let id = UserId::generate();
                    tx.execute(
                        "INSERT INTO users (id, github_id, github_login, github_token_sealed,
                                            created_at)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![id.as_str(), gh_id, account.login, sealed, format_time(at)],
                    )?;
                    id
                }
            };
            let user = load_user(&tx, "id = ?1", id.as_str())?
                .ok_or_else(|| StoreError::NotFound(format!("user {id}")))?;
            tx.commit()?;
            Ok(user)
        })
        .await
    }

    async fn members(&self, tenant: &TenantId) -> Result<Vec<(User, Membership)>, StoreError> {
        let tenant = tenant.clone();
        self.run(move |conn| {
            let users: Vec<String> = conn
                .prepare_cached(
                    "SELECT user_id FROM memberships WHERE tenant_id = ?1
                     ORDER BY created_at, user_id",
                )?
                .query_map([tenant.as_str()], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let mut out = Vec::new();
            for user in users {
                let u = load_user(conn, "id = ?1", &user)?
                    .ok_or_else(|| StoreError::Corrupt(format!("member {user} has no user")))?;
                if let Some(m) = load_membership(conn, tenant.as_str(), &user)? {
                    out.push((u, m));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn memberships(&self, user: &UserId) -> Result<Vec<Membership>, StoreError> {
        let user = user.clone();
        self.run(move |conn| {
            let tenants: Vec<String> = conn
                .prepare_cached(
                    "SELECT tenant_id FROM memberships WHERE user_id = ?1
                     ORDER BY created_at DESC, tenant_id",
                )?
                .query_map([user.as_str()], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let mut out = Vec::new();
            for tenant in tenants {
                if let Some(m) = load_membership(conn, &tenant, user.as_str())? {
                    out.push(m);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn remove_member(
        &self,
        tenant: &TenantId,
        user: &UserId,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Result<Vec<TokenId>, StoreError> {
        let (tenant, user, actor) = (tenant.clone(), user.clone(), actor.clone());
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            if load_membership(&tx, tenant.as_str(), user.as_str())?.is_none() {
                return Err(StoreError::NotFound(msg::member(&user, &tenant)).into());
            }
            let args = params![tenant.as_str(), user.as_str()];
            tx.execute(
                "DELETE FROM member_projects WHERE tenant_id = ?1 AND user_id = ?2",
                args,
            )?;
            tx.execute(
                "DELETE FROM memberships WHERE tenant_id = ?1 AND user_id = ?2",
                args,
            )?;
            let tokens: Vec<String> = tx
                .prepare_cached(
                    "SELECT id FROM tokens WHERE tenant_id = ?1 AND user_id = ?2
                     AND revoked_at IS NULL ORDER BY created_at, id",
                )?
                .query_map(args, |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let mut revoked = Vec::new();
            for raw in tokens {
                let root = decode::token_id(&raw)?;
                if revoked.contains(&root) {
                    continue;
                }
                revoked.extend(revoke_subtree(&tx, &tenant, &root, &actor, at)?);
            }
            let detail = serde_json::json!({ "revoked": revoked.len() });
            let action = AuditAction::MemberRemoved;
            audit(&tx, at, &tenant, &actor, action, user.as_str(), detail)?;
            if !revoked.is_empty() {
                bump_generation(&tx)?;
            }
            tx.commit()?;
            Ok(revoked)
        })
        .await
    }

    async fn insert_invitation(&self, invitation: &Invitation) -> Result<(), StoreError> {
        let inv = invitation.clone();
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let sql = "SELECT 1 FROM projects WHERE id = ?1 AND tenant_id = ?2";
            if !exists(&tx, sql, params![inv.project.as_str(), inv.tenant.as_str()])? {
                return Err(
                    StoreError::NotFound(msg::project_in(&inv.project, &inv.tenant)).into(),
                );
            }
            if exists(
                &tx,
                "SELECT 1 FROM invitations WHERE id = ?1",
                [inv.id.as_str()],
            )? {
                return Err(
                    StoreError::Conflict(msg::duplicate("invitation", inv.id.as_str())).into(),
                );
            }
            tx.execute(
                &format!(
                    "INSERT INTO invitations ({INVITATION_COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                ),
                params![
                    inv.id.as_str(),
                    inv.tenant.as_str(),
                    inv.project.as_str(),
                    inv.email.to_lowercase(),
                    inv.role.as_str(),
                    inv.invited_by.as_string(),
                    inv.status.as_str(),
                    format_time(inv.created_at),
                    format_time(inv.expires_at),
                    inv.closed_at.map(format_time),
                ],
            )?;
            let detail = serde_json::json!({
                "email": inv.email.to_lowercase(),
                "project": inv.project.as_str(),
                "role": inv.role.as_str(),
                "expires_at": format_time(inv.expires_at),
            });
            let action = AuditAction::InvitationCreated;
            let (at, tenant) = (inv.created_at, &inv.tenant);
            audit(
                &tx,
                at,
                tenant,
                &inv.invited_by,
                action,
                inv.id.as_str(),
                detail,
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn invitation(&self, id: &InvitationId) -> Result<Option<Invitation>, StoreError> {
        let id = id.clone();
        self.run(move |conn| load_invitation(conn, id.as_str()))
            .await
    }

    async fn invitations(
        &self,
        tenant: &TenantId,
        project: Option<&ProjectId>,
    ) -> Result<Vec<Invitation>, StoreError> {
        let (tenant, project) = (tenant.clone(), project.cloned());
        self.run(move |conn| match &project {
            Some(p) => query_invitations(
                conn,
                "tenant_id = ?1 AND project_id = ?2",
                params![tenant.as_str(), p.as_str()],
            ),
            None => query_invitations(conn, "tenant_id = ?1", [tenant.as_str()]),
        })
        .await
    }

    async fn invitations_for(
        &self,
        email: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Invitation>, StoreError> {
        let email = email.to_lowercase();
        self.run(move |conn| {
            query_invitations(
                conn,
                "email = ?1 AND status = 'pending' AND expires_at > ?2",
                params![email, format_time(now)],
            )
        })
        .await
    }

    async fn accept_invitation(
        &self,
        id: &InvitationId,
        user: &UserId,
        at: DateTime<Utc>,
    ) -> Result<Membership, StoreError> {
        let (id, user) = (id.clone(), user.clone());
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let person = load_user(&tx, "id = ?1", user.as_str())?;
            let addressed = load_invitation(&tx, id.as_str())?.map(|i| i.email);
            // Someone else's invitation answers like a missing one, whatever its status.
            if addressed.is_none() || person.and_then(|p| p.email) != addressed {
                return Err(StoreError::NotFound(msg::invitation(&id)).into());
            }
            let inv = pending_invitation(&tx, &id, at)?;
            let (t, u) = (inv.tenant.as_str(), user.as_str());
            match load_membership(&tx, t, u)? {
                Some(m) if m.role != inv.role => {
                    return Err(StoreError::Conflict(msg::role_clash(m.role, inv.role)).into());
                }
                Some(_) => {}
                None => {
                    tx.execute(
                        "INSERT INTO memberships (tenant_id, user_id, role, all_projects, created_at)
                         VALUES (?1, ?2, ?3, 0, ?4)",
                        params![t, u, inv.role.as_str(), format_time(at)],
                    )?;
                }
            }
            tx.execute(
                "INSERT OR IGNORE INTO member_projects (tenant_id, user_id, project_id)
                 SELECT ?1, ?2, ?3 FROM memberships
                 WHERE tenant_id = ?1 AND user_id = ?2 AND all_projects = 0",
                params![t, u, inv.project.as_str()],
            )?;
            let actor = Actor::User(user.clone());
            close(&tx, &inv, InvitationStatus::Accepted, &actor, at)?;
            let detail = serde_json::json!({
                "project": inv.project.as_str(),
                "role": inv.role.as_str(),
                "invitation": inv.id.as_str(),
            });
            audit(&tx, at, &inv.tenant, &actor, AuditAction::MemberAdded, u, detail)?;
            let membership = load_membership(&tx, t, u)?
                .ok_or_else(|| StoreError::NotFound(msg::member(&user, &inv.tenant)))?;
            tx.commit()?;
            Ok(membership)
        })
        .await
    }

    async fn close_invitation(
        &self,
        id: &InvitationId,
        to: InvitationStatus,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Result<Invitation, StoreError> {
        let (id, actor) = (id.clone(), actor.clone());
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let inv = pending_invitation(&tx, &id, at)?;
            close(&tx, &inv, to, &actor, at)?;
            let closed = load_invitation(&tx, id.as_str())?
                .ok_or_else(|| StoreError::NotFound(msg::invitation(&id)))?;
            tx.commit()?;
            Ok(closed)
        })
        .await
    }

    async fn insert_device_login(&self, login: &DeviceLogin) -> Result<(), StoreError> {
        let l = login.clone();
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            tx.execute(
                &format!(
                    "INSERT INTO device_logins ({LOGIN_COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                ),
                params![
                    l.code_hash,
                    l.link_id,
                    l.link_secret_hash,
                    l.email.to_lowercase(),
                    l.device_name,
                    l.code_challenge,
                    l.status.as_str(),
                    format_time(l.created_at),
                    format_time(l.expires_at),
                    l.token.as_ref().map(|t| t.as_str()),
                ],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn device_login(&self, code_hash: &str) -> Result<Option<DeviceLogin>, StoreError> {
        let hash = code_hash.to_string();
        self.run(move |conn| load_login(conn, "code_hash = ?1", &hash))
            .await
    }

    async fn device_login_by_link(&self, link_id: &str) -> Result<Option<DeviceLogin>, StoreError> {
        let link = link_id.to_string();
        self.run(move |conn| load_login(conn, "link_id = ?1", &link))
            .await
    }

    async fn approve_device_login(
        &self,
        link_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let link = link_id.to_string();
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let n = tx.execute(
                "UPDATE device_logins SET status = 'approved'
                 WHERE link_id = ?1 AND status = 'pending' AND expires_at > ?2",
                params![link, format_time(at)],
            )?;
            tx.commit()?;
            Ok(n == 1)
        })
        .await
    }

    async fn consume_device_login(
        &self,
        code_hash: &str,
        token: &NewToken,
        actor: &Actor,
    ) -> Result<bool, StoreError> {
        let (hash, token, actor) = (code_hash.to_string(), token.clone(), actor.clone());
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            // The token first: the login row points at it. Dropping `tx` undoes it when the
            // login was not approved (or another poll consumed it first).
            insert_token_tx(&tx, &token, &actor)?;
            let n = tx.execute(
                "UPDATE device_logins SET status = 'consumed', token_id = ?2
                 WHERE code_hash = ?1 AND status = 'approved'",
                params![hash, token.record.id.as_str()],
            )?;
            if n == 0 {
                return Ok(false);
            }
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn forget_device_logins(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let n = tx.execute(
                "DELETE FROM device_logins WHERE expires_at < ?1",
                [format_time(before)],
            )?;
            tx.commit()?;
            Ok(n as u64)
        })
        .await
    }

    async fn set_github_link(
        &self,
        project: &ProjectId,
        link: Option<&GithubLink>,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (project, link, actor) = (project.clone(), link.cloned(), actor.clone());
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let tenant: Option<String> = tx
                .prepare_cached("SELECT tenant_id FROM projects WHERE id = ?1")?
                .query_row([project.as_str()], |r| r.get(0))
                .optional()?;
            let Some(tenant) = tenant else {
                return Err(StoreError::NotFound(format!("project {project}")).into());
            };
            let tenant = decode::tenant_id(&tenant)?;
            tx.execute(
                "DELETE FROM github_links WHERE project_id = ?1",
                [project.as_str()],
            )?;
            if let Some(l) = &link {
                tx.execute(
                    "INSERT INTO github_links (project_id, repo, allow_write) VALUES (?1, ?2, ?3)",
                    params![project.as_str(), l.repo, l.allow_write],
                )?;
            }
            let detail = match &link {
                Some(l) => serde_json::json!({ "repo": l.repo, "allow_write": l.allow_write }),
                None => serde_json::json!({ "repo": null }),
            };
            let action = AuditAction::GithubLinked;
            audit(&tx, at, &tenant, &actor, action, project.as_str(), detail)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn github_link(&self, project: &ProjectId) -> Result<Option<GithubLink>, StoreError> {
        let project = project.clone();
        self.run(move |conn| {
            let row: Option<(String, bool)> = conn
                .prepare_cached("SELECT repo, allow_write FROM github_links WHERE project_id = ?1")?
                .query_row([project.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            Ok(row.map(|(repo, allow_write)| GithubLink {
                project: project.clone(),
                repo,
                allow_write,
            }))
        })
        .await
    }

    async fn insert_github_grant(
        &self,
        token: &NewToken,
        repo: &str,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        let (token, repo, actor) = (token.clone(), repo.to_string(), actor.clone());
        self.run(move |conn| {
            let r = &token.record;
            let (Some(user), ProjectBinding::Only(set)) = (&r.user, &r.projects) else {
                return Err(StoreError::Conflict(
                    "a GitHub grant is a person's token for one project".into(),
                )
                .into());
            };
            let project: &ProjectId = match set.iter().collect::<Vec<_>>().as_slice() {
                [one] => one,
                _ => {
                    return Err(StoreError::Conflict(
                        "a GitHub grant is a person's token for one project".into(),
                    )
                    .into());
                }
            };
            let tx = write_tx(conn)?;
            insert_token_tx(&tx, &token, &actor)?;
            tx.execute(
                "INSERT INTO github_grants (token_id, project_id, user_id, repo, checked_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    r.id.as_str(),
                    project.as_str(),
                    user.as_str(),
                    repo,
                    format_time(r.created_at)
                ],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn github_grants_due(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<GithubGrant>, StoreError> {
        self.run(move |conn| {
            let mut st = conn.prepare_cached(
                "SELECT g.token_id, t.tenant_id, g.project_id, g.user_id, g.repo,
                        u.github_token_sealed, g.checked_at
                 FROM github_grants g
                 JOIN tokens t ON t.id = g.token_id
                 JOIN users u ON u.id = g.user_id
                 WHERE t.revoked_at IS NULL AND g.checked_at < ?1
                 ORDER BY g.checked_at, g.token_id LIMIT ?2",
            )?;
            type Row = (
                String,
                String,
                String,
                String,
                String,
                Option<String>,
                String,
            );
            let rows = st.query_map(params![format_time(before), limit], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (token, tenant, project, user, repo, sealed, checked): Row = row?;
                out.push(GithubGrant {
                    token: decode::token_id(&token)?,
                    tenant: decode::tenant_id(&tenant)?,
                    project: decode::project_id(&project)?,
                    user: decode::user_id(&user)?,
                    repo,
                    // A person whose GitHub token was never kept has nothing to check with:
                    // the empty seal fails to open and the grant is revoked.
                    sealed_github_token: sealed.unwrap_or_default(),
                    checked_at: time(&checked)?,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn record_github_check(
        &self,
        token: &TokenId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let token = token.clone();
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            tx.execute(
                "UPDATE github_grants SET checked_at = ?2 WHERE token_id = ?1",
                params![token.as_str(), format_time(at)],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }
}
