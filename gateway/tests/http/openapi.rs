//! The served OpenAPI document is the committed one (`openapi/tdsync.openapi.json`). A route or
//! schema change fails here until the committed copy is regenerated with
//! `UPDATE_OPENAPI=1 cargo test -p tdsync-gateway --test http openapi`, so API changes show up
//! in review as a diff of that file.

use std::path::PathBuf;

use serde_json::Value;

use crate::support::TestServer;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../openapi/tdsync.openapi.json")
}

#[test]
fn the_served_document_is_the_committed_one() {
    let s = TestServer::start();
    let reply = s.send("GET", "/openapi.json", &[], None);
    let served = reply.expect(200);
    let path = committed_path();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        let mut text = serde_json::to_string_pretty(&served).unwrap();
        text.push('\n');
        std::fs::write(&path, text).unwrap();
        eprintln!("openapi: wrote {}", path.display());
        return;
    }
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; generate it with UPDATE_OPENAPI=1 cargo test -p tdsync-gateway --test http openapi",
                path.display()
            )
        }),
    )
    .unwrap();
    assert!(
        served == committed,
        "the served OpenAPI document differs from {}; if the API change is intended, run \
         UPDATE_OPENAPI=1 cargo test -p tdsync-gateway --test http openapi and commit the file",
        path.display()
    );
}

#[test]
fn every_route_is_documented_with_the_bearer_scheme() {
    let s = TestServer::start();
    let doc = s.send("GET", "/openapi.json", &[], None).expect(200);
    let paths = doc["paths"].as_object().expect("paths");
    for route in [
        "/healthz",
        "/metrics",
        "/openapi.json",
        "/v1/projects",
        "/v1/projects/{id}",
        "/v1/projects/{id}/sync/push",
        "/v1/projects/{id}/sync/pull",
        "/v1/projects/{id}/sync/status",
        "/v1/projects/{id}/sync/snapshot",
        "/v1/projects/{id}/members",
        "/v1/projects/{id}/members/{user_id}",
        "/v1/projects/{id}/conflicts",
        "/v1/projects/{id}/conflicts/{cid}/restore",
        "/v1/projects/{id}/history/{entity_type}/{entity_id}",
        "/v1/tokens",
        "/v1/tokens/{id}",
    ] {
        assert!(
            paths.contains_key(route),
            "{route} is not documented: {:?}",
            paths.keys()
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

/// The limits the document states as literals are the server's own constants.
#[test]
fn the_documented_limits_are_the_servers() {
    let s = TestServer::start();
    let doc = s.send("GET", "/openapi.json", &[], None).expect(200);
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["PushRequest"]["properties"]["events"]["maxItems"],
        tdsync_protocol::wire::MAX_PUSH_EVENTS
    );
    assert_eq!(
        schemas["Duration"]["x-max-total-seconds"],
        tdsync_acl::MAX_DURATION_SECONDS
    );
    // Every operation that takes a token says it may answer 401 and 503.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op.get("security").is_some() {
                for status in ["401", "503"] {
                    assert!(
                        op["responses"].get(status).is_some(),
                        "{method} {path} does not document {status}"
                    );
                }
            }
        }
    }
}
