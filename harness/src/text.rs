//! Generated user text: mostly ordinary, about 15% the content that breaks sync code — emoji,
//! CJK, right-to-left, quotes and backslashes, SQL and HTML fragments, format specifiers,
//! JSON, control characters, and (rarely) 50,000-character strings.

use rand::{Rng, rngs::StdRng, seq::IndexedRandom};

const ORDINARY: &[&str] = &[
    "Fix the login timeout",
    "Add retry to the sync push",
    "Document the board query syntax",
    "Refactor the session store",
    "Investigate flaky CI on macOS",
    "Speed up the issue list",
    "Handle empty labels",
    "Review the migration plan",
];

const EDGE: &[&str] = &[
    "Émoji 🚀🔥✅ and a family 👨‍👩‍👧‍👦",
    "中文标题：同步冲突 测试",
    "日本語のタイトルとテスト",
    "עברית מימין לשמאל",
    "العربية من اليمين إلى اليسار",
    "quote \" double and ' single",
    "back\\slash \\n not a newline \\\\",
    "'; DROP TABLE issues; --",
    "Robert'); DELETE FROM action_log WHERE ('1'='1",
    "<script>alert('xss')</script> & <b>bold</b>",
    "%s %d %n %x {0} {{}} ${HOME}",
    r#"{"json": ["in", "a", "title"], "n": 1.5e300}"#,
    "line one\nline two\r\n\ttabbed",
    "zero\u{200b}width\u{feff}joiners",
    "NUL-adjacent \u{1} \u{1f} controls",
    "   leading and trailing spaces   ",
];

/// How often generated text is an edge case.
pub const EDGE_RATE: f64 = 0.15;
/// How often an edge case is a very long string.
const HUGE_RATE: f64 = 0.01;
/// Length of the very long strings (td's own large-payload test goes to 50k).
pub const HUGE_LEN: usize = 50_000;

/// One piece of text; `suffix` keeps ordinary titles distinct.
pub fn text(rng: &mut StdRng, suffix: u64) -> String {
    if rng.random_bool(EDGE_RATE) {
        if rng.random_bool(HUGE_RATE) {
            return huge(rng);
        }
        let base = EDGE.choose(rng).copied().unwrap_or("edge");
        return format!("{base} #{suffix}");
    }
    let base = ORDINARY.choose(rng).copied().unwrap_or("task");
    format!("{base} #{suffix}")
}

/// A 50,000-character string mixing scripts (multi-byte characters included).
pub fn huge(rng: &mut StdRng) -> String {
    let alphabet: Vec<char> = "abc xyz Ωλ中文🚀\"\\<>".chars().collect();
    (0..HUGE_LEN)
        .map(|_| *alphabet.choose(rng).unwrap_or(&'a'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn about_fifteen_percent_is_edge_content() {
        let mut rng = StdRng::seed_from_u64(7);
        let n = 4000;
        let edge = (0..n)
            .filter(|i| {
                let t = text(&mut rng, *i);
                !ORDINARY.iter().any(|o| t.starts_with(o))
            })
            .count();
        let rate = edge as f64 / n as f64;
        assert!((0.12..0.18).contains(&rate), "edge rate {rate}");
        assert_eq!(huge(&mut rng).chars().count(), HUGE_LEN);
    }
}
