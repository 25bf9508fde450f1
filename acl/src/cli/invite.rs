//! `tdsync invite create|list|revoke`: invitations to a project by email. The invitee accepts
//! by logging in with that email (`td auth login`); the command line sends no email.

use anyhow::{Context, anyhow};
use clap::{Args, Subcommand};

use super::{
    find_project,
    output::{invitation_json, print_json, print_table},
    project_of,
};
use crate::{
    Acl, AclError, Actor, INVITATION_TTL, Invitation, InvitationId, InvitationStatus, ProjectId,
    TdRole, clean_email, clock::format_time,
};

#[derive(Debug, Subcommand)]
pub enum InviteCommand {
    /// Invite someone to a project by email and print the invitation's id (on stderr: when it
    /// expires and what the invitee runs). No email is sent from here: tell them yourself, or
    /// invite through the server (`td sync-project invite EMAIL ROLE`), which emails them.
    /// They accept by logging in with that email: `td auth login` against the server.
    Create(InviteCreateArgs),
    /// List a tenant's invitations (or one project's), newest first, with their status as of
    /// now: pending, accepted, declined, revoked or expired.
    List {
        #[arg(long, value_name = "ID")]
        tenant: String,
        /// Only this project's invitations.
        #[arg(long, value_name = "ID", value_parser = ProjectId::parse)]
        project: Option<ProjectId>,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a pending invitation: it can no longer be accepted. An invitation already
    /// accepted is not undone (take the person out with `tdsync user remove`).
    Revoke {
        #[arg(long, value_name = "ID")]
        tenant: String,
        /// The invitation's id (`inv_…`; see `tdsync invite list`).
        #[arg(value_parser = InvitationId::parse)]
        id: InvitationId,
        /// Print the invitation as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct InviteCreateArgs {
    /// The project to invite to (`p_…`; its tenant is the project's).
    #[arg(long, value_name = "ID", value_parser = ProjectId::parse)]
    pub project: ProjectId,
    /// The invitee's email address: they accept by logging in with it.
    #[arg(long, value_name = "EMAIL", value_parser = clean_email)]
    pub email: String,
    /// reader (pulls), writer (pushes too) or owner (also invites people and manages tokens).
    /// A person has one role per tenant.
    #[arg(long, value_name = "ROLE", default_value = "writer", value_parser = parse_role)]
    pub role: TdRole,
    /// The server's public URL (as given to `tdsync serve --public-url`), for the lines printed
    /// for the invitee.
    #[arg(long, value_name = "URL", env = "TDSYNC_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Print the invitation as JSON (with "email_sent": false) instead of its id.
    #[arg(long)]
    pub json: bool,
}

fn parse_role(raw: &str) -> Result<TdRole, String> {
    TdRole::parse(raw.trim())
        .ok_or_else(|| format!("unknown role {raw:?}: use reader, writer or owner"))
}

pub(super) async fn run(acl: &Acl, command: InviteCommand) -> anyhow::Result<()> {
    match command {
        InviteCommand::Create(args) => create(acl, args).await,
        InviteCommand::List {
            tenant,
            project,
            json,
        } => list(acl, &tenant, project, json).await,
        InviteCommand::Revoke { tenant, id, json } => revoke(acl, &tenant, &id, json).await,
    }
}

async fn list(
    acl: &Acl,
    tenant: &str,
    project: Option<ProjectId>,
    json: bool,
) -> anyhow::Result<()> {
    let tenant = acl.tenant(tenant).await?;
    if let Some(p) = &project {
        project_of(acl, &tenant, p).await?;
    }
    let invitations = acl.invitations(&tenant.id, project.as_ref()).await?;
    let now = acl.now();
    if json {
        let all: Vec<_> = invitations
            .iter()
            .map(|i| invitation_json(i, now, None))
            .collect();
        print_json(&all);
    } else {
        print_table(
            &[
                "ID",
                "PROJECT",
                "EMAIL",
                "ROLE",
                "STATUS",
                "INVITED BY",
                "EXPIRES",
            ],
            invitations.iter().map(|i| {
                vec![
                    i.id.to_string(),
                    i.project.to_string(),
                    i.email.clone(),
                    i.role.as_str().into(),
                    i.status_at(now).as_str().into(),
                    i.invited_by.to_string(),
                    format_time(i.expires_at),
                ]
            }),
        );
    }
    Ok(())
}

/// Revokes a pending invitation; one that can no longer be accepted anyway is left as it is
/// (and said so), one already accepted is an error that says how to take the person out.
async fn revoke(acl: &Acl, tenant: &str, id: &InvitationId, json: bool) -> anyhow::Result<()> {
    let tenant = acl.tenant(tenant).await?.id;
    let invitation = match acl.invitation_in(&tenant, id).await {
        Err(AclError::NotFound(_)) => {
            return Err(anyhow!(
                "no invitation {id} in tenant {tenant} (see `tdsync invite list --tenant \
                 {tenant}`)"
            ));
        }
        found => found?,
    };
    let now = acl.now();
    let (invitation, said) = match invitation.status_at(now) {
        InvitationStatus::Pending => {
            let revoked = acl
                .revoke_invitation(&tenant, id, &Actor::Cli)
                .await
                .with_context(|| format!("cannot revoke invitation {id}"))?;
            let said = format!(
                "revoked invitation {id} ({} to {} as {})",
                revoked.email,
                revoked.project,
                revoked.role.as_str()
            );
            (revoked, said)
        }
        InvitationStatus::Accepted => {
            return Err(anyhow!(
                "invitation {id} was already accepted, which made {email} a member: to take \
                 them out, run `tdsync user remove --tenant {tenant} {email}`",
                email = invitation.email,
            ));
        }
        InvitationStatus::Expired => {
            let said = format!(
                "invitation {id} expired at {}: it can no longer be accepted, nothing to revoke",
                format_time(invitation.expires_at)
            );
            (invitation, said)
        }
        status @ (InvitationStatus::Revoked | InvitationStatus::Declined) => {
            let said = format!("invitation {id} was already {status}: nothing to revoke");
            (invitation, said)
        }
    };
    if json {
        print_json(&invitation_json(&invitation, now, None));
    } else {
        println!("{said}");
    }
    Ok(())
}

async fn create(acl: &Acl, args: InviteCreateArgs) -> anyhow::Result<()> {
    let project = find_project(acl, &args.project).await?;
    let invitation = acl
        .invite(&project, &args.email, args.role, &Actor::Cli, None)
        .await?;
    if args.json {
        print_json(&invitation_json(&invitation, acl.now(), Some(false)));
    } else {
        println!("{}", invitation.id);
        eprintln!(
            "{}",
            next_steps(&invitation, &project.name, args.public_url.as_deref())
        );
    }
    Ok(())
}

/// What the admin is told after inviting: the expiry, that no email went out, and the lines
/// the invitee runs.
fn next_steps(invitation: &Invitation, project_name: &str, public_url: Option<&str>) -> String {
    let Invitation {
        id,
        project,
        email,
        role,
        expires_at,
        ..
    } = invitation;
    let server = public_url
        .map(|u| u.trim().trim_end_matches('/'))
        .filter(|u| !u.is_empty())
        .unwrap_or("<the server's public URL>");
    format!(
        "invited {email} to project {project_name} ({project}) as {role}: invitation {id}, \
         expires at {expires} (in {days} days).\n\
         no email was sent: tell {email}, or create invitations through the server \
         (`td sync-project invite`).\n\
         {email} joins with td (its sync commands need TD_FEATURE_SYNC_CLI=1):\n\
         \n\
         \x20 export TD_SYNC_URL={server} TD_FEATURE_SYNC_CLI=1\n\
         \x20 td auth login                # enter {email}, then approve the emailed link\n\
         \x20 td sync-project join {name}",
        role = role.as_str(),
        expires = format_time(*expires_at),
        days = INVITATION_TTL.num_days(),
        name = shell_word(project_name),
    )
}

/// `word` as one shell word: as is when it needs no quoting, else single-quoted.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+=:,@/".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}
