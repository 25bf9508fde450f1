//! The token format and what is done with secrets: `tds_<id>_<secret>`, where `<id>` is the
//! non-secret lookup id and `<secret>` is 32 base62 characters (≈190 bits from the thread-local
//! CSPRNG). Only an argon2id hash of the secret is stored; the whole token is shown once.
//! Verified tokens are cached under the SHA-256 of the whole token, which is as good as the
//! token itself for equality and reveals nothing about it.

use std::fmt;

use argon2::{
    Algorithm, Argon2, Params, Version,
    password_hash::{PasswordHasher, PasswordVerifier},
};
use sha2::{Digest, Sha256};

use crate::{ids::TokenId, ids::random_chars, model::SecretHash};

pub const TOKEN_PREFIX: &str = "tds_";
const SECRET_ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// 62^32 ≈ 2^190.5, above the 160 bits asked for.
const SECRET_LEN: usize = 32;
/// `tds_` + id + `_` + secret.
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + TokenId::LEN + 1 + SECRET_LEN;

/// A whole token (`tds_…`). Its `Debug` and `Display` show only the id, so it cannot end up in
/// a log by accident; [`Token::expose`] is the one way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// The token in clear, to show once to whoever minted it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Token({}…)",
            &self.0[..TOKEN_PREFIX.len() + TokenId::LEN]
        )
    }
}

/// The two halves of a presented token.
pub(crate) struct Presented<'a> {
    pub id: TokenId,
    pub secret: &'a str,
}

/// Splits a presented token; `None` when it is not shaped like one of ours.
pub(crate) fn parse(bearer: &str) -> Option<Presented<'_>> {
    if bearer.len() != TOKEN_LEN {
        return None;
    }
    let rest = bearer.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_at(TokenId::LEN);
    let secret = secret.strip_prefix('_')?;
    let id = TokenId::parse(id).ok()?;
    secret
        .bytes()
        .all(|b| b.is_ascii_alphanumeric())
        .then_some(Presented { id, secret })
}

/// A new token for `id`, with the secret half apart (to be hashed).
pub(crate) fn generate(id: &TokenId) -> (Token, String) {
    let secret = random_chars(SECRET_ALPHABET, SECRET_LEN);
    (Token(format!("{TOKEN_PREFIX}{id}_{secret}")), secret)
}

/// How expensive hashing is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashCost {
    /// argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane): tens of milliseconds.
    #[default]
    Standard,
    /// The smallest argon2id parameters, **for tests only**: decision tables mint hundreds of
    /// tokens. Verification always uses the parameters stored in each hash.
    Fast,
}

impl HashCost {
    fn params(self) -> Params {
        match self {
            HashCost::Standard => Params::DEFAULT,
            HashCost::Fast => Params::new(Params::MIN_M_COST, 1, 1, None).unwrap_or_default(),
        }
    }
}

/// A hashing failure (argon2 refusing its input or the OS RNG failing): nothing was stored.
#[derive(Debug, thiserror::Error)]
#[error("hashing a token secret failed: {0}")]
pub struct HashFailed(String);

pub(crate) fn hash_secret(secret: &str, cost: HashCost) -> Result<SecretHash, HashFailed> {
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, cost.params());
    let hash = argon
        .hash_password(secret.as_bytes())
        .map_err(|e| HashFailed(e.to_string()))?;
    Ok(SecretHash(hash.to_string()))
}

/// Whether `secret` matches `hash` (argon2id with the hash's own parameters). A malformed hash
/// never matches.
pub(crate) fn secret_matches(secret: &str, hash: &SecretHash) -> bool {
    Argon2::default()
        .verify_password(secret.as_bytes(), hash.0.as_str())
        .is_ok()
}

/// The cache key of a presented token: SHA-256 of the whole string.
pub(crate) type Digest32 = [u8; 32];

pub(crate) fn digest(bearer: &str) -> Digest32 {
    Sha256::digest(bearer.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_hide_in_debug() {
        let id = TokenId::generate();
        let (token, secret) = generate(&id);
        assert_eq!(token.expose().len(), TOKEN_LEN);
        let p = parse(token.expose()).unwrap();
        assert_eq!(p.id, id);
        assert_eq!(p.secret, secret);
        assert!(!format!("{token:?}").contains(&secret));
    }

    #[test]
    fn malformed_tokens_do_not_parse() {
        let id = TokenId::generate();
        let (token, _) = generate(&id);
        let t = token.expose();
        for bad in [
            "",
            "tds_",
            &t[..t.len() - 1],
            &format!("{t}x"),
            &t.replacen("tds_", "tdx_", 1),
            &format!("{}-{}", &t[..TOKEN_LEN - 1 - 1], "a"),
            &t.replace('_', "-"),
            "td_live_abcdefghijklmnopqrstuvwxyz012345",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn hashes_verify_only_their_secret() {
        let h = hash_secret("abc", HashCost::Fast).unwrap();
        assert!(h.0.starts_with("$argon2id$"));
        assert!(secret_matches("abc", &h));
        assert!(!secret_matches("abd", &h));
        assert!(!secret_matches("abc", &SecretHash("not a hash".into())));
    }
}
