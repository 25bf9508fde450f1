//! `tdsync token mint|list|revoke`.

use anyhow::anyhow;
use clap::{ArgGroup, Args, Subcommand};
use serde_json::json;

use super::output::{print_json, print_table, report_minted, token_json};
use crate::{
    Acl, Actor, MintRequest, ProjectBinding, ProjectId, Scopes, TokenId, clock::format_time,
    duration::parse_duration,
};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Mint a token and print it once. Either for a tenant (--tenant), or as a child of the token
    /// held in an environment variable (--parent-env): a child never exceeds its parent.
    Mint(MintArgs),
    /// List a tenant's tokens (never their secrets).
    List {
        #[arg(long, value_name = "ID")]
        tenant: String,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token and every token minted from it, at once.
    Revoke {
        /// The token's id (the part after tds_, before the second _; see `tdsync token list`).
        #[arg(value_parser = TokenId::parse)]
        id: TokenId,
        /// Print `{"revoked":[ids]}`.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("issuer").required(true).args(["tenant", "parent_env"])))]
pub struct MintArgs {
    /// Mint a root token of this tenant (administrators).
    #[arg(long, value_name = "ID")]
    pub tenant: Option<String>,
    /// Mint a child of the token in environment variable VAR (agents minting for themselves;
    /// the parent needs the mint scope).
    #[arg(long, value_name = "VAR")]
    pub parent_env: Option<String>,
    /// Comma list of scopes: read; write (implies read); admin (implies write); mint (may mint
    /// children). Such as read, write or write,mint.
    #[arg(long, value_name = "SCOPES", value_parser = Scopes::parse)]
    pub scope: Scopes,
    /// Bind the token to this project; repeat for several. Default: all of the tenant's
    /// projects (for a child: its parent's).
    #[arg(long = "project", value_name = "ID", value_parser = ProjectId::parse, value_delimiter = ',')]
    pub projects: Vec<ProjectId>,
    /// Lifetime such as 30m, 12h or 7d. Default: no expiry (for a child: its parent's).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub ttl: Option<chrono::TimeDelta>,
    /// A label shown by `token list`.
    #[arg(long)]
    pub name: Option<String>,
    /// Print {"id","token","scopes","projects","expires_at",…} instead of the token.
    #[arg(long)]
    pub json: bool,
}

pub(super) async fn run(acl: &Acl, command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Mint(args) => mint(acl, args).await?,
        TokenCommand::List { tenant, json } => {
            let tenant = acl.tenant(&tenant).await?.id;
            let tokens = acl.tokens(&tenant).await?;
            let now = acl.now();
            if json {
                let all: Vec<_> = tokens.iter().map(|t| token_json(t, now)).collect();
                print_json(&all);
            } else {
                print_table(
                    &[
                        "ID",
                        "NAME",
                        "SCOPES",
                        "PROJECTS",
                        "EXPIRES",
                        "PARENT",
                        "LAST USED",
                        "STATE",
                    ],
                    tokens.iter().map(|t| {
                        vec![
                            t.id.to_string(),
                            t.name.clone(),
                            t.scopes.to_string(),
                            t.projects.to_string(),
                            t.expires_at.map_or("never".into(), format_time),
                            t.parent.as_ref().map_or("-".into(), |p| p.to_string()),
                            t.last_used_at.map_or("never".into(), format_time),
                            t.state(now).as_str().into(),
                        ]
                    }),
                );
            }
        }
        TokenCommand::Revoke { id, json } => {
            let revoked = acl.revoke(&id, &Actor::Cli).await?;
            if json {
                let ids: Vec<&str> = revoked.iter().map(|t| t.as_str()).collect();
                print_json(&json!({ "revoked": ids }));
            } else if revoked.is_empty() {
                println!("token {id} was already revoked");
            } else {
                for t in &revoked {
                    if *t == id {
                        println!("revoked {t}");
                    } else {
                        println!("revoked {t} (minted from {id})");
                    }
                }
            }
        }
    }
    Ok(())
}

async fn mint(acl: &Acl, args: MintArgs) -> anyhow::Result<()> {
    let request = MintRequest {
        name: args.name,
        scopes: args.scope,
        projects: (!args.projects.is_empty())
            .then(|| ProjectBinding::Only(args.projects.into_iter().collect())),
        ttl: args.ttl,
    };
    let issued = match (args.tenant, args.parent_env) {
        (Some(tenant), _) => {
            let tenant = acl.tenant(&tenant).await?.id;
            acl.mint(&tenant, request, &Actor::Cli).await?
        }
        (None, Some(var)) => {
            let parent_token = std::env::var(&var).map_err(|e| match e {
                std::env::VarError::NotPresent => anyhow!(
                    "environment variable {var} is not set: it must hold the parent token (tds_…)"
                ),
                std::env::VarError::NotUnicode(_) => {
                    anyhow!("environment variable {var} does not hold a token (not UTF-8)")
                }
            })?;
            let parent = acl
                .verify(parent_token.trim())
                .await
                .map_err(|e| anyhow!("the token in {var} cannot be used: {e}"))?;
            let issued = acl.mint_child(&parent, request).await?;
            // The parent was used; its last-used time is written now, not by a server.
            acl.flush_last_used().await?;
            issued
        }
        (None, None) => unreachable!("clap requires --tenant or --parent-env"),
    };
    report_minted(&issued, args.json);
    Ok(())
}
