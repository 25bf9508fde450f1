//! The questions a deploy asks, the rules an answer must meet, and the answers saved as they are
//! given: `deploy.toml` for choices, `deploy-secrets.toml` (0600) beside it for secrets. A
//! second run offers the saved answers as defaults; `--answers FILE` supplies them all.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::files::{self, FileError};
use crate::layout::{Layout, Reach};

/// One question. The order of the variants is the order they are asked in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Question {
    PublicUrl,
    Listen,
    DataDir,
    ControlPlane,
    PostgresUrl,
    Redis,
    RedisUrl,
    Backups,
    BackupDir,
    BackupUrl,
    S3AccessKeyId,
    S3SecretAccessKey,
    Tls,
    Service,
    User,
    Tenant,
}

/// How a question is answered.
pub enum Kind {
    Text,
    /// A secret: typed without echo, kept in the 0600 file.
    Secret,
    /// One of these `(value, what it means)`.
    Choice(&'static [(&'static str, &'static str)]),
}

pub const CONTROL_PLANES: &[(&str, &str)] = &[
    (
        "sqlite",
        "embedded SQLite in the data directory (one machine)",
    ),
    ("postgres", "a PostgreSQL server you give the URL of"),
    (
        "postgres-local",
        "PostgreSQL on this machine, from Debian's packages (as root)",
    ),
];
pub const REDIS: &[(&str, &str)] = &[
    ("none", "none (one server process)"),
    (
        "local",
        "Redis on this machine, from Debian's packages (as root)",
    ),
    (
        "url",
        "a Redis server you give the URL of (live updates across processes)",
    ),
];
pub const BACKUPS: &[(&str, &str)] = &[
    ("none", "none"),
    ("dir", "a directory (another disk, a mounted share)"),
    ("s3", "S3-compatible object storage"),
];
pub const TLS: &[(&str, &str)] = &[
    (
        "none",
        "none here: plain HTTP, or behind a reverse proxy you already run",
    ),
    (
        "caddy",
        "a local Caddy (Debian's package) with automatic certificates",
    ),
    (
        "caddy-internal",
        "a local Caddy with its own internal certificate authority",
    ),
];
pub const SERVICES: &[(&str, &str)] = &[
    ("systemd", "a systemd unit (started now and at boot)"),
    (
        "script",
        "a run script, started now in the background by this deploy",
    ),
];

impl Question {
    pub const ALL: [Question; 16] = [
        Question::PublicUrl,
        Question::Listen,
        Question::DataDir,
        Question::ControlPlane,
        Question::PostgresUrl,
        Question::Redis,
        Question::RedisUrl,
        Question::Backups,
        Question::BackupDir,
        Question::BackupUrl,
        Question::S3AccessKeyId,
        Question::S3SecretAccessKey,
        Question::Tls,
        Question::Service,
        Question::User,
        Question::Tenant,
    ];

    /// The name in the answers files.
    pub fn name(self) -> &'static str {
        match self {
            Question::PublicUrl => "public_url",
            Question::Listen => "listen",
            Question::DataDir => "data_dir",
            Question::ControlPlane => "control_plane",
            Question::PostgresUrl => "postgres_url",
            Question::Redis => "redis",
            Question::RedisUrl => "redis_url",
            Question::Backups => "backups",
            Question::BackupDir => "backup_dir",
            Question::BackupUrl => "backup_url",
            Question::S3AccessKeyId => "s3_access_key_id",
            Question::S3SecretAccessKey => "s3_secret_access_key",
            Question::Tls => "tls",
            Question::Service => "service",
            Question::User => "user",
            Question::Tenant => "tenant",
        }
    }

    pub fn prompt(self) -> &'static str {
        match self {
            Question::PublicUrl => "Public URL (what td users set as TD_SYNC_URL)",
            Question::Listen => "Listen address of the server",
            Question::DataDir => "Data directory",
            Question::ControlPlane => "Control plane (tenants, projects, tokens)",
            Question::PostgresUrl => "PostgreSQL URL",
            Question::Redis => "Redis",
            Question::RedisUrl => "Redis URL",
            Question::Backups => "Backups",
            Question::BackupDir => "Backup directory",
            Question::BackupUrl => "Backup bucket URL (s3://BUCKET/PREFIX?endpoint=URL&region=R)",
            Question::S3AccessKeyId => "S3 access key id",
            Question::S3SecretAccessKey => "S3 secret access key",
            Question::Tls => "TLS",
            Question::Service => "Service manager",
            Question::User => "System user the server runs as",
            Question::Tenant => "First tenant (a team or an account; it owns projects and tokens)",
        }
    }

    pub fn kind(self) -> Kind {
        match self {
            Question::ControlPlane => Kind::Choice(CONTROL_PLANES),
            Question::Redis => Kind::Choice(REDIS),
            Question::Backups => Kind::Choice(BACKUPS),
            Question::Tls => Kind::Choice(TLS),
            Question::Service => Kind::Choice(SERVICES),
            Question::PostgresUrl | Question::RedisUrl | Question::S3SecretAccessKey => {
                Kind::Secret
            }
            _ => Kind::Text,
        }
    }

    pub fn is_secret(self) -> bool {
        matches!(self.kind(), Kind::Secret)
    }

    fn from_name(name: &str) -> Option<Question> {
        Question::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether the question is asked, given the answers before it.
    pub fn applies(self, answers: &Answers) -> bool {
        let is = |key: Question, value: &str| answers.get(key) == Some(value);
        match self {
            Question::PostgresUrl => is(Question::ControlPlane, "postgres"),
            Question::RedisUrl => is(Question::Redis, "url"),
            Question::BackupDir => is(Question::Backups, "dir"),
            Question::BackupUrl | Question::S3AccessKeyId | Question::S3SecretAccessKey => {
                is(Question::Backups, "s3")
            }
            // Only root can make a system user; anyone else runs the server as themselves.
            Question::User => answers.reach.host_as_root(),
            _ => true,
        }
    }

    /// The default offered when nothing was saved.
    pub fn default(self, layout: &Layout, answers: &Answers) -> Option<String> {
        Some(match self {
            Question::PublicUrl => "http://127.0.0.1:8080".into(),
            Question::Listen => {
                // Behind a local Caddy or a proxy the server need not face the network.
                "127.0.0.1:8080".into()
            }
            Question::DataDir => layout.default_data_dir().display().to_string(),
            Question::ControlPlane => "sqlite".into(),
            Question::Redis => "none".into(),
            Question::Backups => "none".into(),
            Question::BackupDir => layout
                .root()
                .join("var/backups/tdsync")
                .display()
                .to_string(),
            Question::Tls => {
                let https = answers
                    .get(Question::PublicUrl)
                    .is_some_and(|u| u.starts_with("https://"));
                let local = answers
                    .get(Question::PublicUrl)
                    .and_then(|u| url::Url::parse(u).ok())
                    .and_then(|u| u.host_str().map(is_loopback_host))
                    .unwrap_or(true);
                if https && !local { "caddy" } else { "none" }.into()
            }
            Question::Service => {
                if layout.is_host() && Path::new("/run/systemd/system").is_dir() {
                    "systemd".into()
                } else {
                    "script".into()
                }
            }
            Question::User => "tdsync".into(),
            Question::Tenant => "default".into(),
            Question::PostgresUrl
            | Question::RedisUrl
            | Question::BackupUrl
            | Question::S3AccessKeyId
            | Question::S3SecretAccessKey => return None,
        })
    }

    /// Why `value` is not an acceptable answer (`None`: it is).
    pub fn check(self, value: &str, answers: &Answers) -> Option<String> {
        let value = value.trim();
        if value.is_empty() {
            return Some("an answer is needed".into());
        }
        if value.contains(['\n', '\r', '\'', '\0']) {
            return Some(
                "quotes and line breaks cannot be kept in the server's environment".into(),
            );
        }
        match self {
            Question::PublicUrl => check_public_url(value),
            Question::Listen => value.parse::<SocketAddr>().err().map(|_| {
                format!("{value:?} is not an address and port such as 127.0.0.1:8080 or 0.0.0.0:80")
            }),
            Question::DataDir | Question::BackupDir => check_dir(value),
            Question::PostgresUrl => check_url(value, &["postgres", "postgresql"], "postgres://USER:PASSWORD@HOST:5432/DATABASE"),
            Question::RedisUrl => check_url(value, &["redis", "rediss"], "redis://HOST:6379"),
            Question::BackupUrl => check_url(value, &["s3"], "s3://BUCKET/PREFIX?endpoint=https://s3.example.com")
                .or_else(|| {
                    url::Url::parse(value)
                        .ok()
                        .filter(|u| u.host_str().is_none_or(str::is_empty))
                        .map(|_| "the bucket name is missing: s3://BUCKET/PREFIX".into())
                }),
            Question::S3AccessKeyId | Question::S3SecretAccessKey => value
                .contains(char::is_whitespace)
                .then(|| "a key has no spaces".into()),
            Question::User => (!is_user_name(value)).then(|| {
                format!("{value:?} is not a user name: lowercase letters, digits, - and _, starting with a letter")
            }),
            Question::Tenant => (value.chars().count() > 100 || value.chars().any(char::is_control))
                .then(|| "a tenant name is at most 100 characters, without control characters".into()),
            Question::ControlPlane | Question::Redis | Question::Backups | Question::Tls | Question::Service => {
                let Kind::Choice(options) = self.kind() else {
                    unreachable!("a choice")
                };
                (!options.iter().any(|(v, _)| *v == value)).then(|| {
                    let names: Vec<&str> = options.iter().map(|(v, _)| *v).collect();
                    format!("{value:?} is not one of {}", names.join(", "))
                })
            }
        }
        .or_else(|| {
            // Packages and system services are root's (with or without --root).
            let local = matches!(
                (self, value),
                (Question::ControlPlane, "postgres-local") | (Question::Redis, "local")
            );
            (local && !answers.reach.root).then(|| {
                "installing it on this machine needs root: run tdsync deploy as root, or give a URL"
                    .to_string()
            })
        })
        .or_else(|| {
            // A TLS choice must agree with the URL users are given.
            (self == Question::Tls && value.starts_with("caddy"))
                .then(|| answers.get(Question::PublicUrl))
                .flatten()
                .filter(|u| !u.starts_with("https://"))
                .map(|u| format!("Caddy serves HTTPS, but the public URL is {u}: choose none, or start the public URL with https://"))
        })
    }
}

fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn is_user_name(value: &str) -> bool {
    let mut chars = value.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && value.len() <= 32
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn check_public_url(value: &str) -> Option<String> {
    let example = "such as https://td.example.com or http://127.0.0.1:8080";
    let Ok(url) = url::Url::parse(value) else {
        return Some(format!("{value:?} is not a URL {example}"));
    };
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Some(format!("{value:?} is not an http(s) URL {example}"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Some(format!(
            "{value:?} has a path, query or fragment: td adds /v1/… to the URL itself"
        ));
    }
    None
}

fn check_url(value: &str, schemes: &[&str], example: &str) -> Option<String> {
    match url::Url::parse(value) {
        Ok(url) if schemes.contains(&url.scheme()) => None,
        _ => Some(format!("{value:?} is not a URL such as {example}")),
    }
}

fn check_dir(value: &str) -> Option<String> {
    let path = Path::new(value);
    if !path.is_absolute() {
        return Some(format!("{value:?} is not an absolute path"));
    }
    let mut existing = Some(path);
    while let Some(p) = existing {
        if p.exists() {
            return (!p.is_dir()).then(|| format!("{} is a file, not a directory", p.display()));
        }
        existing = p.parent();
    }
    None
}

/// Answers given so far, by question.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answers {
    values: BTreeMap<Question, String>,
    /// What the deploy may touch (the system user is asked on the host as root; local
    /// services need root).
    pub reach: Reach,
}

#[derive(Debug, thiserror::Error)]
pub enum AnswersError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{path}: not TOML answers: {reason}")]
    NotToml { path: PathBuf, reason: String },
    #[error("{path}: unknown answer {key:?} (known: {known})")]
    UnknownKey {
        path: PathBuf,
        key: String,
        known: String,
    },
    #[error("{path}: {key}: {reason}")]
    Bad {
        path: PathBuf,
        key: &'static str,
        reason: String,
    },
}

impl Answers {
    pub fn new(reach: Reach) -> Answers {
        Answers {
            values: BTreeMap::new(),
            reach,
        }
    }

    pub fn get(&self, key: Question) -> Option<&str> {
        self.values.get(&key).map(String::as_str)
    }

    pub fn set(&mut self, key: Question, value: &str) {
        self.values.insert(key, value.trim().to_string());
    }

    /// Reads answers from `path` (a missing file is no answers) into `self`, checking each.
    pub fn merge_file(&mut self, path: &Path) -> Result<(), AnswersError> {
        let Some(text) = files::read_optional(path)? else {
            return Ok(());
        };
        let table: BTreeMap<String, toml::Value> =
            toml::from_str(&text).map_err(|e| AnswersError::NotToml {
                path: path.to_path_buf(),
                reason: e.message().to_string(),
            })?;
        for (name, value) in table {
            let key = Question::from_name(&name).ok_or_else(|| AnswersError::UnknownKey {
                path: path.to_path_buf(),
                key: name.clone(),
                known: Question::ALL.map(Question::name).join(", "),
            })?;
            let value = match value {
                toml::Value::String(s) => s,
                other => other.to_string(),
            };
            self.set(key, &value);
        }
        Ok(())
    }

    /// Checks every answer that applies, in order; the first wrong one is named.
    pub fn check_all(&self, source: &Path) -> Result<(), AnswersError> {
        for key in Question::ALL {
            if let (true, Some(value)) = (key.applies(self), self.get(key))
                && let Some(reason) = key.check(value, self)
            {
                return Err(AnswersError::Bad {
                    path: source.to_path_buf(),
                    key: key.name(),
                    reason,
                });
            }
        }
        Ok(())
    }

    /// The saved answers of an install (choices, then secrets).
    pub fn load(layout: &Layout, reach: Reach) -> Result<Answers, AnswersError> {
        let mut answers = Answers::new(reach);
        answers.merge_file(&layout.answers())?;
        answers.merge_file(&layout.secrets())?;
        Ok(answers)
    }

    /// Writes both files whole (temporary file, then rename), secrets 0600.
    pub fn save(&self, layout: &Layout) -> Result<(), AnswersError> {
        let render = |secret: bool| {
            let table: BTreeMap<&str, &str> = self
                .values
                .iter()
                .filter(|(k, _)| k.is_secret() == secret)
                .map(|(k, v)| (k.name(), v.as_str()))
                .collect();
            toml::to_string(&table).expect("a table of strings is TOML")
        };
        let header = "# tdsync deploy: your answers, offered as defaults by the next run.\n";
        files::write_atomic(
            &layout.answers(),
            &format!("{header}{}", render(false)),
            0o644,
        )?;
        let header = "# tdsync deploy: the answers that are secrets (owner-only).\n";
        files::write_atomic(
            &layout.secrets(),
            &format!("{header}{}", render(true)),
            0o600,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_answers_say_why() {
        let answers = Answers::new(Reach::default());
        let file = tempfile::NamedTempFile::new().unwrap();
        let cases = [
            (Question::PublicUrl, "td.example.com", "not a URL"),
            (
                Question::PublicUrl,
                "ftp://td.example.com",
                "not an http(s) URL",
            ),
            (
                Question::PublicUrl,
                "https://td.example.com/sync",
                "td adds /v1/",
            ),
            (Question::Listen, "localhost", "not an address and port"),
            (Question::DataDir, "relative/dir", "not an absolute path"),
            (
                Question::DataDir,
                &file.path().join("below").display().to_string(),
                "is a file, not a directory",
            ),
            (
                Question::PostgresUrl,
                "mysql://x",
                "not a URL such as postgres://",
            ),
            (Question::BackupUrl, "s3://", "the bucket name is missing"),
            (Question::User, "Root", "not a user name"),
            (Question::Backups, "tape", "not one of none, dir, s3"),
            (Question::Tenant, "it's", "quotes"),
            (Question::Tenant, "  ", "an answer is needed"),
            (Question::ControlPlane, "postgres-local", "needs root"),
            (Question::Redis, "local", "needs root"),
        ];
        for (key, value, expected) in cases {
            let reason = key.check(value, &answers).unwrap_or_default();
            assert!(reason.contains(expected), "{key:?} {value:?}: {reason:?}");
        }
        for (key, value) in [
            (Question::PublicUrl, "https://td.example.com"),
            (Question::PublicUrl, "http://127.0.0.1:8080/"),
            (Question::Listen, "0.0.0.0:80"),
            (Question::DataDir, "/var/lib/tdsync"),
            (
                Question::BackupUrl,
                "s3://bucket/tdsync?endpoint=http://127.0.0.1:9000",
            ),
            (Question::User, "tdsync"),
            (Question::Backups, "s3"),
        ] {
            assert_eq!(key.check(value, &answers), None, "{key:?} {value:?}");
        }
    }

    #[test]
    fn caddy_needs_an_https_url() {
        let mut answers = Answers::new(Reach::default());
        answers.set(Question::PublicUrl, "http://td.example.com");
        assert!(
            Question::Tls
                .check("caddy", &answers)
                .is_some_and(|r| r.contains("https://"))
        );
        answers.set(Question::PublicUrl, "https://td.example.com");
        assert_eq!(Question::Tls.check("caddy", &answers), None);
        assert_eq!(
            Question::Tls
                .default(&Layout::new(Path::new("/x")), &answers)
                .as_deref(),
            Some("caddy")
        );
    }

    #[test]
    fn saved_answers_round_trip_and_secrets_stay_apart() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let mut answers = Answers::new(Reach::default());
        answers.set(Question::PublicUrl, "https://td.example.com");
        answers.set(Question::Backups, "s3");
        answers.set(Question::S3SecretAccessKey, "very-secret");
        answers.save(&layout).unwrap();
        let choices = std::fs::read_to_string(layout.answers()).unwrap();
        assert!(
            choices.contains("public_url = \"https://td.example.com\""),
            "{choices}"
        );
        assert!(!choices.contains("very-secret"), "{choices}");
        let secrets = std::fs::read_to_string(layout.secrets()).unwrap();
        assert!(secrets.contains("very-secret"), "{secrets}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(layout.secrets())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(Answers::load(&layout, Reach::default()).unwrap(), answers);
    }

    #[test]
    fn an_unknown_answer_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("answers.toml");
        std::fs::write(&path, "public_ulr = \"https://x.example\"\n").unwrap();
        let err = Answers::new(Reach::default())
            .merge_file(&path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown answer \"public_ulr\""), "{err}");
    }
}
