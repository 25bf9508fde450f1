//! The OpenAPI document, generated from the route annotations (utoipa). The committed copy is
//! `openapi/tdsync.openapi.json`; a test fails when the served document and it differ.

use std::sync::OnceLock;

use utoipa::{
    Modify, OpenApi,
    openapi::security::{Http, HttpAuthScheme, SecurityScheme},
};

use crate::routes::{members, meta, projects, recovery, sync, tokens};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tdsync",
        description = "A multi-tenant sync service for td. The `sync`, `projects` and `members` routes are td's v1 sync API, field for field, so an unmodified td syncs with `TD_SYNC_URL` and `TD_AUTH_KEY`; `tokens` and `recovery` are tdsync's additions. Every error body carries both `{code, message}` and `{error: {code, message}}`.",
        license(name = "MIT")
    ),
    paths(
        meta::health, meta::metrics, meta::openapi,
        projects::create, projects::list, projects::get,
        sync::push, sync::pull, sync::status, sync::snapshot,
        members::list, members::invite, members::set_role, members::remove,
        recovery::conflicts, recovery::restore, recovery::history,
        tokens::mint, tokens::list, tokens::revoke,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "sync", description = "td's push, pull, status and snapshot"),
        (name = "projects", description = "td's projects"),
        (name = "members", description = "td's members, mapped onto tokens"),
        (name = "tokens", description = "Scoped tokens; agents mint their own children"),
        (name = "recovery", description = "Conflicts kept with both versions, and entity history"),
        (name = "service", description = "Health, metrics, this document"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("tds_…")
                    .build(),
            ),
        );
    }
}

/// The document as pretty JSON (built once).
pub fn document_json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    })
}
