//! A gateway (`--role gateway`): it holds no project of its own. Every shard route is checked
//! here (the token verified, the project found in the control plane, the action decided).
//! What the heads and wake-ups shared through Redis can answer is answered here ([`at_head`]:
//! pulls at the head, their long-poll waits and statuses; [`events`]: event streams); the rest
//! is forwarded to the shard node that owns the project, over pooled keep-alive connections,
//! and the answer streams back. Owners come from the placement store, cached for a few seconds,
//! forgotten when a node announces a move, and looked up again on a `421` (the node names the
//! owner) or when a node does not answer. A project nobody holds goes to the least loaded live
//! node, which claims it. The request body is buffered once (it may be sent again to the right
//! owner); answers are never buffered.

pub mod at_head;
pub mod events;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    body::{Body, Bytes},
    extract::{ConnectInfo, Path, Request, State},
    http::{HeaderValue, Method, StatusCode, Uri, header},
    response::Response,
};
use http_body_util::Full;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use parking_lot::Mutex;
use tdsync_acl::Action;
use tdsync_live::ProjectKey;
use tdsync_placement::Placement;
use tdsync_tenants::{ProjectId, TenantId};

use crate::{
    auth::Caller,
    error::{ApiError, OWNER_HEADER},
    startup::BODY_LIMIT,
    state::AppState,
};

type Key = (TenantId, ProjectId);

/// How long a looked-up owner is trusted without asking the placement store again.
const OWNER_CACHE: Duration = Duration::from_secs(5);
/// A node whose heartbeat is older than this is not sent new projects (nodes beat every
/// second: `ownership::HEARTBEAT`).
const LIVE_WITHIN: Duration = Duration::from_secs(5);
/// A node that did not answer is not sent new projects for this long.
const DOWN_FOR: Duration = Duration::from_secs(5);
/// Sends of one request: the cached owner, then the owner a 421 or the store names.
const ATTEMPTS: usize = 3;

pub struct Proxy {
    client: Client<HttpConnector, Full<Bytes>>,
    placement: Placement,
    owners: Mutex<HashMap<Key, (String, Instant)>>,
    /// Nodes that did not answer, by URL, and when.
    down: Mutex<HashMap<String, Instant>>,
    answered: AtomicU64,
    forwarded: AtomicU64,
    redirected: AtomicU64,
    failed: AtomicU64,
}

impl Proxy {
    pub fn new(placement: Placement) -> Arc<Proxy> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Arc::new(Proxy {
            client,
            placement,
            owners: Mutex::new(HashMap::new()),
            down: Mutex::new(HashMap::new()),
            answered: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            redirected: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        })
    }

    /// Where `key`'s requests go: the cached owner, else its live owner in the placement store,
    /// else the least loaded live node (which claims it).
    async fn owner_url(&self, key: &Key, fresh: bool) -> Result<String, ApiError> {
        if !fresh
            && let Some((url, at)) = self.owners.lock().get(key)
            && at.elapsed() < OWNER_CACHE
        {
            return Ok(url.clone());
        }
        let store = |e: tdsync_placement::PlacementError| {
            ApiError::unavailable(format!("the placement store: {e}")).with_retry_after(1)
        };
        let url = match self.placement.owner(&key.0, &key.1).await.map_err(store)? {
            Some(owner) if owner.live && !self.is_down(&owner.url) => owner.url,
            // Handed over (`tdsync cluster move`): the node it goes to claims it.
            Some(owner) if owner.moving_to.is_some() => owner.moving_to.unwrap_or_default(),
            // Nobody holds it (or its holder is not answering): the least loaded live node
            // that answers, which claims it once it is free.
            _ => {
                let nodes = self.placement.nodes().await.map_err(store)?;
                tdsync_placement::least_loaded(&nodes, LIVE_WITHIN, |n| self.is_down(&n.url))
                    .map(|n| n.url.clone())
                    .ok_or_else(|| {
                        ApiError::unavailable("no shard node is live: none to send the project to")
                            .with_retry_after(2)
                    })?
            }
        };
        self.remember(key, &url);
        Ok(url)
    }

    /// Forgets where `key` is served (its node announced a move).
    pub fn forget(&self, key: &ProjectKey) {
        self.owners
            .lock()
            .remove(&(key.tenant.clone(), key.project.clone()));
    }

    fn answered(&self) {
        self.answered.fetch_add(1, Ordering::Relaxed);
    }

    pub fn gauges(&self) -> crate::metrics::GatewayGauges {
        crate::metrics::GatewayGauges {
            answered: self.answered.load(Ordering::Relaxed),
            forwarded: self.forwarded.load(Ordering::Relaxed),
            redirected: self.redirected.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }

    fn is_down(&self, url: &str) -> bool {
        self.down
            .lock()
            .get(url)
            .is_some_and(|at| at.elapsed() < DOWN_FOR)
    }

    fn remember(&self, key: &Key, url: &str) {
        self.owners
            .lock()
            .insert(key.clone(), (url.to_string(), Instant::now()));
    }

    async fn send(
        &self,
        base: &str,
        parts: &axum::http::request::Parts,
        peer: Option<SocketAddr>,
        body: Bytes,
    ) -> Result<Response<hyper::body::Incoming>, String> {
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let uri: Uri = format!("{}{path}", base.trim_end_matches('/'))
            .parse()
            .map_err(|e| format!("{base}: {e}"))?;
        let mut request = hyper::Request::builder()
            .method(parts.method.clone())
            .uri(uri)
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        for (name, value) in &parts.headers {
            if !matches!(
                *name,
                header::HOST | header::CONNECTION | header::CONTENT_LENGTH
            ) {
                request.headers_mut().append(name, value.clone());
            }
        }
        // The client's address, for the node's per-address limits (it trusts its gateways).
        if let Some(peer) = peer
            && let Ok(v) = HeaderValue::from_str(&peer.ip().to_string())
        {
            request.headers_mut().append("x-forwarded-for", v);
        }
        self.client
            .request(request)
            .await
            .map_err(|e| format!("{base}: {e}"))
    }
}

/// Any shard route on a gateway: checked here, answered by the project's owner.
pub async fn forward(
    State(state): State<AppState>,
    caller: Caller,
    Path(params): Path<HashMap<String, String>>,
    request: Request,
) -> Result<Response, ApiError> {
    // The owner decides exactly (it verifies the token too); here only what is surely refused.
    let action = if request.uri().path().ends_with("/sync/cursors") {
        Action::ReadCursors
    } else if matches!(*request.method(), Method::GET | Method::HEAD) {
        Action::ReadEvents
    } else {
        Action::PushEvents
    };
    let key = checked(&state, &caller, &params, action).await?;
    forward_to(&state, key, request).await
}

/// The gateway's proxy (a gateway's routes run only with one).
fn proxy(state: &AppState) -> Result<Arc<Proxy>, ApiError> {
    state
        .proxy()
        .cloned()
        .ok_or_else(|| ApiError::internal("a gateway route without a proxy"))
}

/// The project of the route's `{id}`, once `caller` may do `action` on it.
async fn checked(
    state: &AppState,
    caller: &Caller,
    params: &HashMap<String, String>,
    action: Action,
) -> Result<Key, ApiError> {
    let id = params.get("id").map(String::as_str).unwrap_or_default();
    let found = state.project(caller, id, action).await?;
    Ok((found.record.tenant, found.record.id))
}

/// Sends `request` to `key`'s owner (following a 421 or a node that does not answer) and
/// streams its answer back.
async fn forward_to(state: &AppState, key: Key, request: Request) -> Result<Response, ApiError> {
    let proxy = proxy(state)?;
    let (parts, body) = request.into_parts();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let body = axum::body::to_bytes(body, BODY_LIMIT).await.map_err(|e| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            tdsync_protocol::wire::error_code::BAD_REQUEST,
            format!("reading the request body: {e}"),
        )
    })?;
    let mut url = proxy.owner_url(&key, false).await?;
    let mut last = String::new();
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            proxy.redirected.fetch_add(1, Ordering::Relaxed);
        }
        match proxy.send(&url, &parts, peer, body.clone()).await {
            Ok(answer) if answer.status() == StatusCode::MISDIRECTED_REQUEST => {
                // The node names the owner; without a name, ask the store.
                let named = answer
                    .headers()
                    .get(OWNER_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                url = match named {
                    Some(owner) if owner != url => {
                        proxy.remember(&key, &owner);
                        owner
                    }
                    _ => proxy.owner_url(&key, true).await?,
                };
                last = format!("{url} is not the owner");
            }
            Ok(answer) => {
                if attempt == 0 {
                    proxy.forwarded.fetch_add(1, Ordering::Relaxed);
                }
                let (mut head, incoming) = answer.into_parts();
                head.headers.remove(header::CONNECTION);
                head.headers.remove(header::TRANSFER_ENCODING);
                return Ok(Response::from_parts(head, Body::new(incoming)));
            }
            Err(e) => {
                last = e;
                proxy.down.lock().insert(url.clone(), Instant::now());
                url = proxy.owner_url(&key, true).await?;
            }
        }
    }
    proxy.failed.fetch_add(1, Ordering::Relaxed);
    Err(ApiError::unavailable(format!(
        "project {}'s shard node did not answer ({last}); retry",
        key.1
    ))
    .with_retry_after(1))
}
