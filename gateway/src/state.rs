//! What every request handler can reach: the shard store, the control plane, the live layer, the
//! rate-limit settings and the metrics.

use std::sync::Arc;

use tdsync_acl::Acl;
use tdsync_live::Live;
use tdsync_tenants::Tenants;

use crate::{error::ApiError, limits::Limits, metrics::Metrics};

/// Cheap to clone: one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    tenants: Tenants,
    acl: Arc<Acl>,
    live: Arc<Live>,
    limits: Limits,
    metrics: Metrics,
}

impl AppState {
    /// `limits`: how requests are rate-limited (`limits::enforce`); `Limits::off()` for none.
    pub fn new(tenants: Tenants, acl: Arc<Acl>, live: Arc<Live>, limits: Limits) -> AppState {
        AppState(Arc::new(Inner {
            tenants,
            acl,
            live,
            limits,
            metrics: Metrics::default(),
        }))
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
