//! The admin command line: `tdsync tenant|project|token|audit|user|invite …`, on either backend.
//!
//! Scripts depend on these commands: text output is one value per line or an aligned table,
//! `--json` prints one JSON document, errors go to stderr and exit non-zero. A minted token is
//! printed once, alone on stdout, so `TOKEN=$(tdsync token mint …)` works; so is a created id
//! (`INV=$(tdsync invite create …)`), with what to do next on stderr.
//!
//! One module per command family; `output.rs` holds what they print.

use std::{path::PathBuf, process::ExitCode};

use anyhow::{Context, anyhow};
use clap::Subcommand;

mod audit;
mod invite;
mod output;
mod project;
mod tenant;
mod token;
mod user;

pub use audit::AuditCommand;
pub use invite::{InviteCommand, InviteCreateArgs};
pub use project::{LinkGithubArgs, ProjectCommand};
pub use tenant::TenantCommand;
pub use token::{MintArgs, TokenCommand};
pub use user::UserCommand;

use crate::{Acl, AclConfig, AnyStore, ControlPlaneUrl, Project, ProjectId, Tenant};

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
    /// Register and list a tenant's projects (one synced td database each), and link them to
    /// GitHub repositories.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Mint, list and revoke tokens (`tds_…`, for TD_AUTH_KEY).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Show a tenant's audit log: tenants and projects created, tokens minted and revoked,
    /// people invited, added and removed.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// List a tenant's people (members: an email and/or a GitHub account, a role, projects)
    /// and take them out.
    #[command(subcommand)]
    User(UserCommand),
    /// Invite people to a project by email, list invitations and revoke them. The invitee
    /// joins with td's own `td auth login`.
    #[command(subcommand)]
    Invite(InviteCommand),
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
    match command {
        AdminCommand::Tenant(command) => tenant::run(acl, command).await,
        AdminCommand::Project(command) => project::run(acl, command).await,
        AdminCommand::Token(command) => token::run(acl, command).await,
        AdminCommand::Audit(command) => audit::run(acl, command).await,
        AdminCommand::User(command) => user::run(acl, command).await,
        AdminCommand::Invite(command) => invite::run(acl, command).await,
    }
}

/// Project `id`, or an error naming it.
async fn find_project(acl: &Acl, id: &ProjectId) -> anyhow::Result<Project> {
    acl.project(id).await?.ok_or_else(|| {
        anyhow!("no project has the id \"{id}\" (see `tdsync project list --tenant ID`)")
    })
}

/// Project `id` of `tenant`, or an error naming what is wrong.
async fn project_of(acl: &Acl, tenant: &Tenant, id: &ProjectId) -> anyhow::Result<Project> {
    let project = find_project(acl, id).await?;
    if project.tenant != tenant.id {
        return Err(anyhow!(
            "project {id} belongs to tenant {}, not to {} ({})",
            project.tenant,
            tenant.id,
            tenant.name
        ));
    }
    Ok(project)
}
