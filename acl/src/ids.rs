//! Identifiers of the control plane. Tenant and project ids are the shared ones of
//! `tdsync_protocol::ids` (the shard store names files by them); token ids are the non-secret
//! lookup half of a token, and user and invitation ids name people and their invitations: these
//! exist only here.

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

/// An id the control plane generates: a fixed prefix and 12 of `0-9 a-z`, parsed exactly.
macro_rules! generated_id {
    ($name:ident, $what:literal, $prefix:literal, $rule:literal) => {
        #[doc = concat!("A ", $what, " id: `", $prefix, "` and 12 lowercase letters or digits.")]
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &str = $prefix;

            pub fn parse(raw: &str) -> Result<$name, BadId> {
                match raw.strip_prefix($prefix) {
                    Some(rest)
                        if rest.len() == ID_RANDOM_LEN
                            && rest.bytes().all(|b| ID_ALPHABET.contains(&b)) =>
                    {
                        Ok($name(raw.to_string()))
                    }
                    _ => Err(BadId {
                        what: $what,
                        raw: raw.to_string(),
                        rule: $rule,
                    }),
                }
            }

            pub(crate) fn generate() -> $name {
                $name(format!(
                    "{}{}",
                    $prefix,
                    random_chars(ID_ALPHABET, ID_RANDOM_LEN)
                ))
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

generated_id!(
    UserId,
    "user",
    "u_",
    "a user id is u_ and 12 lowercase letters or digits (see `tdsync user list`)"
);
generated_id!(
    InvitationId,
    "invitation",
    "inv_",
    "an invitation id is inv_ and 12 lowercase letters or digits (see `tdsync invite list`)"
);

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
    fn people_ids_parse_back_and_are_exact() {
        let u = UserId::generate();
        assert_eq!(UserId::parse(u.as_str()).unwrap(), u);
        let i = InvitationId::generate();
        assert_eq!(InvitationId::parse(i.as_str()).unwrap(), i);
        for bad in [
            "",
            "u_",
            "u_ABCDEFGHIJKL",
            "x_abcdefghijkl",
            "u_abcdefghijklm",
        ] {
            assert!(UserId::parse(bad).is_err(), "{bad}");
        }
        assert!(InvitationId::parse(u.as_str()).is_err());
    }

    #[test]
    fn token_ids_are_exact() {
        for bad in ["", "abc", "ABCDEFGHIJKL", "abcdefghijk_", "abcdefghijklm"] {
            assert!(TokenId::parse(bad).is_err(), "{bad}");
        }
    }
}
