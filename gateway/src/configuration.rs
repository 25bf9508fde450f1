//! `tdsync serve`'s settings: flags, each with an environment variable and an embedded default,
//! so `tdsync serve` works on a fresh machine with nothing else installed.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, ValueEnum};
use tdsync_live::Rate;

use crate::limits::{self, LimitClock, Limits, TrustedProxies};

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "TDSYNC_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Most project shards kept open at once (least recently used are closed first).
    #[arg(long, env = "TDSYNC_MAX_OPEN_SHARDS", default_value_t = tdsync_tenants::TenantsConfig::DEFAULT_MAX_OPEN_SHARDS)]
    pub max_open_shards: usize,
    /// `normal`: commits survive a crash of tdsync (the newest may be lost on power failure);
    /// `full`: every push is on disk before it is acknowledged; `replicated` (needs
    /// --backup-to): every push is in a segment of the backup before it is acknowledged, so an
    /// acknowledged event survives the loss of the whole machine.
    #[arg(long, env = "TDSYNC_DURABILITY", value_enum, default_value_t = Durability::Normal)]
    pub durability: Durability,
    /// Log format.
    #[arg(long, env = "TDSYNC_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info` or `tdsync_gateway=debug,info`.
    #[arg(long, env = "TDSYNC_LOG", default_value = "info")]
    pub log: String,
    /// Share live state (heads, device cursors, rate-limit counts, wake-ups for SSE and
    /// long-polls) with every process on this Redis, e.g. `redis://:PASSWORD@HOST:6379/0`.
    /// Without it all of it stays in this process. An unreachable Redis does not stop the
    /// server: it serves from its own state and picks Redis up when it answers.
    #[arg(long = "redis", env = "TDSYNC_REDIS_URL", value_name = "URL")]
    pub redis: Option<RedisArg>,
    /// Put before every Redis key and channel (deployments sharing one Redis keep apart).
    #[arg(long, env = "TDSYNC_REDIS_PREFIX", default_value = tdsync_live_redis::RedisConfig::DEFAULT_PREFIX)]
    pub redis_prefix: String,
    /// Ship every project's log (and snapshots, and a SQLite control plane) to this object
    /// storage: file:///PATH or s3://BUCKET/PREFIX (credentials, region and endpoint from
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL, or
    /// ?endpoint=URL&region=R). Empty: no backups.
    #[arg(long, env = "TDSYNC_BACKUP_TO", value_name = "URL", default_value = "")]
    pub backup_to: String,
    /// Seconds between shipments of what changed.
    #[arg(long, env = "TDSYNC_BACKUP_INTERVAL", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub backup_interval: u64,
    /// `/healthz` reports the backup behind when a change waited longer than this many seconds
    /// to ship.
    #[arg(long, env = "TDSYNC_BACKUP_MAX_LAG", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
    pub backup_max_lag: u64,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub rate_limits: RateLimitArgs,
    #[command(flatten)]
    pub people: PeopleArgs,
}

/// How people get in by themselves: `td auth login` (an emailed link), invitations by email,
/// and GitHub sign-in for linked projects.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "People (logins, invitations, GitHub)")]
pub struct PeopleArgs {
    /// Where people reach this server: the links in login and invitation emails
    /// [default: http://<the bound address>].
    #[arg(long, env = "TDSYNC_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Send login and invitation emails through this SMTP server: smtp://HOST:PORT (plain),
    /// smtp://USER:PASSWORD@HOST:587?tls=required (STARTTLS) or smtps://USER:PASSWORD@HOST:465.
    /// Without it, each email (with its link) is written to this server's log, so a single
    /// machine still works.
    #[arg(long, env = "TDSYNC_SMTP_URL", value_name = "URL")]
    pub smtp_url: Option<String>,
    /// The From of emails [default: tdsync <noreply@HOST of --public-url>].
    #[arg(long, env = "TDSYNC_MAIL_FROM", value_name = "MAILBOX")]
    pub mail_from: Option<String>,
    /// The key that seals secrets kept at rest (people's GitHub tokens), as 64 hex digits.
    /// Without it the key is read from --secret-key-file, made on first start. Every process
    /// of a cluster needs the same key.
    #[arg(
        long,
        env = "TDSYNC_SECRET_KEY",
        value_name = "HEX",
        hide_env_values = true
    )]
    pub secret_key: Option<String>,
    /// Where the secret key is kept when not given [default: <data-dir>/secret.key].
    #[arg(long, env = "TDSYNC_SECRET_KEY_FILE", value_name = "PATH")]
    pub secret_key_file: Option<PathBuf>,
    /// The GitHub OAuth app (or GitHub App) that signs people in for projects linked to a
    /// repository (`tdsync project link-github`): whoever can read the repository gets a
    /// read-only token. Register <public URL>/login/github/callback as its callback URL.
    /// Without it, GitHub sign-in is off.
    #[arg(long, env = "TDSYNC_GITHUB_CLIENT_ID", value_name = "ID")]
    pub github_client_id: Option<String>,
    /// The app's client secret: the browser sign-in needs it (`tdsync login github`, the
    /// device flow, does not).
    #[arg(
        long,
        env = "TDSYNC_GITHUB_CLIENT_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub github_client_secret: Option<String>,
    /// GitHub's web host (sign-in pages, OAuth endpoints); https://HOST for GitHub Enterprise
    /// Server.
    #[arg(
        long,
        env = "TDSYNC_GITHUB_URL",
        value_name = "URL",
        default_value = "https://github.com"
    )]
    pub github_url: String,
    /// GitHub's REST API; https://HOST/api/v3 for GitHub Enterprise Server.
    #[arg(
        long,
        env = "TDSYNC_GITHUB_API_URL",
        value_name = "URL",
        default_value = "https://api.github.com"
    )]
    pub github_api_url: String,
    /// Seconds between rounds of the GitHub re-check (tokens granted from GitHub access are
    /// revoked when the access is gone).
    #[arg(long, env = "TDSYNC_GITHUB_RECHECK_SECS", value_name = "SECONDS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub github_recheck_secs: u64,
    /// A GitHub grant is checked again once its last check is this many seconds old.
    #[arg(long, env = "TDSYNC_GITHUB_RECHECK_AGE_SECS", value_name = "SECONDS", default_value_t = tdsync_acl::GITHUB_RECHECK.num_seconds() as u64, value_parser = clap::value_parser!(u64).range(0..=2_592_000))]
    pub github_recheck_age_secs: u64,
}

impl PeopleArgs {
    pub fn settings(&self) -> crate::people::PeopleSettings {
        let given = |v: &Option<String>| {
            v.as_ref()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        crate::people::PeopleSettings {
            public_url: given(&self.public_url),
            smtp_url: given(&self.smtp_url),
            mail_from: given(&self.mail_from),
            secret_key: given(&self.secret_key),
            secret_key_file: self.secret_key_file.clone(),
            github: given(&self.github_client_id).map(|client_id| crate::people::GithubSettings {
                client_id,
                client_secret: given(&self.github_client_secret),
                web_url: self.github_url.trim().to_string(),
                api_url: self.github_api_url.trim().to_string(),
                recheck_every: std::time::Duration::from_secs(self.github_recheck_secs),
                recheck_age: std::time::Duration::from_secs(self.github_recheck_age_secs),
            }),
        }
    }
}

/// A shard node of a cluster (`--role shard`): it serves the projects whose lease it holds in
/// the Postgres control plane, takes a project over (restoring it from the backup) when its
/// lease is free, and answers 421 with the owner's URL for one another node holds.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Cluster")]
pub struct ClusterArgs {
    /// `all`: one process serves every project (no cluster); `shard`: a shard node, which
    /// needs a Postgres control plane, --redis and --backup-to; `gateway`: stateless, checks
    /// tokens and forwards every project's sync to its shard node (needs a Postgres control
    /// plane).
    #[arg(long, env = "TDSYNC_ROLE", value_enum, default_value_t = Role::All)]
    pub role: Role,
    /// This shard node's name in the cluster (1 to 64 of A-Z, a-z, 0-9, '_', '-').
    #[arg(long, env = "TDSYNC_NODE_ID", default_value = "")]
    pub node_id: String,
    /// The URL gateways and clients reach this node on [default: http://<--listen>].
    #[arg(long, env = "TDSYNC_ADVERTISE_URL", default_value = "")]
    pub advertise_url: String,
    /// Seconds a project's lease lasts without renewal: how long a dead node's projects wait
    /// before another node takes them over (renewed every fifth of it).
    #[arg(long, env = "TDSYNC_LEASE_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub lease_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    All,
    Gateway,
    Shard,
}

impl ServeArgs {
    /// Where and how often to ship backups, when `--backup-to` is given.
    pub fn backup(&self) -> Option<BackupSettings> {
        let url = self.backup_to.trim();
        (!url.is_empty()).then(|| BackupSettings {
            url: url.to_string(),
            interval: std::time::Duration::from_secs(self.backup_interval),
            max_lag: std::time::Duration::from_secs(self.backup_max_lag),
        })
    }

    /// The Redis backend's settings, when `--redis` is given.
    pub fn redis_config(&self) -> Option<tdsync_live_redis::RedisConfig> {
        let url = self.redis.clone()?.0?;
        let mut config = tdsync_live_redis::RedisConfig::new(url);
        config.prefix = self.redis_prefix.clone();
        Some(config)
    }
}

/// `--redis`'s value: a Redis URL, or empty for none (as `TDSYNC_REDIS_URL=` in an env file).
#[derive(Debug, Clone)]
pub struct RedisArg(Option<tdsync_live_redis::RedisUrl>);

impl std::str::FromStr for RedisArg {
    type Err = tdsync_live_redis::BadRedisUrl;

    fn from_str(s: &str) -> Result<RedisArg, Self::Err> {
        if s.trim().is_empty() {
            return Ok(RedisArg(None));
        }
        s.parse().map(|url| RedisArg(Some(url)))
    }
}

/// Rate limits (`limits.rs`): per token for push, pull and other routes; per client address for
/// requests without a token and for tokens that fail to verify. A refusal is td's `429
/// rate_limited` with `Retry-After`.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Rate limits")]
pub struct RateLimitArgs {
    /// A request over its limit is answered `429 rate_limited` (td's error envelope) with
    /// `Retry-After` in whole seconds, and counted in /metrics (`tdsync_rate_limited_total`,
    /// by class). Each limit is a rate a minute on average and a burst taken at once; the
    /// defaults leave room for td's autosync from several agents sharing a token. `off`:
    /// nothing is counted or refused.
    #[arg(long, env = "TDSYNC_RATE_LIMITS", value_enum, default_value_t = Switch::On)]
    pub rate_limits: Switch,
    /// Pushes per token, a minute on average.
    #[arg(long, env = "TDSYNC_RATE_LIMIT_PUSH", value_name = "PER_MINUTE", default_value_t = limits::DEFAULT_PUSH.per_minute, value_parser = at_least_one())]
    pub rate_limit_push: u32,
    /// Pushes per token at once.
    #[arg(long, env = "TDSYNC_RATE_LIMIT_PUSH_BURST", value_name = "N", default_value_t = limits::DEFAULT_PUSH.burst, value_parser = at_least_one())]
    pub rate_limit_push_burst: u32,
    /// Pulls per token, a minute on average (a long poll counts once).
    #[arg(long, env = "TDSYNC_RATE_LIMIT_PULL", value_name = "PER_MINUTE", default_value_t = limits::DEFAULT_PULL.per_minute, value_parser = at_least_one())]
    pub rate_limit_pull: u32,
    /// Pulls per token at once.
    #[arg(long, env = "TDSYNC_RATE_LIMIT_PULL_BURST", value_name = "N", default_value_t = limits::DEFAULT_PULL.burst, value_parser = at_least_one())]
    pub rate_limit_pull_burst: u32,
    /// Other requests with a token (status, snapshot, projects, members, tokens, conflicts,
    /// history, event streams), per token, a minute on average.
    #[arg(long, env = "TDSYNC_RATE_LIMIT_OTHER", value_name = "PER_MINUTE", default_value_t = limits::DEFAULT_OTHER.per_minute, value_parser = at_least_one())]
    pub rate_limit_other: u32,
    /// Other requests per token at once.
    #[arg(long, env = "TDSYNC_RATE_LIMIT_OTHER_BURST", value_name = "N", default_value_t = limits::DEFAULT_OTHER.burst, value_parser = at_least_one())]
    pub rate_limit_other_burst: u32,
    /// Requests without a token (healthz, metrics, openapi.json, any route called without
    /// `Authorization`), per client address (IPv6: per /64), a minute on average.
    #[arg(long, env = "TDSYNC_RATE_LIMIT_IP", value_name = "PER_MINUTE", default_value_t = limits::DEFAULT_UNAUTHENTICATED.per_minute, value_parser = at_least_one())]
    pub rate_limit_ip: u32,
    /// Requests without a token per client address at once.
    #[arg(long, env = "TDSYNC_RATE_LIMIT_IP_BURST", value_name = "N", default_value_t = limits::DEFAULT_UNAUTHENTICATED.burst, value_parser = at_least_one())]
    pub rate_limit_ip_burst: u32,
    /// Failed authentications (a token that is malformed, unknown, wrong, expired or revoked)
    /// per client address, a minute on average; past it, the address's tokens are not verified
    /// until it refills.
    #[arg(long, env = "TDSYNC_RATE_LIMIT_AUTH_FAILURES", value_name = "PER_MINUTE", default_value_t = limits::DEFAULT_FAILED_AUTH.per_minute, value_parser = at_least_one())]
    pub rate_limit_auth_failures: u32,
    /// Failed authentications per client address at once.
    #[arg(long, env = "TDSYNC_RATE_LIMIT_AUTH_FAILURES_BURST", value_name = "N", default_value_t = limits::DEFAULT_FAILED_AUTH.burst, value_parser = at_least_one())]
    pub rate_limit_auth_failures_burst: u32,
    /// Proxies whose `X-Forwarded-For` names the client (comma-separated addresses or CIDR
    /// blocks, e.g. `10.0.0.0/8,127.0.0.1`): from one of them, the client is the right-most
    /// address of the header that is not a trusted proxy. Empty: the TCP peer is the client
    /// (behind an unlisted proxy, all clients share the proxy's per-address limits).
    #[arg(
        long,
        env = "TDSYNC_TRUSTED_PROXIES",
        value_name = "CIDRS",
        default_value = ""
    )]
    pub trusted_proxies: TrustedProxies,
}

impl RateLimitArgs {
    /// The limits these options set.
    pub fn limits(&self) -> Limits {
        let rate = |per_minute, burst| Rate { per_minute, burst };
        Limits {
            enabled: self.rate_limits == Switch::On,
            push: rate(self.rate_limit_push, self.rate_limit_push_burst),
            pull: rate(self.rate_limit_pull, self.rate_limit_pull_burst),
            other: rate(self.rate_limit_other, self.rate_limit_other_burst),
            unauthenticated: rate(self.rate_limit_ip, self.rate_limit_ip_burst),
            failed_auth: rate(
                self.rate_limit_auth_failures,
                self.rate_limit_auth_failures_burst,
            ),
            trusted_proxies: self.trusted_proxies.clone(),
            clock: LimitClock::monotonic(),
        }
    }
}

fn at_least_one() -> clap::builder::RangedI64ValueParser<u32> {
    clap::value_parser!(u32).range(1..)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Durability {
    Normal,
    Full,
    Replicated,
}

/// `--backup-to` and its companions.
#[derive(Debug, Clone)]
pub struct BackupSettings {
    pub url: String,
    pub interval: std::time::Duration,
    pub max_lag: std::time::Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Everything the server needs, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; None: SQLite in the data directory.
    pub control_plane: Option<String>,
    pub max_open_shards: usize,
    pub durability: Durability,
    /// Live state shared through Redis; None: in this process.
    pub redis: Option<tdsync_live_redis::RedisConfig>,
    pub limits: Limits,
    /// Shipping to a backup target; None: no backups.
    pub backup: Option<BackupSettings>,
    /// A shard node of a cluster; None: `--role all` or `gateway`.
    pub shard: Option<ShardSettings>,
    /// Public URL, mail, the secret key (logins, invitations, GitHub).
    pub people: crate::people::PeopleSettings,
    /// `--role gateway`.
    pub gateway: bool,
}

/// `--role shard` and its companions.
#[derive(Debug, Clone)]
pub struct ShardSettings {
    pub node_id: String,
    /// Empty: `http://<the bound address>`.
    pub advertise_url: String,
    pub lease: std::time::Duration,
}

impl ClusterArgs {
    pub fn shard(&self) -> Option<ShardSettings> {
        (self.role == Role::Shard).then(|| ShardSettings {
            node_id: self.node_id.trim().to_string(),
            advertise_url: self.advertise_url.trim().to_string(),
            lease: std::time::Duration::from_secs(self.lease_secs),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use clap::{Args, Command};

    use super::ServeArgs;

    /// `.env.example` lists every `tdsync serve` option's variable with the option's default.
    #[test]
    fn env_example_lists_every_serve_option_with_its_default() {
        let example: HashMap<&str, &str> = include_str!("../../.env.example")
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .collect();
        let serve = ServeArgs::augment_args(Command::new("serve"));
        let mut checked = 0;
        for arg in serve.get_arguments() {
            let Some(var) = arg.get_env().and_then(|v| v.to_str()) else {
                continue;
            };
            let default = arg
                .get_default_values()
                .first()
                .and_then(|v| v.to_str())
                .unwrap_or("");
            assert_eq!(example.get(var), Some(&default), "{var} in .env.example");
            checked += 1;
        }
        assert!(checked >= 16, "{checked} options");
    }
}
