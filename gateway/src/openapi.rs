//! The OpenAPI document, generated from the route annotations (utoipa). The committed copy is
//! `openapi/tdsync.openapi.json`; a test fails when the served document and it differ.
//!
//! The document says exactly what the server does: every status a route answers, every rule
//! the server applies to what it reads (patterns, lengths, ranges, enums), and the exact shape
//! of what it returns. `infra/contract-fuzz.sh` holds the server to it with schemathesis. Rules
//! that hold for every route are applied here rather than repeated on each: [`CommonAnswers`]
//! (429 with `Retry-After` on every route, 401 and 503 on every authenticated route, 400 for an
//! undecodable path) and [`refine`]
//! (64-bit integer ranges, empty query values, and a keyword utoipa cannot express).

pub mod schemas;

use std::sync::OnceLock;

use serde_json::Value;
use utoipa::{
    Modify, OpenApi,
    openapi::{
        ObjectBuilder, Ref, RefOr, Response, ResponseBuilder, Schema, Type,
        content::Content,
        header::HeaderBuilder,
        path::ParameterIn,
        security::{Http, HttpAuthScheme, SecurityScheme},
    },
};

use crate::routes::{
    events, github, invitations, login, members, meta, projects, recovery, sync, tokens,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tdsync",
        description = "A multi-tenant sync service for td. The `sync`, `projects`, `members`, `invitations` and `auth` routes are td's v1 sync API, field for field, so an unmodified td syncs with `TD_SYNC_URL` and `TD_AUTH_KEY` and logs in with `td auth login`; `tokens` and `recovery` are tdsync's additions. Every error body carries both `{code, message}` and `{error: {code, message}}`.",
        license(name = "MIT")
    ),
    paths(
        meta::health, meta::metrics, meta::openapi,
        projects::create, projects::list, projects::get,
        sync::push, sync::pull, sync::status, sync::snapshot, sync::cursors,
        events::stream_events,
        members::list, members::invite, members::set_role, members::remove,
        invitations::invite, invitations::list, invitations::revoke, invitations::mine,
        invitations::accept, invitations::decline,
        login::start, login::poll,
        github::device_start, github::device_poll,
        recovery::conflicts, recovery::restore, recovery::history,
        tokens::mint, tokens::list, tokens::revoke,
    ),
    components(schemas(
        tdsync_protocol::openapi::EntityTypeName,
        schemas::ProjectIdSchema, schemas::TokenIdSchema, schemas::NameSchema,
        schemas::DescriptionSchema, schemas::ScopeSchema, schemas::ScopesInputSchema,
        schemas::DurationSchema, schemas::ProjectBindingSchema, schemas::RoleSchema,
        schemas::EmailSchema, schemas::CodeChallengeSchema, schemas::ChallengeMethodSchema,
        schemas::NonEmptySchema,
        schemas::TokenStateSchema, events::ProjectEvent, events::ChangeEvent,
    )),
    modifiers(&BearerAuth, &CommonAnswers),
    tags(
        (name = "sync", description = "td's push, pull, status and snapshot"),
        (name = "projects", description = "td's projects"),
        (name = "members", description = "td's members, mapped onto tokens; td's invite makes an invitation"),
        (name = "invitations", description = "Invitations by email: the invitee joins when they log in with that email"),
        (name = "auth", description = "`td auth login`: an emailed approval link and td's PKCE device flow; `tdsync login github`: GitHub's device flow for projects linked to a repository; every way in ends in a token"),
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

/// What every route of a kind answers before its handler runs:
///
/// - every route answers 429 with `Retry-After` when a rate limit refuses the request
///   (`limits::enforce`): per token on a route that takes one (and per client address for
///   failed authentications), per client address on one that does not — one of two answers
///   in `components.responses`, referred to (the same 20 lines on every operation would bury
///   what differs between them);
/// - a route that takes a bearer token answers 401 when it is missing, malformed, unknown,
///   expired or revoked (the `Caller` extractor), and 503 when the control plane cannot be read
///   to verify it or to find the project;
/// - a route with path parameters answers 400 when one is not UTF-8 once percent-decoded
///   (axum's `Path` extractor, after `Caller`);
/// - a route answered from a project's shard answers, in a cluster, 421 with `X-Tdsync-Owner`
///   from a shard node that does not serve the project, and 503 with `Retry-After` while the
///   project moves between nodes.
struct CommonAnswers;

/// A cluster's answers on the routes of a project's shard.
const NOT_OWNER: &str = "In a cluster, from a shard node (`--role shard`) that does not serve the project (`not_owner`): send the request to the node `X-Tdsync-Owner` names. A gateway follows it by itself; a single node never answers it";
const IN_A_CLUSTER_UNAVAILABLE: &str = "in a cluster, the project is being taken over or handed to another shard node, or its node does not answer: try again after `Retry-After` seconds";

/// The two 429 answers, kept once in `components.responses` and referred to by every operation.
const LIMITED_WITH_TOKEN: (&str, &str) = (
    "RateLimited",
    "Rate limited: over this token's limit for the route's class (push, pull, or other routes), or too many failed authentications from the client's address. Try again after `Retry-After` seconds",
);
const LIMITED_WITHOUT_TOKEN: (&str, &str) = (
    "RateLimitedByAddress",
    "Rate limited: too many requests without a token from the client's address. Try again after `Retry-After` seconds",
);

/// A 429 answer: td's envelope (`rate_limited`) and `Retry-After`.
fn rate_limited(description: &str) -> RefOr<Response> {
    // A rate is at least one a minute: a token is never more than 60 s away.
    let seconds = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(60));
    ResponseBuilder::new()
        .description(description)
        .header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(Some(seconds))
                .description(Some(
                    "Whole seconds until the limit lets a request through again (1 to 60)",
                ))
                .build(),
        )
        .content(
            "application/json",
            Content::new(Some(RefOr::<Schema>::Ref(Ref::from_schema_name(
                "ErrorBody",
            )))),
        )
        .into()
}

const PATH_NOT_UTF8: &str = "a path parameter that is not UTF-8 once percent-decoded";

impl Modify for CommonAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let error = |description: &str| -> RefOr<Response> {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    Content::new(Some(RefOr::<Schema>::Ref(Ref::from_schema_name(
                        "ErrorBody",
                    )))),
                )
                .into()
        };
        let not_owner = ResponseBuilder::new()
            .description(NOT_OWNER)
            .header(
                "X-Tdsync-Owner",
                HeaderBuilder::new()
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .description(Some(
                        "The base URL of the shard node that serves the project",
                    ))
                    .build(),
            )
            .content(
                "application/json",
                Content::new(Some(RefOr::<Schema>::Ref(Ref::from_schema_name(
                    "ErrorBody",
                )))),
            )
            .build();
        let shard_paths = crate::routes::shard_paths();
        let components = openapi.components.get_or_insert_with(Default::default);
        components
            .responses
            .insert("NotOwner".into(), not_owner.into());
        for (name, description) in [LIMITED_WITH_TOKEN, LIMITED_WITHOUT_TOKEN] {
            components
                .responses
                .insert(name.into(), rate_limited(description));
        }
        for (path, item) in openapi.paths.paths.iter_mut() {
            let on_shard = shard_paths.contains(&path.as_str());
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ];
            for op in operations.into_iter().flatten() {
                let has_path_parameters = op
                    .parameters
                    .iter()
                    .flatten()
                    .any(|p| matches!(p, RefOr::T(p) if p.parameter_in == ParameterIn::Path));
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let responses = &mut op.responses.responses;
                let (limited, _) = if secured {
                    LIMITED_WITH_TOKEN
                } else {
                    LIMITED_WITHOUT_TOKEN
                };
                responses
                    .entry("429".into())
                    .or_insert_with(|| RefOr::Ref(Ref::from_response_name(limited)));
                if secured {
                    responses.entry("401".into()).or_insert_with(|| {
                        error("Missing, malformed, unknown, expired or revoked token")
                    });
                    responses.entry("503".into()).or_insert_with(|| {
                        error("The control plane (tokens, projects) cannot be reached: try again")
                    });
                }
                if on_shard {
                    responses
                        .entry("421".into())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name("NotOwner")));
                    if let Some(RefOr::T(response)) = responses.get_mut("503") {
                        response.description = format!(
                            "{}; or, {IN_A_CLUSTER_UNAVAILABLE}",
                            response.description.trim_end_matches(": try again")
                        );
                    }
                }
                if has_path_parameters {
                    match responses.get_mut("400") {
                        Some(RefOr::T(response)) => {
                            response.description = format!(
                                "{}; or {PATH_NOT_UTF8}",
                                response.description.trim_end_matches('.')
                            );
                        }
                        Some(RefOr::Ref(_)) => {}
                        None => {
                            responses
                                .insert("400".into(), error(&format!("Bad path: {PATH_NOT_UTF8}")));
                        }
                    }
                }
            }
        }
    }
}

/// What utoipa's model cannot say, applied to the serialized document:
///
/// - every `int64` is what the server parses it into, an `i64`: its minimum and maximum are
///   stated (a value outside them is refused with 400), unless a narrower bound already is;
/// - every integer query parameter is read by `routes::query_int`, which takes an empty value
///   for an absent one (`allowEmptyValue`, a field utoipa's parameter does not have);
/// - a mint request's array of scopes must contain at least one item naming a scope
///   (`contains`, which utoipa's array schema has no field for).
fn refine(doc: &mut Value) {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                let integer = match map.get("type") {
                    Some(Value::String(t)) => t == "integer",
                    Some(Value::Array(ts)) => ts.iter().any(|t| t == "integer"),
                    _ => false,
                };
                if integer && map.get("format").and_then(Value::as_str) == Some("int64") {
                    map.entry("minimum").or_insert(Value::from(i64::MIN));
                    map.entry("maximum").or_insert(Value::from(i64::MAX));
                }
                map.values_mut().for_each(walk);
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(doc);
    if let Some(Value::Object(paths)) = doc.get_mut("paths") {
        let parameters = paths
            .values_mut()
            .filter_map(Value::as_object_mut)
            .flat_map(|item| item.values_mut())
            .filter_map(|op| op.get_mut("parameters").and_then(Value::as_array_mut))
            .flatten();
        for p in parameters {
            if p["in"] == "query" && p["schema"]["type"] == "integer" {
                p["allowEmptyValue"] = Value::Bool(true);
            }
        }
    }
    if let Some(Value::Array(forms)) = doc.pointer_mut("/components/schemas/ScopesInput/oneOf") {
        for form in forms {
            if form.get("type").and_then(Value::as_str) == Some("array") {
                form["contains"] = serde_json::json!({
                    "type": "string",
                    "pattern": schemas::scope_list_pattern(true),
                });
            }
        }
    }
}

/// The document as pretty JSON (built once).
pub fn document_json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = match serde_json::to_value(ApiDoc::openapi()) {
            Ok(doc) => doc,
            Err(e) => return format!("{{\"error\":\"{e}\"}}"),
        };
        refine(&mut doc);
        serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    })
}
