//! Identifiers of the control plane. Tenant and project ids also name directories and files in
//! the shard store, so they follow its rule (1–64 of `A-Z a-z 0-9 _ -`, not starting with `-`);
//! token ids are the non-secret lookup half of a token. New ids are random, never derived from
//! names, so renaming never moves data.

use std::fmt;

use rand::Rng;

/// The alphabet of generated ids: lowercase so they read well and survive case-folding tools.
const ID_ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
/// Random characters in a generated id (36^12 ≈ 2^62: collisions are negligible, and the
/// primary key refuses them anyway).
const ID_RANDOM_LEN: usize = 12;

pub(crate) fn random_chars(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

/// A malformed id, with a message that says what a good one looks like.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} id {raw:?}: {rule}")]
pub struct BadId {
    pub what: &'static str,
    pub raw: String,
    pub rule: &'static str,
}

macro_rules! path_safe_id {
    ($name:ident, $what:literal, $prefix:literal) => {
        #[doc = concat!("A checked ", $what, " id: 1–64 characters of `A-Z a-z 0-9 _ -`, not starting with `-`. New ones are `", $prefix, "` + 12 random characters.")]
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn parse(raw: &str) -> Result<$name, BadId> {
                if tdsync_protocol::ids::is_path_safe_id(raw) {
                    Ok($name(raw.to_string()))
                } else {
                    Err(BadId {
                        what: $what,
                        raw: raw.to_string(),
                        rule: tdsync_protocol::ids::PATH_SAFE_ID_RULE,
                    })
                }
            }

            pub(crate) fn generate() -> $name {
                $name(format!("{}{}", $prefix, random_chars(ID_ALPHABET, ID_RANDOM_LEN)))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

path_safe_id!(TenantId, "tenant", "t_");
path_safe_id!(ProjectId, "project", "p_");

/// The non-secret lookup id of a token: exactly 12 of `0-9 a-z`. It appears in the token itself
/// (`tds_<id>_<secret>`), in listings, in the audit log and in `token revoke ID`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenId(String);

impl TokenId {
    pub const LEN: usize = ID_RANDOM_LEN;

    pub fn parse(raw: &str) -> Result<TokenId, BadId> {
        if raw.len() == Self::LEN && raw.bytes().all(|b| ID_ALPHABET.contains(&b)) {
            Ok(TokenId(raw.to_string()))
        } else {
            Err(BadId {
                what: "token",
                raw: raw.to_string(),
                rule: "a token id is 12 lowercase letters or digits (see `tdsync token list`)",
            })
        }
    }

    pub(crate) fn generate() -> TokenId {
        TokenId(random_chars(ID_ALPHABET, ID_RANDOM_LEN))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_path_safe_ids_parse() {
        assert!(ProjectId::parse("p_0123abcd").is_ok());
        assert!(TenantId::parse("acme-team").is_ok());
        for bad in ["", "../etc", "a/b", "a.b", "-x", &"x".repeat(65), "é"] {
            assert!(ProjectId::parse(bad).is_err(), "{bad}");
            assert!(TenantId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn generated_ids_parse_back() {
        for _ in 0..100 {
            let t = TenantId::generate();
            assert!(t.as_str().starts_with("t_"));
            assert_eq!(TenantId::parse(t.as_str()).unwrap(), t);
            let p = ProjectId::generate();
            assert_eq!(ProjectId::parse(p.as_str()).unwrap(), p);
            let k = TokenId::generate();
            assert_eq!(TokenId::parse(k.as_str()).unwrap(), k);
        }
    }

    #[test]
    fn token_ids_are_exact() {
        for bad in ["", "abc", "ABCDEFGHIJKL", "abcdefghijk_", "abcdefghijklm"] {
            assert!(TokenId::parse(bad).is_err(), "{bad}");
        }
    }
}
