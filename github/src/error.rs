//! What can go wrong talking to GitHub, sorted by what the caller must do about it.

/// An error from a call to GitHub.
///
/// No variant ever carries a token, a device code or the client secret: messages are built from
/// the endpoint's name and GitHub's own error fields, never from request bodies or headers.
#[derive(Debug, thiserror::Error)]
pub enum GithubError {
    /// The configuration cannot work (a URL that is not http(s), an empty client id, TLS setup).
    #[error("GitHub client configuration: {0}")]
    Config(String),

    /// GitHub answered 401 to the person's token: it was revoked, expired or never existed. The
    /// caller should drop whatever it granted on the strength of that token.
    #[error("GitHub refused the credentials for {endpoint}: {message}")]
    Unauthorized { endpoint: String, message: String },

    /// GitHub could not be asked or could not answer: connection refused, timeout, 5xx, rate
    /// limit. Transient: the caller must not revoke anything because of it, only try later.
    #[error("GitHub is unavailable for {endpoint}: {reason}")]
    Unavailable { endpoint: String, reason: String },

    /// An OAuth endpoint refused the request with an OAuth error code (`bad_verification_code`,
    /// `incorrect_client_credentials`, `redirect_uri_mismatch`, `incorrect_device_code`, …).
    #[error("GitHub refused the OAuth request to {endpoint}: {error}{}", describe(.description))]
    OAuth {
        endpoint: String,
        error: String,
        description: Option<String>,
    },

    /// GitHub answered something its protocol does not say it answers (an unexpected status,
    /// a body that is not the expected JSON, a missing field).
    #[error("unexpected answer from GitHub for {endpoint}: {detail}")]
    Protocol { endpoint: String, detail: String },
}

fn describe(description: &Option<String>) -> String {
    match description {
        Some(d) => format!(" ({d})"),
        None => String::new(),
    }
}

impl GithubError {
    /// True when trying again later may succeed and nothing should be revoked.
    pub fn is_transient(&self) -> bool {
        matches!(self, GithubError::Unavailable { .. })
    }

    /// True when GitHub refused the person's token (401): the token is no good any more.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, GithubError::Unauthorized { .. })
    }

    /// The OAuth error code GitHub gave, if this is an OAuth refusal.
    pub fn oauth_error(&self) -> Option<&str> {
        match self {
            GithubError::OAuth { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// What a string from GitHub may contribute to an error message: bounded, on one line.
pub(crate) fn clip(text: &str) -> String {
    const MAX: usize = 200;
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX)
        .collect();
    if text.chars().count() > MAX {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_bounds_and_flattens() {
        assert_eq!(clip("a\nb"), "a b");
        let long = "x".repeat(500);
        let clipped = clip(&long);
        assert_eq!(clipped.chars().count(), 201);
        assert!(clipped.ends_with('…'));
    }

    #[test]
    fn oauth_display_names_code_and_description() {
        let e = GithubError::OAuth {
            endpoint: "POST /login/oauth/access_token".into(),
            error: "bad_verification_code".into(),
            description: Some("The code passed is incorrect or expired.".into()),
        };
        let text = e.to_string();
        assert!(text.contains("bad_verification_code"), "{text}");
        assert!(text.contains("incorrect or expired"), "{text}");
        assert_eq!(e.oauth_error(), Some("bad_verification_code"));
        assert!(!e.is_transient() && !e.is_unauthorized());
    }
}
