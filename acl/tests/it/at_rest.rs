//! No token secret at rest: after minting, verifying, recording last use and revoking with the
//! production hashing cost, the SQLite file (with its WAL) and every Postgres row are searched
//! for each token and every 12-character piece of each secret.

use sqlx::Row;
use tdsync_acl::{
    Acl, AclConfig, Actor, AnyStore, ControlPlaneStore, IssuedToken, MintRequest, Scopes,
};

use crate::support::{Backend, TestStore};

/// The secret half of a token, and the pieces of it that must not appear anywhere.
fn needles(issued: &IssuedToken) -> Vec<String> {
    let token = issued.token.expose();
    let secret = token.rsplit('_').next().unwrap();
    assert_eq!(secret.len(), 32);
    let mut out = vec![token.to_string(), secret.to_string()];
    out.extend((0..=secret.len() - 12).map(|i| secret[i..i + 12].to_string()));
    out
}

async fn stored_text(t: &TestStore) -> Vec<u8> {
    match t.backend {
        Backend::Sqlite => {
            // The database file and its WAL and shared-memory files: everything on disk.
            let mut bytes = Vec::new();
            for entry in std::fs::read_dir(t.dir.as_ref().unwrap().path()).unwrap() {
                let path = entry.unwrap().path();
                bytes.extend(std::fs::read(&path).unwrap());
            }
            assert!(bytes.len() > 4096, "the control plane was written to disk");
            bytes
        }
        Backend::Postgres => {
            let AnyStore::Postgres(pg) = &t.store else {
                unreachable!()
            };
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
            )
            .fetch_all(pg.pool())
            .await
            .unwrap();
            assert!(tables.iter().any(|t| t == "tokens"), "{tables:?}");
            let mut text = String::new();
            for table in tables {
                let sql = format!("SELECT t::text AS row FROM \"{table}\" t");
                for row in sqlx::query(sqlx::AssertSqlSafe(sql))
                    .fetch_all(pg.pool())
                    .await
                    .unwrap()
                {
                    text.push_str(&row.get::<String, _>("row"));
                    text.push('\n');
                }
            }
            text.into_bytes()
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

async fn no_token_secret_is_stored_in_clear(t: TestStore) {
    let acl = Acl::new(t.store.clone(), AclConfig::default());
    let tenant = acl.create_tenant("acme", &Actor::Cli).await.unwrap();
    let project = acl
        .create_project(&tenant.id, "web", "", &Actor::Cli)
        .await
        .unwrap();
    let parent = acl
        .mint(
            &tenant.id,
            MintRequest::new(Scopes::parse("write,mint").unwrap()),
            &Actor::Cli,
        )
        .await
        .unwrap();
    let grant = acl.verify(parent.token.expose()).await.unwrap();
    let mut request = MintRequest::new(Scopes::parse("read").unwrap());
    request.projects = Some(tdsync_acl::ProjectBinding::Only(
        [project.id.clone()].into(),
    ));
    let child = acl.mint_child(&grant, request).await.unwrap();
    let other = acl
        .mint(
            &tenant.id,
            MintRequest::new(Scopes::parse("admin").unwrap()),
            &Actor::Cli,
        )
        .await
        .unwrap();
    acl.verify(child.token.expose()).await.unwrap();
    acl.flush_last_used().await.unwrap();
    acl.revoke(&other.record.id, &Actor::Cli).await.unwrap();

    let stored = stored_text(&t).await;
    for issued in [&parent, &child, &other] {
        assert!(
            contains(&stored, issued.record.id.as_str()),
            "the lookup id is stored (sanity)"
        );
        for needle in needles(issued) {
            assert!(
                !contains(&stored, &needle),
                "{:?}: found {needle:?} in storage",
                t.backend
            );
        }
        let (_, hash) = t
            .store
            .token_for_verification(&issued.record.id)
            .await
            .unwrap()
            .unwrap();
        assert!(
            hash.0.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "production argon2id: {}",
            hash.0
        );
        // Nor in what could be logged.
        assert!(
            !format!("{issued:?}").contains(&needles(issued)[1]),
            "Debug hides the secret"
        );
    }
}

crate::both_backends!(no_token_secret_is_stored_in_clear);
