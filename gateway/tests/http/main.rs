//! The gateway's HTTP suite, one binary: a real server per test (`startup::serve` on
//! 127.0.0.1:0 over a fresh data directory and control plane), driven by a blocking HTTP client
//! the way td's client drives it, with exact statuses and bodies. Tests marked by
//! `both_backends!` run on the SQLite and the Postgres control plane (Postgres from
//! `TDSYNC_TEST_POSTGRES_URL`: required under `TDSYNC_REQUIRE_SERVICES=1`, skipped loudly
//! otherwise).

mod support;

mod errors;
mod invitations;
mod limits;
mod live;
mod login;
mod members;
mod observability;
mod openapi;
mod outage;
mod projects;
mod recovery;
mod shutdown;
mod snapshot;
mod sync;
mod tokens;
mod transport;
