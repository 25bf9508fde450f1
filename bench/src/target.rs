//! What the bench runs against: a server it starts itself (in-process, on a free loopback port,
//! with a fresh data directory, an embedded SQLite control plane, a tenant and a write token), or
//! any td-compatible server named by `--url`; and the few td v1 calls that set a project up.

use std::{
    net::{Ipv4Addr, SocketAddr},
    time::Duration,
};

use anyhow::{Context, anyhow};
use axum::body::Bytes;
use tdsync_acl::{Actor, MintRequest, Scope, Scopes};
use tokio::sync::oneshot;

use super::http::Conn;
use tdsync_gateway::{
    configuration::{BackupSettings, Durability, Settings},
    limits::{Limits, Rate},
};
use tdsync_live_redis::RedisConfig;

/// Rate limits on (the figures include what counting costs) but out of reach: one token and one
/// address make every request of the bench, tens of thousands a second, far past any limit a
/// server would set.
fn never_refusing() -> Limits {
    let max = Rate {
        per_minute: u32::MAX,
        burst: u32::MAX,
    };
    Limits {
        push: max,
        pull: max,
        other: max,
        unauthenticated: max,
        failed_auth: max,
        ..Limits::default()
    }
}

/// A tdsync server on its own runtime (its own worker threads, as a separate process would have),
/// serving a temporary data directory. Stopped cleanly by [`InProcess::stop`].
pub struct InProcess {
    pub url: String,
    pub token: String,
    runtime: tokio::runtime::Runtime,
    stop: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    dir: tempfile::TempDir,
}

impl InProcess {
    pub fn start() -> anyhow::Result<InProcess> {
        InProcess::start_with(None)
    }

    /// Like [`InProcess::start`], its live state shared through Redis when `redis` is given.
    pub fn start_with(redis: Option<RedisConfig>) -> anyhow::Result<InProcess> {
        InProcess::start_configured(redis, None, Durability::Normal)
    }

    /// Like [`InProcess::start`], with live state in `redis`, shipping to `backup`, and
    /// `durability`.
    pub fn start_configured(
        redis: Option<RedisConfig>,
        backup: Option<BackupSettings>,
        durability: Durability,
    ) -> anyhow::Result<InProcess> {
        let dir = tempfile::Builder::new()
            .prefix("tdsync-bench-")
            .tempdir()
            .context("creating a temporary data directory")?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name("tdsync-server")
            .enable_all()
            .build()
            .context("starting the server runtime")?;
        let settings = Settings {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            data_dir: dir.path().to_path_buf(),
            control_plane: None,
            max_open_shards: tdsync_tenants::TenantsConfig::DEFAULT_MAX_OPEN_SHARDS,
            durability,
            redis,
            limits: never_refusing(),
            backup,
            shard: None,
            gateway: false,
            people: Default::default(),
        };
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (url, token, served) = runtime.block_on(async move {
            let state = tdsync_gateway::startup::open(&settings).await?;
            let acl = state.acl().clone();
            let tenant = acl.create_tenant("bench", &Actor::Cli).await?;
            let mut request = MintRequest::new(Scopes::of(&[Scope::Write]));
            request.name = Some("tdsync bench".into());
            let issued = acl.mint(&tenant.id, request, &Actor::Cli).await?;
            let listener = tokio::net::TcpListener::bind(settings.listen)
                .await
                .context("listening on a free loopback port")?;
            let addr = listener.local_addr()?;
            let served = tokio::spawn(tdsync_gateway::startup::serve(
                listener,
                state,
                async move {
                    let _ = stop_rx.await;
                },
            ));
            anyhow::Ok((
                format!("http://{addr}"),
                issued.token.expose().to_string(),
                served,
            ))
        })?;
        Ok(InProcess {
            url,
            token,
            runtime,
            stop: Some(stop_tx),
            served: Some(served),
            dir,
        })
    }

    /// The server's data directory (removed when this is dropped).
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Graceful shutdown: in-flight requests finish, shards are closed.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            self.runtime
                .block_on(async { tokio::time::timeout(Duration::from_secs(30), served).await })
                .context("the in-process server did not stop within 30 s")?
                .context("the in-process server task failed")??;
        }
        Ok(())
    }
}

/// The v1 calls the bench needs besides the measured ones.
pub struct Api<'a>(pub &'a mut Conn);

#[derive(Debug, Clone, Copy)]
pub struct Status {
    pub event_count: i64,
    pub last_server_seq: i64,
}

impl Api<'_> {
    /// `POST /v1/projects`: a new project; its id.
    pub async fn create_project(&mut self, name: &str) -> anyhow::Result<String> {
        let body = serde_json::json!({"name": name, "description": "created by tdsync bench"});
        let reply = self
            .0
            .post_json("/v1/projects", Bytes::from(body.to_string()))
            .await?
            .ok("POST /v1/projects (the token must be allowed to create projects, or pass --project)")?;
        let v = reply.json()?;
        v["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("POST /v1/projects answered without an id: {v}"))
    }

    pub async fn status(&mut self, project: &str) -> anyhow::Result<Status> {
        let reply = self
            .0
            .get(&format!("/v1/projects/{project}/sync/status"), true)
            .await?
            .ok("GET …/sync/status")?;
        let v = reply.json()?;
        Ok(Status {
            event_count: v["event_count"].as_i64().unwrap_or(0),
            last_server_seq: v["last_server_seq"]
                .as_i64()
                .ok_or_else(|| anyhow!("sync/status without last_server_seq: {v}"))?,
        })
    }

    /// `POST …/sync/push` of a prepared body; the number of events accepted.
    pub async fn push(&mut self, project: &str, body: Bytes) -> anyhow::Result<i64> {
        let reply = self
            .0
            .post_json(&format!("/v1/projects/{project}/sync/push"), body)
            .await?
            .ok("POST …/sync/push")?;
        accepted(&reply.body)
    }
}

/// `accepted` of a push response.
pub fn accepted(body: &[u8]) -> anyhow::Result<i64> {
    #[derive(serde::Deserialize)]
    struct Accepted {
        accepted: i64,
    }
    let a: Accepted = serde_json::from_slice(body).context("push response without `accepted`")?;
    Ok(a.accepted)
}
