//! What a run leaves behind: `<run>.json` with everything the dashboard shows — the verdict,
//! figures, each client's timeline, every conflict with both versions, failures with diffs and
//! traces, and the command that reproduces the run.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{oracle::Failure, plan::Action, world::TimelineEntry};

/// One run of one scenario with one seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub scenario: String,
    pub seed: u64,
    pub clients: usize,
    pub client_schemas: Vec<i64>,
    pub actions: usize,
    pub transport: String,
    /// Fault options in force (names).
    pub faults: Vec<String>,
    pub passed: bool,
    pub duration_ms: u64,
    /// Events in the server log at the end.
    pub events: i64,
    pub events_per_sec: f64,
    /// Rounds of push/pull needed to reach quiescence.
    pub quiescence_rounds: usize,
    pub timeline: Vec<TimelineEntry>,
    pub conflicts: Vec<ConflictView>,
    pub failures: Vec<Failure>,
    /// Differences the oracle tolerates, each with its reason.
    pub tolerances: Vec<String>,
    /// One command that runs this exact run again.
    pub repro: String,
    /// When the run was shrunk: the smallest action list that still fails.
    pub shrunk_actions: Option<Vec<Action>>,
}

/// A clobbered version and what overwrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConflictView {
    pub id: i64,
    pub entity_type: String,
    pub entity_id: String,
    pub fields: Vec<String>,
    pub clobbered: Value,
    pub clobbered_seq: Option<i64>,
    pub clobbered_by: Option<String>,
    pub winner: Value,
    pub winning_seq: i64,
    pub winning_by: String,
}

impl RunReport {
    /// `<scenario>-<seed>.json`.
    pub fn file_name(&self) -> String {
        format!("{}-{}.json", self.scenario, self.seed)
    }

    pub fn write_to(&self, dir: &Path) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(self.file_name());
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// Every report in a directory (files that are not run reports are skipped).
    pub fn read_dir(dir: &Path) -> std::io::Result<Vec<RunReport>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json")
                && let Ok(text) = std::fs::read_to_string(&path)
                && let Ok(report) = serde_json::from_str::<RunReport>(&text)
            {
                out.push(report);
            }
        }
        out.sort_by(|a, b| (&a.scenario, a.seed).cmp(&(&b.scenario, b.seed)));
        Ok(out)
    }

    /// The one line `tdsync harness run` prints per run.
    pub fn summary_line(&self) -> String {
        format!(
            "{} {} seed={} clients={} actions={} events={} {:.0} events/s {} ms{}",
            if self.passed { "PASS" } else { "FAIL" },
            self.scenario,
            self.seed,
            self.clients,
            self.actions,
            self.events,
            self.events_per_sec,
            self.duration_ms,
            if self.passed {
                String::new()
            } else {
                format!(" — {} failure(s)", self.failures.len())
            }
        )
    }

    /// What a reader needs to debug a failing run: each failure with its diff and trace, and
    /// the command that reproduces it.
    pub fn failure_text(&self) -> String {
        let mut out = String::new();
        for f in &self.failures {
            out.push_str(&format!("  [{}] {}\n", f.kind, f.message));
            if !f.diff.is_empty() {
                out.push_str("    column: server | client\n");
                for d in &f.diff {
                    out.push_str(&format!("    {}: {} | {}\n", d.column, d.server, d.client));
                }
            }
            if !f.trace.is_empty() {
                out.push_str("    trace of the entity:\n");
                for t in &f.trace {
                    let seq = t.seq.map_or("-".to_string(), |s| s.to_string());
                    out.push_str(&format!(
                        "      {:<9} seq {:>5} {:<28} by {:<9} {}\n",
                        t.replica, seq, t.action, t.device, t.detail
                    ));
                }
            }
        }
        if let Some(actions) = &self.shrunk_actions {
            out.push_str(&format!("  shrunk to {} action(s):\n", actions.len()));
            for a in actions {
                out.push_str(&format!(
                    "    {}\n",
                    serde_json::to_string(a).unwrap_or_default()
                ));
            }
        }
        out.push_str(&format!("  reproduce: {}\n", self.repro));
        out
    }
}
