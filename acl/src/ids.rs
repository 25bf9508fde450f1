//! Identifiers of the control plane. Tenant and project ids are the shared ones of
//! `tdsync_protocol::ids` (the shard store names files by them); token ids are the non-secret
//! lookup half of a token and exist only here.

use std::fmt;

pub use tdsync_protocol::ids::{BadId, ProjectId, TenantId};
use tdsync_protocol::ids::{ID_ALPHABET, ID_RANDOM_LEN, random_chars};

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
    fn generated_token_ids_parse_back() {
        for _ in 0..100 {
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
