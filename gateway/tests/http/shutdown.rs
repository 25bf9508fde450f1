//! Graceful shutdown: `serve` returns Ok once its shutdown future resolves, with every shard
//! closed (its WAL checkpointed away) and the data intact. (The binary on SIGTERM:
//! cli/tests/serve.rs.)

use crate::support::{TestServer, events::creates};

#[test]
fn stopping_closes_every_shard_and_keeps_what_was_pushed() {
    let mut s = TestServer::start();
    let team = s.team("acme");
    s.push(&team.project, &team.admin.token, &creates("dev-a", 1..=20))
        .expect(200);
    let shard = s.shard_path(&team.tenant, &team.project);
    let wal = shard.with_extension("db-wal");
    assert!(
        wal.exists() || shard.exists(),
        "the shard exists while serving"
    );

    s.stop().expect("serve ends without an error");

    assert!(
        !wal.exists(),
        "{} is left behind: a shard was not closed",
        wal.display()
    );
    assert!(
        std::net::TcpStream::connect(s.base.trim_start_matches("http://")).is_err(),
        "the listener is closed"
    );
    // What was pushed is there for the next start.
    assert_eq!(s.event_count(&team.tenant, &team.project), 20);
}
