//! The client library's HTTP transport against the real server: two td databases converge
//! through it, and the server's refusals arrive as the error classes the client acts on.

use tdsync_client::{
    engine::{Identity, SyncClient},
    tddb::TdDatabase,
    transport::{Transport, TransportError, http::Http},
};
use tdsync_harness::td_writer::{IssueChange, IssueSpec, TdWriter};
use tdsync_projection::Dump;

use crate::support::TestServer;

fn replica(
    s: &TestServer,
    dir: &std::path::Path,
    name: &str,
    project: &str,
    token: &str,
) -> SyncClient<Http> {
    let db = TdDatabase::create(&dir.join(format!("{name}.db"))).unwrap();
    db.link(project).unwrap();
    SyncClient::new(
        db,
        Http::new(&s.base, project, Some(token)).unwrap(),
        Identity {
            device_id: format!("dev-{name}"),
            session_id: format!("ses_{name}"),
        },
    )
}

#[test]
fn two_td_databases_converge_through_the_http_transport() {
    let s = TestServer::start();
    let team = s.team("acme");
    let dir = tempfile::tempdir().unwrap();
    let a = replica(&s, dir.path(), "a", &team.project, &team.admin.token);
    let b = replica(&s, dir.path(), "b", &team.project, &team.admin.token);

    let id = {
        let mut w = TdWriter::new(a.db(), "ses_a", 1);
        let id = w.create_issue(&IssueSpec::new("over the wire ✓")).unwrap();
        w.add_comment(&id, "first").unwrap();
        id
    };
    let pushed = a.push().unwrap();
    assert_eq!(pushed.accepted, 2, "{pushed:?}");
    b.sync().unwrap();
    {
        let mut w = TdWriter::new(b.db(), "ses_b", 2);
        w.update_issue(
            &id,
            &IssueChange {
                title: Some("renamed by b".into()),
                ..IssueChange::default()
            },
        )
        .unwrap();
    }
    b.sync().unwrap();
    a.sync().unwrap();

    let dump = |c: &SyncClient<Http>| Dump::read(c.db().connection()).unwrap();
    let (da, db_) = (dump(&a), dump(&b));
    assert!(da.row_count() > 0);
    if let Some(d) = da.first_difference(&db_) {
        panic!("the replicas differ: {d:?}");
    }
    let title: String = a
        .db()
        .connection()
        .query_row("SELECT title FROM issues WHERE id = ?1", [&id], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(title, "renamed by b");
    assert_eq!(
        s.status(&team.project, &team.admin.token).last_server_seq,
        3
    );
}

#[test]
fn refusals_arrive_as_the_classes_the_client_acts_on() {
    let s = TestServer::start();
    let team = s.team("acme");
    let other = s.team("globex");
    let reader = s.mint(&team.tenant, "read", &[], None);

    let call =
        |project: &str, token: &str| Http::new(&s.base, project, Some(token)).unwrap().status();
    assert!(call(&team.project, &reader.token).is_ok());
    assert!(
        matches!(
            call(&team.project, "tds_nope_nope"),
            Err(TransportError::Unauthorized(_))
        ),
        "an unknown token is unauthorized"
    );
    // Another tenant's project is not found, exactly like a missing one.
    assert!(matches!(
        call(&other.project, &reader.token),
        Err(TransportError::NotFound(_))
    ));

    // A read-only token may not push.
    let dir = tempfile::tempdir().unwrap();
    let viewer = replica(&s, dir.path(), "viewer", &team.project, &reader.token);
    TdWriter::new(viewer.db(), "ses_viewer", 3)
        .create_issue(&IssueSpec::new("kept locally"))
        .unwrap();
    let err = viewer.push().unwrap_err().to_string();
    assert!(err.contains("forbidden"), "{err}");
    assert_eq!(
        viewer.pending_count().unwrap(),
        1,
        "the refused change stays pending"
    );

    // A token revoked is unauthorized at once.
    s.block_on(s.acl.revoke(&reader.id, &tdsync_acl::Actor::Cli))
        .unwrap();
    assert!(matches!(
        call(&team.project, &reader.token),
        Err(TransportError::Unauthorized(_))
    ));
}
