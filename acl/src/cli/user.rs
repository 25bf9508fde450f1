//! `tdsync user list|remove`: a tenant's people. People become members by accepting an
//! invitation (`tdsync invite create`, `td sync-project invite`) with `td auth login`.

use anyhow::anyhow;
use clap::Subcommand;

use super::output::{member_json, print_json, print_table, removed_json};
use crate::{Acl, AclError, Actor, InvitationStatus, User, clock::format_time};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// List a tenant's members, oldest first: id, email, GitHub login, role (reader, writer or
    /// owner; one per tenant), the projects it covers (all, or a list) and since when.
    List {
        #[arg(long, value_name = "ID")]
        tenant: String,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Take a person out of a tenant: their membership goes, and every token minted for them in
    /// the tenant is revoked at once (with the tokens minted from those). Their invitations
    /// still pending are not touched (`tdsync invite revoke`).
    Remove {
        #[arg(long, value_name = "ID")]
        tenant: String,
        /// The person: a user id (`u_…`) or their email (see `tdsync user list`).
        user: String,
        /// Print `{"user","email","tenant","revoked":[ids]}`.
        #[arg(long)]
        json: bool,
    },
}

pub(super) async fn run(acl: &Acl, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::List { tenant, json } => {
            let tenant = acl.tenant(&tenant).await?.id;
            let members = acl.members(&tenant).await?;
            if json {
                let all: Vec<_> = members.iter().map(|(u, m)| member_json(u, m)).collect();
                print_json(&all);
            } else {
                print_table(
                    &["ID", "EMAIL", "GITHUB", "ROLE", "PROJECTS", "MEMBER SINCE"],
                    members.iter().map(|(u, m)| {
                        vec![
                            u.id.to_string(),
                            u.email.clone().unwrap_or_else(|| "-".into()),
                            u.github.as_ref().map_or("-".into(), |g| g.login.clone()),
                            m.role.as_str().into(),
                            m.projects.to_string(),
                            format_time(m.created_at),
                        ]
                    }),
                );
                if members.is_empty() {
                    eprintln!(
                        "tenant {tenant} has no members yet: people join by accepting an \
                         invitation (`tdsync invite create`) with `td auth login`"
                    );
                }
            }
        }
        UserCommand::Remove { tenant, user, json } => {
            let tenant = acl.tenant(&tenant).await?.id;
            let person = find(acl, &tenant, &user).await?;
            let revoked = match acl.remove_member(&tenant, &person.id, &Actor::Cli).await {
                Err(AclError::NotFound(_)) => {
                    return Err(anyhow!(
                        "{} ({}) is not a member of tenant {tenant} (see `tdsync user list \
                         --tenant {tenant}`)",
                        person.label(),
                        person.id
                    ));
                }
                other => other?,
            };
            if json {
                print_json(&removed_json(&person, &tenant, &revoked));
            } else {
                let tokens = match revoked.len() {
                    1 => "1 token".to_string(),
                    n => format!("{n} tokens"),
                };
                println!(
                    "removed {} ({}) from tenant {tenant}: {tokens} revoked",
                    person.label(),
                    person.id
                );
                for t in &revoked {
                    println!("revoked {t}");
                }
            }
        }
    }
    Ok(())
}

/// The person `who` names (an id or an email), or an error that says what to do instead.
async fn find(acl: &Acl, tenant: &crate::TenantId, who: &str) -> anyhow::Result<User> {
    let key = if who.contains('@') {
        who.trim().to_lowercase()
    } else {
        who.trim().to_string()
    };
    match acl.find_person(&key).await {
        Ok(user) => Ok(user),
        Err(AclError::NotFound(_)) => {
            let now = acl.now();
            let pending: Vec<String> = acl
                .invitations(tenant, None)
                .await?
                .into_iter()
                .filter(|i| i.email == key && i.status_at(now) == InvitationStatus::Pending)
                .map(|i| i.id.to_string())
                .collect();
            let hint = if pending.is_empty() {
                format!("see `tdsync user list --tenant {tenant}`")
            } else {
                format!(
                    "{key} is only invited ({}), not a member yet: `tdsync invite revoke \
                     --tenant {tenant} ID` takes an invitation back",
                    pending.join(", ")
                )
            };
            Err(anyhow!(
                "no person {who:?} is known to this control plane: USER is a user id (u_…) or an \
                 email ({hint})"
            ))
        }
        Err(e) => Err(e.into()),
    }
}
