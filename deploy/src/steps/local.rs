//! PostgreSQL and Redis on this machine, from Debian's packages (as root): installed when
//! missing, started (systemd, or Debian's own cluster and daemon tools without it), and for
//! PostgreSQL a role and database of tdsync's own, whose URL is kept with the secret answers.

use std::process::Command;

use crate::answers::{Answers, Question};
use crate::config::LOCAL_REDIS;
use crate::plan::{Check, Context, Failure, Step};
use crate::steps::backends::{ping, redact};
use crate::steps::host::run_command;

/// The role and database the deploy makes for tdsync.
const NAME: &str = "tdsync";

fn systemd() -> bool {
    std::path::Path::new("/run/systemd/system").is_dir()
}

fn installed(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

fn apt_install(cx: &Context, package: &str) -> Result<(), Failure> {
    if !cx.reach.root {
        return Err(Failure::new(
            format!("installing {package} needs root"),
            "run tdsync deploy as root, or answer with a URL",
        ));
    }
    run_command(Command::new("apt-get").args(["update", "-qq"]))?;
    run_command(
        Command::new("apt-get")
            .args(["install", "-y", "-q", package])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .map(drop)
}

/// A cluster as `pg_lsclusters` lists it.
struct Cluster {
    version: String,
    name: String,
    port: u16,
    online: bool,
}

fn clusters() -> Vec<Cluster> {
    let Ok(output) = Command::new("pg_lsclusters").arg("--no-header").output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            Some(Cluster {
                version: f.first()?.to_string(),
                name: f.get(1)?.to_string(),
                port: f.get(2)?.parse().ok()?,
                online: f.get(3)?.starts_with("online"),
            })
        })
        .collect()
}

/// `psql` as the postgres superuser on the cluster's port.
fn psql(port: u16, sql: &str) -> Result<String, Failure> {
    run_command(
        Command::new("runuser")
            .args(["-u", "postgres", "--", "psql", "-X", "-q", "-t", "-A"])
            .args(["-v", "ON_ERROR_STOP=1", "-p", &port.to_string(), "-c", sql]),
    )
}

pub struct LocalPostgres;

impl LocalPostgres {
    /// The URL the deploy made, if it still connects.
    fn working_url(cx: &Context) -> Option<String> {
        let url = cx.config.postgres_url.clone()?;
        let ok = Command::new("psql")
            .args([&url, "-X", "-q", "-c", "SELECT 1"])
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then_some(url)
    }
}

impl Step for LocalPostgres {
    fn title(&self) -> String {
        "local PostgreSQL".into()
    }

    fn plan(&self, cx: &Context) -> String {
        if cx.config.local_postgres {
            format!(
                "install Debian's postgresql if missing, start its cluster, make the role and \
                 database {NAME} with a new password (kept in {})",
                cx.layout.secrets().display()
            )
        } else {
            "not used".into()
        }
    }

    fn check(&self, cx: &mut Context) -> Result<Check, Failure> {
        if !cx.config.local_postgres {
            return Ok(Check::Done("not used".into()));
        }
        Ok(match Self::working_url(cx) {
            Some(url) => Check::Done(format!("{} answers", redact(&url))),
            None if !installed("pg_lsclusters") => {
                Check::Todo("install Debian's postgresql package".into())
            }
            None => Check::Todo(format!("start PostgreSQL and make the database {NAME}")),
        })
    }

    fn apply(&self, cx: &mut Context) -> Result<(), Failure> {
        if !installed("pg_lsclusters") {
            apt_install(cx, "postgresql")?;
        }
        let next = "fix what it says, then run tdsync deploy again";
        let cluster = clusters().into_iter().next().ok_or_else(|| {
            Failure::new(
                "PostgreSQL is installed but has no cluster",
                "make one (pg_createcluster VERSION main), then run tdsync deploy again",
            )
        })?;
        if !cluster.online {
            if systemd() {
                run_command(Command::new("systemctl").args(["enable", "--now", "postgresql"]))?;
            } else {
                run_command(Command::new("pg_ctlcluster").args([
                    &cluster.version,
                    &cluster.name,
                    "start",
                ]))?;
            }
        }
        // A new password each time the URL stopped working: the role is the deploy's own.
        let password = new_password()?;
        let exists = psql(
            cluster.port,
            &format!("SELECT 1 FROM pg_roles WHERE rolname = '{NAME}'"),
        )?;
        let verb = if exists.trim() == "1" {
            "ALTER"
        } else {
            "CREATE"
        };
        psql(
            cluster.port,
            &format!("{verb} ROLE {NAME} LOGIN PASSWORD '{password}'"),
        )?;
        let exists = psql(
            cluster.port,
            &format!("SELECT 1 FROM pg_database WHERE datname = '{NAME}'"),
        )?;
        if exists.trim() != "1" {
            psql(
                cluster.port,
                &format!("CREATE DATABASE {NAME} OWNER {NAME}"),
            )?;
        }
        let url = format!(
            "postgres://{NAME}:{password}@127.0.0.1:{}/{NAME}",
            cluster.port
        );
        let mut answers =
            Answers::load(&cx.layout, cx.reach).map_err(|e| Failure::new(e.to_string(), next))?;
        answers.set(Question::PostgresUrl, &url);
        answers
            .save(&cx.layout)
            .map_err(|e| Failure::new(e.to_string(), next))?;
        cx.config.postgres_url = Some(url);
        Ok(())
    }
}

/// 48 hex digits from the kernel's random source (safe inside SQL quotes and a URL).
fn new_password() -> Result<String, Failure> {
    use std::io::Read;
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Failure::new(format!("/dev/urandom: {e}"), "run tdsync deploy again"))?;
    Ok(hex::encode(bytes))
}

pub struct LocalRedis;

impl Step for LocalRedis {
    fn title(&self) -> String {
        "local Redis".into()
    }

    fn plan(&self, cx: &Context) -> String {
        if cx.config.local_redis {
            format!("install Debian's redis-server if missing and start it ({LOCAL_REDIS})")
        } else {
            "not used".into()
        }
    }

    fn check(&self, cx: &mut Context) -> Result<Check, Failure> {
        if !cx.config.local_redis {
            return Ok(Check::Done("not used".into()));
        }
        let url = url::Url::parse(LOCAL_REDIS).expect("a URL");
        Ok(match ping(&url) {
            Ok(()) => Check::Done(format!("{LOCAL_REDIS} answers PING")),
            Err(_) if !installed("redis-server") => {
                Check::Todo("install Debian's redis-server package".into())
            }
            Err(_) => Check::Todo("start redis-server".into()),
        })
    }

    fn apply(&self, cx: &mut Context) -> Result<(), Failure> {
        if !installed("redis-server") {
            apt_install(cx, "redis-server")?;
        }
        if systemd() {
            run_command(Command::new("systemctl").args(["enable", "--now", "redis-server"]))?;
        } else {
            // Debian's configuration daemonizes, on 127.0.0.1:6379, as the redis user.
            run_command(Command::new("runuser").args([
                "-u",
                "redis",
                "--",
                "redis-server",
                "/etc/redis/redis.conf",
            ]))?;
        }
        // It takes a moment to listen.
        let url = url::Url::parse(LOCAL_REDIS).expect("a URL");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while ping(&url).is_err() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Ok(())
    }
}
