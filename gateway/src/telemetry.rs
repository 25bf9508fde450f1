//! Logging: structured `tracing` output, text or JSON. Request logs carry the request id,
//! method, matched route, status and latency — never a header, so never a token.

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt};

use crate::configuration::LogFormat;

/// Installs the global subscriber (once; later calls are no-ops). A filter that does not parse
/// is refused rather than silently widened or narrowed.
pub fn init(format: LogFormat, filter: &str) -> Result<(), tracing_subscriber::filter::ParseError> {
    let filter = EnvFilter::try_new(filter)?;
    // Colours only for a person at a terminal; a log file or collector gets plain text.
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    Ok(())
}
