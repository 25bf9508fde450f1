//! `tdsync cluster status|drain|move`: what the placement store says, and the two ways to move
//! projects between shard nodes (each node does the moving itself: it ships a project to its
//! head and releases it, and the target claims it).

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::{NodeId, Placement};

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// The shard nodes (URL, last heartbeat, draining, projects held) and every placed project
    /// with its owner, lease epoch, seconds left on its lease and any move under way.
    Status {
        /// Print it as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Move every project of NODE elsewhere, gracefully: NODE stops claiming, ships each
    /// project to its head and releases it; live nodes take them over. `--undo` ends the drain.
    Drain {
        node: String,
        #[arg(long)]
        undo: bool,
    },
    /// Move PROJECT (its id) to NODE: its owner ships and releases it, and only NODE may claim
    /// it then.
    Move { project: String, node: String },
}

/// Runs `command` against the placement store in the Postgres control plane at `postgres`.
pub fn run(command: ClusterCommand, postgres: &str) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let placement = Placement::connect(postgres)
            .await
            .context("connecting the placement store (the Postgres control plane)")?;
        match command {
            ClusterCommand::Status { json } => status(&placement, json).await,
            ClusterCommand::Drain { node, undo } => {
                let node = NodeId::parse(&node)?;
                let nodes = placement.nodes().await?;
                if !nodes.iter().any(|n| n.id == node) {
                    bail!("no shard node {node} is registered (tdsync cluster status lists them)");
                }
                placement.set_draining(&node, !undo).await?;
                if undo {
                    println!("{node} takes projects again");
                } else {
                    println!(
                        "{node} is draining: it hands its projects over within a few seconds \
                         (tdsync cluster status shows them move)"
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            ClusterCommand::Move { project, node } => {
                let node = NodeId::parse(&node)?;
                let leases = placement.leases().await?;
                let Some((lease, _, _)) = leases.iter().find(|(l, _, _)| l.project.as_str() == project)
                else {
                    bail!("project {project} is not placed on any node yet (it is placed when first used)");
                };
                if !placement.nodes().await?.iter().any(|n| n.id == node) {
                    bail!("no shard node {node} is registered (tdsync cluster status lists them)");
                }
                placement
                    .request_move(&lease.tenant, &lease.project, &node)
                    .await?;
                println!("project {project} moves from {} to {node}", lease.node);
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

async fn status(placement: &Placement, json: bool) -> anyhow::Result<ExitCode> {
    let nodes = placement.nodes().await?;
    let leases = placement.leases().await?;
    if json {
        let out = serde_json::json!({
            "nodes": nodes.iter().map(|n| serde_json::json!({
                "id": n.id.as_str(), "url": n.url, "heartbeat_age_secs": n.heartbeat_age_secs,
                "draining": n.draining, "projects": n.projects,
            })).collect::<Vec<_>>(),
            "projects": leases.iter().map(|(l, left, moving)| serde_json::json!({
                "tenant": l.tenant.as_str(), "project": l.project.as_str(),
                "node": l.node.as_str(), "epoch": l.epoch, "lease_left_secs": left,
                "moving_to": moving.as_ref().map(NodeId::as_str),
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<20} {:<32} {:>10} {:>9} {:>8}",
        "NODE", "URL", "HEARTBEAT", "PROJECTS", "DRAINING"
    );
    for n in &nodes {
        println!(
            "{:<20} {:<32} {:>9.1}s {:>9} {:>8}",
            n.id.as_str(),
            n.url,
            n.heartbeat_age_secs,
            n.projects,
            if n.draining { "yes" } else { "" }
        );
    }
    let expired = leases.iter().filter(|(_, left, _)| *left <= 0.0).count();
    let moving = leases.iter().filter(|(_, _, m)| m.is_some()).count();
    println!(
        "{} projects placed: {expired} with an expired lease (waiting for a node), {moving} moving",
        leases.len()
    );
    for (l, left, m) in leases
        .iter()
        .filter(|(_, left, m)| *left <= 0.0 || m.is_some())
    {
        println!(
            "  {}/{} on {} (epoch {}, lease {left:.1}s){}",
            l.tenant,
            l.project,
            l.node,
            l.epoch,
            m.as_ref()
                .map(|m| format!(", moving to {m}"))
                .unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}
