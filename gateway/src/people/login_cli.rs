//! `tdsync login github --server URL --project P`: a token for a project linked to a GitHub
//! repository, from a terminal or a cloud agent, through GitHub's device flow relayed by the
//! server (`POST /v1/auth/github/device/start`, then `…/poll` every `interval` seconds).
//!
//! The person is told on stderr where to go and what code to enter; the token appears once, on
//! stdout (export lines, or `--json`), and nowhere else — never in an error or on stderr.

use std::{process::ExitCode, time::Duration};

use anyhow::{Context as _, bail};
use serde::Deserialize;
use serde_json::{Value, json};

use super::github::{export_lines, shell_word};

/// `tdsync login …`
#[derive(Debug, clap::Subcommand)]
pub enum LoginCommand {
    /// Sign in with GitHub for a project linked to a repository (`tdsync project link-github`):
    /// whoever can read the repository gets a read-only token. Prints the lines that set td up.
    Github(GithubLoginArgs),
}

#[derive(Debug, clap::Args)]
pub struct GithubLoginArgs {
    /// The tdsync server, as td reaches it.
    #[arg(long, env = "TD_SYNC_URL", value_name = "URL")]
    pub server: String,
    /// The project's id (`p_…`).
    #[arg(long, value_name = "PROJECT_ID")]
    pub project: String,
    /// Print the server's answer as JSON (token, project, scopes, expiry, sync URL) instead of
    /// export lines.
    #[arg(long)]
    pub json: bool,
}

pub fn run(command: LoginCommand) -> anyhow::Result<ExitCode> {
    let LoginCommand::Github(args) = command;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(github(args))?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Deserialize)]
struct Started {
    device_code: String,
    user_code: String,
    verification_uri: String,
    expires_in: u64,
    interval: u64,
}

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    interval: Option<u64>,
    #[serde(default)]
    api_key: Option<String>,
    #[serde(default)]
    project_name: Option<String>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    sync_url: Option<String>,
}

/// Requests are short; a poll answers at once.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Polls never come closer than this, whatever the interval says.
const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// How long past the codes' expiry the CLI keeps polling before it gives up on its own.
const EXPIRY_SLACK: Duration = Duration::from_secs(30);

async fn github(args: GithubLoginArgs) -> anyhow::Result<()> {
    let server = args.server.trim().trim_end_matches('/').to_string();
    if !(server.starts_with("http://") || server.starts_with("https://")) {
        bail!("--server must be an http:// or https:// URL, got {server:?}");
    }
    let client = reqwest::Client::builder()
        .user_agent(concat!("tdsync/", env!("CARGO_PKG_VERSION")))
        .timeout(TIMEOUT)
        .build()
        .context("building the HTTP client")?;
    let start_url = format!("{server}/v1/auth/github/device/start");
    let (status, body) = post(&client, &start_url, &json!({ "project": args.project })).await?;
    if status != 200 {
        bail!(
            "{server} refused to start the GitHub sign-in ({status}): {}",
            message(&body)
        );
    }
    let started: Started = serde_json::from_value(body)
        .with_context(|| format!("{start_url} answered something else than a device start"))?;
    eprintln!(
        "Open {} and enter {}",
        started.verification_uri, started.user_code
    );
    eprintln!(
        "Waiting for the approval on GitHub (the code expires in {} minutes)…",
        started.expires_in.div_ceil(60)
    );
    let poll_url = format!("{server}/v1/auth/github/device/poll");
    let mut interval = Duration::from_secs(started.interval).max(MIN_INTERVAL);
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(started.expires_in) + EXPIRY_SLACK;
    let request = json!({ "device_code": started.device_code });
    loop {
        tokio::time::sleep(interval).await;
        if tokio::time::Instant::now() > deadline {
            bail!(
                "the GitHub device code expired before it was approved: run `tdsync login github` again"
            );
        }
        let (status, body) = match post(&client, &poll_url, &request).await {
            Ok(answer) => answer,
            // The server is unreachable for a moment: the code stays valid, poll on.
            Err(e) => {
                eprintln!("tdsync: polling {server} failed ({e:#}); trying again");
                continue;
            }
        };
        match status {
            200 => {}
            // GitHub or the server is unavailable, or polls are limited: poll on.
            503 | 429 => continue,
            410 => bail!("{}", message(&body)),
            403 => bail!("GitHub sign-in refused: {}", message(&body)),
            _ => bail!("{server} refused the poll ({status}): {}", message(&body)),
        }
        let answer: Answer = serde_json::from_value(body.clone())
            .with_context(|| format!("{poll_url} answered something else than a poll answer"))?;
        match answer.status.as_str() {
            "pending" => {}
            "slow_down" => {
                // GitHub's new minimum, from now on (RFC 8628 §3.5: else 5 s more).
                interval = answer
                    .interval
                    .map_or(interval + Duration::from_secs(5), Duration::from_secs)
                    .max(MIN_INTERVAL);
            }
            "complete" => return complete(&server, &answer, &body, args.json),
            other => bail!("{poll_url} answered an unknown status {other:?}"),
        }
    }
}

/// The one place the token is printed: stdout.
fn complete(server: &str, answer: &Answer, body: &Value, as_json: bool) -> anyhow::Result<()> {
    let Some(token) = &answer.api_key else {
        bail!("the server completed the sign-in without a token");
    };
    if as_json {
        println!("{}", serde_json::to_string_pretty(body)?);
        return Ok(());
    }
    let sync_url = answer.sync_url.as_deref().unwrap_or(server);
    println!("{}", export_lines(sync_url, token));
    let scopes = answer.scopes.as_deref().unwrap_or_default().join(",");
    let expires = answer.expires_at.as_deref().unwrap_or("never");
    match &answer.project_name {
        Some(name) => eprintln!(
            "Signed in ({scopes}, until {expires}). Then, in your td project: td sync-project join {}",
            shell_word(name)
        ),
        None => eprintln!("Signed in ({scopes}, until {expires})."),
    }
    Ok(())
}

/// POSTs JSON; the status and the JSON answer (a non-JSON answer as a string).
async fn post(client: &reqwest::Client, url: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
    let response = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = response.status().as_u16();
    let text = response
        .text()
        .await
        .with_context(|| format!("reading the answer of POST {url}"))?;
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, value))
}

/// The message of td's error envelope, or the answer itself.
fn message(body: &Value) -> String {
    match body.get("message").and_then(Value::as_str) {
        Some(m) => m.to_string(),
        None => {
            let text = match body {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            text.chars().take(300).collect()
        }
    }
}
