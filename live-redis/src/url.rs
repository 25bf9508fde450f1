//! A Redis URL that never shows its password: `Debug` and `Display` print it redacted, so
//! settings, logs and errors can name the server safely.

use std::{fmt, str::FromStr};

/// `redis://[user[:password]@]host[:port][/db]` (or `unix://`), checked by the
/// client's own parser.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

/// Not a URL the Redis client accepts (the message names it redacted).
#[derive(Debug, Clone, thiserror::Error)]
#[error("not a Redis URL: {url}: {reason}")]
pub struct BadRedisUrl {
    pub url: String,
    pub reason: String,
}

impl RedisUrl {
    /// The URL with its password, for the client only.
    pub(crate) fn secret(&self) -> &str {
        &self.0
    }

    /// The URL as it may be shown: its password replaced by `***`.
    pub fn redacted(&self) -> String {
        redact(&self.0)
    }
}

impl FromStr for RedisUrl {
    type Err = BadRedisUrl;

    fn from_str(s: &str) -> Result<RedisUrl, BadRedisUrl> {
        match redis::Client::open(s) {
            Ok(_) => Ok(RedisUrl(s.to_string())),
            Err(e) => Err(BadRedisUrl {
                url: redact(s),
                // The client's message may quote the URL; only its kind is kept.
                reason: format!("{:?}", e.kind()),
            }),
        }
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({})", self.redacted())
    }
}

/// Replaces the password of `scheme://user:password@host…` with `***` (a user name alone is
/// kept; anything after the authority is untouched).
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_string();
    };
    let user = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None if userinfo.is_empty() => String::new(),
        // `redis://password@host` is how some write a password alone.
        None => "***".to_string(),
    };
    format!("{scheme}://{user}@{host}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show_and_the_rest_does() {
        for (url, shown) in [
            (
                "redis://:s3cret@127.0.0.1:6379/2",
                "redis://:***@127.0.0.1:6379/2",
            ),
            (
                "redis://alice:s3cret@cache.local:6380",
                "redis://alice:***@cache.local:6380",
            ),
            ("redis://s3cret@cache.local", "redis://***@cache.local"),
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
        ] {
            let parsed: RedisUrl = url.parse().unwrap();
            assert_eq!(parsed.to_string(), shown);
            assert!(!format!("{parsed:?}").contains("s3cret"));
        }
        assert_eq!(
            redact("redis://u:p@ss@h:1/0?x=@"),
            "redis://u:***@h:1/0?x=@"
        );
        let bad = "nope://:s3cret@h".parse::<RedisUrl>().unwrap_err();
        assert!(!bad.to_string().contains("s3cret"), "{bad}");
    }
}
