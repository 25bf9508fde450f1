//! The checked answers as settings, and the server's environment file made from them.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::answers::{Answers, Question};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backup {
    None,
    Dir(PathBuf),
    S3 {
        url: String,
        key_id: String,
        secret: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    None,
    Caddy { internal: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Systemd,
    Script,
}

/// Debian's redis-server, as its package configures it.
pub const LOCAL_REDIS: &str = "redis://127.0.0.1:6379";

/// What the install is to be.
#[derive(Debug, Clone)]
pub struct Config {
    pub public_url: String,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `None`: the embedded SQLite file in the data directory (or, with `local_postgres`, the
    /// local database not made yet).
    pub postgres_url: Option<String>,
    /// PostgreSQL on this machine: its database and role are the deploy's to make.
    pub local_postgres: bool,
    /// Redis on this machine, from Debian's package.
    pub local_redis: bool,
    pub redis_url: Option<String>,
    pub backup: Backup,
    pub tls: Tls,
    pub service: Service,
    /// The system user to create and run as (root on the host only).
    pub user: Option<String>,
    pub tenant: String,
}

impl Config {
    /// From complete, checked answers (see `Answers::check_all`).
    pub fn from_answers(answers: &Answers) -> Result<Config, String> {
        let need = |key: Question| {
            answers
                .get(key)
                .map(str::to_string)
                .ok_or_else(|| format!("no answer for {}", key.name()))
        };
        let backup = match need(Question::Backups)?.as_str() {
            "dir" => Backup::Dir(need(Question::BackupDir)?.into()),
            "s3" => Backup::S3 {
                url: need(Question::BackupUrl)?,
                key_id: need(Question::S3AccessKeyId)?,
                secret: need(Question::S3SecretAccessKey)?,
            },
            _ => Backup::None,
        };
        Ok(Config {
            public_url: need(Question::PublicUrl)?.trim_end_matches('/').to_string(),
            listen: need(Question::Listen)?
                .parse()
                .map_err(|_| "listen is not an address".to_string())?,
            data_dir: need(Question::DataDir)?.into(),
            postgres_url: match need(Question::ControlPlane)?.as_str() {
                "postgres" => Some(need(Question::PostgresUrl)?),
                // Made by the deploy (`steps::local`), then kept with the secrets.
                "postgres-local" => answers.get(Question::PostgresUrl).map(str::to_string),
                _ => None,
            },
            local_postgres: answers.get(Question::ControlPlane) == Some("postgres-local"),
            redis_url: match need(Question::Redis)?.as_str() {
                "url" => Some(need(Question::RedisUrl)?),
                "local" => Some(LOCAL_REDIS.to_string()),
                _ => None,
            },
            local_redis: answers.get(Question::Redis) == Some("local"),
            backup,
            tls: match need(Question::Tls)?.as_str() {
                "caddy" => Tls::Caddy { internal: false },
                "caddy-internal" => Tls::Caddy { internal: true },
                _ => Tls::None,
            },
            service: match need(Question::Service)?.as_str() {
                "systemd" => Service::Systemd,
                _ => Service::Script,
            },
            user: Question::User
                .applies(answers)
                .then(|| need(Question::User))
                .transpose()?,
            tenant: need(Question::Tenant)?,
        })
    }

    /// Where the server answers on this machine (a wildcard listen address is reached on
    /// loopback).
    pub fn local_url(&self) -> String {
        let mut addr = self.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        format!("http://{addr}")
    }

    /// The backup target as `tdsync serve --backup-to` takes it (empty: none).
    pub fn backup_to(&self) -> String {
        match &self.backup {
            Backup::None => String::new(),
            Backup::Dir(dir) => format!("file://{}", dir.display()),
            Backup::S3 { url, .. } => url.clone(),
        }
    }

    /// The server's environment, in order. Every command the deploy runs gets exactly these.
    pub fn environment(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("TDSYNC_LISTEN", self.listen.to_string()),
            ("TDSYNC_DATA_DIR", self.data_dir.display().to_string()),
            ("TDSYNC_PUBLIC_URL", self.public_url.clone()),
        ];
        if let Some(url) = &self.postgres_url {
            env.push(("TDSYNC_CONTROL_PLANE", url.clone()));
        }
        if let Some(url) = &self.redis_url {
            env.push(("TDSYNC_REDIS_URL", url.clone()));
        }
        if self.backup != Backup::None {
            env.push(("TDSYNC_BACKUP_TO", self.backup_to()));
        }
        if let Backup::S3 { key_id, secret, .. } = &self.backup {
            env.push(("AWS_ACCESS_KEY_ID", key_id.clone()));
            env.push(("AWS_SECRET_ACCESS_KEY", secret.clone()));
        }
        if matches!(self.tls, Tls::Caddy { .. }) {
            // Caddy on this machine is the one proxy whose client addresses count.
            env.push(("TDSYNC_TRUSTED_PROXIES", "127.0.0.1/32,::1/128".into()));
        }
        env
    }

    /// The environment file: `KEY='value'` lines, read alike by sh and systemd. (Answers
    /// holding `'` or a line break are refused when given.)
    pub fn environment_file(&self) -> String {
        let mut out = String::from(
            "# Written by tdsync deploy from its answers (deploy.toml): run it again to change.\n",
        );
        for (key, value) in self.environment() {
            out.push_str(&format!("{key}='{value}'\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Reach;

    fn answers(pairs: &[(Question, &str)]) -> Answers {
        let mut answers = Answers::new(Reach::default());
        for (key, value) in [
            (Question::PublicUrl, "https://td.example.com/"),
            (Question::Listen, "0.0.0.0:8080"),
            (Question::DataDir, "/var/lib/tdsync"),
            (Question::ControlPlane, "sqlite"),
            (Question::Redis, "none"),
            (Question::Backups, "none"),
            (Question::Tls, "none"),
            (Question::Service, "script"),
            (Question::Tenant, "acme"),
        ]
        .iter()
        .chain(pairs)
        {
            answers.set(*key, value);
        }
        answers
    }

    #[test]
    fn the_environment_says_what_was_answered() {
        let config = Config::from_answers(&answers(&[
            (Question::Backups, "s3"),
            (
                Question::BackupUrl,
                "s3://b/p?endpoint=http://127.0.0.1:9000",
            ),
            (Question::S3AccessKeyId, "AK"),
            (Question::S3SecretAccessKey, "SK"),
        ]))
        .unwrap();
        assert_eq!(config.public_url, "https://td.example.com");
        assert_eq!(config.local_url(), "http://127.0.0.1:8080");
        let file = config.environment_file();
        for line in [
            "TDSYNC_LISTEN='0.0.0.0:8080'",
            "TDSYNC_BACKUP_TO='s3://b/p?endpoint=http://127.0.0.1:9000'",
            "AWS_SECRET_ACCESS_KEY='SK'",
        ] {
            assert!(file.contains(line), "{file}");
        }
        assert!(!file.contains("TDSYNC_CONTROL_PLANE"), "{file}");
        assert_eq!(config.user, None);
    }

    #[test]
    fn a_missing_answer_is_named() {
        let err =
            Config::from_answers(&answers(&[(Question::ControlPlane, "postgres")])).unwrap_err();
        assert_eq!(err, "no answer for postgres_url");
    }
}
