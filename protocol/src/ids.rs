//! Ids, defined once for every crate:
//!
//! - td's deterministic ids for composite rows: the prefix followed by the first 16 hex digits
//!   of SHA-256 over the `|`-joined key. Every peer computes the same primary key for the same
//!   composite row, which is what lets two clients that both link the same file converge.
//! - [`TenantId`] and [`ProjectId`], checked once when a request is parsed: the control plane
//!   keys its records by them and the shard store builds file paths from them.

use sha2::{Digest, Sha256};

fn deterministic(prefix: &str, key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let mut id = String::with_capacity(prefix.len() + 16);
    id.push_str(prefix);
    id.push_str(&hex::encode(&digest[..8]));
    id
}

/// `bip_…` for a board position.
pub fn board_issue_position(board_id: &str, issue_id: &str) -> String {
    deterministic("bip_", &format!("{board_id}|{issue_id}"))
}

/// `dep_…` for a dependency edge.
pub fn dependency(issue_id: &str, depends_on_id: &str, relation_type: &str) -> String {
    deterministic(
        "dep_",
        &format!("{issue_id}|{depends_on_id}|{relation_type}"),
    )
}

/// `ifl_…` for a file link; the path is normalised first.
pub fn issue_file(issue_id: &str, file_path: &str) -> String {
    deterministic(
        "ifl_",
        &format!("{issue_id}|{}", normalize_file_path(file_path)),
    )
}

/// `wsi_…` for a work-session tag.
pub fn work_session_issue(work_session_id: &str, issue_id: &str) -> String {
    deterministic("wsi_", &format!("{work_session_id}|{issue_id}"))
}

/// Lexical path cleaning with forward slashes, as td does before hashing a file path: repeated
/// separators collapse, `.` elements go, `..` eats the element before it, empty becomes `.`.
pub fn normalize_file_path(path: &str) -> String {
    // td cleans with the host's separator; td hosts are Unix, where `\` is an ordinary byte.
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// What a tenant or project id must look like: it names a directory or a file of the shard
/// store and a path segment of td's URLs. One rule for every crate, so an id the control plane
/// accepts is always one the shard store accepts.
pub const PATH_SAFE_ID_RULE: &str = "use 1-64 letters, digits, '_' or '-'";

/// Whether `raw` follows [`PATH_SAFE_ID_RULE`] (and does not start with `-`).
pub fn is_path_safe_id(raw: &str) -> bool {
    !raw.is_empty()
        && raw.len() <= 64
        && !raw.starts_with('-')
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A malformed id, with a message that says what a good one looks like.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} id {raw:?}: {rule}")]
pub struct BadId {
    pub what: &'static str,
    pub raw: String,
    pub rule: &'static str,
}

/// The alphabet of generated ids: lowercase so they read well and survive case-folding tools.
pub const ID_ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
/// Random characters in a generated id (36^12 ≈ 2^62: collisions are negligible, and the
/// control plane's primary keys refuse them anyway).
pub const ID_RANDOM_LEN: usize = 12;

/// `len` characters drawn uniformly from `alphabet` by the thread's CSPRNG.
pub fn random_chars(alphabet: &[u8], len: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..len)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

macro_rules! path_safe_id {
    ($name:ident, $what:literal, $prefix:literal) => {
        #[doc = concat!("A checked ", $what, " id: 1–64 characters of `A-Z a-z 0-9 _ -`, not starting with `-`. New ones are `", $prefix, "` + 12 random characters, never derived from names, so renaming never moves data.")]
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn parse(raw: &str) -> Result<$name, BadId> {
                if is_path_safe_id(raw) {
                    Ok($name(raw.to_string()))
                } else {
                    Err(BadId {
                        what: $what,
                        raw: raw.to_string(),
                        rule: PATH_SAFE_ID_RULE,
                    })
                }
            }

            pub fn generate() -> $name {
                $name(format!("{}{}", $prefix, random_chars(ID_ALPHABET, ID_RANDOM_LEN)))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

path_safe_id!(TenantId, "tenant", "t_");
path_safe_id!(ProjectId, "project", "p_");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_ids_have_prefix_and_sixteen_hex() {
        let id = dependency("td-aaaaaa", "td-bbbbbb", "depends_on");
        assert!(id.starts_with("dep_"));
        assert_eq!(id.len(), 4 + 16);
        assert_eq!(id, dependency("td-aaaaaa", "td-bbbbbb", "depends_on"));
        assert_ne!(id, dependency("td-bbbbbb", "td-aaaaaa", "depends_on"));
        // sha256("a|b")[..8], computed independently with coreutils sha256sum.
        assert_eq!(board_issue_position("a", "b"), "bip_0eab8a0a3380abf4");
    }

    #[test]
    fn file_paths_are_cleaned_before_hashing() {
        assert_eq!(normalize_file_path("src//main.rs"), "src/main.rs");
        assert_eq!(normalize_file_path("./src/../lib.rs"), "lib.rs");
        assert_eq!(normalize_file_path(""), ".");
        assert_eq!(normalize_file_path("/abs/./x"), "/abs/x");
        assert_eq!(normalize_file_path("../up"), "../up");
        assert_eq!(issue_file("td-1", "./a/b.rs"), issue_file("td-1", "a/b.rs"));
    }

    #[test]
    fn only_path_safe_ids_parse() {
        assert!(ProjectId::parse("p_0123abcd").is_ok());
        assert!(TenantId::parse("acme-team").is_ok());
        for bad in ["", "../etc", "a/b", "a.b", "-x", &"x".repeat(65), "é"] {
            assert!(ProjectId::parse(bad).is_err(), "{bad}");
            assert!(TenantId::parse(bad).is_err(), "{bad}");
        }
        let err = ProjectId::parse("a/b").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("invalid project id \"a/b\": {PATH_SAFE_ID_RULE}")
        );
    }

    #[test]
    fn generated_ids_parse_back() {
        for _ in 0..100 {
            let t = TenantId::generate();
            assert!(t.as_str().starts_with("t_"));
            assert_eq!(TenantId::parse(t.as_str()).unwrap(), t);
            let p = ProjectId::generate();
            assert!(p.as_str().starts_with("p_"));
            assert_eq!(ProjectId::parse(p.as_str()).unwrap(), p);
        }
    }
}
