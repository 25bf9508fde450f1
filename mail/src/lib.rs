//! How tdsync sends email (login links, invitations): through an SMTP server, or — with none
//! configured — by writing the message to the server log.
//!
//! [`Mailer`] is built once from a [`MailerConfig`] and cloned wherever mail is sent. SMTP goes
//! through lettre on tokio with TLS by rustls (ring): `smtp://host:port` is plain SMTP,
//! `smtp://host:port?tls=required` (or `?tls=opportunistic`) upgrades with STARTTLS,
//! `smtps://user:pass@host:465` is TLS from the first byte; a path (`smtp://host/mail.example`)
//! is the name sent in EHLO. Each send is bounded by [`SEND_TIMEOUT`]. The password of the URL
//! is never shown: [`Mailer::describe`], `Debug` and every error print it as `***`.

#[cfg(feature = "test-support")]
pub mod testing;

use std::{fmt, sync::Arc, time::Duration};

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Body, header::ContentTransferEncoding, header::ContentType},
};

/// An address with an optional display name (`tdsync <noreply@example.com>`); parse one with
/// `str::parse`.
pub use lettre::message::Mailbox;

/// The longest a send may take, connection and every SMTP command included: a login request
/// waits for it, and a server that stopped answering must not hold it forever.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest line SMTP carries unchanged (RFC 5321 §4.5.3.1.6: 1000 octets with the CRLF).
const MAX_LINE: usize = 998;

/// Where mail goes.
#[derive(Clone)]
pub enum MailerConfig {
    /// An SMTP server (`url`, see the crate's documentation), sending as `from`.
    Smtp { url: String, from: Mailbox },
    /// No SMTP server: every message is written to the server log (see [`Mailer::send`]).
    Log,
}

impl fmt::Debug for MailerConfig {
    /// The URL redacted: settings are printed at startup and in errors.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MailerConfig::Smtp { url, from } => f
                .debug_struct("Smtp")
                .field("url", &redact(url))
                .field("from", &from.to_string())
                .finish(),
            MailerConfig::Log => f.write_str("Log"),
        }
    }
}

/// One plain-text message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// `user@example.com` or `Name <user@example.com>`.
    pub to: String,
    pub subject: String,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The SMTP URL is not one lettre accepts (`url` has its password hidden).
    #[error("not a usable SMTP URL: {url}: {reason}")]
    BadUrl { url: String, reason: String },
    /// The recipient is not an email address; refused before any connection.
    #[error("not an email address: {address:?}: {reason}")]
    BadAddress { address: String, reason: String },
    /// The message could not be put together.
    #[error("cannot build the email to {to}: {reason}")]
    Message { to: String, reason: String },
    /// The SMTP server could not be reached or refused the message (`server` has its password
    /// hidden; `reason` is lettre's error: the connection's failure or the server's reply).
    #[error("sending email to {to} through {server} failed: {reason}")]
    Smtp {
        server: String,
        to: String,
        reason: String,
    },
    /// The send did not finish within [`SEND_TIMEOUT`].
    #[error("sending email to {to} through {server} did not finish within {after:?}")]
    Timeout {
        server: String,
        to: String,
        after: Duration,
    },
}

/// Sends [`Email`]s; cheap to clone (one shared transport).
#[derive(Clone)]
pub struct Mailer {
    inner: Arc<Inner>,
}

// One per mailer, behind its `Arc`: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Inner {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
        /// The URL as it may be shown.
        shown: String,
        /// The password's spellings (as written and percent-decoded), removed from any error
        /// text before it is shown: a server's reply could quote what it was sent.
        secrets: Vec<String>,
    },
    Log,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mailer({})", self.describe())
    }
}

impl Mailer {
    /// Checks the configuration (an SMTP URL is parsed, nothing is connected to).
    pub fn new(config: MailerConfig) -> Result<Mailer, MailError> {
        let inner = match config {
            MailerConfig::Log => Inner::Log,
            MailerConfig::Smtp { url, from } => {
                let secrets = password_spellings(&url);
                let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&url)
                    .map_err(|e| MailError::BadUrl {
                        url: redact(&url),
                        reason: scrub(&e.to_string(), &secrets),
                    })?
                    // Lettre's own bound, per connection and command; `send` bounds the whole.
                    .timeout(Some(SEND_TIMEOUT))
                    .build();
                Inner::Smtp {
                    transport,
                    from,
                    shown: redact(&url),
                    secrets,
                }
            }
        };
        Ok(Mailer {
            inner: Arc::new(inner),
        })
    }

    /// Sends `message`. An SMTP mailer returns once the server accepted it; a log mailer writes
    /// the recipient, the subject and the whole text with `tracing::warn!`. That is how a single
    /// machine with no SMTP server still works: the text carries the link to follow (a login or
    /// an invitation), and the one reading this server's log is its operator, who could read
    /// or mint any of it anyway. It is a warning so that it shows under any log filter.
    pub async fn send(&self, message: &Email) -> Result<(), MailError> {
        let to: Mailbox = message.to.parse().map_err(|e| MailError::BadAddress {
            address: message.to.clone(),
            reason: format!("{e}"),
        })?;
        match &*self.inner {
            Inner::Log => {
                tracing::warn!(
                    to = %to,
                    subject = %message.subject,
                    "email not sent (no SMTP server configured); its text follows:\n{}",
                    message.text
                );
                Ok(())
            }
            Inner::Smtp {
                transport,
                from,
                shown,
                secrets,
            } => {
                let email = Message::builder()
                    .from(from.clone())
                    .to(to.clone())
                    .subject(message.subject.as_str())
                    .header(ContentType::TEXT_PLAIN)
                    .body(body(&message.text))
                    .map_err(|e| MailError::Message {
                        to: message.to.clone(),
                        reason: e.to_string(),
                    })?;
                match tokio::time::timeout(SEND_TIMEOUT, transport.send(email)).await {
                    Ok(Ok(_)) => {
                        tracing::info!(to = %to, subject = %message.subject, server = %shown, "email sent");
                        Ok(())
                    }
                    Ok(Err(e)) => Err(MailError::Smtp {
                        server: shown.clone(),
                        to: message.to.clone(),
                        reason: scrub(&e.to_string(), secrets),
                    }),
                    Err(_) => Err(MailError::Timeout {
                        server: shown.clone(),
                        to: message.to.clone(),
                        after: SEND_TIMEOUT,
                    }),
                }
            }
        }
    }

    /// Where mail goes, for the startup banner: `SMTP smtp://host:port` (password hidden) or
    /// that it goes to the log.
    pub fn describe(&self) -> String {
        match &*self.inner {
            Inner::Smtp { shown, .. } => format!("SMTP {shown}"),
            Inner::Log => {
                "log (no SMTP configured: links are written to the server log)".to_string()
            }
        }
    }
}

/// The body, `7bit` whenever SMTP can carry the text as it is (ASCII, no line over 998
/// octets): then a long link stays on one line, as mail clients and tests see it. Anything else
/// is left to lettre (quoted-printable or base64), which wraps lines at 76.
fn body(text: &str) -> Body {
    let lf = text.replace("\r\n", "\n");
    let plain = lf.is_ascii()
        && !lf.bytes().any(|b| b == b'\0' || b == b'\r')
        && lf.split('\n').all(|line| line.len() <= MAX_LINE);
    if plain {
        // Checked above to be what 7bit allows; SMTP's dot-stuffing is the transport's job.
        Body::dangerous_pre_encoded(
            lf.replace('\n', "\r\n").into_bytes(),
            ContentTransferEncoding::SevenBit,
        )
    } else {
        Body::new(text.to_string())
    }
}

/// `url` split around its userinfo: (`scheme://` or nothing, userinfo, the rest). The userinfo
/// ends at the **last** `@`, so a password with an unescaped `/`, `?`, `#` or `@` in it is never
/// taken for the host (an `@` in a path or query makes more be hidden, never less).
fn split_userinfo(url: &str) -> Option<(&str, &str, &str)> {
    let body_start = url.find("://").map_or(0, |i| i + 3);
    let (scheme, body) = url.split_at(body_start);
    let (userinfo, rest) = body.rsplit_once('@')?;
    Some((scheme, userinfo, rest))
}

/// `url` with the password of `scheme://user:password@host…` replaced by `***` (a user name
/// alone is kept). Not a URL at all (no `://`), everything before its last `@` is hidden.
fn redact(url: &str) -> String {
    match split_userinfo(url) {
        None => url.to_string(),
        Some(("", _, rest)) => format!("***@{rest}"),
        Some((scheme, userinfo, rest)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}{user}:***@{rest}"),
            None => format!("{scheme}{userinfo}@{rest}"),
        },
    }
}

/// The password of `url` as written and percent-decoded (what lettre sends), when it has one
/// (for a string that is not a URL, everything [`redact`] hides).
fn password_spellings(url: &str) -> Vec<String> {
    let password = match split_userinfo(url) {
        None => return Vec::new(),
        Some(("", userinfo, _)) => userinfo,
        Some((_, userinfo, _)) => match userinfo.split_once(':') {
            Some((_, password)) => password,
            None => return Vec::new(),
        },
    };
    let mut spellings = vec![password.to_string(), percent_decode(password)];
    spellings.retain(|s| !s.is_empty());
    spellings.dedup();
    spellings
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(Some(hi)), Some(Some(lo))) = (
                bytes.get(i + 1).map(|&b| hex(b)),
                bytes.get(i + 2).map(|&b| hex(b)),
            )
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `text` with every spelling of the password replaced by `***`.
fn scrub(text: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .fold(text.to_string(), |text, secret| text.replace(secret, "***"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show_and_the_rest_does() {
        for (url, shown) in [
            (
                "smtps://alice:s3cret@mail.example:465",
                "smtps://alice:***@mail.example:465",
            ),
            (
                "smtp://alice:s3cret@mail.example:587?tls=required",
                "smtp://alice:***@mail.example:587?tls=required",
            ),
            ("smtp://127.0.0.1:2525", "smtp://127.0.0.1:2525"),
            ("smtp://alice@mail.example", "smtp://alice@mail.example"),
            ("smtp://u:p@ss@h:25/x", "smtp://u:***@h:25/x"),
            // Unescaped `/` and `?` in the password: still hidden.
            ("smtp://u:p/w?d@h:25", "smtp://u:***@h:25"),
            // Not a URL: all before the last `@` hidden.
            ("smtp//u:pw@h", "***@h"),
        ] {
            assert_eq!(redact(url), shown);
        }
        let config = MailerConfig::Smtp {
            url: "smtps://alice:s3cret@mail.example:465".into(),
            from: "tdsync <noreply@mail.example>".parse().unwrap(),
        };
        assert!(!format!("{config:?}").contains("s3cret"));
        let mailer = Mailer::new(config).unwrap();
        assert_eq!(mailer.describe(), "SMTP smtps://alice:***@mail.example:465");
        assert!(!format!("{mailer:?}").contains("s3cret"));
    }

    #[test]
    fn a_bad_url_is_named_without_its_password() {
        for (url, shown) in [
            (
                "ftp://alice:s3cret@mail.example:21",
                "ftp://alice:***@mail.example:21",
            ),
            (
                "smtp://alice:s3/cret@mail.example",
                "smtp://alice:***@mail.example",
            ),
            ("smtp//alice:s3cret@mail.example", "***@mail.example"),
        ] {
            let err = Mailer::new(MailerConfig::Smtp {
                url: url.into(),
                from: "noreply@mail.example".parse().unwrap(),
            })
            .unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, MailError::BadUrl { .. }), "{text}");
            assert!(text.contains(shown), "{text}");
            assert!(!text.contains("s3") && !text.contains("cret"), "{text}");
        }
    }

    #[test]
    fn the_password_is_scrubbed_in_every_spelling() {
        let secrets = password_spellings("smtps://u:p%40ss%3Aword@h:465");
        assert_eq!(secrets, ["p%40ss%3Aword", "p@ss:word"]);
        assert_eq!(
            scrub("535 bad password p@ss:word for u", &secrets),
            "535 bad password *** for u"
        );
        assert!(password_spellings("smtp://h:25").is_empty());
        assert!(password_spellings("smtp://u@h:25").is_empty());
    }

    #[test]
    fn ascii_text_goes_as_7bit_with_long_lines_unwrapped() {
        let link = format!("https://tdsync.example/login?token={}", "x".repeat(300));
        let b = body(&format!("Hello,\n\n{link}\n"));
        assert_eq!(b.encoding(), ContentTransferEncoding::SevenBit);
        let sent = String::from_utf8(b.into_vec()).unwrap();
        assert_eq!(sent, format!("Hello,\r\n\r\n{link}\r\n"));
        // Not ASCII, or a line SMTP cannot carry: lettre's encoding.
        assert_ne!(body("Grüße").encoding(), ContentTransferEncoding::SevenBit);
        assert_ne!(
            body(&"y".repeat(MAX_LINE + 1)).encoding(),
            ContentTransferEncoding::SevenBit
        );
    }
}
