//! `tdsync serve`'s settings: flags, each with an environment variable and an embedded default,
//! so `tdsync serve` works on a fresh machine with nothing else installed.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "TDSYNC_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Most project shards kept open at once (least recently used are closed first).
    #[arg(long, env = "TDSYNC_MAX_OPEN_SHARDS", default_value_t = tdsync_tenants::TenantsConfig::DEFAULT_MAX_OPEN_SHARDS)]
    pub max_open_shards: usize,
    /// `normal`: commits survive a crash of tdsync (the newest may be lost on power failure);
    /// `full`: every push is on disk before it is acknowledged.
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
}

impl ServeArgs {
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Durability {
    Normal,
    Full,
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
}
