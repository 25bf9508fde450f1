//! The HTTP gateway: td's v1 sync API (so an unmodified td syncs through it) plus tdsync's
//! token and recovery routes, over the shard store (`tdsync-tenants`) and the control plane
//! (`tdsync-acl`). It holds no state of its own: the token is checked with `acl`, the project's
//! shard found in `tenants`, and the answer written in td's exact wire format.

pub mod auth;
pub mod configuration;
pub mod error;
pub mod limits;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod ownership;
pub mod people;
pub mod proxy;
pub mod routes;
pub mod startup;
pub mod state;
pub mod telemetry;
