//! The tracing output of the whole test run, captured: one global subscriber (installed by the
//! first server) writes every event — text and JSON, as both of `tdsync serve`'s log formats
//! would, at debug level (trace for tdsync's crates), more than the server logs by default — into
//! a buffer. Every token secret the suite sees is remembered, so a test can look for any of them
//! in everything logged so far.

use std::{
    io::Write,
    sync::{Mutex, Once},
};

use tracing_subscriber::{EnvFilter, fmt, layer::SubscriberExt, util::SubscriberInitExt};

static BUFFER: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        BUFFER
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber (once per test binary).
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = EnvFilter::new(
            "debug,tdsync_gateway=trace,tdsync_acl=trace,tdsync_tenants=trace,tdsync_client=trace",
        );
        tracing_subscriber::registry()
            .with(filter)
            .with(fmt::layer().with_ansi(false).with_writer(|| Capture))
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(|| Capture),
            )
            .try_init()
            .expect("no other global subscriber in this test binary");
    });
}

/// Everything logged so far.
pub fn captured() -> String {
    String::from_utf8_lossy(&BUFFER.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
}

/// Notes a whole token (`tds_<id>_<secret>`) the suite has seen.
pub fn remember(token: &str) {
    SECRETS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(token.to_string());
}

/// The secret halves of every token remembered so far.
pub fn secrets() -> Vec<String> {
    SECRETS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|t| secret_of(t).to_string())
        .collect()
}

/// The part of `tds_<id>_<secret>` after the id.
pub fn secret_of(token: &str) -> &str {
    let rest = token.strip_prefix("tds_").expect("a tdsync token");
    let (_id, secret) = rest.split_once('_').expect("tds_<id>_<secret>");
    assert!(
        secret.len() >= 32,
        "a secret of {} characters",
        secret.len()
    );
    secret
}
