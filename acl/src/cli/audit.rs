//! `tdsync audit list`.

use clap::Subcommand;

use super::output::{audit_json, print_json, print_table};
use crate::{Acl, clock::format_time};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List a tenant's audit log, oldest first.
    List {
        #[arg(long, value_name = "ID")]
        tenant: String,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
}

pub(super) async fn run(acl: &Acl, command: AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::List { tenant, json } = command;
    let tenant = acl.tenant(&tenant).await?.id;
    let events = acl.audit_log(&tenant).await?;
    if json {
        print_json(&events.iter().map(audit_json).collect::<Vec<_>>());
    } else {
        print_table(
            &["AT", "ACTOR", "ACTION", "SUBJECT", "DETAIL"],
            events.iter().map(|e| {
                vec![
                    format_time(e.at),
                    match &e.person {
                        Some(person) => format!("{} ({person})", e.actor),
                        None => e.actor.to_string(),
                    },
                    e.action.as_str().into(),
                    e.subject.clone(),
                    e.detail.to_string(),
                ]
            }),
        );
    }
    Ok(())
}
