//! Prometheus metrics, rendered in the text exposition format at `GET /metrics`: requests by
//! route and status, latency histograms by route, events pushed, pulls served, requests refused
//! by a rate limit (by class), open shards.
//! A small registry of our own: a handful of series does not need a metrics framework.

use std::{
    collections::BTreeMap,
    fmt::Write,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use crate::limits::Class;

/// Latency bucket bounds in seconds (a pull at the head is tens of microseconds; a big push or
/// a snapshot seconds).
const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

#[derive(Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    events_pushed: AtomicU64,
    events_pulled: AtomicU64,
    pulls: AtomicU64,
    /// Refusals by rate-limit class, in `Class::ALL` order.
    rate_limited: [AtomicU64; Class::ALL.len()],
    recoveries: Arc<Recoveries>,
}

/// Recoveries of damaged shards, counted by the task that runs them (which holds its own
/// handle, not the whole state).
#[derive(Debug, Default)]
pub struct Recoveries {
    pub recovered: AtomicU64,
    pub failed: AtomicU64,
}

impl Metrics {
    pub fn recoveries(&self) -> Arc<Recoveries> {
        self.recoveries.clone()
    }

    /// One finished request. `route` is the matched route template (never a raw path, so
    /// project ids do not multiply series).
    pub fn request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        {
            let mut r = self.requests.lock().unwrap_or_else(|e| e.into_inner());
            *r.entry((route.to_string(), method.to_string(), status))
                .or_default() += 1;
        }
        let secs = elapsed.as_secs_f64();
        let mut l = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        let h = l.entry(route.to_string()).or_default();
        h.count += 1;
        h.sum += secs;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.buckets[i] += 1;
            }
        }
    }

    pub fn pushed(&self, events: u64) {
        self.events_pushed.fetch_add(events, Ordering::Relaxed);
    }

    pub fn pulled(&self, events: u64) {
        self.pulls.fetch_add(1, Ordering::Relaxed);
        self.events_pulled.fetch_add(events, Ordering::Relaxed);
    }

    /// One request refused by a rate limit of `class`.
    pub fn rate_limited(&self, class: Class) {
        if let Some(i) = Class::ALL.iter().position(|c| *c == class) {
            self.rate_limited[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The exposition text; the store's gauges are read from it at scrape time.
    pub fn render(&self, store: StoreGauges) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP tdsync_http_requests_total HTTP requests by route, method and status."
        );
        let _ = writeln!(out, "# TYPE tdsync_http_requests_total counter");
        for ((route, method, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "tdsync_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
        let _ = writeln!(
            out,
            "# HELP tdsync_http_request_duration_seconds Request latency by route."
        );
        let _ = writeln!(out, "# TYPE tdsync_http_request_duration_seconds histogram");
        for (route, h) in self
            .latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let route = escape(route);
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "tdsync_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {}",
                    h.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "tdsync_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "tdsync_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "tdsync_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count
            );
        }
        counter(
            &mut out,
            "tdsync_events_pushed_total",
            "Events newly stored by pushes.",
            self.events_pushed.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "tdsync_pulls_total",
            "Pull requests answered.",
            self.pulls.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "tdsync_events_pulled_total",
            "Events sent by pulls.",
            self.events_pulled.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP tdsync_rate_limited_total Requests refused by a rate limit (429), by class: push, pull and other per token; unauthenticated and failed_auth per client address.\n# TYPE tdsync_rate_limited_total counter"
        );
        for (class, n) in Class::ALL.iter().zip(&self.rate_limited) {
            let _ = writeln!(
                out,
                "tdsync_rate_limited_total{{class=\"{}\"}} {}",
                class.label(),
                n.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP tdsync_open_shards Project shards open right now.\n# TYPE tdsync_open_shards gauge\ntdsync_open_shards {}",
            store.open_shards
        );
        let _ = writeln!(
            out,
            "# HELP tdsync_known_projects Projects whose head is held in memory.\n# TYPE tdsync_known_projects gauge\ntdsync_known_projects {}",
            store.known_projects
        );
        let _ = writeln!(
            out,
            "# HELP tdsync_live_subscribers SSE streams and long-polls waiting in this process.\n# TYPE tdsync_live_subscribers gauge\ntdsync_live_subscribers {}",
            store.live.subscribers
        );
        if let Some(up) = store.live.shared_up {
            let _ = writeln!(
                out,
                "# HELP tdsync_live_shared_up Whether the shared live backend ({}) answered its last call.\n# TYPE tdsync_live_shared_up gauge\ntdsync_live_shared_up {}",
                store.live.backend,
                u8::from(up)
            );
        }
        counter(
            &mut out,
            "tdsync_live_shared_failures_total",
            "Calls to the shared live backend that failed (answered from this process's state).",
            store.live.shared_failures,
        );
        let _ = writeln!(
            out,
            "# HELP tdsync_shard_recoveries_total Damaged shards taken out of service and recovered, or not.\n# TYPE tdsync_shard_recoveries_total counter\ntdsync_shard_recoveries_total{{outcome=\"recovered\"}} {}\ntdsync_shard_recoveries_total{{outcome=\"failed\"}} {}",
            self.recoveries.recovered.load(Ordering::Relaxed),
            self.recoveries.failed.load(Ordering::Relaxed)
        );
        if let Some(backup) = &store.backup {
            render_backup(&mut out, backup);
        }
        render_cluster(&mut out, store.shard, store.gateway);
        out
    }
}

/// What the store and the live layer report at scrape time.
#[derive(Debug, Clone)]
pub struct StoreGauges {
    pub open_shards: usize,
    pub known_projects: usize,
    pub live: tdsync_live::LiveHealth,
    /// Shipping to a backup target, when configured.
    pub backup: Option<tdsync_backup::BackupStats>,
    /// A shard node's projects (`--role shard`).
    pub shard: Option<ShardGauges>,
    /// A gateway's forwarding (`--role gateway`).
    pub gateway: Option<GatewayGauges>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ShardGauges {
    pub projects_held: usize,
    pub takeovers: u64,
    pub handoffs: u64,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct GatewayGauges {
    /// Pulls at the head, their long-poll waits and statuses answered from the shared heads,
    /// and event streams served from the shared wake-ups, with no shard node asked.
    pub answered: u64,
    /// Requests answered by a shard node at the first send.
    pub forwarded: u64,
    /// Sends again to another node (a 421, or a node that did not answer).
    pub redirected: u64,
    /// Requests no node answered (503).
    pub failed: u64,
}

fn render_cluster(out: &mut String, shard: Option<ShardGauges>, gateway: Option<GatewayGauges>) {
    if let Some(s) = shard {
        let _ = writeln!(
            out,
            "# HELP tdsync_shard_projects_held Projects whose lease this shard node holds.\n# TYPE tdsync_shard_projects_held gauge\ntdsync_shard_projects_held {}",
            s.projects_held
        );
        counter(
            out,
            "tdsync_shard_takeovers_total",
            "Projects this shard node took over (restored from the backup under a new epoch).",
            s.takeovers,
        );
        counter(
            out,
            "tdsync_shard_handoffs_total",
            "Projects this shard node handed to another (a drain or a move).",
            s.handoffs,
        );
    }
    if let Some(g) = gateway {
        counter(
            out,
            "tdsync_gateway_answered_total",
            "Pulls at the head, statuses and event streams this gateway answered from the heads and wake-ups shared through Redis, without a shard node.",
            g.answered,
        );
        counter(
            out,
            "tdsync_gateway_forwarded_total",
            "Requests a shard node answered at the first send.",
            g.forwarded,
        );
        counter(
            out,
            "tdsync_gateway_redirected_total",
            "Sends again to another shard node (a 421 naming the owner, or a node that did not answer).",
            g.redirected,
        );
        counter(
            out,
            "tdsync_gateway_failed_total",
            "Requests no shard node answered (503 with Retry-After).",
            g.failed,
        );
    }
}

fn counter(out: &mut String, name: &str, help: &str, v: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
    );
}

fn render_backup(out: &mut String, b: &tdsync_backup::BackupStats) {
    let _ = writeln!(
        out,
        "# HELP tdsync_backup_lag_seconds The longest any project with unshipped events has waited since it was last fully shipped.\n# TYPE tdsync_backup_lag_seconds gauge\ntdsync_backup_lag_seconds {:.3}",
        b.lag_seconds
    );
    let _ = writeln!(
        out,
        "# HELP tdsync_backup_backlog_events Events logged but not yet in the backup.\n# TYPE tdsync_backup_backlog_events gauge\ntdsync_backup_backlog_events {}",
        b.backlog_events
    );
    counter(
        out,
        "tdsync_backup_shipped_bytes_total",
        "Bytes shipped to the backup target (segments and snapshots, compressed).",
        b.shipped_bytes,
    );
    counter(
        out,
        "tdsync_backup_shipped_events_total",
        "Events shipped to the backup target.",
        b.shipped_events,
    );
    counter(
        out,
        "tdsync_backup_snapshots_total",
        "Shard snapshots shipped to the backup target.",
        b.snapshots,
    );
    counter(
        out,
        "tdsync_backup_failures_total",
        "Shipments to the backup target that failed (retried next round).",
        b.failures,
    );
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let m = Metrics::default();
        m.request(
            "/v1/projects/{id}/sync/pull",
            "GET",
            200,
            Duration::from_micros(80),
        );
        m.request(
            "/v1/projects/{id}/sync/pull",
            "GET",
            200,
            Duration::from_millis(3),
        );
        m.pushed(5);
        m.pulled(7);
        m.rate_limited(Class::Push);
        m.rate_limited(Class::Push);
        m.rate_limited(Class::FailedAuth);
        let text = m.render(StoreGauges {
            open_shards: 2,
            known_projects: 40,
            live: tdsync_live::LiveHealth {
                backend: "redis",
                shared_up: Some(false),
                shared_failures: 3,
                subscribers: 7,
            },
            backup: Some(tdsync_backup::BackupStats {
                shipped_bytes: 4096,
                failures: 2,
                backlog_events: 12,
                lag_seconds: 1.5,
                ..Default::default()
            }),
            shard: Some(ShardGauges {
                projects_held: 3,
                takeovers: 2,
                handoffs: 1,
            }),
            gateway: Some(GatewayGauges {
                answered: 9,
                forwarded: 40,
                redirected: 2,
                failed: 1,
            }),
        });
        assert!(text.contains(r#"tdsync_http_requests_total{route="/v1/projects/{id}/sync/pull",method="GET",status="200"} 2"#), "{text}");
        assert!(text.contains(r#"le="0.0001"} 1"#));
        assert!(text.contains(r#"le="0.005"} 2"#));
        assert!(text.contains("tdsync_events_pushed_total 5"));
        assert!(text.contains("tdsync_pulls_total 1"));
        assert!(text.contains(r#"tdsync_rate_limited_total{class="push"} 2"#));
        assert!(text.contains(r#"tdsync_rate_limited_total{class="pull"} 0"#));
        assert!(text.contains(r#"tdsync_rate_limited_total{class="failed_auth"} 1"#));
        assert!(text.contains("tdsync_open_shards 2"));
        assert!(text.contains("tdsync_known_projects 40"));
        assert!(text.contains("tdsync_live_subscribers 7"));
        assert!(text.contains("tdsync_live_shared_up 0"));
        assert!(text.contains("tdsync_live_shared_failures_total 3"));
        assert!(text.contains("tdsync_backup_shipped_bytes_total 4096"));
        assert!(text.contains("tdsync_backup_failures_total 2"));
        assert!(text.contains("tdsync_backup_backlog_events 12"));
        assert!(text.contains("tdsync_backup_lag_seconds 1.500"));
        assert!(text.contains("tdsync_shard_projects_held 3"));
        assert!(text.contains("tdsync_shard_takeovers_total 2"));
        assert!(text.contains("tdsync_gateway_answered_total 9"));
        assert!(text.contains("tdsync_gateway_redirected_total 2"));
        assert!(text.contains("tdsync_gateway_failed_total 1"));
    }
}
