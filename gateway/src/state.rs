//! What every request handler can reach: the shard store, the control plane, the live layer, the
//! rate-limit settings and the metrics.

use std::sync::Arc;

use tdsync_acl::Acl;
use tdsync_backup::BackupService;
use tdsync_live::Live;
use tdsync_tenants::Tenants;

use crate::{
    error::ApiError, limits::Limits, metrics::Metrics, ownership::Ownership, people::People,
    proxy::Proxy,
};

/// Cheap to clone: one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    tenants: Tenants,
    acl: Arc<Acl>,
    live: Arc<Live>,
    limits: Limits,
    metrics: Metrics,
    /// Logins, invitations and GitHub sign-ins: links, mail, sealed secrets.
    people: Arc<People>,
    /// Shipping to the backup target (`--backup-to`), if configured.
    backup: Option<Arc<BackupService>>,
    /// `--durability replicated`: a push is answered once its events are in the backup.
    replicated: bool,
    /// `--role shard`: the projects this node serves.
    ownership: Option<Arc<Ownership>>,
    /// `--role gateway`: where the shard routes are forwarded.
    proxy: Option<Arc<Proxy>>,
}

impl AppState {
    /// `limits`: how requests are rate-limited (`limits::enforce`); `Limits::off()` for none.
    pub fn new(
        tenants: Tenants,
        acl: Arc<Acl>,
        live: Arc<Live>,
        limits: Limits,
        people: Arc<People>,
    ) -> AppState {
        AppState(Arc::new(Inner {
            tenants,
            acl,
            live,
            limits,
            people,
            metrics: Metrics::default(),
            backup: None,
            replicated: false,
            ownership: None,
            proxy: None,
        }))
    }

    /// The same state, shipping to `backup`; with `replicated`, pushes wait for their shipment.
    pub fn with_backup(self, backup: Arc<BackupService>, replicated: bool) -> AppState {
        let inner = Arc::try_unwrap(self.0)
            .unwrap_or_else(|_| panic!("with_backup is called while the state is being built"));
        AppState(Arc::new(Inner {
            backup: Some(backup),
            replicated,
            ..inner
        }))
    }

    /// The same state, serving only the projects whose lease this node holds.
    pub fn with_ownership(self, ownership: Arc<Ownership>) -> AppState {
        let inner = Arc::try_unwrap(self.0)
            .unwrap_or_else(|_| panic!("with_ownership is called while the state is being built"));
        AppState(Arc::new(Inner {
            ownership: Some(ownership),
            ..inner
        }))
    }

    /// The same state, forwarding every shard route to the project's shard node.
    pub fn with_proxy(self, proxy: Arc<Proxy>) -> AppState {
        let inner = Arc::try_unwrap(self.0)
            .unwrap_or_else(|_| panic!("with_proxy is called while the state is being built"));
        AppState(Arc::new(Inner {
            proxy: Some(proxy),
            ..inner
        }))
    }

    /// On a gateway, where shard routes go.
    pub fn proxy(&self) -> Option<&Arc<Proxy>> {
        self.0.proxy.as_ref()
    }

    /// On a shard node, its projects.
    pub fn ownership(&self) -> Option<&Arc<Ownership>> {
        self.0.ownership.as_ref()
    }

    /// The backup shipper, if the server ships to a target.
    pub fn backup(&self) -> Option<&Arc<BackupService>> {
        self.0.backup.as_ref()
    }

    /// The backup to wait on before answering a push (`--durability replicated`).
    pub fn replicated(&self) -> Option<&Arc<BackupService>> {
        self.0.backup.as_ref().filter(|_| self.0.replicated)
    }

    /// The rate-limit settings.
    pub fn limits(&self) -> &Limits {
        &self.0.limits
    }

    /// The live layer: change fan-out, poll advice, cursors, rate limits.
    pub fn live(&self) -> &Arc<Live> {
        &self.0.live
    }

    pub fn tenants(&self) -> &Tenants {
        &self.0.tenants
    }

    pub fn acl(&self) -> &Arc<Acl> {
        &self.0.acl
    }

    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    pub fn people(&self) -> &Arc<People> {
        &self.0.people
    }

    /// Counts one login start against `bucket` (always on, whatever the rate-limit settings:
    /// each start may send an email); 429 with `Retry-After` when over `rate`.
    pub fn admit_login(&self, bucket: &str, rate: tdsync_live::Rate) -> Result<(), ApiError> {
        let now = self.0.limits.clock.now();
        match self.0.live.admit_at(bucket, rate, now) {
            tdsync_live::Admission::Allowed => Ok(()),
            tdsync_live::Admission::Refused { retry_after } => {
                let secs = crate::limits::retry_after_secs(retry_after);
                Err(ApiError::new(
                    axum::http::StatusCode::TOO_MANY_REQUESTS,
                    tdsync_protocol::wire::error_code::RATE_LIMITED,
                    format!(
                        "too many logins started: at most {} a minute per address and {} per \
                         client; retry after {secs} s",
                        crate::routes::login::PER_EMAIL.per_minute,
                        crate::routes::login::PER_CLIENT.per_minute
                    ),
                )
                .with_retry_after(secs))
            }
        }
    }
}

/// Runs shard work (blocking SQLite) off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, tdsync_tenants::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(e) => Err(ApiError::internal(format!("shard task failed: {e}"))),
    }
}
