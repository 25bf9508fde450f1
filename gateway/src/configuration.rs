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
}
