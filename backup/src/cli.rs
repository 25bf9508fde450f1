//! The `tdsync backup`, `restore` and `verify` commands: progress on stderr when it is a
//! terminal, a summary (or `--json`) on stdout, and an exit status scripts can act on (0 good,
//! 1 a check failed, 2 the command could not run).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::{
    progress::Progress,
    restore::{RestoreInto, RestoreReport, Until, restore},
    ship::{Policy, Shipper},
    target::Target,
    verify::{VerifyReport, compare, verify_backup, verify_data_dir},
};

const TARGET_HELP: &str = "file:///PATH or s3://BUCKET/PREFIX (S3: credentials, region and \
                           endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, \
                           AWS_ENDPOINT_URL, or ?endpoint=URL&region=R)";

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Back up the data directory (--data-dir) to object storage: each project's log as
    /// segments after what the target already holds, a snapshot where one is due, and the
    /// SQLite control plane. Safe while `tdsync serve` runs on the directory.
    Backup(BackupArgs),
    /// Rebuild a data directory from a backup: each project's newest usable snapshot, then
    /// its segments replayed, then a rebuild check of every shard.
    Restore(RestoreArgs),
    /// Check the shards of the data directory, or every object of a backup (--backup); exit
    /// status 1 when anything is damaged or missing.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[arg(long, value_name = "URL", help = TARGET_HELP)]
    to: String,
    /// Take a snapshot of every project, not only where one is due.
    #[arg(long)]
    snapshot: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[arg(long, value_name = "URL", help = TARGET_HELP)]
    from: String,
    /// Restore every event the server logged at or before this time (RFC 3339).
    #[arg(long, value_name = "RFC3339", conflicts_with = "seq_per_project")]
    at: Option<String>,
    /// A JSON file {"tenant/project": seq, …}: restore each named project up to that seq
    /// (projects it does not name are restored whole).
    #[arg(long, value_name = "FILE")]
    seq_per_project: Option<PathBuf>,
    /// Replace the shards and SQLite control plane of a data directory that is not empty.
    #[arg(long)]
    force: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Verify this backup instead of the data directory.
    #[arg(long, value_name = "URL")]
    backup: Option<String>,
    /// With --backup: also report, per project, the events the data directory logged that the
    /// backup lacks (what a restore would lose).
    #[arg(long, requires = "backup")]
    compare: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs one command against the data directory `data_dir`; `control_plane` is the SQLite
/// control-plane file, None when the control plane is Postgres (back it up with pg_dump).
pub fn run(
    command: BackupCommand,
    data_dir: &Path,
    control_plane: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        match command {
            BackupCommand::Backup(args) => backup(args, data_dir, control_plane).await,
            BackupCommand::Restore(args) => restore_cmd(args, data_dir, control_plane).await,
            BackupCommand::Verify(args) => verify(args, data_dir).await,
        }
    })
}

async fn backup(
    args: BackupArgs,
    data_dir: &Path,
    control_plane: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    if !data_dir.join("tenants").is_dir() {
        anyhow::bail!(
            "{} is not a tdsync data directory (it has no tenants/): give --data-dir",
            data_dir.display()
        );
    }
    let target = Target::parse(&args.to)?;
    let files = tdsync_tenants::shard_files(data_dir)?;
    let mut policy = Policy::default();
    if args.snapshot {
        policy.snapshot_every_segments = 0;
        policy.snapshot_every_bytes = 0;
    }
    let shipper = Shipper::open(target.clone(), policy).await?;
    let progress = Progress::for_terminal(args.json);
    let bar = progress.bar(files.len() as u64, "backing up projects");
    let mut projects = BTreeMap::new();
    for path in &files {
        let file = tdsync_tenants::ShardFile::open(path)?;
        let key = crate::layout::ProjectKey {
            tenant: file.tenant().clone(),
            project: file.project().clone(),
        };
        drop(file);
        bar.set_message(key.to_string());
        let shipped = shipper
            .ship(&key, path)
            .await
            .with_context(|| format!("backing up {key}"))?;
        projects.insert(key.to_string(), shipped);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let control_plane = match control_plane.filter(|p| p.exists()) {
        Some(db) => shipper.ship_control_plane(db).await?,
        None => None,
    };
    shipper.write_manifest().await?;
    if args.json {
        let out = serde_json::json!({
            "target": target.to_string(),
            "projects": projects,
            "control_plane": control_plane,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for (project, s) in &projects {
            println!(
                "{project}: {} events in {} segments ({} bytes){}, the backup holds up to seq {}",
                s.events,
                s.segments,
                s.bytes,
                s.snapshot_seq
                    .map(|seq| format!(", snapshot at seq {seq}"))
                    .unwrap_or_default(),
                s.shipped_seq
            );
        }
        match control_plane {
            Some(ms) => println!("control plane: snapshot {ms}"),
            None => println!(
                "control plane: unchanged since the last backup, or not SQLite (back a \
                 Postgres control plane up with pg_dump)"
            ),
        }
        println!("backed up {} projects to {target}", projects.len());
    }
    Ok(ExitCode::SUCCESS)
}

async fn restore_cmd(
    args: RestoreArgs,
    data_dir: &Path,
    control_plane: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let until = match (&args.at, &args.seq_per_project) {
        (Some(at), _) => Until::At(
            chrono::DateTime::parse_from_rfc3339(at)
                .with_context(|| format!("--at {at:?} is not an RFC 3339 time"))?
                .to_utc(),
        ),
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            Until::Seqs(serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is not a JSON object of \"tenant/project\": seq",
                    file.display()
                )
            })?)
        }
        (None, None) => Until::Latest,
    };
    let target = Target::parse_existing(&args.from)?;
    let progress = Progress::for_terminal(args.json);
    let into = RestoreInto {
        data_dir,
        control_plane,
    };
    let report = restore(&target, &into, &until, args.force, &progress).await?;
    print_restore(&report, args.json)?;
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_restore(report: &RestoreReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    for p in &report.projects {
        let from = p
            .snapshot_seq
            .map(|s| format!("snapshot at seq {s} + "))
            .unwrap_or_default();
        let check = if p.rebuild_matches {
            "rebuild check ok".to_string()
        } else {
            format!(
                "REBUILD CHECK FAILED: {}",
                p.divergence.as_deref().unwrap_or("")
            )
        };
        println!(
            "{}: seq {} ({from}{} events from {} segments), {check}",
            p.project, p.seq, p.events_replayed, p.segments
        );
        if let Some(missing) = &p.missing {
            println!("{}: MISSING {missing}", p.project);
        }
    }
    match report.control_plane {
        Some(ms) => println!("control plane: snapshot {ms}"),
        None => println!(
            "control plane: not restored (none in the backup, or it is Postgres: restore that \
             with pg_restore)"
        ),
    }
    println!(
        "restored {} projects into {} in {} ms",
        report.projects.len(),
        report.data_dir.display(),
        report.millis
    );
    Ok(())
}

async fn verify(args: VerifyArgs, data_dir: &Path) -> anyhow::Result<ExitCode> {
    let progress = Progress::for_terminal(args.json);
    let mut reports = Vec::new();
    match &args.backup {
        Some(url) => {
            let target = Target::parse_existing(url)?;
            reports.push(verify_backup(&target, &progress).await?);
            if args.compare {
                reports.push(compare(&target, data_dir).await?);
            }
        }
        None => {
            let dir = data_dir.to_path_buf();
            reports.push(
                tokio::task::spawn_blocking(move || verify_data_dir(&dir, &progress))
                    .await
                    .expect("verification does not panic")?,
            );
        }
    }
    print_verify(&reports, args.json)?;
    Ok(if reports.iter().all(VerifyReport::ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_verify(reports: &[VerifyReport], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(reports)?);
        return Ok(());
    }
    for report in reports {
        for f in &report.findings {
            let level = match f.level {
                crate::verify::Level::Error => "ERROR",
                crate::verify::Level::Warning => "warning",
            };
            println!("{level}: {}: {}", f.subject, f.message);
        }
        let verdict = if report.ok() { "ok" } else { "FAILED" };
        println!(
            "{}: {} projects, {} findings: {verdict}",
            report.checked,
            report.projects.len(),
            report.findings.len()
        );
    }
    Ok(())
}
