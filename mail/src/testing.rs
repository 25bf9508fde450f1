//! Test support (feature `test-support`): the SMTP server tests send to, and the messages it
//! received.
//!
//! `infra/test.sh` starts an SMTP sink (`ensure_smtp` in `infra/services.sh`:
//! `infra/smtp_sink.py` on aiosmtpd) and exports `TDSYNC_TEST_SMTP_URL` (where to send) and
//! `TDSYNC_TEST_MAILDIR` (where every message it accepts appears as a file,
//! `<sequence>-<first recipient>.eml`, exactly as received) with `TDSYNC_REQUIRE_SERVICES=1`.
//! A mail test then **fails** when they are missing; run with plain `cargo test` and no sink,
//! it skips with a loud message. The sink refuses recipients at `reject.invalid` with 550.
//! Tests sharing one sink stay apart by recipients of their own ([`unique_address`]).

use std::{
    collections::HashSet,
    io::Write,
    path::{Path, PathBuf},
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use base64::Engine as _;

pub const SMTP_URL_VAR: &str = "TDSYNC_TEST_SMTP_URL";
pub const MAILDIR_VAR: &str = "TDSYNC_TEST_MAILDIR";
pub const REQUIRE_SERVICES_VAR: &str = "TDSYNC_REQUIRE_SERVICES";

/// How often [`Maildir::wait_for`] looks at the directory.
const POLL: Duration = Duration::from_millis(20);

fn required() -> bool {
    std::env::var(REQUIRE_SERVICES_VAR).is_ok_and(|v| v == "1")
}

/// The variable's value, or `None` (after a loud message) when it is unset and services are not
/// required. Panics when they are required and it is missing.
fn service_var(test: &str, var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if required() => panic!(
            "{test}: {var} is not set but {REQUIRE_SERVICES_VAR}=1: the mail tests must run \
             (use ./infra/test.sh, which starts the SMTP sink)"
        ),
        _ => {
            // Straight to stderr, not `eprintln!`: the test harness captures that and shows it
            // only for failures, and a skip must be seen.
            let _ = writeln!(
                std::io::stderr(),
                "!!! SKIPPED {test}: no SMTP sink ({var} is not set). Run ./infra/test.sh to \
                 include the mail tests."
            );
            None
        }
    }
}

/// The test SMTP sink's URL (`smtp://127.0.0.1:PORT`), or `None` (after a loud message) when
/// there is none and services are not required. Panics when they are required and it is
/// missing.
pub fn smtp_url(test: &str) -> Option<String> {
    service_var(test, SMTP_URL_VAR)
}

/// An address no other test (or run) sends to: `<label>-<unique>@tdsync.test`.
pub fn unique_address(label: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{label}-{}-{nanos}-{}@tdsync.test",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The directory the sink delivers to. Each message is returned once by one `Maildir`.
#[derive(Debug)]
pub struct Maildir {
    dir: PathBuf,
    /// File names already returned.
    returned: Mutex<HashSet<String>>,
}

/// A message as the sink received it, decoded for reading.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// The `To` header (encoded words decoded).
    pub to: String,
    /// The `Subject` header (encoded words decoded).
    pub subject: String,
    /// The body with its transfer encoding undone (quoted-printable soft breaks joined), as
    /// UTF-8 with `\n` line ends.
    pub body_text: String,
    /// The whole message as received (RFC 5322), lossily UTF-8.
    pub raw: String,
    pub file: PathBuf,
}

impl Maildir {
    /// The sink's maildir (`TDSYNC_TEST_MAILDIR`), or `None` (after a loud message) when there is
    /// none and services are not required. Panics when they are required and it is missing.
    pub fn from_env(test: &str) -> Option<Maildir> {
        service_var(test, MAILDIR_VAR).map(Maildir::at)
    }

    /// The maildir at `dir`.
    pub fn at(dir: impl Into<PathBuf>) -> Maildir {
        Maildir {
            dir: dir.into(),
            returned: Mutex::new(HashSet::new()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The oldest message to `to` (an address, matched by the envelope recipient in the file
    /// name, case-insensitively) not yet returned by this `Maildir`, as soon as there is one:
    /// the directory is looked at every 20 ms. Panics, listing what the directory holds, when
    /// none arrives within `timeout`.
    pub async fn wait_for(&self, to: &str, timeout: Duration) -> ReceivedMail {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(mail) = self.take(to) {
                return mail;
            }
            if Instant::now() >= deadline {
                self.none_arrived(to, timeout);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// [`Maildir::wait_for`] for tests without an async runtime (it blocks the thread).
    pub fn wait_for_blocking(&self, to: &str, timeout: Duration) -> ReceivedMail {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(mail) = self.take(to) {
                return mail;
            }
            if Instant::now() >= deadline {
                self.none_arrived(to, timeout);
            }
            std::thread::sleep(POLL);
        }
    }

    fn none_arrived(&self, to: &str, timeout: Duration) -> ! {
        panic!(
            "no new email to {to} arrived in {} within {timeout:?}; it holds: {:?}",
            self.dir.display(),
            self.messages()
        )
    }

    /// The names of the messages delivered so far, oldest first (the sequence is zero-padded).
    /// The sink's temp files are hidden and do not end in `.eml`: only whole messages show.
    fn messages(&self) -> Vec<String> {
        let entries = std::fs::read_dir(&self.dir)
            .unwrap_or_else(|e| panic!("cannot read the maildir {}: {e}", self.dir.display()));
        let mut names: Vec<String> = entries
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| name.ends_with(".eml") && !name.starts_with('.'))
            .collect();
        names.sort();
        names
    }

    fn take(&self, to: &str) -> Option<ReceivedMail> {
        let wanted = file_safe(bare_address(to)).to_ascii_lowercase();
        let mut returned = self.returned.lock().unwrap_or_else(|e| e.into_inner());
        let name = self.messages().into_iter().find(|name| {
            let recipient = name
                .strip_suffix(".eml")
                .and_then(|n| n.split_once('-'))
                .map(|(_, r)| r.to_ascii_lowercase());
            recipient.as_deref() == Some(wanted.as_str()) && !returned.contains(name)
        })?;
        let file = self.dir.join(&name);
        let bytes =
            std::fs::read(&file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        returned.insert(name);
        Some(ReceivedMail::parse(&bytes, file))
    }
}

impl ReceivedMail {
    /// Parses a message as the sink wrote it.
    pub fn parse(bytes: &[u8], file: PathBuf) -> ReceivedMail {
        let (head, body) = split_message(bytes);
        let headers = unfold(&String::from_utf8_lossy(head));
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| decode_words(v))
                .unwrap_or_default()
        };
        let encoding = header("Content-Transfer-Encoding").to_ascii_lowercase();
        let decoded = match encoding.trim() {
            "quoted-printable" => decode_quoted_printable(body),
            "base64" => {
                let compact: Vec<u8> = body
                    .iter()
                    .copied()
                    .filter(|b| !b.is_ascii_whitespace())
                    .collect();
                base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .unwrap_or_else(|e| panic!("{}: bad base64 body: {e}", file.display()))
            }
            _ => body.to_vec(),
        };
        ReceivedMail {
            to: header("To"),
            subject: header("Subject"),
            body_text: String::from_utf8_lossy(&decoded).replace("\r\n", "\n"),
            raw: String::from_utf8_lossy(bytes).into_owned(),
            file,
        }
    }

    /// The first URL in the body that starts with `prefix` (e.g. `http://127.0.0.1:8080/login/`),
    /// at the start of a word, up to the next space or `<>"'`, without trailing punctuation.
    pub fn link_starting_with(&self, prefix: &str) -> Option<String> {
        let text = &self.body_text;
        let mut from = 0;
        while let Some(found) = text[from..].find(prefix) {
            let start = from + found;
            let at_word_start = text[..start]
                .chars()
                .next_back()
                .is_none_or(|c| c.is_whitespace() || "<(\"'[".contains(c));
            if at_word_start {
                let rest = &text[start..];
                let end = rest
                    .find(|c: char| c.is_whitespace() || "<>\"'".contains(c))
                    .unwrap_or(rest.len());
                let link = rest[..end].trim_end_matches(['.', ',', ';', ':', '!', '?', ')', ']']);
                return Some(link.to_string());
            }
            from = start + prefix.len();
        }
        None
    }
}

/// `user@host` out of `Name <user@host>` (or the address as given).
fn bare_address(to: &str) -> &str {
    match (to.rfind('<'), to.rfind('>')) {
        (Some(open), Some(close)) if open < close => &to[open + 1..close],
        _ => to.trim(),
    }
}

/// What the sink makes of an address in a file name (`file_safe` in infra/smtp_sink.py).
fn file_safe(address: &str) -> String {
    let safe: String = address
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "@._+-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.is_empty() { "_".into() } else { safe }
}

/// The header block and the body (split at the first empty line).
fn split_message(bytes: &[u8]) -> (&[u8], &[u8]) {
    for (sep, len) in [(&b"\r\n\r\n"[..], 4), (&b"\n\n"[..], 2)] {
        if let Some(at) = bytes.windows(len).position(|w| w == sep) {
            return (&bytes[..at], &bytes[at + len..]);
        }
    }
    (bytes, &[])
}

/// Header lines as (name, value), folded lines joined.
fn unfold(head: &str) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    headers
}

/// A header value with its RFC 2047 encoded words (`=?utf-8?b?…?=`, `=?utf-8?q?…?=`) decoded;
/// the space between two encoded words is not part of the text, and their bytes are joined
/// before decoding (a character may be split between two words).
fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find("=?") {
        let before = &rest[..start];
        match encoded_word(&rest[start..]) {
            Some((bytes, len)) => {
                // Whitespace between two encoded words is dropped; anything else is text.
                if pending.is_empty() || !before.trim().is_empty() {
                    out.push_str(&String::from_utf8_lossy(&std::mem::take(&mut pending)));
                    out.push_str(before);
                }
                pending.extend(bytes);
                rest = &rest[start + len..];
            }
            None => {
                out.push_str(&String::from_utf8_lossy(&std::mem::take(&mut pending)));
                out.push_str(&rest[..start + 2]);
                rest = &rest[start + 2..];
            }
        }
    }
    out.push_str(&String::from_utf8_lossy(&pending));
    out.push_str(rest);
    out
}

/// The bytes of the encoded word `s` starts with, and its length.
fn encoded_word(s: &str) -> Option<(Vec<u8>, usize)> {
    let inner = s.strip_prefix("=?")?;
    let (charset, r) = inner.split_once('?')?;
    let (encoding, r) = r.split_once('?')?;
    let end = r.find("?=")?;
    let text = &r[..end];
    if charset.contains(char::is_whitespace) || text.contains(char::is_whitespace) {
        return None;
    }
    let bytes = match encoding {
        "B" | "b" => base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()?,
        "Q" | "q" => decode_quoted_printable(text.replace('_', " ").as_bytes()),
        _ => return None,
    };
    Some((bytes, 2 + charset.len() + 1 + encoding.len() + 1 + end + 2))
}

/// Quoted-printable undone: `=XX` is a byte, `=` at a line's end a soft break (removed).
fn decode_quoted_printable(input: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'=' {
            match (input.get(i + 1), input.get(i + 2)) {
                (Some(b'\r'), Some(b'\n')) => {
                    i += 3;
                    continue;
                }
                (Some(b'\n'), _) => {
                    i += 2;
                    continue;
                }
                (Some(&hi), Some(&lo)) => {
                    if let (Some(hi), Some(lo)) = (hex(hi), hex(lo)) {
                        out.push((hi * 16 + lo) as u8);
                        i += 3;
                        continue;
                    }
                }
                _ => {}
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_printable_links_are_joined_and_encoded_words_decoded() {
        let raw = b"From: a@tdsync.test\r\nTo: b@tdsync.test\r\nSubject: =?utf-8?b?R3LDvA==?=\r\n \
            =?utf-8?q?=C3=9Fe_and_more?=\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
            Gr=C3=BC=C3=9Fe, follow https://x.test/login?token=3Dabc=\r\ndef.\r\n";
        let mail = ReceivedMail::parse(raw, PathBuf::from("1-b@tdsync.test.eml"));
        assert_eq!(mail.subject, "Grüße and more");
        assert_eq!(mail.to, "b@tdsync.test");
        assert_eq!(
            mail.body_text,
            "Grüße, follow https://x.test/login?token=abcdef.\n"
        );
        assert_eq!(
            mail.link_starting_with("https://x.test/").as_deref(),
            Some("https://x.test/login?token=abcdef")
        );
        assert_eq!(mail.link_starting_with("https://y.test/"), None);
    }

    #[test]
    fn a_link_starts_a_word() {
        let mail = ReceivedMail::parse(
            b"Subject: s\n\nnot xhttps://a.test/1 but <https://a.test/2>\n",
            PathBuf::new(),
        );
        assert_eq!(
            mail.link_starting_with("https://a.test/").as_deref(),
            Some("https://a.test/2")
        );
    }

    #[test]
    fn each_message_is_returned_once() {
        let dir = std::env::temp_dir().join(format!("tdsync-mail-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, subject) in [
            ("000001-A@x.test.eml", "one"),
            ("000002-a@x.test.eml", "two"),
        ] {
            std::fs::write(
                dir.join(name),
                format!("Subject: {subject}\r\n\r\nbody\r\n"),
            )
            .unwrap();
        }
        std::fs::write(dir.join(".incoming-x.tmp"), "Subject: partial\r\n").unwrap();
        let maildir = Maildir::at(&dir);
        let timeout = Duration::from_millis(100);
        assert_eq!(
            maildir.wait_for_blocking("a@x.test", timeout).subject,
            "one"
        );
        assert_eq!(
            maildir
                .wait_for_blocking("Someone <a@x.test>", timeout)
                .subject,
            "two"
        );
        assert!(maildir.take("a@x.test").is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
