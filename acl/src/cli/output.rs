//! What the admin commands print: the minted-token report, the JSON shapes (structs, so keys
//! keep this order) and aligned tables.

use serde::Serialize;
use serde_json::Value;

use crate::{
    AuditEvent, GithubLink, Invitation, IssuedToken, Membership, Project, Tenant, TenantId,
    TokenId, TokenRecord, User, clock::format_time,
};

pub(super) fn report_minted(issued: &IssuedToken, json: bool) {
    let r = &issued.record;
    if json {
        print_json(&MintedJson {
            id: r.id.as_str(),
            token: issued.token.expose(),
            tenant: r.tenant.as_str(),
            name: &r.name,
            scopes: r.scopes.names(),
            projects: r.projects.to_json(),
            expires_at: r.expires_at.map(format_time),
            parent: r.parent.as_ref().map(|p| p.as_str()),
        });
    } else {
        println!("{}", issued.token.expose());
        eprintln!(
            "minted token {} (scopes {}; projects {}; expires {}). It is shown only once: store it now.",
            r.id,
            r.scopes,
            r.projects,
            r.expires_at.map_or("never".into(), format_time)
        );
    }
}

// The JSON shapes, as structs so keys come out in this order.

#[derive(Serialize)]
pub(super) struct MintedJson<'a> {
    id: &'a str,
    token: &'a str,
    tenant: &'a str,
    name: &'a str,
    scopes: Vec<&'static str>,
    projects: Value,
    expires_at: Option<String>,
    parent: Option<&'a str>,
}

#[derive(Serialize)]
pub(super) struct TenantJson<'a> {
    pub id: &'a str,
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

pub(super) fn tenant_json(t: &Tenant) -> TenantJson<'_> {
    TenantJson {
        id: t.id.as_str(),
        name: &t.name,
        created_at: Some(format_time(t.created_at)),
    }
}

/// td's project shape (`id, name, description, created_at, updated_at`) plus the tenant.
#[derive(Serialize)]
pub(super) struct ProjectJson<'a> {
    id: &'a str,
    tenant: &'a str,
    name: &'a str,
    description: &'a str,
    created_at: String,
    updated_at: String,
}

pub(super) fn project_json(p: &Project) -> ProjectJson<'_> {
    ProjectJson {
        id: p.id.as_str(),
        tenant: p.tenant.as_str(),
        name: &p.name,
        description: &p.description,
        created_at: format_time(p.created_at),
        updated_at: format_time(p.updated_at),
    }
}

/// A project as `project list` shows it: td's shape and its GitHub link (`null` when none).
#[derive(Serialize)]
pub(super) struct ProjectListedJson<'a> {
    #[serde(flatten)]
    project: ProjectJson<'a>,
    github: Option<GithubLinkJson<'a>>,
}

#[derive(Serialize)]
pub(super) struct GithubLinkJson<'a> {
    repo: &'a str,
    allow_write: bool,
}

pub(super) fn project_listed_json<'a>(
    p: &'a Project,
    link: Option<&'a GithubLink>,
) -> ProjectListedJson<'a> {
    ProjectListedJson {
        project: project_json(p),
        github: link.map(|l| GithubLinkJson {
            repo: &l.repo,
            allow_write: l.allow_write,
        }),
    }
}

#[derive(Serialize)]
pub(super) struct TokenJson<'a> {
    id: &'a str,
    tenant: &'a str,
    name: &'a str,
    scopes: Vec<&'static str>,
    projects: Value,
    parent: Option<&'a str>,
    expires_at: Option<String>,
    created_at: String,
    last_used_at: Option<String>,
    revoked_at: Option<String>,
    state: &'static str,
}

pub(super) fn token_json(t: &TokenRecord, now: chrono::DateTime<chrono::Utc>) -> TokenJson<'_> {
    TokenJson {
        id: t.id.as_str(),
        tenant: t.tenant.as_str(),
        name: &t.name,
        scopes: t.scopes.names(),
        projects: t.projects.to_json(),
        parent: t.parent.as_ref().map(|p| p.as_str()),
        expires_at: t.expires_at.map(format_time),
        created_at: format_time(t.created_at),
        last_used_at: t.last_used_at.map(format_time),
        revoked_at: t.revoked_at.map(format_time),
        state: t.state(now).as_str(),
    }
}

#[derive(Serialize)]
pub(super) struct AuditJson<'a> {
    seq: i64,
    at: String,
    tenant: &'a str,
    actor: String,
    /// The person behind the actor (email or `github:LOGIN`), if any.
    person: Option<&'a str>,
    action: &'static str,
    subject: &'a str,
    detail: &'a Value,
}

pub(super) fn audit_json(e: &AuditEvent) -> AuditJson<'_> {
    AuditJson {
        seq: e.seq,
        at: format_time(e.at),
        tenant: e.tenant.as_str(),
        actor: e.actor.to_string(),
        person: e.person.as_deref(),
        action: e.action.as_str(),
        subject: &e.subject,
        detail: &e.detail,
    }
}

#[derive(Serialize)]
pub(super) struct MemberJson<'a> {
    id: &'a str,
    email: Option<&'a str>,
    github: Option<&'a str>,
    github_id: Option<u64>,
    tenant: &'a str,
    role: &'static str,
    projects: Value,
    member_since: String,
}

pub(super) fn member_json<'a>(u: &'a User, m: &'a Membership) -> MemberJson<'a> {
    MemberJson {
        id: u.id.as_str(),
        email: u.email.as_deref(),
        github: u.github.as_ref().map(|g| g.login.as_str()),
        github_id: u.github.as_ref().map(|g| g.id),
        tenant: m.tenant.as_str(),
        role: m.role.as_str(),
        projects: m.projects.to_json(),
        member_since: format_time(m.created_at),
    }
}

#[derive(Serialize)]
pub(super) struct RemovedJson<'a> {
    user: &'a str,
    email: Option<&'a str>,
    tenant: &'a str,
    revoked: Vec<&'a str>,
}

pub(super) fn removed_json<'a>(
    u: &'a User,
    tenant: &'a TenantId,
    revoked: &'a [TokenId],
) -> RemovedJson<'a> {
    RemovedJson {
        user: u.id.as_str(),
        email: u.email.as_deref(),
        tenant: tenant.as_str(),
        revoked: revoked.iter().map(TokenId::as_str).collect(),
    }
}

#[derive(Serialize)]
pub(super) struct InvitationJson<'a> {
    id: &'a str,
    tenant: &'a str,
    project: &'a str,
    email: &'a str,
    role: &'static str,
    /// As of now: a pending invitation past its expiry is `expired`.
    status: &'static str,
    invited_by: String,
    created_at: String,
    expires_at: String,
    closed_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email_sent: Option<bool>,
}

/// `email_sent`: said only by `invite create` (the command line never sends one).
pub(super) fn invitation_json(
    i: &Invitation,
    now: chrono::DateTime<chrono::Utc>,
    email_sent: Option<bool>,
) -> InvitationJson<'_> {
    InvitationJson {
        id: i.id.as_str(),
        tenant: i.tenant.as_str(),
        project: i.project.as_str(),
        email: &i.email,
        role: i.role.as_str(),
        status: i.status_at(now).as_str(),
        invited_by: i.invited_by.to_string(),
        created_at: format_time(i.created_at),
        expires_at: format_time(i.expires_at),
        closed_at: i.closed_at.map(format_time),
        email_sent,
    }
}

pub(super) fn print_json(value: &impl Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// Columns padded to their widest cell; the last column is not padded.
pub(super) fn print_table(header: &[&str], rows: impl Iterator<Item = Vec<String>>) {
    let rows: Vec<Vec<String>> = rows.collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}
