//! Logging: structured `tracing` output, text or JSON. Request logs carry the request id,
//! method, matched route, status and latency — never a header, so never a token.

use tracing_subscriber::{EnvFilter, fmt};

use crate::configuration::LogFormat;

/// Installs the global subscriber (once; later calls are no-ops).
pub fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
