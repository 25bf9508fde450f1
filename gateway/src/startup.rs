//! Building and running the server: open the stores, assemble the app, serve until told to
//! stop, then shut down cleanly (finish requests in flight, flush last-used times, close
//! every shard).

use std::{
    future::Future,
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use anyhow::Context;
use axum::{Router, ServiceExt, extract::Request, middleware, serve::ListenerExt};
use tdsync_acl::{Acl, AclConfig, AnyStore, cli::Location};
use tdsync_tenants::{Tenants, TenantsConfig};
use tokio::net::TcpListener;
use tower::Layer;

use crate::{
    configuration::{Durability, Settings},
    limits,
    middleware::{collapse_slashes, not_found, observe},
    routes,
    state::AppState,
};

/// Largest request body (td's server allows 10 MiB; `td serve` pushes unchunked backlogs).
pub const BODY_LIMIT: usize = 16 << 20;

/// How often cursors and rate-limit counts are exchanged with a shared live backend (and its
/// health checked when there is nothing to exchange).
pub const LIVE_SYNC_EVERY: Duration = Duration::from_secs(1);

/// Opens the shard store and the control plane named by `settings`.
pub async fn open(settings: &Settings) -> anyhow::Result<AppState> {
    let mut config = TenantsConfig::new(&settings.data_dir);
    config.max_open_shards = settings.max_open_shards;
    config.durability = match settings.durability {
        // Replicated: the backup is the durable copy; the local commit needs no fsync of its own.
        Durability::Normal | Durability::Replicated => tdsync_tenants::Durability::Normal,
        Durability::Full => tdsync_tenants::Durability::Full,
    };
    if settings.durability == Durability::Replicated && settings.backup.is_none() {
        anyhow::bail!(
            "--durability replicated acknowledges a push once it is in the backup: give \
             --backup-to URL (TDSYNC_BACKUP_TO)"
        );
    }
    let tenants = Tenants::open(config)
        .with_context(|| format!("opening the data directory {}", settings.data_dir.display()))?;
    let location = Location {
        data_dir: settings.data_dir.clone(),
        control_plane: settings.control_plane.clone(),
    };
    let url = location.url()?;
    let store = AnyStore::open(&url)
        .await
        .with_context(|| format!("opening the control plane {url}"))?;
    let acl = Acl::new(store, AclConfig::default());
    let live = match &settings.redis {
        None => tdsync_live::Live::in_process(),
        Some(config) => {
            // No connection yet: an unreachable Redis must not keep the server from starting
            // (the first sync finds out, and `Live` says so once).
            let shared = tdsync_live_redis::RedisShared::new(config.clone())
                .with_context(|| format!("preparing the Redis client for {}", config.url))?;
            tracing::info!(redis = %config.url, prefix = %config.prefix, "live state shared through Redis");
            tdsync_live::Live::with_shared(Arc::new(shared))
        }
    };
    let people = crate::people::People::open(&settings.people, &settings.data_dir)
        .context("people: mail and the secret key")?;
    let state = AppState::new(
        tenants.clone(),
        Arc::new(acl),
        Arc::new(live),
        settings.limits.clone(),
        Arc::new(people),
    );
    if settings.gateway {
        let tdsync_acl::ControlPlaneUrl::Postgres(postgres) = &url else {
            anyhow::bail!(
                "--role gateway finds each project's shard node in the control plane: give a \
                 Postgres one (--control-plane postgres://…)"
            );
        };
        let placement = tdsync_placement::Placement::connect(postgres)
            .await
            .context("connecting the placement store (the Postgres control plane)")?;
        if settings.redis.is_none() {
            tracing::warn!(
                "gateway without --redis: every pull, status and event stream goes to a shard \
                 node (give --redis to answer those at the head here)"
            );
        }
        tracing::info!("gateway: forwarding every project's sync to its shard node");
        let proxy = crate::proxy::Proxy::new(placement);
        let moved = Arc::downgrade(&proxy);
        state.live().on_move(Box::new(move |key| {
            if let Some(proxy) = moved.upgrade() {
                proxy.forget(key);
            }
        }));
        return Ok(state.with_proxy(proxy));
    }
    if settings.shard.is_some() {
        // Said at start, each with what to do: a shard node without them would lose projects.
        if !matches!(url, tdsync_acl::ControlPlaneUrl::Postgres(_)) {
            anyhow::bail!(
                "--role shard keeps leases in the control plane: give a Postgres one \
                 (--control-plane postgres://…)"
            );
        }
        if settings.redis.is_none() {
            anyhow::bail!("--role shard shares heads and wake-ups through Redis: give --redis URL");
        }
        if settings.backup.is_none() {
            anyhow::bail!(
                "--role shard restores a project it takes over from the backup: give \
                 --backup-to URL"
            );
        }
    }
    let target = settings
        .backup
        .as_ref()
        .map(|b| tdsync_backup::Target::parse(&b.url))
        .transpose()?;
    recover_damaged_shards(&tenants, target.clone(), state.metrics().recoveries());
    let (Some(backup), Some(target)) = (&settings.backup, target) else {
        return Ok(state);
    };
    let (control_plane, postgres) = match url {
        tdsync_acl::ControlPlaneUrl::Sqlite(path) => (Some(path), None),
        tdsync_acl::ControlPlaneUrl::Postgres(pg) => (None, Some(pg)),
    };
    let config = tdsync_backup::BackupConfig {
        target: target.clone(),
        interval: backup.interval,
        policy: tdsync_backup::Policy::default(),
        control_plane,
        max_lag: backup.max_lag,
    };
    let service = tdsync_backup::BackupService::start(tenants.clone(), config);
    tracing::info!(target = %target, interval_s = backup.interval.as_secs(), durability = ?settings.durability, "backups shipped");
    let state = state.with_backup(
        service.clone(),
        settings.durability == Durability::Replicated,
    );
    let (Some(shard), Some(postgres)) = (&settings.shard, postgres) else {
        return Ok(state);
    };
    let node = tdsync_placement::NodeId::parse(&shard.node_id)
        .context("--node-id names this shard node")?;
    let advertise = if shard.advertise_url.is_empty() {
        if settings.listen.port() == 0 {
            anyhow::bail!("--role shard with --listen on port 0: give --advertise-url");
        }
        format!("http://{}", settings.listen)
    } else {
        shard.advertise_url.clone()
    };
    let placement = tdsync_placement::Placement::connect(&postgres)
        .await
        .context("connecting the placement store (the Postgres control plane)")?;
    let ownership = crate::ownership::Ownership::start(
        placement,
        node,
        &advertise,
        shard.lease,
        service,
        tenants,
        state.live().clone(),
    )
    .await?;
    serve_heads(&state, &ownership);
    Ok(state.with_ownership(ownership))
}

/// The heads a shard node writes to the shared live state, for gateways to answer from: the
/// projects it holds, under their lease epochs. (Only gateways read them, so a single node
/// writes none.)
fn serve_heads(state: &AppState, ownership: &Arc<crate::ownership::Ownership>) {
    let tenants = state.tenants().clone();
    let ownership = Arc::downgrade(ownership);
    state.live().serve_heads(Arc::new(move || {
        let served = ownership.upgrade().map(|o| o.served()).unwrap_or_default();
        served
            .into_iter()
            .filter_map(|((tenant, id), epoch)| {
                let project = tenants.project(&tenant, &id);
                let head = routes::live::head(&project, Some(epoch))?;
                Some((tdsync_live::ProjectKey::new(&tenant, &id), head))
            })
            .collect()
    }));
}

/// A project whose shard is found damaged is out of service (503) from that moment; its
/// recovery runs on the runtime (`tdsync_backup::recovery`: the local log when it reads whole,
/// else the backup plus what the local log still holds), and it serves again when it is done.
fn recover_damaged_shards(
    tenants: &Tenants,
    target: Option<tdsync_backup::Target>,
    counts: Arc<crate::metrics::Recoveries>,
) {
    let runtime = tokio::runtime::Handle::current();
    tenants.on_damage(Box::new(move |project| {
        let (target, counts) = (target.clone(), counts.clone());
        runtime.spawn(async move {
            let name = format!("{}/{}", project.tenant(), project.id());
            match tdsync_backup::recovery::recover(project, target.as_ref()).await {
                Ok(r) => {
                    counts.recovered.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        project = %name,
                        from_backup = r.from_backup,
                        events_from_backup = r.events_from_backup,
                        events_from_local_log = r.events_from_local_log,
                        head = r.head,
                        moved_to = ?r.moved_to,
                        "damaged shard recovered; project back in service"
                    );
                    if !r.lost.is_empty() {
                        tracing::error!(project = %name, lost = ?r.lost, "seqs lost: in neither the local log nor the backup");
                    }
                }
                Err(e) => {
                    counts.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(project = %name, error = %e, "recovery failed; the project stays out of service");
                }
            }
        });
    }));
}

/// The application: duplicate slashes are collapsed before routing (so this wraps the router
/// rather than being one of its layers).
pub type App = tower::util::MapRequest<Router, fn(Request) -> Request>;

pub fn app(state: AppState) -> App {
    let routes = if state.proxy().is_some() {
        routes::gateway_router()
    } else {
        routes::router()
    };
    let router: Router = routes
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        // Rate limits before any handler runs, inside `observe`: a refusal has a request id and
        // is counted like any answer. Layers, not route layers: unknown routes are limited and
        // observed too.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limits::enforce,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state);
    tower::util::MapRequestLayer::new(collapse_slashes as fn(Request) -> Request).layer(router)
}

/// Serves on `listener` until `shutdown` resolves, then drains and closes.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        state.people().bound(addr);
    }
    let flusher = state.acl().spawn_last_used_flusher(Duration::from_secs(10));
    let live_sync = state.live().spawn_sync(LIVE_SYNC_EVERY);
    // Every process re-checks GitHub grants: a grant checked or revoked by one leaves the due
    // set, so the others find nothing left to do.
    let github_recheck = crate::people::recheck::spawn(state.clone());
    // Replies are small and written whole: send them at once instead of letting Nagle's
    // algorithm hold a last segment back until the client acknowledges the previous one.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "could not set TCP_NODELAY");
        }
    });
    // With the peer's address: rate limits count requests without a token per client address.
    axum::serve(
        listener,
        ServiceExt::<Request>::into_make_service_with_connect_info::<SocketAddr>(
            app(state.clone()),
        ),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("serving")?;
    flusher.abort();
    if let Some(sync) = live_sync {
        sync.abort();
    }
    if let Some(recheck) = github_recheck {
        recheck.abort();
    }
    if let Err(e) = state.acl().flush_last_used().await {
        tracing::warn!(error = %e, "could not record last-used times at shutdown");
    }
    if let Some(ownership) = state.ownership() {
        ownership.stop();
    }
    if let Some(backup) = state.backup() {
        // One last shipment: what was acknowledged before the stop is in the backup after it.
        backup.stop().await;
    }
    state.tenants().close_all();
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
