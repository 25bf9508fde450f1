//! The token format and what is done with secrets: `tds_<id>_<secret>`, where `<id>` is the
//! non-secret lookup id and `<secret>` is 32 base62 characters (≈190 bits from the thread-local
//! CSPRNG). Only an argon2id hash of the secret is stored; the whole token is shown once.
//! Verified tokens are cached under the SHA-256 of the whole token, which is as good as the
//! token itself for equality and reveals nothing about it.

use std::fmt;

use std::cell::RefCell;

use argon2::{
    Algorithm, Argon2, Block, Params, PasswordHash, Version,
    password_hash::phc::{Output, ParamsString, Salt},
};
use sha2::{Digest, Sha256};

use tdsync_protocol::ids::random_chars;

use crate::{ids::TokenId, model::SecretHash};

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

/// Salt bytes per hash (the PHC recommendation).
const SALT_LEN: usize = 16;
/// Output bytes per hash.
const OUTPUT_LEN: usize = 32;

thread_local! {
    /// argon2's working memory (19 MiB at the standard cost), allocated once per hashing thread
    /// and reused: allocating and freeing it per hash leaves freed blocks in the allocator's
    /// arenas of whichever threads happened to run it (see `hasher`).
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// argon2 of `secret` with `salt` into `out`, in this thread's reused memory.
fn argon2_into(
    argon: &Argon2<'_>,
    params: &Params,
    secret: &str,
    salt: &[u8],
    out: &mut [u8],
) -> argon2::Result<()> {
    MEMORY.with_borrow_mut(|blocks| {
        let need = params.block_count();
        if blocks.len() < need {
            blocks.resize(need, Block::default());
        }
        argon.hash_password_into_with_memory(secret.as_bytes(), salt, out, &mut blocks[..need])
    })
}

pub(crate) fn hash_secret(secret: &str, cost: HashCost) -> Result<SecretHash, HashFailed> {
    let failed = |e: &dyn fmt::Display| HashFailed(e.to_string());
    let params = cost.params();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut salt = [0u8; SALT_LEN];
    rand::fill(&mut salt);
    let mut out = [0u8; OUTPUT_LEN];
    argon2_into(&argon, &params, secret, &salt, &mut out).map_err(|e| failed(&e))?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| failed(&e))?,
        salt: Some(Salt::new(&salt).map_err(|e| failed(&e))?),
        hash: Some(Output::new(&out).map_err(|e| failed(&e))?),
    };
    Ok(SecretHash(hash.to_string()))
}

/// Whether `secret` matches `hash` (argon2 with the hash's own algorithm, version and
/// parameters, compared in constant time). A malformed hash never matches.
pub(crate) fn secret_matches(secret: &str, hash: &SecretHash) -> bool {
    let matches = || -> Option<bool> {
        let parsed = PasswordHash::new(hash.0.as_str()).ok()?;
        let algorithm = Algorithm::try_from(parsed.algorithm.as_str()).ok()?;
        let version = match parsed.version {
            Some(v) => Version::try_from(v).ok()?,
            None => Version::default(),
        };
        let params = Params::try_from(&parsed).ok()?;
        let (salt, expected) = (parsed.salt?, parsed.hash?);
        let argon = Argon2::new(algorithm, version, params.clone());
        let mut out = vec![0u8; expected.len()];
        argon2_into(&argon, &params, secret, &salt, &mut out).ok()?;
        // `Output`'s equality is constant-time.
        Some(Output::new(&out).ok()? == expected)
    };
    matches().unwrap_or(false)
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
        // Two hashes of one secret differ (fresh salts) and both verify.
        let again = hash_secret("abc", HashCost::Fast).unwrap();
        assert_ne!(again, h);
        assert!(secret_matches("abc", &again));
    }

    #[test]
    fn hashes_are_the_argon2_crates_phc_strings_both_ways() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        // Hashes stored before this module reused its memory were made by the crate's own
        // hasher; they must keep verifying, and new ones must verify with the crate too.
        for cost in [HashCost::Fast, HashCost::Standard] {
            let crate_made = Argon2::new(Algorithm::Argon2id, Version::V0x13, cost.params())
                .hash_password(b"s3cret")
                .unwrap()
                .to_string();
            assert!(secret_matches("s3cret", &SecretHash(crate_made.clone())));
            assert!(!secret_matches("s3cres", &SecretHash(crate_made)));
            let ours = hash_secret("s3cret", cost).unwrap();
            assert!(
                Argon2::default()
                    .verify_password(b"s3cret", ours.0.as_str())
                    .is_ok()
            );
        }
    }
}
