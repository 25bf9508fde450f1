//! [`TestServer`]: the gateway served over real TCP on 127.0.0.1:0 through `startup::serve`
//! (stopped by a shutdown channel), over a fresh data directory and a fresh control plane
//! (SQLite in the data directory, or a per-test Postgres database). Tenants and tokens are made
//! through the `Acl` API, whose clock is a [`ManualClock`]: expiry is tested by moving it.

use std::{
    future::Future,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use serde_json::Value;
use tdsync_acl::{
    Acl, AclConfig, Actor, AnyStore, Clock, ControlPlaneUrl, HashCost, ManualClock, MintRequest,
    ProjectBinding, ProjectId, Scopes, TenantId, TokenId, testing::PostgresTestDb,
};
use tdsync_gateway::{
    limits::{LimitClock, Limits},
    people::{People, PeopleSettings},
    startup,
    state::AppState,
};
use tdsync_protocol::wire::SyncStatus;
use tdsync_tenants::{Project, Tenants, TenantsConfig};
use tokio::sync::oneshot;

use super::{Reply, logs};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where the test clock starts.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap()
}

/// A token minted for a test: its id and the whole bearer.
#[derive(Debug, Clone)]
pub struct Minted {
    pub id: TokenId,
    pub token: String,
}

/// A tenant with an admin token (all projects) and one project created through the API.
#[derive(Debug, Clone)]
pub struct Team {
    pub tenant: TenantId,
    pub admin: Minted,
    pub project: String,
}

pub struct TestServer {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub base: String,
    pub backend: Backend,
    pub clock: ManualClock,
    pub acl: Arc<Acl>,
    pub tenants: Tenants,
    pub control_plane: ControlPlaneUrl,
    pub data_dir: PathBuf,
    agent: ureq::Agent,
    runtime: tokio::runtime::Runtime,
    shutdown: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _db: Option<PostgresTestDb>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// A server on the embedded SQLite control plane.
    pub fn start() -> TestServer {
        TestServer::start_on(Backend::Sqlite, "sqlite").expect("SQLite is always available")
    }

    /// A server on `backend`; `None` when Postgres tests are skipped (said loudly on stderr).
    /// No rate limits (the suite's other tests poll as fast as they like).
    pub fn start_on(backend: Backend, test: &str) -> Option<TestServer> {
        TestServer::start_with(backend, test, Limits::off())
    }

    /// A server (SQLite) rate-limited by `limits`, read on the test's clock: moving
    /// [`TestServer::clock`] refills buckets as time passing would.
    pub fn start_limited(limits: Limits) -> TestServer {
        TestServer::start_with(Backend::Sqlite, "sqlite", limits)
            .expect("SQLite is always available")
    }

    fn start_with(backend: Backend, test: &str, limits: Limits) -> Option<TestServer> {
        TestServer::start_full(backend, test, limits, PeopleSettings::default())
    }

    /// A server (SQLite) whose login and invitation emails go as `people` says (an SMTP
    /// server of the test's), with the default rate limits.
    pub fn start_with_people(people: PeopleSettings) -> TestServer {
        TestServer::start_full(Backend::Sqlite, "sqlite", Limits::default(), people)
            .expect("SQLite is always available")
    }

    fn start_full(
        backend: Backend,
        test: &str,
        mut limits: Limits,
        people: PeopleSettings,
    ) -> Option<TestServer> {
        logs::install();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let (control_plane, db) = match backend {
            Backend::Sqlite => (ControlPlaneUrl::default_for(&data_dir), None),
            Backend::Postgres => {
                let db = runtime.block_on(PostgresTestDb::create(test))?;
                (ControlPlaneUrl::parse(db.url()).unwrap(), Some(db))
            }
        };
        let tenants = Tenants::open(TenantsConfig::new(&data_dir)).unwrap();
        let clock = ManualClock::new(t0());
        let store = runtime.block_on(open_store(&control_plane));
        let acl = Arc::new(Acl::new(store, fast()).with_clock(clock.clone()));
        let origin = Instant::now();
        let moved = clock.clone();
        limits.clock =
            LimitClock::from_fn(move || origin + (moved.now() - t0()).to_std().unwrap_or_default());
        let people = Arc::new(People::open(&people, &data_dir).unwrap());
        let state = AppState::new(
            tenants.clone(),
            acl.clone(),
            Arc::new(tdsync_live::Live::in_process()),
            limits,
            people,
        );
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let served = runtime.spawn(startup::serve(listener, state, async {
            let _ = rx.await;
        }));
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .max_redirects(0)
            .build()
            .into();
        Some(TestServer {
            base,
            backend,
            clock,
            acl,
            tenants,
            control_plane,
            data_dir,
            agent,
            runtime,
            shutdown: Some(tx),
            served: Some(served),
            _db: db,
            _dir: dir,
        })
    }

    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// Another `Acl` on the same control plane, as a second process (the admin CLI, another
    /// node) would open it, on the same clock.
    pub fn second_acl(&self) -> Acl {
        let store = self.block_on(open_store(&self.control_plane));
        Acl::new(store, fast()).with_clock(self.clock.clone())
    }

    /// Stops the server as a signal would (finish requests in flight, close shards) and
    /// returns how `serve` ended.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let served = self.served.take().expect("the server runs");
        self.runtime
            .block_on(async { tokio::time::timeout(Duration::from_secs(30), served).await })
            .expect("the server stops within 30 s")
            .expect("the serve task does not panic")
    }

    // ---- control plane ----------------------------------------------------------------------

    pub fn tenant(&self, name: &str) -> TenantId {
        self.block_on(self.acl.create_tenant(name, &Actor::Cli))
            .unwrap()
            .id
    }

    /// A root token of `tenant`: `scopes` like `"write"` or `"read,mint"`; no projects: all of
    /// them; no ttl: no expiry.
    pub fn mint(
        &self,
        tenant: &TenantId,
        scopes: &str,
        projects: &[&str],
        ttl: Option<TimeDelta>,
    ) -> Minted {
        let request = MintRequest {
            name: Some(format!("{scopes} token")),
            scopes: Scopes::parse(scopes).unwrap(),
            projects: (!projects.is_empty()).then(|| {
                ProjectBinding::Only(
                    projects
                        .iter()
                        .map(|p| ProjectId::parse(p).unwrap())
                        .collect(),
                )
            }),
            ttl,
        };
        let issued = self
            .block_on(self.acl.mint(tenant, request, &Actor::Cli))
            .unwrap();
        let token = issued.token.expose().to_string();
        logs::remember(&token);
        Minted {
            id: issued.record.id,
            token,
        }
    }

    /// A tenant named `name` with an admin token and one project (`<name>-project`) created
    /// through `POST /v1/projects`.
    pub fn team(&self, name: &str) -> Team {
        let tenant = self.tenant(name);
        let admin = self.mint(&tenant, "admin,mint", &[], None);
        let project = self.create_project(&admin.token, &format!("{name}-project"));
        Team {
            tenant,
            admin,
            project,
        }
    }

    /// `POST /v1/projects`; the new project's id.
    pub fn create_project(&self, token: &str, name: &str) -> String {
        let body = serde_json::json!({"name": name, "description": ""});
        let reply = self.post("/v1/projects", token, &body);
        reply.expect(201)["id"].as_str().unwrap().to_string()
    }

    // ---- HTTP ----------------------------------------------------------------------------------

    /// Any request: `path` is appended to the base URL as is (so `//v1//…` stays doubled);
    /// `headers` are sent as given; no body, no Content-Type, as td's GETs.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Reply {
        let mut builder = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let result = match body {
            Some(bytes) => self.agent.run(builder.body(bytes).unwrap()),
            None => self.agent.run(builder.body(()).unwrap()),
        };
        let mut response = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .body_mut()
            .with_config()
            .limit(256 << 20)
            .read_to_vec()
            .unwrap_or_else(|e| panic!("{method} {path}: reading the body: {e}"));
        Reply {
            status,
            headers,
            body,
        }
    }

    pub fn get(&self, path: &str, token: &str) -> Reply {
        self.send("GET", path, &[("authorization", &bearer(token))], None)
    }

    pub fn delete(&self, path: &str, token: &str) -> Reply {
        self.send("DELETE", path, &[("authorization", &bearer(token))], None)
    }

    pub fn post(&self, path: &str, token: &str, body: &Value) -> Reply {
        self.with_body("POST", path, token, serde_json::to_vec(body).unwrap())
    }

    pub fn patch(&self, path: &str, token: &str, body: &Value) -> Reply {
        self.with_body("PATCH", path, token, serde_json::to_vec(body).unwrap())
    }

    /// A request with a JSON content type and these exact bytes.
    pub fn with_body(&self, method: &str, path: &str, token: &str, body: Vec<u8>) -> Reply {
        self.send(
            method,
            path,
            &[
                ("authorization", &bearer(token)),
                ("content-type", "application/json"),
            ],
            Some(body),
        )
    }

    // ---- td's sync calls ----------------------------------------------------------------------

    pub fn push(&self, project: &str, token: &str, body: &Value) -> Reply {
        self.post(&format!("/v1/projects/{project}/sync/push"), token, body)
    }

    /// `GET …/sync/pull?<query>`.
    pub fn pull(&self, project: &str, token: &str, query: &str) -> Reply {
        self.get(&format!("/v1/projects/{project}/sync/pull?{query}"), token)
    }

    pub fn status(&self, project: &str, token: &str) -> SyncStatus {
        let reply = self.get(&format!("/v1/projects/{project}/sync/status"), token);
        serde_json::from_value(reply.expect(200)).unwrap()
    }

    /// A control-plane outage (`false`) or its end (`true`); Postgres only.
    pub fn set_control_plane_reachable(&self, reachable: bool) {
        let db = self
            ._db
            .as_ref()
            .expect("an outage needs the Postgres control plane");
        self.runtime.block_on(db.set_reachable(reachable));
    }

    /// The project's shard, bypassing HTTP and tokens.
    pub fn shard(&self, tenant: &TenantId, project: &str) -> Project {
        self.tenants
            .project(tenant, &ProjectId::parse(project).unwrap())
    }

    /// The shard's own count, bypassing HTTP and tokens.
    pub fn event_count(&self, tenant: &TenantId, project: &str) -> i64 {
        self.shard(tenant, project).status().unwrap().event_count
    }

    pub fn shard_path(&self, tenant: &TenantId, project: &str) -> PathBuf {
        self.shard(tenant, project).path().to_path_buf()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(served) = self.served.take() {
            let _ = self
                .runtime
                .block_on(async { tokio::time::timeout(Duration::from_secs(10), served).await });
        }
    }
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Cheap hashing: the suite mints many tokens.
fn fast() -> AclConfig {
    AclConfig {
        hash_cost: HashCost::Fast,
        ..AclConfig::default()
    }
}

async fn open_store(url: &ControlPlaneUrl) -> AnyStore {
    let store = AnyStore::open(url).await.unwrap();
    if let AnyStore::Postgres(pg) = &store {
        assert!(
            pg.wait_listening(Duration::from_secs(10)).await,
            "the Postgres revocation listener did not connect"
        );
    }
    store
}
