//! Pieces of the API document (feature `openapi`) that state the server's rules exactly, built
//! from the same tables and character classes the server applies, so they cannot drift:
//! what `str::trim` removes, what `char::is_control` refuses, the entity type names.
//!
//! Patterns use the subset of regular expressions that ECMA-262 (JSON Schema's dialect) and
//! Python's `re` (the fuzzer's) read alike: classes with `\xHH` / `\uHHHH` escapes, groups,
//! alternation, bounded repetition, anchors.

use std::borrow::Cow;

use utoipa::openapi::{
    RefOr, Schema,
    schema::{ObjectBuilder, Type},
};

use crate::EntityType;

/// `char::is_whitespace` (Unicode White_Space): what `str::trim` removes.
const WHITESPACE: &[(u32, u32)] = &[
    (0x09, 0x0d),
    (0x20, 0x20),
    (0x85, 0x85),
    (0xa0, 0xa0),
    (0x1680, 0x1680),
    (0x2000, 0x200a),
    (0x2028, 0x2029),
    (0x202f, 0x202f),
    (0x205f, 0x205f),
    (0x3000, 0x3000),
];

/// `char::is_control` (general category Cc).
const CONTROL: &[(u32, u32)] = &[(0x00, 0x1f), (0x7f, 0x9f)];

fn escape(c: u32) -> String {
    if c <= 0xff {
        format!("\\x{c:02x}")
    } else {
        format!("\\u{c:04x}")
    }
}

/// The body of a regex class (what goes between `[` and `]`) for these ranges, leaving out the
/// characters in `except`.
fn class(ranges: &[(u32, u32)], except: &[char]) -> String {
    let mut out = String::new();
    let mut run: Option<(u32, u32)> = None;
    let flush = |run: (u32, u32), out: &mut String| {
        out.push_str(&escape(run.0));
        if run.1 > run.0 {
            out.push('-');
            out.push_str(&escape(run.1));
        }
    };
    for &(lo, hi) in ranges {
        for c in lo..=hi {
            if except.iter().any(|e| *e as u32 == c) {
                if let Some(r) = run.take() {
                    flush(r, &mut out);
                }
                continue;
            }
            run = match run {
                Some((start, end)) if end + 1 == c => Some((start, c)),
                Some(r) => {
                    flush(r, &mut out);
                    Some((c, c))
                }
                None => Some((c, c)),
            };
        }
        if let Some(r) = run.take() {
            flush(r, &mut out);
        }
    }
    out
}

/// What `str::trim` removes, as the body of a regex class.
pub fn whitespace_class() -> String {
    class(WHITESPACE, &[])
}

/// A string `str::trim` does not empty: at least one character that is not whitespace.
pub fn not_blank_pattern() -> String {
    format!("[^{}]", class(WHITESPACE, &[]))
}

/// An email address as tdsync takes it (`acl::clean_email`), once trimmed: a dot-atom local part
/// of ASCII letters, digits and `local_symbols`, at most `max_local` characters, `@`, and a domain
/// of two or more labels of letters, digits and inner hyphens, each at most 63 characters. (The
/// whole address's bound is the schema's `maxLength`.)
pub fn email_pattern(local_symbols: &str, max_local: usize) -> String {
    let ws = class(WHITESPACE, &[]);
    // In a class only `-` needs escaping here (`^` is not first, there is no `]` or `\`).
    let symbols = local_symbols.replace('-', "\\-");
    let atom = format!("[A-Za-z0-9{symbols}]+");
    let label = "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
    format!("^[{ws}]*(?=[^@]{{1,{max_local}}}@){atom}(\\.{atom})*@{label}(\\.{label})+[{ws}]*$")
}

/// A string whose `trim()` is `min..=max` characters (`min` is 0 or 1, `max` ≥ 2) with no control
/// characters other than `allowed` — the rule of `acl`'s names and descriptions.
pub fn trimmed_text_pattern(min: usize, max: usize, allowed: &[char]) -> String {
    assert!(min <= 1 && max >= 2, "trimmed_text_pattern({min}, {max})");
    let ws = class(WHITESPACE, &[]);
    let ctl = class(CONTROL, allowed);
    // The trimmed text: its first and last characters are neither whitespace nor refused.
    let edge = format!("[^{ws}{ctl}]");
    let core = format!("{edge}([^{ctl}]{{0,{}}}{edge})?", max - 2);
    let core = if min == 0 { format!("({core})?") } else { core };
    format!("^[{ws}]*{core}[{ws}]*$")
}

/// [`EntityType::parse`]'s rule: one of [`EntityType::NAMES`], in any ASCII case.
pub fn entity_type_pattern() -> String {
    let names: Vec<String> = EntityType::NAMES
        .iter()
        .map(|(name, _)| {
            name.chars()
                .map(|c| {
                    if c.is_ascii_alphabetic() {
                        format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase())
                    } else {
                        c.to_string()
                    }
                })
                .collect()
        })
        .collect();
    format!("^({})$", names.join("|"))
}

/// A string field that must not be blank (`device_id`, `session_id`).
pub fn not_blank() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(not_blank_pattern()))
}

/// The `EntityType` component: any spelling [`EntityType::parse`] reads.
pub struct EntityTypeName;

impl utoipa::PartialSchema for EntityTypeName {
    fn schema() -> RefOr<Schema> {
        let canonical: Vec<&str> = EntityType::ALL.iter().map(|t| t.as_str()).collect();
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(entity_type_pattern()))
            .description(Some(format!(
                "One of td's entity types, in any ASCII case: the canonical plural table name ({}) \
                 or td's legacy singular alias (issue, board_position, file_link, dependency, …). \
                 Anything else is refused with 400.",
                canonical.join(", ")
            )))
            .into()
    }
}

impl utoipa::ToSchema for EntityTypeName {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("EntityType")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_ranges(ranges: &[(u32, u32)], c: char) -> bool {
        ranges
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&(c as u32)))
    }

    #[test]
    fn the_classes_are_rusts_own() {
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            assert_eq!(in_ranges(WHITESPACE, c), c.is_whitespace(), "{c:?}");
            assert_eq!(in_ranges(CONTROL, c), c.is_control(), "{c:?}");
        }
    }

    #[test]
    fn patterns_read_as_intended() {
        assert_eq!(
            class(&[(0x00, 0x1f), (0x7f, 0x9f)], &['\t', '\n']),
            "\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f"
        );
        assert_eq!(
            class(&[(0x20, 0x20), (0x2028, 0x2029)], &[]),
            "\\x20\\u2028-\\u2029"
        );
        assert!(not_blank_pattern().starts_with("[^\\x09-\\x0d\\x20\\x85"));
        let p = entity_type_pattern();
        assert!(
            p.starts_with("^([iI][sS][sS][uU][eE]|[iI][sS][sS][uU][eE][sS]|"),
            "{p}"
        );
        assert!(p.contains("|[bB][oO][aA][rR][dD]_[pP][oO][sS][iI][tT][iI][oO][nN]|"));
        assert!(p.ends_with(")$"));
        let name = trimmed_text_pattern(1, 100, &[]);
        assert!(name.contains("{0,98}"), "{name}");
        assert!(trimmed_text_pattern(0, 2000, &['\n', '\t']).contains(")?[\\x09"));
    }
}
