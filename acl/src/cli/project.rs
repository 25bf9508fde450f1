//! `tdsync project create|list|link-github`.

use clap::{ArgGroup, Args, Subcommand};

use super::{
    find_project,
    output::{print_json, print_table, project_json, project_listed_json},
};
use crate::{Acl, Actor, GithubLink, ProjectId, clock::format_time, people::check_github_repo};

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
    /// List a tenant's projects, oldest first, with the GitHub repository each is linked to.
    List {
        #[arg(long, value_name = "ID")]
        tenant: String,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Link a project to a GitHub repository, or unlink it. People who can read the repository
    /// on GitHub then get a read-only token for this one project by signing in with GitHub
    /// (30 days, their access re-checked daily); with --allow-write, people who can push get a
    /// write token. The server needs a GitHub OAuth app for that (`tdsync serve
    /// --github-client-id …`; see docs/people.md).
    #[command(name = "link-github")]
    LinkGithub(LinkGithubArgs),
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("link").required(true).args(["repo", "unlink"])))]
pub struct LinkGithubArgs {
    /// The project (`p_…`; see `tdsync project list`).
    #[arg(long, value_name = "ID", value_parser = ProjectId::parse)]
    pub project: ProjectId,
    /// The repository, as OWNER/NAME (such as octo/widgets). Replaces the project's current
    /// link, if any.
    #[arg(long, value_name = "OWNER/NAME", value_parser = check_github_repo)]
    pub repo: Option<String>,
    /// Let people who can push to the repository write to the project (default: everyone
    /// linked through GitHub only reads).
    #[arg(long, requires = "repo", conflicts_with = "unlink")]
    pub allow_write: bool,
    /// Remove the project's link. Tokens already granted through it are revoked by the server's
    /// next GitHub check of it (daily by default); `tdsync token revoke ID` ends one now.
    #[arg(long)]
    pub unlink: bool,
}

pub(super) async fn run(acl: &Acl, command: ProjectCommand) -> anyhow::Result<()> {
    match command {
        ProjectCommand::Create {
            tenant,
            name,
            description,
            json,
        } => {
            let tenant = acl.tenant(&tenant).await?.id;
            let p = acl
                .create_project(&tenant, &name, &description, &Actor::Cli)
                .await?;
            if json {
                print_json(&project_json(&p));
            } else {
                println!("{}", p.id);
            }
        }
        ProjectCommand::List { tenant, json } => {
            let tenant = acl.tenant(&tenant).await?.id;
            let projects = acl.projects(&tenant).await?;
            let mut links = Vec::with_capacity(projects.len());
            for p in &projects {
                links.push(acl.github_link(&p.id).await?);
            }
            if json {
                let all: Vec<_> = projects
                    .iter()
                    .zip(&links)
                    .map(|(p, l)| project_listed_json(p, l.as_ref()))
                    .collect();
                print_json(&all);
            } else {
                print_table(
                    &["ID", "NAME", "CREATED", "GITHUB", "DESCRIPTION"],
                    projects.iter().zip(&links).map(|(p, link)| {
                        vec![
                            p.id.to_string(),
                            p.name.clone(),
                            format_time(p.created_at),
                            link.as_ref().map_or("-".into(), github_cell),
                            p.description.clone(),
                        ]
                    }),
                );
            }
        }
        ProjectCommand::LinkGithub(args) => link_github(acl, args).await?,
    }
    Ok(())
}

/// `octo/widgets`, or `octo/widgets (push writes)` when pushing grants write.
fn github_cell(link: &GithubLink) -> String {
    if link.allow_write {
        format!("{} (push writes)", link.repo)
    } else {
        link.repo.clone()
    }
}

async fn link_github(acl: &Acl, args: LinkGithubArgs) -> anyhow::Result<()> {
    let project = find_project(acl, &args.project).await?;
    let before = acl.github_link(&project.id).await?;
    let what = format!("project {} ({})", project.name, project.id);
    match args.repo {
        Some(repo) => {
            let link = GithubLink {
                project: project.id.clone(),
                repo,
                allow_write: args.allow_write,
            };
            if before.as_ref() == Some(&link) {
                println!(
                    "{what} is already linked to GitHub repository {}",
                    link.repo
                );
                return Ok(());
            }
            acl.link_github(&project.id, Some(link.clone()), &Actor::Cli)
                .await?;
            let access = if link.allow_write {
                "people who can read it get read-only tokens for this project, and people who \
                 can push get write tokens"
            } else {
                "people who can read it get read-only tokens for this project"
            };
            println!("linked {what} to GitHub repository {}: {access}", link.repo);
            if let Some(old) = before {
                println!("(it was linked to {})", github_cell(&old));
            }
        }
        None => match before {
            None => println!("{what} is not linked to GitHub: nothing to unlink"),
            Some(old) => {
                acl.link_github(&project.id, None, &Actor::Cli).await?;
                println!(
                    "unlinked {what} from GitHub repository {}; tokens already granted through \
                     it end at the server's next GitHub check (`tdsync token revoke ID` ends \
                     one now)",
                    old.repo
                );
            }
        },
    }
    Ok(())
}
