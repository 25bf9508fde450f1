//! The GitHub re-check: a token granted because someone could read a repository lives only as
//! long as they still can. Every `--github-recheck-secs` each process takes the grants whose last
//! check is older than `--github-recheck-age-secs` and asks GitHub again with the person's own
//! (sealed) GitHub token. Every process may run it: a grant checked or revoked leaves the due
//! set, so a second process finds nothing left to do, and checking twice is harmless.
//!
//! Revoked: access gone (`None`), GitHub refusing the person's token (revoked on GitHub), a
//! write token whose person can now only read, a project unlinked or linked to another
//! repository, a sealed token this server cannot open. Never revoked because GitHub is down: the
//! round stops and the next one tries again.

use tdsync_acl::{AclError, Actor, GITHUB_RECHECK, GithubGrant, Scope};
use tdsync_github::{AccessToken, RepoAccess, RepoName};
use tokio::task::JoinHandle;

use crate::state::AppState;

/// Grants read per query.
const BATCH: u32 = 100;
/// Queries per round at most: a round ends even when a store keeps answering full batches.
const MAX_BATCHES: usize = 50;

/// Starts the re-check when GitHub sign-in is configured; its first round runs at once.
pub fn spawn(state: AppState) -> Option<JoinHandle<()>> {
    let every = state.people().github()?.recheck_every();
    Some(tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match round(&state).await {
                Ok(tally) if tally.checked + tally.revoked + tally.deferred > 0 => {
                    tracing::info!(
                        checked = tally.checked,
                        revoked = tally.revoked,
                        deferred = tally.deferred,
                        "GitHub re-check round"
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "GitHub re-check round stopped: the control plane failed; next round tries again")
                }
            }
        }
    }))
}

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Still granted; checked now.
    pub checked: usize,
    pub revoked: usize,
    /// Left for a later round (GitHub unavailable, or an answer not understood).
    pub deferred: usize,
}

enum Verdict {
    Keep,
    Revoke(String),
    /// GitHub could not answer: nothing more this round.
    Unavailable(String),
    /// This grant could not be judged (GitHub answered something unexpected): left due.
    Skip(String),
}

/// One round: every due grant, batch by batch.
pub async fn round(state: &AppState) -> Result<Tally, AclError> {
    let mut tally = Tally::default();
    let Some(github) = state.people().github() else {
        return Ok(tally);
    };
    let age = chrono::TimeDelta::from_std(github.recheck_age()).unwrap_or(GITHUB_RECHECK);
    for _ in 0..MAX_BATCHES {
        let due = state.acl().github_grants_older_than(age, BATCH).await?;
        let full = due.len() == BATCH as usize;
        let mut skipped = false;
        for grant in due {
            match judge(state, &grant).await? {
                Verdict::Keep => {
                    state.acl().github_checked(&grant.token).await?;
                    tally.checked += 1;
                }
                Verdict::Revoke(why) => {
                    state.acl().revoke(&grant.token, &Actor::System).await?;
                    tracing::info!(token = %grant.token, project = %grant.project, repo = %grant.repo, user = %grant.user, why = %why, "GitHub grant revoked");
                    tally.revoked += 1;
                }
                Verdict::Unavailable(why) => {
                    tracing::warn!(token = %grant.token, repo = %grant.repo, error = %why, "GitHub re-check paused: GitHub is unavailable; nothing revoked");
                    tally.deferred += 1;
                    return Ok(tally);
                }
                Verdict::Skip(why) => {
                    tracing::warn!(token = %grant.token, repo = %grant.repo, error = %why, "GitHub grant not re-checked: left for the next round");
                    tally.deferred += 1;
                    skipped = true;
                }
            }
        }
        // A skipped grant is still due and would come first again: stop after its batch.
        if !full || skipped {
            break;
        }
    }
    Ok(tally)
}

async fn judge(state: &AppState, grant: &GithubGrant) -> Result<Verdict, AclError> {
    let Some(github) = state.people().github() else {
        return Ok(Verdict::Skip("GitHub sign-in is not configured".into()));
    };
    let Ok(secret) = state.people().sealer().open(&grant.sealed_github_token) else {
        return Ok(Verdict::Revoke(
            "the person's sealed GitHub token does not open with this server's key".into(),
        ));
    };
    let Ok(repo) = grant.repo.parse::<RepoName>() else {
        return Ok(Verdict::Revoke(format!(
            "the grant names {:?}, which is not a repository",
            grant.repo
        )));
    };
    // The link as it is now: a grant outlives neither the link nor a change of repository.
    let link = match state.acl().github_link(&grant.project).await? {
        None => {
            return Ok(Verdict::Revoke(
                "the project is no longer linked to GitHub".into(),
            ));
        }
        Some(link) if link.repo != grant.repo => {
            return Ok(Verdict::Revoke(format!(
                "the project is now linked to {}",
                link.repo
            )));
        }
        Some(link) => link,
    };
    let write = state
        .acl()
        .token(&grant.token)
        .await?
        .scopes
        .grants(Scope::Write);
    if write && !link.allow_write {
        return Ok(Verdict::Revoke(
            "the link no longer lets push access grant write".into(),
        ));
    }
    let token = AccessToken::new(secret);
    Ok(match github.client().repo_access(&token, &repo).await {
        Ok(RepoAccess::None) => {
            Verdict::Revoke(format!("the GitHub account cannot read {repo} any more"))
        }
        Ok(RepoAccess::Read) if write => Verdict::Revoke(format!(
            "the GitHub account cannot push to {repo} any more and the token writes"
        )),
        Ok(RepoAccess::Read | RepoAccess::Write) => Verdict::Keep,
        Err(e) if e.is_unauthorized() => Verdict::Revoke(format!(
            "GitHub refused the person's GitHub token (revoked or expired): {e}"
        )),
        Err(e) if e.is_transient() => Verdict::Unavailable(e.to_string()),
        Err(e) => Verdict::Skip(e.to_string()),
    })
}
