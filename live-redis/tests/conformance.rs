//! The Redis backend against a real redis-server: what `SharedState` promises, across two
//! backends (two processes' worth) on one Redis, and through an outage: changes and moves
//! reach the other processes, heads follow their epoch rule and are read only while their
//! writer is heard from, and a Redis that lost them gets them back.
//!
//! The shared tests use `TDSYNC_TEST_REDIS_URL` (each with a key prefix of its own); the outage
//! test kills and restarts a redis-server of its own. Without Redis they skip loudly, or fail
//! under `TDSYNC_REQUIRE_SERVICES=1` (`tdsync_live_redis::testing`).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{TimeDelta, Utc};
use tdsync_live::{Change, ChangeKind, Cursor, Head, Inbox, Live, Notice, ProjectKey, SharedState};
use tdsync_live_redis::{
    RedisConfig, RedisShared,
    testing::{RedisServer, redis_url, subscribers, unique_prefix},
};
use tdsync_protocol::{
    ids::{ProjectId, TenantId},
    wire::SyncStatus,
};
use tokio::sync::mpsc;

fn backend(url: &str, prefix: &str) -> Arc<RedisShared> {
    let mut config = RedisConfig::new(url.parse().unwrap());
    config.prefix = prefix.to_string();
    Arc::new(RedisShared::new(config).unwrap())
}

fn key(project: &str) -> ProjectKey {
    ProjectKey::new(
        &TenantId::parse("t_acme").unwrap(),
        &ProjectId::parse(project).unwrap(),
    )
}

fn change(head: i64) -> Change {
    Change {
        kind: ChangeKind::Push,
        head,
        first: head,
        touched: Vec::new(),
        at: Utc::now(),
    }
}

fn head(epoch: i64, seq: i64) -> Head {
    Head {
        epoch,
        status: SyncStatus {
            event_count: seq,
            last_server_seq: seq,
            last_event_time: Some(format!("2026-12-05T10:00:{seq:02}Z")),
        },
    }
}

/// An inbox that forwards what it is delivered to a channel.
struct Collect(mpsc::UnboundedSender<(ProjectKey, Notice)>);

impl Inbox for Collect {
    fn deliver(&self, key: ProjectKey, notice: Notice) {
        let _ = self.0.send((key, notice));
    }
    fn resumed(&self) {}
}

fn collect(shared: &RedisShared) -> mpsc::UnboundedReceiver<(ProjectKey, Notice)> {
    let (tx, rx) = mpsc::unbounded_channel();
    shared.listen(Arc::new(Collect(tx)));
    rx
}

/// Polls `f` until it is true, for at most `within`.
async fn until(what: &str, within: Duration, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f().await {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (polling, with a deadline) until `n` connections listen on the backends' channel.
async fn until_listening(url: &str, prefix: &str, n: usize) {
    let channel = format!("{prefix}changes");
    let deadline = Instant::now() + Duration::from_secs(10);
    while subscribers(url, &channel) < n {
        assert!(
            Instant::now() < deadline,
            "{n} listeners on {channel} within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn redis_get(url: &str, cmd: &mut redis::Cmd) -> redis::Value {
    let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
    cmd.query(&mut con).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_reaches_the_other_process_and_not_its_publisher_and_heads_only_rise() {
    let Some(url) = redis_url("a_change_reaches_the_other_process") else {
        return;
    };
    let prefix = unique_prefix();
    let (a, b) = (backend(&url, &prefix), backend(&url, &prefix));
    let mut heard_by_a = collect(&a);
    let mut heard_by_b = collect(&b);
    until_listening(&url, &prefix, 2).await;

    let seven = Notice::Change(change(7));
    a.publish(&key("p_web"), Some(&head(1, 7)), &seven)
        .await
        .unwrap();
    let heard = tokio::time::timeout(Duration::from_secs(5), heard_by_b.recv())
        .await
        .expect("b hears a's change within 5 s");
    assert_eq!(heard, Some((key("p_web"), seven)));
    // An older head published late (a slower process) never lowers the recorded one.
    b.publish(&key("p_web"), Some(&head(1, 3)), &Notice::Change(change(3)))
        .await
        .unwrap();
    let (_, heard) = tokio::time::timeout(Duration::from_secs(5), heard_by_a.recv())
        .await
        .expect("a hears b's change within 5 s")
        .unwrap();
    assert!(
        matches!(&heard, Notice::Change(c) if c.head == 3),
        "{heard:?}"
    );
    assert!(
        heard_by_a.try_recv().is_err(),
        "a never hears its own change"
    );
    assert!(
        heard_by_b.try_recv().is_err(),
        "b never hears its own change"
    );
    // Read only while its writer is heard from: a has not beaten yet.
    assert_eq!(b.head(&key("p_web")).await.unwrap(), None);
    assert!(!a.heartbeat().await.unwrap(), "a's first heartbeat");
    assert!(
        a.heartbeat().await.unwrap(),
        "a is heard from without a break"
    );
    assert_eq!(b.head(&key("p_web")).await.unwrap(), Some(head(1, 7)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_epoch_wins_a_quiet_writers_head_is_not_read_and_moves_are_heard() {
    let Some(url) = redis_url("a_newer_epoch_wins") else {
        return;
    };
    let prefix = unique_prefix();
    let (a, b) = (backend(&url, &prefix), backend(&url, &prefix));
    let mut heard_by_a = collect(&a);
    until_listening(&url, &prefix, 1).await;
    a.heartbeat().await.unwrap();
    a.record_heads(&[(key("p_web"), head(1, 9)), (key("p_api"), head(1, 2))])
        .await
        .unwrap();
    assert_eq!(b.head(&key("p_api")).await.unwrap(), Some(head(1, 2)));
    // b took p_web over (epoch 2) and restored fewer events than a had logged: its head wins.
    b.heartbeat().await.unwrap();
    b.publish(&key("p_web"), Some(&head(2, 6)), &Notice::Moved)
        .await
        .unwrap();
    let heard = tokio::time::timeout(Duration::from_secs(5), heard_by_a.recv())
        .await
        .expect("a hears of the move within 5 s");
    assert_eq!(heard, Some((key("p_web"), Notice::Moved)));
    assert_eq!(a.head(&key("p_web")).await.unwrap(), Some(head(2, 6)));
    // The fenced owner's late write does not replace it.
    a.record_heads(&[(key("p_web"), head(1, 12))])
        .await
        .unwrap();
    assert_eq!(a.head(&key("p_web")).await.unwrap(), Some(head(2, 6)));
    // b goes quiet: once its heartbeat runs out, its head is not read (it may be behind).
    until(
        "b's head unread once b is quiet",
        Duration::from_secs(10),
        async || a.head(&key("p_web")).await.unwrap().is_none(),
    )
    .await;
    assert!(!b.heartbeat().await.unwrap(), "b's beat came after a break");
    assert_eq!(a.head(&key("p_web")).await.unwrap(), Some(head(2, 6)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_lost_the_heads_gets_them_back_from_the_process_serving_them() {
    let Some(url) = redis_url("a_redis_that_lost_the_heads") else {
        return;
    };
    let prefix = unique_prefix();
    let serving = Live::with_shared(backend(&url, &prefix));
    let gateway = Live::with_shared(backend(&url, &prefix));
    let heads = Arc::new(parking_lot::Mutex::new(vec![(key("p_web"), head(0, 4))]));
    let source = heads.clone();
    serving.serve_heads(Arc::new(move || source.lock().clone()));
    serving.sync_once().await;
    let status = |seq: i64| Some(head(0, seq).status);
    assert_eq!(gateway.head(&key("p_web")).await, status(4));
    // Redis loses everything (a restart without persistence, a flush).
    let redis::Value::Array(keys) = redis_get(&url, redis::cmd("KEYS").arg(format!("{prefix}*")))
    else {
        panic!("KEYS answers an array");
    };
    for k in keys {
        let redis::Value::BulkString(k) = k else {
            panic!("a key name");
        };
        redis_get(&url, redis::cmd("DEL").arg(k));
    }
    assert_eq!(gateway.head(&key("p_web")).await, None);
    heads.lock()[0].1 = head(0, 5);
    serving.sync_once().await;
    assert_eq!(
        gateway.head(&key("p_web")).await,
        status(5),
        "written back at the first heartbeat that found the process unknown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursors_keep_each_devices_highest_seq_and_latest_time_over_every_process() {
    let Some(url) = redis_url("cursors_keep_each_devices_highest_seq") else {
        return;
    };
    let prefix = unique_prefix();
    let (a, b) = (backend(&url, &prefix), backend(&url, &prefix));
    // Millisecond times: what Redis keeps.
    let t0 = chrono::DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap();
    let at = |device: &str, seq, secs| Cursor {
        device_id: device.into(),
        last_seq: seq,
        last_seen: t0 + TimeDelta::seconds(secs),
    };
    a.record_cursors(&[
        (key("p_web"), at("laptop", 10, 0)),
        (key("p_api"), at("ci", 1, 0)),
    ])
    .await
    .unwrap();
    // b saw the laptop later but behind (its pull answered before a's): seq stays 10.
    b.record_cursors(&[
        (key("p_web"), at("laptop", 4, 5)),
        (key("p_web"), at("desk", 2, 1)),
    ])
    .await
    .unwrap();
    assert_eq!(
        b.cursors(&key("p_web")).await.unwrap(),
        vec![at("desk", 2, 1), at("laptop", 10, 5)]
    );
    assert_eq!(
        a.cursors(&key("p_api")).await.unwrap(),
        vec![at("ci", 1, 0)]
    );
    assert_eq!(a.cursors(&key("p_none")).await.unwrap(), vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_add_up_over_every_process_per_window_and_bucket_names_stay_out_of_redis() {
    let Some(url) = redis_url("counts_add_up_over_every_process") else {
        return;
    };
    let prefix = unique_prefix();
    let (a, b) = (backend(&url, &prefix), backend(&url, &prefix));
    let bucket = "token:tds_k3y_s3cretpart".to_string();
    assert_eq!(
        a.add_counts(100, &[(bucket.clone(), 3)]).await.unwrap(),
        vec![3]
    );
    assert_eq!(
        b.add_counts(100, &[(bucket.clone(), 2), ("ip:127.0.0.1".into(), 1)])
            .await
            .unwrap(),
        vec![5, 1]
    );
    assert_eq!(
        a.add_counts(101, &[(bucket.clone(), 1)]).await.unwrap(),
        vec![1],
        "a new window starts from zero"
    );
    let redis::Value::Array(keys) = redis_get(&url, redis::cmd("KEYS").arg(format!("{prefix}*")))
    else {
        panic!("KEYS answers an array");
    };
    assert_eq!(keys.len(), 3);
    for k in keys {
        let redis::Value::BulkString(k) = k else {
            panic!("a key name");
        };
        let k = String::from_utf8(k).unwrap();
        assert!(!k.contains("s3cret") && !k.contains("127.0.0.1"), "{k}");
        let ttl = redis_get(&url, redis::cmd("TTL").arg(&k));
        assert!(
            matches!(ttl, redis::Value::Int(t) if t > 0 && t <= 120),
            "{k} expires within two minutes: {ttl:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_live_layers_on_one_redis_wake_each_others_subscribers() {
    let Some(url) = redis_url("two_live_layers_on_one_redis") else {
        return;
    };
    let prefix = unique_prefix();
    let a = Live::with_shared(backend(&url, &prefix));
    let b = Live::with_shared(backend(&url, &prefix));
    until_listening(&url, &prefix, 2).await;
    let mut on_b = b.subscribe(&key("p_web"));
    let mut on_a = a.subscribe(&key("p_web"));
    a.publish(&key("p_web"), None, change(12)).await;
    assert_eq!(on_a.recv().await.unwrap().head, 12, "a's own subscriber");
    let deadline = Instant::now() + Duration::from_secs(5);
    assert!(
        Live::wait_past(&mut on_b, 11, deadline).await,
        "b's subscriber is woken by a's push"
    );
    assert!(on_a.try_recv().is_err(), "a's subscriber hears it once");
    assert_eq!(b.health().shared_up, Some(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_redis_fails_calls_fast_and_everything_resumes_when_it_returns() {
    let Some(mut server) = RedisServer::start("a_dead_redis_fails_calls_fast") else {
        return;
    };
    let url = server.url();
    let prefix = unique_prefix();
    let a = backend(&url, &prefix);
    let b = Arc::new(Live::with_shared(backend(&url, &prefix)));
    until_listening(&url, &prefix, 1).await;
    let mut before_the_outage = b.subscribe(&key("p_web"));
    let live_a = Live::with_shared(a.clone());
    until_listening(&url, &prefix, 2).await;
    live_a.sync_once().await;
    assert_eq!(live_a.health().shared_up, Some(true));

    server.kill();
    for _ in 0..3 {
        let started = Instant::now();
        let failed = a
            .publish(&key("p_web"), None, &Notice::Change(change(1)))
            .await;
        assert!(failed.is_err(), "a publish to a dead Redis fails");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "and fails fast: {:?}",
            started.elapsed()
        );
        let started = Instant::now();
        assert!(a.cursors(&key("p_web")).await.is_err());
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    live_a.sync_once().await;
    let health = live_a.health();
    assert_eq!(health.shared_up, Some(false));
    assert!(health.shared_failures >= 1);
    // Live keeps answering from this process meanwhile.
    live_a.record_cursor(&key("p_web"), "laptop", 9);
    assert_eq!(live_a.cursors(&key("p_web")).await[0].last_seq, 9);

    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        live_a.sync_once().await;
        if live_a.health().shared_up == Some(true) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "recovered within 10 s of the restart"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The listeners came back by themselves. b's subscriber from before may have missed
    // changes: it is told so (an SSE stream sends `refresh`).
    until_listening(&url, &prefix, 2).await;
    let told = tokio::time::timeout(Duration::from_secs(5), before_the_outage.recv())
        .await
        .expect("b's old subscriber is told within 5 s")
        .unwrap();
    assert_eq!(told.kind, ChangeKind::Missed);
    let mut on_b = b.subscribe(&key("p_web"));
    live_a.publish(&key("p_web"), None, change(20)).await;
    assert!(
        Live::wait_past(&mut on_b, 19, Instant::now() + Duration::from_secs(5)).await,
        "b hears a after the restart"
    );
    // The cursor recorded during the outage reached Redis at the recovery sync.
    assert_eq!(a.cursors(&key("p_web")).await.unwrap()[0].last_seq, 9);
}
