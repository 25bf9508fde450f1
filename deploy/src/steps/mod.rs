//! The steps of a deploy, in the order they run: each needs only what the ones before it did.

mod backends;
pub mod caddy;
pub mod host;
mod local;
mod server;

use crate::plan::Step;

/// Every step of an install or upgrade.
pub fn all() -> Vec<Box<dyn Step>> {
    vec![
        Box::new(host::Directories),
        Box::new(host::SystemUser),
        Box::new(host::Binary),
        // Before the settings: a local database's URL is made here.
        Box::new(local::LocalPostgres),
        Box::new(local::LocalRedis),
        Box::new(host::Environment),
        Box::new(backends::ControlPlane),
        Box::new(backends::Redis),
        Box::new(server::Tenant),
        Box::new(host::ServiceDefinition),
        Box::new(server::Server),
        // After the server: `tdsync backup` needs the data directory it lays out.
        Box::new(backends::Backups),
        Box::new(caddy::Caddy),
        Box::new(server::Health),
    ]
}

/// What `--rollback` runs after putting the previous binary back: the server restarted on it,
/// then checked.
pub fn after_rollback() -> Vec<Box<dyn Step>> {
    vec![Box::new(server::Server), Box::new(server::Health)]
}
