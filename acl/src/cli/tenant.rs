//! `tdsync tenant create|list`.

use clap::Subcommand;

use super::output::{TenantJson, print_json, print_table, tenant_json};
use crate::{Acl, Actor, clock::format_time};

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and print its id.
    Create {
        /// A name, unique on this control plane (such as "acme").
        name: String,
        /// Print {"id":…,"name":…} instead of the id.
        #[arg(long)]
        json: bool,
    },
    /// List tenants, oldest first.
    List {
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
}

pub(super) async fn run(acl: &Acl, command: TenantCommand) -> anyhow::Result<()> {
    match command {
        TenantCommand::Create { name, json } => {
            let t = acl.create_tenant(&name, &Actor::Cli).await?;
            if json {
                print_json(&TenantJson {
                    id: t.id.as_str(),
                    name: &t.name,
                    created_at: None,
                });
            } else {
                println!("{}", t.id);
            }
        }
        TenantCommand::List { json } => {
            let tenants = acl.tenants().await?;
            if json {
                print_json(&tenants.iter().map(tenant_json).collect::<Vec<_>>());
            } else {
                print_table(
                    &["ID", "NAME", "CREATED"],
                    tenants
                        .iter()
                        .map(|t| vec![t.id.to_string(), t.name.clone(), format_time(t.created_at)]),
                );
            }
        }
    }
    Ok(())
}
