//! What a caller asks for (the flags of `td create`, `td update`, `td handoff`, `td log`) and
//! td's validation and normalisation of those inputs.

use super::error::WriterError;

/// `td create`'s inputs. `kind` and `priority` accept td's aliases (`story`, `1`, `high`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueSpec {
    pub title: String,
    pub description: String,
    /// task, bug, feature, epic, chore.
    pub kind: String,
    /// P0..P4.
    pub priority: String,
    /// 0 (none) or a Fibonacci number up to 21.
    pub points: i64,
    pub labels: Vec<String>,
    pub parent_id: String,
    pub acceptance: String,
    /// td's create has no sprint; a non-empty sprint is set by a following `td update`.
    pub sprint: String,
    pub minor: bool,
    /// `YYYY-MM-DD` (schema >= 29).
    pub defer_until: Option<String>,
    pub due_date: Option<String>,
}

impl IssueSpec {
    pub fn new(title: impl Into<String>) -> IssueSpec {
        IssueSpec {
            title: title.into(),
            ..IssueSpec::default()
        }
    }
}

impl Default for IssueSpec {
    fn default() -> Self {
        IssueSpec {
            title: String::new(),
            description: String::new(),
            kind: "task".into(),
            priority: "P2".into(),
            points: 0,
            labels: Vec::new(),
            parent_id: String::new(),
            acceptance: String::new(),
            sprint: String::new(),
            minor: false,
            defer_until: None,
            due_date: None,
        }
    }
}

/// `td update`'s flags: `None` leaves a field alone. For the dates, `Some(None)` clears.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IssueChange {
    pub title: Option<String>,
    pub description: Option<String>,
    pub kind: Option<String>,
    pub priority: Option<String>,
    pub points: Option<i64>,
    /// Replaces the labels; empty clears them.
    pub labels: Option<Vec<String>>,
    pub parent_id: Option<String>,
    pub acceptance: Option<String>,
    pub sprint: Option<String>,
    pub minor: Option<bool>,
    pub defer_until: Option<Option<String>>,
    pub due_date: Option<Option<String>>,
}

/// `td handoff`'s lists. An empty list is written as td's CLI writes an absent flag (`null`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandoffSpec {
    pub done: Vec<String>,
    pub remaining: Vec<String>,
    pub decisions: Vec<String>,
    pub uncertain: Vec<String>,
}

/// `td log --type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogType {
    #[default]
    Progress,
    Blocker,
    Decision,
    Hypothesis,
    Tried,
    Result,
    Orchestration,
    Security,
}

impl LogType {
    pub const fn as_str(self) -> &'static str {
        match self {
            LogType::Progress => "progress",
            LogType::Blocker => "blocker",
            LogType::Decision => "decision",
            LogType::Hypothesis => "hypothesis",
            LogType::Tried => "tried",
            LogType::Result => "result",
            LogType::Orchestration => "orchestration",
            LogType::Security => "security",
        }
    }
}

/// td's title rules for create: generic titles and titles over 200 characters are refused.
pub(crate) fn validate_title(title: &str) -> Result<(), WriterError> {
    const GENERIC: &[&str] = &[
        "task", "issue", "bug", "feature", "fix", "update", "change", "todo", "work", "item",
        "thing", "stuff", "test", "new", "add",
    ];
    let trimmed = title.trim();
    if title.is_empty() {
        return Err(WriterError::refused("title is required"));
    }
    if GENERIC.contains(&trimmed.to_lowercase().as_str()) {
        return Err(WriterError::refused(format!(
            "title '{title}' is too generic"
        )));
    }
    let n = trimmed.chars().count();
    if n > 200 {
        return Err(WriterError::refused(format!(
            "title too long ({n} chars, max 200)"
        )));
    }
    Ok(())
}

/// td's type normalisation (`story` is `feature`) and validation.
pub(crate) fn normalize_kind(kind: &str) -> Result<String, WriterError> {
    let k = if kind == "story" { "feature" } else { kind };
    match k {
        "bug" | "feature" | "task" | "epic" | "chore" => Ok(k.to_string()),
        _ => Err(WriterError::refused(format!("invalid type: {kind}"))),
    }
}

/// td's priority normalisation (`1`, `p1`, `high` → `P1`) and validation.
pub(crate) fn normalize_priority(p: &str) -> Result<String, WriterError> {
    let canonical = match p.to_lowercase().as_str() {
        "0" | "p0" | "critical" | "highest" => "P0",
        "1" | "p1" | "high" => "P1",
        "2" | "p2" | "medium" | "normal" | "default" => "P2",
        "3" | "p3" | "low" => "P3",
        "4" | "p4" | "lowest" | "none" => "P4",
        _ => return Err(WriterError::refused(format!("invalid priority: {p}"))),
    };
    Ok(canonical.to_string())
}

/// Story points: 0 means none, otherwise Fibonacci up to 21.
pub(crate) fn validate_points(points: i64) -> Result<(), WriterError> {
    if points == 0 || [1, 2, 3, 5, 8, 13, 21].contains(&points) {
        Ok(())
    } else {
        Err(WriterError::refused(format!(
            "invalid points: {points} (must be Fibonacci: 1,2,3,5,8,13,21)"
        )))
    }
}

/// td's label flag handling: split on commas, trim, drop empties and duplicates.
pub(crate) fn merge_labels(values: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in values {
        for part in v.split(',') {
            let part = part.trim();
            if !part.is_empty() && !out.iter().any(|l| l == part) {
                out.push(part.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn td_normalisations() {
        assert_eq!(normalize_priority("high").unwrap(), "P1");
        assert_eq!(normalize_priority("p4").unwrap(), "P4");
        assert!(normalize_priority("P9").is_err());
        assert_eq!(normalize_kind("story").unwrap(), "feature");
        assert!(normalize_kind("saga").is_err());
        assert!(validate_points(4).is_err());
        assert!(validate_points(13).is_ok());
        assert_eq!(
            merge_labels(&["a, b".into(), "b,c".into(), " ".into()]),
            vec!["a", "b", "c"]
        );
        assert!(validate_title("Fix").is_err());
        assert!(validate_title("").is_err());
        assert!(validate_title(&"x".repeat(201)).is_err());
        assert!(validate_title("Short").is_ok());
    }
}
