//! The admin command line: `tdsync tenant|project|token|audit …`, on either backend.
//!
//! Scripts depend on these commands: text output is one value per line or an aligned table,
//! `--json` prints one JSON document, errors go to stderr and exit non-zero. A minted token is
//! printed once, alone on stdout, so `TOKEN=$(tdsync token mint …)` works.

use std::{path::PathBuf, process::ExitCode};

use anyhow::{Context, anyhow};
use clap::{ArgGroup, Args, Subcommand};
use serde_json::json;

mod output;

use output::{
    TenantJson, audit_json, print_json, print_table, project_json, report_minted, tenant_json,
    token_json,
};

use crate::{
    Acl, AclConfig, Actor, AnyStore, ControlPlaneUrl, MintRequest, ProjectBinding, ProjectId,
    Scopes, TokenId, clock::format_time, duration::parse_duration,
};

/// Where the control plane is: the binary's global `--data-dir` and `--control-plane` options.
#[derive(Debug, Clone)]
pub struct Location {
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://…`; `None`: `<data-dir>/control-plane.db`.
    pub control_plane: Option<String>,
}

impl Location {
    /// The URL given, or the default; an empty value (`TDSYNC_CONTROL_PLANE=`) is the default.
    pub fn url(&self) -> anyhow::Result<ControlPlaneUrl> {
        match self.control_plane.as_deref().map(str::trim) {
            Some(raw) if !raw.is_empty() => Ok(ControlPlaneUrl::parse(raw)?),
            _ => Ok(ControlPlaneUrl::default_for(&self.data_dir)),
        }
    }
}

/// The admin command families, flattened into the `tdsync` binary's commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create and list tenants (a team or an account; it owns projects and tokens).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Register and list a tenant's projects (one synced td database each).
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Mint, list and revoke tokens (`tds_…`, for TD_AUTH_KEY).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Show a tenant's audit log: tenants and projects created, tokens minted and revoked.
    #[command(subcommand)]
    Audit(AuditCommand),
}

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

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Register a project of a tenant and print its id (td clients usually create projects
    /// through the server with `td sync-project create`).
    Create {
        /// The tenant that owns the project.
        #[arg(long, value_name = "ID")]
        tenant: String,
        /// A name, unique within the tenant.
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        /// Print the project as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List a tenant's projects, oldest first.
    List {
        #[arg(long, value_name = "ID")]
        tenant: String,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
}

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

/// Runs one admin command against the control plane at `location`.
pub fn run(command: AdminCommand, location: &Location) -> anyhow::Result<ExitCode> {
    let url = location.url()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let store = AnyStore::open(&url)
            .await
            .with_context(|| format!("cannot open the control plane {url}"))?;
        let acl = Acl::new(store, AclConfig::default());
        let outcome = dispatch(&acl, command).await;
        acl.store().close().await;
        outcome.map(|()| ExitCode::SUCCESS)
    })
}

async fn dispatch(acl: &Acl, command: AdminCommand) -> anyhow::Result<()> {
    let cli = Actor::Cli;
    match command {
        AdminCommand::Tenant(TenantCommand::Create { name, json }) => {
            let t = acl.create_tenant(&name, &cli).await?;
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
        AdminCommand::Tenant(TenantCommand::List { json }) => {
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
        AdminCommand::Project(ProjectCommand::Create {
            tenant,
            name,
            description,
            json,
        }) => {
            let tenant = acl.tenant(&tenant).await?.id;
            let p = acl
                .create_project(&tenant, &name, &description, &cli)
                .await?;
            if json {
                print_json(&project_json(&p));
            } else {
                println!("{}", p.id);
            }
        }
        AdminCommand::Project(ProjectCommand::List { tenant, json }) => {
            let tenant = acl.tenant(&tenant).await?.id;
            let projects = acl.projects(&tenant).await?;
            if json {
                print_json(&projects.iter().map(project_json).collect::<Vec<_>>());
            } else {
                print_table(
                    &["ID", "NAME", "CREATED", "DESCRIPTION"],
                    projects.iter().map(|p| {
                        vec![
                            p.id.to_string(),
                            p.name.clone(),
                            format_time(p.created_at),
                            p.description.clone(),
                        ]
                    }),
                );
            }
        }
        AdminCommand::Token(TokenCommand::Mint(args)) => mint(acl, args).await?,
        AdminCommand::Token(TokenCommand::List { tenant, json }) => {
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
        AdminCommand::Token(TokenCommand::Revoke { id, json }) => {
            let revoked = acl.revoke(&id, &cli).await?;
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
        AdminCommand::Audit(AuditCommand::List { tenant, json }) => {
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
                            e.actor.to_string(),
                            e.action.as_str().into(),
                            e.subject.clone(),
                            e.detail.to_string(),
                        ]
                    }),
                );
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
