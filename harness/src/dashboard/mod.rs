//! `tdsync harness dashboard DIR`: one self-contained HTML page over a directory of run
//! reports. The reports are embedded as JSON ([`embed::json_for_script`] keeps them from ending
//! their `<script>` block) and drawn by a small vanilla script that turns report content into
//! text nodes only, never markup. A Content-Security-Policy that allows just the page's own
//! script and style (by hash) and no network at all is the second line of defence, and keeps
//! the page from making any request.

mod embed;
mod load;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use load::{LoadError, Loaded, Skipped, load};

use crate::report::RunReport;

const PAGE: &str = include_str!("page.html");
const STYLE: &str = include_str!("style.css");
const SCRIPT: &str = include_str!("app.js");

/// The file name written into the report directory.
pub const INDEX: &str = "index.html";

/// What [`write`] did.
#[derive(Debug)]
pub struct Written {
    pub path: PathBuf,
    pub runs: usize,
    /// `*.json` files that were not run reports.
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("encoding the reports: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("writing {0}: {1}")]
    Write(PathBuf, std::io::Error),
}

/// Reads every report in `dir` and writes `dir/index.html`.
pub fn write(dir: &Path) -> Result<Written, DashboardError> {
    let (runs, skipped) = load(dir)?;
    let page = render(&runs, &dir.display().to_string())?;
    let path = dir.join(INDEX);
    // Written beside and renamed, so a browser reloading the page never sees half of it.
    let tmp = dir.join(format!(".{INDEX}.tmp"));
    std::fs::write(&tmp, page)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| DashboardError::Write(path.clone(), e))?;
    Ok(Written {
        path,
        runs: runs.len(),
        skipped,
    })
}

#[derive(Serialize)]
struct PageData<'a> {
    /// The report directory, as given.
    source: &'a str,
    generated: String,
    runs: Vec<RunData<'a>>,
}

#[derive(Serialize)]
struct RunData<'a> {
    file: &'a str,
    #[serde(flatten)]
    report: &'a RunReport,
}

/// The whole page for these runs.
pub fn render(runs: &[Loaded], source: &str) -> Result<String, serde_json::Error> {
    let data = PageData {
        source,
        generated: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        runs: runs
            .iter()
            .map(|r| RunData {
                file: &r.file,
                report: &r.report,
            })
            .collect(),
    };
    let json = embed::json_for_script(&serde_json::to_string(&data)?);
    let failed = runs.iter().filter(|r| !r.report.passed).count();
    let csp = format!(
        "default-src 'none'; script-src {}; style-src {}; img-src data:; base-uri 'none'; form-action 'none'",
        embed::csp_hash(SCRIPT),
        embed::csp_hash(STYLE)
    );
    let summary = embed::html(&format!(
        "{} run(s), {failed} failed, from {source}.",
        runs.len()
    ));
    Ok(embed::fill(
        PAGE,
        &[
            ("CSP", &csp),
            ("STYLE", STYLE),
            ("SUMMARY", &summary),
            ("DATA", &json),
            ("SCRIPT", SCRIPT),
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_cannot_break_out_or_reach_the_network() {
        for (name, text) in [("app.js", SCRIPT), ("style.css", STYLE)] {
            let lower = text.to_ascii_lowercase();
            for bad in [
                "</script", "</style", "<!--", "http:", "https:", "@import", "url(",
            ] {
                assert!(!lower.contains(bad), "{name} contains {bad:?}");
            }
        }
        // Report content reaches the page only as text: the script never parses strings as
        // markup or code.
        for sink in [
            "innerhtml",
            "outerhtml",
            "insertadjacenthtml",
            "document.write",
            "eval(",
            "new function",
        ] {
            assert!(
                !SCRIPT.to_ascii_lowercase().contains(sink),
                "app.js uses {sink}"
            );
        }
        let lower = PAGE.to_ascii_lowercase();
        assert!(!lower.contains("http:") && !lower.contains("https:") && !lower.contains(" src="));
        for slot in [
            "{{CSP}}",
            "{{STYLE}}",
            "{{SUMMARY}}",
            "{{DATA}}",
            "{{SCRIPT}}",
        ] {
            assert_eq!(PAGE.matches(slot).count(), 1, "{slot}");
        }
    }

    #[test]
    fn missing_and_empty_directories_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        assert!(matches!(
            write(&missing),
            Err(DashboardError::Load(LoadError::Missing(_)))
        ));
        std::fs::write(dir.path().join("other.json"), "{\"not\": \"a report\"}").unwrap();
        let err = write(dir.path()).unwrap_err();
        assert!(matches!(err, DashboardError::Load(LoadError::Empty { .. })));
        assert!(err.to_string().contains("other.json"), "{err}");
    }
}
