//! Real-log replay (`tdsync harness replay`): real td databases pushed through an in-process
//! tdsync server and judged by the scenarios' oracle.
//!
//! A replay copies the database (the input is only read), makes its whole action_log pending
//! as td's own real-data replay does, pushes it as one device, lets N fresh clients pull
//! everything and the source pull its own events back, syncs everyone until nothing moves, and
//! runs every oracle check: replicas equal to the server row by row, nothing lost, nothing
//! logged twice, the log rebuilds the projection, conflicts as the independent model predicts,
//! every issue of the source on the server.
//!
//! A series replays successive versions of one project: each file continues the previous step's
//! working copy ([`source::continue_from`]), so rows pushed before come back as duplicates, the
//! cursor carries over, and the fresh clients pull only what is new.

pub mod cli;
mod progress;
mod source;
mod stage;

use std::{
    cmp::Ordering,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

pub use progress::Progress;
pub use source::InputError;
use stage::{Label, Stage};

use crate::report::RunReport;

/// How replays run.
pub struct ReplayOptions<'a> {
    /// Fresh clients that onboard from the server (at least one).
    pub clients: usize,
    /// Receives progress lines while a large database is pushed or pulled.
    pub progress: Progress<'a>,
    /// How often a line is said (and how long a step runs before the first one).
    pub progress_every: Duration,
}

fn quiet(_: &str) {}

impl Default for ReplayOptions<'_> {
    fn default() -> Self {
        ReplayOptions {
            clients: 1,
            progress: &quiet,
            progress_every: Duration::from_secs(1),
        }
    }
}

/// One replayed database (or series step): the run report the dashboard reads, and the
/// replay's own figures (written alongside, in the same JSON object).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayReport {
    #[serde(flatten)]
    pub run: RunReport,
    pub replay: ReplayFigures,
}

/// What a replay moved.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplayFigures {
    /// The database replayed, as given.
    pub file: String,
    /// Step of a series (from 1), and how many steps it has.
    pub step: Option<usize>,
    pub steps: Option<usize>,
    pub td_schema: i64,
    pub action_log_rows: i64,
    /// Rows pending once the history was reset: every row td has not undone.
    pub pending_rows: usize,
    /// Rows deleted before the replay because they name nothing (no id or entity id), as td's
    /// replay does.
    pub dropped_rows: usize,
    /// The source's push: events sent, stored anew, recognised as already stored, synthesised
    /// by td's first-sync backfill, rejected; and the rows td never sends (left pending).
    pub sent: usize,
    pub accepted: usize,
    pub duplicates: usize,
    pub backfilled: usize,
    pub unsendable: usize,
    pub rejected: usize,
    /// Events each fresh client pulled.
    pub pulled: Vec<usize>,
    /// Events the source pulled back (its own, in server order).
    pub pulled_back: usize,
    /// Pulled events a client stepped over (orphans, losing cycle edges).
    pub skipped: usize,
    pub conflicts: usize,
    pub push_ms: u64,
    /// Every pull: the fresh clients', then the source's.
    pub pull_ms: u64,
    /// Damage the input has in tables sync never reads or writes: the replay proceeds on it
    /// (damage anywhere else refuses the input).
    #[serde(default)]
    pub integrity_warnings: Vec<DamageWarning>,
}

/// One table of the input damaged where sync never looks (SQLite's integrity check), and the
/// command that repairs it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DamageWarning {
    pub table: String,
    pub indexes: Vec<String>,
    /// SQLite's own findings (the first few).
    pub findings: Vec<String>,
    /// e.g. `sqlite3 <input> "REINDEX idx_sessions_branch"`.
    pub fix: String,
    /// The whole warning, as `tdsync harness replay` prints it.
    pub message: String,
}

impl DamageWarning {
    /// `warning` (about the working copy) as a warning about `input`, the file the user knows.
    fn about(input: &Path, warning: &tdsync_client::tddb::IntegrityWarning) -> DamageWarning {
        let warning = tdsync_client::tddb::IntegrityWarning {
            path: input.to_path_buf(),
            damage: warning.damage.clone(),
        };
        DamageWarning {
            table: warning.table().to_string(),
            indexes: warning.damage.indexes.clone(),
            findings: warning.damage.findings.clone(),
            fix: warning.fix(),
            message: warning.to_string(),
        }
    }
}

impl ReplayReport {
    /// The one line `tdsync harness replay` prints per database or series step.
    pub fn summary_line(&self) -> String {
        let (r, f) = (&self.run, &self.replay);
        let step = match (f.step, f.steps) {
            (Some(k), Some(n)) => format!(" step={k}/{n}"),
            _ => String::new(),
        };
        let pulled = match f.pulled.as_slice() {
            [first, rest @ ..] if rest.iter().all(|p| p == first) => first.to_string(),
            all => all
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("/"),
        };
        let mut odd = String::new();
        for (name, n) in [
            ("damaged", f.integrity_warnings.len()),
            ("dropped", f.dropped_rows),
            ("unsendable", f.unsendable),
            ("rejected", f.rejected),
            ("skipped", f.skipped),
        ] {
            if n > 0 {
                odd.push_str(&format!(" {name}={n}"));
            }
        }
        let fails = if r.passed {
            String::new()
        } else {
            format!(" — {} failure(s)", r.failures.len())
        };
        format!(
            "{} {}{step} schema={} rows={} pushed={} accepted={} duplicates={} backfilled={} pulled={pulled} fresh={} events={} conflicts={}{odd} {} ms{fails}",
            if r.passed { "PASS" } else { "FAIL" },
            r.scenario,
            f.td_schema,
            f.action_log_rows,
            f.sent,
            f.accepted,
            f.duplicates,
            f.backfilled,
            f.pulled.len(),
            r.events,
            f.conflicts,
            r.duration_ms,
        )
    }
}

/// Replays one database.
pub fn replay_db(file: &Path, opts: &ReplayOptions<'_>) -> Result<ReplayReport, InputError> {
    replay_one(file, 1, opts)
}

/// Replays each database on its own server, in order (a report's seed is its position, from
/// 1, so that reports of files with the same name — every td database is `issues.db` — do
/// not overwrite each other).
pub fn replay_dbs<'a>(
    files: &'a [PathBuf],
    opts: &'a ReplayOptions<'a>,
) -> impl Iterator<Item = Result<ReplayReport, InputError>> + 'a {
    files
        .iter()
        .enumerate()
        .map(|(i, f)| replay_one(f, i as u64 + 1, opts))
}

fn replay_one(
    file: &Path,
    seed: u64,
    opts: &ReplayOptions<'_>,
) -> Result<ReplayReport, InputError> {
    let mut stage = Stage::new(opts).map_err(|e| InputError::new(file, e))?;
    let label = Label {
        seed,
        step: None,
        repro: repro("--db", file, opts.clients),
    };
    stage.step(file, label)
}

/// The successive versions of one project in `dir`: its `*.db` files in name order (numbers
/// by value, so `10-…` follows `9-…`).
pub fn series_files(dir: &Path) -> Result<Vec<PathBuf>, InputError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| InputError::new(dir, format!("cannot list the series directory: {e}")))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "db"))
        .collect();
    if files.is_empty() {
        return Err(InputError::new(
            dir,
            "no td databases (*.db files) in the series directory",
        ));
    }
    files.sort_by(|a, b| natural_order(&stage::file_name(a), &stage::file_name(b)));
    Ok(files)
}

/// Replays a series step by step; each item is one step. A step whose file cannot be replayed
/// ends the series (the next version would have nothing to continue).
pub fn replay_series<'a>(
    dir: &Path,
    opts: &'a ReplayOptions<'a>,
) -> Result<Series<'a>, InputError> {
    Ok(Series {
        files: series_files(dir)?,
        repro: repro("--series", dir, opts.clients),
        next: 0,
        stage: None,
        opts,
        stopped: false,
    })
}

pub struct Series<'a> {
    files: Vec<PathBuf>,
    repro: String,
    next: usize,
    stage: Option<Stage<'a>>,
    opts: &'a ReplayOptions<'a>,
    stopped: bool,
}

impl Series<'_> {
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

impl Iterator for Series<'_> {
    type Item = Result<ReplayReport, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.stopped {
            return None;
        }
        let file = self.files.get(self.next)?.clone();
        self.next += 1;
        if self.stage.is_none() {
            match Stage::new(self.opts) {
                Ok(s) => self.stage = Some(s),
                Err(e) => {
                    self.stopped = true;
                    return Some(Err(InputError::new(&file, e)));
                }
            }
        }
        let label = Label {
            seed: self.next as u64,
            step: Some((self.next, self.files.len())),
            repro: self.repro.clone(),
        };
        let out = self.stage.as_mut()?.step(&file, label);
        self.stopped = out.is_err();
        Some(out)
    }
}

/// The command that replays `path` again.
fn repro(flag: &str, path: &Path, clients: usize) -> String {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = format!(
        "tdsync harness replay {flag} {}",
        shell_quote(&path.to_string_lossy())
    );
    if clients != 1 {
        out.push_str(&format!(" --clients {clients}"));
    }
    out
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Name order with digit runs compared by value.
fn natural_order(a: &str, b: &str) -> Ordering {
    fn runs(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut rest = s;
        while let Some(first) = rest.chars().next() {
            let digit = first.is_ascii_digit();
            let end = rest
                .find(|c: char| c.is_ascii_digit() != digit)
                .unwrap_or(rest.len());
            out.push((digit, &rest[..end]));
            rest = &rest[end..];
        }
        out
    }
    let (ra, rb) = (runs(a), runs(b));
    for ((da, sa), (db, sb)) in ra.iter().zip(&rb) {
        let ord = if *da && *db {
            let (ta, tb) = (sa.trim_start_matches('0'), sb.trim_start_matches('0'));
            ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb))
        } else {
            sa.cmp(sb)
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    ra.len().cmp(&rb.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_files_sort_numbers_by_value() {
        let mut names = vec!["10-a.db", "2-b.db", "1-c.db", "02-d.db", "x.db"];
        names.sort_by(|a, b| natural_order(a, b));
        assert_eq!(names, ["1-c.db", "2-b.db", "02-d.db", "10-a.db", "x.db"]);
    }

    #[test]
    fn repro_quotes_paths_for_the_shell() {
        assert_eq!(shell_quote("/a/b-1.db"), "/a/b-1.db");
        assert_eq!(shell_quote("/a b/it's.db"), r"'/a b/it'\''s.db'");
    }
}
