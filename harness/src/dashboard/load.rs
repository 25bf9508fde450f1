//! Reading a report directory: every `*.json` that parses as a [`RunReport`]; anything else is
//! named with its reason, so a half-written or foreign file is visible rather than silently
//! missing from the page.

use std::path::{Path, PathBuf};

use crate::report::RunReport;

/// One report and the file it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// File name without `.json`: the run's anchor in the page (`#run=<file>`).
    pub file: String,
    pub report: RunReport,
}

/// A `*.json` file that is not a run report.
#[derive(Debug, Clone)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "{0}: no such directory (write reports with `tdsync harness run … --report DIR` first)"
    )]
    Missing(PathBuf),
    #[error("{0}: not a directory")]
    NotADirectory(PathBuf),
    #[error("reading {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{dir}: no run reports (*.json written by `tdsync harness run --report`){}", skipped_note(.skipped))]
    Empty { dir: PathBuf, skipped: Vec<Skipped> },
}

fn skipped_note(skipped: &[Skipped]) -> String {
    skipped
        .iter()
        .map(|s| format!("; skipped {}: {}", s.path.display(), s.reason))
        .collect()
}

/// The reports of `dir`, ordered by scenario, seed and file name, and the files skipped.
pub fn load(dir: &Path) -> Result<(Vec<Loaded>, Vec<Skipped>), LoadError> {
    if !dir.exists() {
        return Err(LoadError::Missing(dir.to_path_buf()));
    }
    if !dir.is_dir() {
        return Err(LoadError::NotADirectory(dir.to_path_buf()));
    }
    let io = |e| LoadError::Io(dir.to_path_buf(), e);
    let mut loaded = Vec::new();
    let mut skipped = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if !path.is_file() || path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let parsed = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|text| serde_json::from_str::<RunReport>(&text).map_err(|e| e.to_string()));
        match parsed {
            Ok(report) => loaded.push(Loaded {
                file: path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                report,
            }),
            Err(reason) => skipped.push(Skipped { path, reason }),
        }
    }
    if loaded.is_empty() {
        skipped.sort_by(|a, b| a.path.cmp(&b.path));
        return Err(LoadError::Empty {
            dir: dir.to_path_buf(),
            skipped,
        });
    }
    loaded.sort_by(|a, b| {
        (&a.report.scenario, a.report.seed, &a.file).cmp(&(
            &b.report.scenario,
            b.report.seed,
            &b.file,
        ))
    });
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((loaded, skipped))
}
