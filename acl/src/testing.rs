//! Test support (feature `test-support`): a throwaway Postgres database per test, the rule for
//! tests that need a service, and a clock that moves only when told to.
//!
//! `infra/test.sh` starts a throwaway Postgres cluster and exports `TDSYNC_TEST_POSTGRES_URL`
//! (a superuser URL) and `TDSYNC_REQUIRE_SERVICES=1`. A Postgres test then **fails** if the URL
//! is missing; run directly with `cargo test` and no URL, it is skipped with a loud message.
//! Each test gets its own database (`CREATE DATABASE`), dropped afterwards, so tests run in
//! parallel without seeing each other (crates.io's per-test databases, without the template:
//! our migrations take milliseconds).

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use parking_lot::Mutex;
use sqlx::{Connection, PgConnection};

use crate::Clock;

pub const POSTGRES_URL_VAR: &str = "TDSYNC_TEST_POSTGRES_URL";
pub const REQUIRE_SERVICES_VAR: &str = "TDSYNC_REQUIRE_SERVICES";

/// The Postgres server to test against, or `None` (after saying so on stderr) when there is
/// none and services are not required. Panics when they are required and the URL is missing.
pub fn postgres_server_url(test: &str) -> Option<String> {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var(REQUIRE_SERVICES_VAR).is_ok_and(|v| v == "1") => panic!(
            "{test}: {POSTGRES_URL_VAR} is not set but {REQUIRE_SERVICES_VAR}=1: \
             the Postgres tests must run (use ./infra/test.sh, which starts Postgres)"
        ),
        _ => {
            // Straight to stderr, not `eprintln!`: the test harness would capture that and show
            // it only for failures, and a skip must be seen.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "!!! SKIPPED {test}: no Postgres ({POSTGRES_URL_VAR} is not set). \
                 Run ./infra/test.sh to include the Postgres backend."
            );
            None
        }
    }
}

/// A database created for one test and dropped when this is dropped.
pub struct PostgresTestDb {
    server_url: String,
    name: String,
    url: String,
}

impl PostgresTestDb {
    /// Creates a fresh, empty database; `None` when Postgres tests are skipped (see
    /// [`postgres_server_url`]).
    pub async fn create(test: &str) -> Option<PostgresTestDb> {
        let server_url = postgres_server_url(test)?;
        let slug: String = test
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(30)
            .collect();
        let name = format!(
            "tdsync_{slug}_{}",
            tdsync_protocol::ids::random_chars(b"0123456789abcdefghijklmnopqrstuvwxyz", 10)
        );
        let mut admin = PgConnection::connect(&server_url)
            .await
            .unwrap_or_else(|e| panic!("{test}: cannot connect to {POSTGRES_URL_VAR}: {e}"));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("{test}: CREATE DATABASE {name}: {e}"));
        let _ = admin.close().await;
        let url = with_database(&server_url, &name);
        Some(PostgresTestDb {
            server_url,
            name,
            url,
        })
    }

    /// The URL of this test's database.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Takes the database away from its clients (new connections refused, open ones ended), or
    /// gives it back: a control-plane outage, for real.
    pub async fn set_reachable(&self, reachable: bool) {
        let mut admin = PgConnection::connect(&self.server_url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {POSTGRES_URL_VAR}: {e}"));
        let name = &self.name;
        let sql = format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS {reachable}");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("ALTER DATABASE {name}: {e}"));
        if !reachable {
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
            )
            .bind(name)
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("ending the connections to {name}: {e}"));
        }
        let _ = admin.close().await;
    }
}

impl Drop for PostgresTestDb {
    fn drop(&mut self) {
        // Dropped outside any runtime the test may have had: a thread with its own.
        let (server_url, name) = (self.server_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut admin = PgConnection::connect(&server_url).await.ok()?;
                let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut admin)
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("note: could not drop test database {}", self.name);
        }
    }
}

/// `scheme://authority/olddb?params` → `scheme://authority/<db>?params`.
pub fn with_database(url: &str, db: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let authority = before_query.split('/').next().unwrap_or(before_query);
    match query {
        Some(q) => format!("{scheme}://{authority}/{db}?{q}"),
        None => format!("{scheme}://{authority}/{db}"),
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_is_replaced() {
        assert_eq!(
            with_database("postgres://u@h:5/postgres", "x"),
            "postgres://u@h:5/x"
        );
        assert_eq!(with_database("postgres://u@h:5", "x"), "postgres://u@h:5/x");
        assert_eq!(
            with_database("postgresql://u:p@h/db?sslmode=disable", "x"),
            "postgresql://u:p@h/x?sslmode=disable"
        );
    }
}

/// A clock that moves only when told to (tests and benchmarks).
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> ManualClock {
        ManualClock(Arc::new(Mutex::new(start.trunc_subsecs(6))))
    }

    pub fn advance(&self, by: TimeDelta) {
        let mut now = self.0.lock();
        *now = (*now + by).trunc_subsecs(6);
    }

    pub fn set(&self, to: DateTime<Utc>) {
        *self.0.lock() = to.trunc_subsecs(6);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock()
    }
}
