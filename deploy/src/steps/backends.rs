//! What the server depends on, each checked through the installed binary or the wire: the
//! control plane (opened and migrated), Redis (PING), the backup target (a first backup).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::config::Backup;
use crate::plan::{Check, Context, Failure, Step};

/// A URL with its password replaced, for messages.
pub(crate) fn redact(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("redacted"));
            url.to_string()
        }
        _ => raw.to_string(),
    }
}

/// Opening the control plane with the installed binary creates it or applies its migrations.
pub struct ControlPlane;

impl ControlPlane {
    fn describe(cx: &Context) -> String {
        match &cx.config.postgres_url {
            Some(url) => format!("PostgreSQL at {}", redact(url)),
            None => format!(
                "SQLite at {}",
                cx.config.data_dir.join("control-plane.db").display()
            ),
        }
    }
}

impl Step for ControlPlane {
    fn title(&self) -> String {
        "control plane".into()
    }

    fn plan(&self, cx: &Context) -> String {
        format!(
            "open {} and bring its schema up to date",
            Self::describe(cx)
        )
    }

    fn check(&self, cx: &mut Context) -> Result<Check, Failure> {
        let next = match cx.config.postgres_url {
            Some(_) => format!(
                "check that PostgreSQL is up and the URL is right (postgres_url in {}), then \
                 run tdsync deploy again",
                cx.layout.secrets().display()
            ),
            None => "check the data directory's permissions and free space, then run tdsync \
                     deploy again"
                .into(),
        };
        cx.run_tdsync(&["tenant", "list", "--json"], &next)?;
        Ok(Check::Done(format!(
            "{}: reachable, schema current",
            Self::describe(cx)
        )))
    }
}

/// Redis answers PING (with AUTH when the URL carries a password).
pub struct Redis;

impl Step for Redis {
    fn title(&self) -> String {
        "Redis".into()
    }

    fn plan(&self, cx: &Context) -> String {
        match &cx.config.redis_url {
            Some(url) => format!("check that {} answers PING", redact(url)),
            None => "none (one server process)".into(),
        }
    }

    fn check(&self, cx: &mut Context) -> Result<Check, Failure> {
        let Some(raw) = &cx.config.redis_url else {
            return Ok(Check::Done("none (one server process)".into()));
        };
        let next = format!(
            "start Redis or fix redis_url in {}, then run tdsync deploy again",
            cx.layout.secrets().display()
        );
        let url = url::Url::parse(raw)
            .map_err(|e| Failure::new(format!("{}: {e}", redact(raw)), next.clone()))?;
        if url.scheme() == "rediss" {
            return Ok(Check::Done(format!(
                "{} (TLS: checked by the server when it starts)",
                redact(raw)
            )));
        }
        ping(&url).map_err(|reason| Failure::new(format!("{}: {reason}", redact(raw)), next))?;
        Ok(Check::Done(format!("{} answers PING", redact(raw))))
    }
}

pub(crate) fn ping(url: &url::Url) -> Result<(), String> {
    let host = url.host_str().unwrap_or("127.0.0.1");
    let port = url.port().unwrap_or(6379);
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} has no address"))?;
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .map_err(|e| format!("cannot connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    let mut send = |parts: &[&str]| -> Result<String, String> {
        let mut frame = format!("*{}\r\n", parts.len());
        for part in parts {
            frame.push_str(&format!("${}\r\n{part}\r\n", part.len()));
        }
        writer
            .write_all(frame.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut line = String::new();
        reader.read_line(&mut line).map_err(|e| e.to_string())?;
        Ok(line.trim_end().to_string())
    };
    if let Some(password) = url.password() {
        let user = match url.username() {
            "" => "default",
            user => user,
        };
        let answer = send(&["AUTH", user, password])?;
        if !answer.starts_with("+OK") {
            return Err(format!("AUTH refused: {answer}"));
        }
    }
    match send(&["PING"])? {
        answer if answer.starts_with("+PONG") => Ok(()),
        answer => Err(format!("PING answered {answer}")),
    }
}

/// A first backup written to the target proves it exists and takes writes with these
/// credentials; done once per target and credentials.
pub struct Backups;

impl Backups {
    fn digest(cx: &Context) -> Option<String> {
        let mut hasher = Sha256::new();
        match &cx.config.backup {
            Backup::None => return None,
            Backup::Dir(dir) => hasher.update(dir.display().to_string()),
            Backup::S3 {
                url,
                key_id,
                secret,
            } => {
                for part in [url, key_id, secret] {
                    hasher.update(part);
                    hasher.update([0]);
                }
            }
        }
        Some(hex::encode(hasher.finalize()))
    }
}

impl Step for Backups {
    fn title(&self) -> String {
        "backups".into()
    }

    fn plan(&self, cx: &Context) -> String {
        match cx.config.backup {
            Backup::None => "none".into(),
            _ => format!("write a first backup to {}", cx.config.backup_to()),
        }
    }

    fn check(&self, cx: &mut Context) -> Result<Check, Failure> {
        let Some(digest) = Self::digest(cx) else {
            return Ok(Check::Done(
                "none (`tdsync backup --to URL` takes one by hand)".into(),
            ));
        };
        Ok(if cx.state.backup_checked.as_ref() == Some(&digest) {
            Check::Done(format!("{} takes backups", cx.config.backup_to()))
        } else {
            Check::Todo(format!("write a first backup to {}", cx.config.backup_to()))
        })
    }

    fn apply(&self, cx: &mut Context) -> Result<(), Failure> {
        let next = match &cx.config.backup {
            Backup::S3 { .. } => format!(
                "check that the bucket exists and that the key may write to it (backup_url and \
                 s3_access_key_id in {}, s3_secret_access_key in {}), then run tdsync deploy again",
                cx.layout.answers().display(),
                cx.layout.secrets().display()
            ),
            _ => "check the directory's permissions and free space, then run tdsync deploy again"
                .into(),
        };
        let target = cx.config.backup_to();
        cx.run_tdsync(&["backup", "--to", &target], &next)?;
        cx.state.backup_checked = Self::digest(cx);
        cx.state
            .save(&cx.layout)
            .map_err(|e| Failure::new(e.to_string(), next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redact("postgres://td:hunter2@db.example:5432/td"),
            "postgres://td:redacted@db.example:5432/td"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
