//! Test fixtures: a fresh store per test on either backend, and the macro that runs a test
//! function once per backend.

use chrono::{DateTime, TimeZone, Utc};
use tdsync_acl::{
    Acl, AclConfig, AnyStore, ControlPlaneUrl, HashCost, ManualClock, testing::PostgresTestDb,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One test's store, and what keeps it alive (its temp dir or its Postgres database).
pub struct TestStore {
    pub backend: Backend,
    pub url: ControlPlaneUrl,
    pub store: AnyStore,
    pub dir: Option<tempfile::TempDir>,
    _db: Option<PostgresTestDb>,
}

impl TestStore {
    /// A fresh store, or `None` when the Postgres tests are skipped.
    pub async fn open(backend: Backend, test: &str) -> Option<TestStore> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = ControlPlaneUrl::default_for(dir.path());
                let store = AnyStore::open(&url).await.unwrap();
                Some(TestStore {
                    backend,
                    url,
                    store,
                    dir: Some(dir),
                    _db: None,
                })
            }
            Backend::Postgres => {
                let db = PostgresTestDb::create(test).await?;
                let url = ControlPlaneUrl::parse(db.url()).unwrap();
                let store = AnyStore::open(&url).await.unwrap();
                wait_listening(&store).await;
                Some(TestStore {
                    backend,
                    url,
                    store,
                    dir: None,
                    _db: Some(db),
                })
            }
        }
    }

    /// Another store on the same database, as a second process or node would open it.
    pub async fn another_instance(&self) -> AnyStore {
        let store = AnyStore::open(&self.url).await.unwrap();
        wait_listening(&store).await;
        store
    }
}

/// Postgres verifications are only fast once the revocation listener is up.
async fn wait_listening(store: &AnyStore) {
    if let AnyStore::Postgres(pg) = store {
        assert!(
            pg.wait_listening(std::time::Duration::from_secs(10)).await,
            "the Postgres revocation listener did not connect"
        );
    }
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap()
}

/// Cheap hashing (tests mint hundreds of tokens) and a clock the test moves.
pub fn fast_config() -> AclConfig {
    AclConfig {
        hash_cost: HashCost::Fast,
        ..AclConfig::default()
    }
}

pub fn acl_on(store: AnyStore, clock: &ManualClock) -> Acl {
    Acl::new(store, fast_config()).with_clock(clock.clone())
}

/// Runs each named `async fn(TestStore)` of the calling module once per backend.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let t = $crate::support::TestStore::open(
                        $crate::support::Backend::Sqlite,
                        stringify!($name),
                    )
                    .await
                    .expect("SQLite is always available");
                    super::$name(t).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(t) = $crate::support::TestStore::open(
                        $crate::support::Backend::Postgres,
                        stringify!($name),
                    )
                    .await
                    {
                        super::$name(t).await;
                    }
                }
            )*
        }
    };
}
