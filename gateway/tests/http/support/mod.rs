//! What every test of the suite stands on (crates.io's style): [`TestServer`] (a served gateway
//! over a fresh data directory and control plane, with a clock the test moves), [`Reply`] (a
//! response as status, headers and JSON), td-shaped push bodies ([`events`]), and the tracing
//! output of the whole run ([`logs`]).

#![allow(dead_code)]

pub mod events;
pub mod logs;
mod reply;
mod server;

pub use reply::Reply;
pub use server::{Backend, Minted, TestServer, t0};

/// Polls `condition` until it holds or `within` passes (then panics with `what`): for effects
/// that are asynchronous by design, never a sleep standing in for a condition.
pub fn eventually(what: &str, within: std::time::Duration, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "not within {within:?}: {what}"
        );
        std::thread::yield_now();
    }
}

/// Runs each named `fn(TestServer)` of the calling module once per control-plane backend:
/// `sqlite::name` always, `postgres::name` when a Postgres is configured (see
/// `tdsync_acl::testing`: a loud skip without one, a failure under `TDSYNC_REQUIRE_SERVICES=1`).
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    let server = $crate::support::TestServer::start_on(
                        $crate::support::Backend::Sqlite,
                        stringify!($name),
                    )
                    .expect("SQLite is always available");
                    super::$name(server);
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    if let Some(server) = $crate::support::TestServer::start_on(
                        $crate::support::Backend::Postgres,
                        stringify!($name),
                    ) {
                        super::$name(server);
                    }
                }
            )*
        }
    };
}
