//! Rate limits: every request is counted, before its handler runs, against one bucket of the
//! live layer ([`tdsync_live::Live::admit_at`]: in memory, shared across processes when a shared
//! backend is configured) and refused with td's `429 rate_limited` and `Retry-After` when the
//! bucket is empty. Nothing here does I/O: a limit is decided from memory.
//!
//! Which bucket ([`Class`]):
//!
//! - a request bearing a token that verifies is counted against that token (its id, never the
//!   secret), in one of three classes: `push` (`POST …/sync/push`), `pull` (`GET …/sync/pull`,
//!   a long poll counted once, when it arrives) and `other` (every other route under `/v1/`);
//! - a request without a token — the service routes (`/healthz`, `/metrics`, `/openapi.json`),
//!   unknown routes, a `/v1/` route without `Authorization` — is counted against its client
//!   address (`unauthenticated`);
//! - a token that does not verify (malformed, unknown, wrong secret, expired, revoked) is
//!   counted against its client address too (`failed_auth`), and an address whose failures
//!   are over their limit has no token verified until they refill: made-up token ids cannot
//!   buy fresh buckets, and guessing secrets costs the guesser, not the token's owner.
//!
//! The token is verified here (the `Caller` extractor takes the outcome from the request's
//! extensions instead of verifying again), so a limit always belongs to a real token.
//!
//! The client address is the TCP peer, or — only when the peer is one of the configured trusted
//! proxies — the right-most address of `X-Forwarded-For` that is not a trusted proxy (what a
//! client writes into the header itself is left of its proxy's entry and never read). IPv6
//! clients are counted per /64, the block one host usually gets.

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
    str::FromStr,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    extract::{ConnectInfo, MatchedPath, Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use tdsync_acl::{AuthError, TokenGrant};
use tdsync_live::Admission;
/// A limit's rate, re-exported for the callers that set limits.
pub use tdsync_live::Rate;

use crate::{error::ApiError, state::AppState};

/// What a request is counted as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// `POST /v1/projects/{id}/sync/push`, per token.
    Push,
    /// `GET /v1/projects/{id}/sync/pull`, per token (a long poll counts once).
    Pull,
    /// Every other route under `/v1/`, per token.
    Other,
    /// Requests without a token, per client address.
    Unauthenticated,
    /// Tokens that do not verify, per client address.
    FailedAuth,
}

impl Class {
    pub const ALL: [Class; 5] = [
        Class::Push,
        Class::Pull,
        Class::Other,
        Class::Unauthenticated,
        Class::FailedAuth,
    ];

    /// Its name in metrics and bucket keys.
    pub fn label(self) -> &'static str {
        match self {
            Class::Push => "push",
            Class::Pull => "pull",
            Class::Other => "other",
            Class::Unauthenticated => "unauthenticated",
            Class::FailedAuth => "failed_auth",
        }
    }

    /// The class of a route (`route`: the matched template, None for no route). Failed
    /// authentications are decided later, by verification.
    pub fn of(method: &Method, route: Option<&str>) -> Class {
        match route {
            Some("/v1/projects/{id}/sync/push") if method == Method::POST => Class::Push,
            Some("/v1/projects/{id}/sync/pull") if method == Method::GET => Class::Pull,
            Some(r) if r.starts_with("/v1/") => Class::Other,
            _ => Class::Unauthenticated,
        }
    }
}

/// Default limits: per token, generous for td's autosync (a push and a pull or two after
/// every command, pages of 1000 events when catching up) even for agents sharing one token;
/// per address, enough for health checks and scrapes; failed authentications, few.
pub const DEFAULT_PUSH: Rate = Rate {
    per_minute: 1200,
    burst: 200,
};
pub const DEFAULT_PULL: Rate = Rate {
    per_minute: 2400,
    burst: 400,
};
pub const DEFAULT_OTHER: Rate = Rate {
    per_minute: 1200,
    burst: 200,
};
pub const DEFAULT_UNAUTHENTICATED: Rate = Rate {
    per_minute: 600,
    burst: 100,
};
pub const DEFAULT_FAILED_AUTH: Rate = Rate {
    per_minute: 60,
    burst: 30,
};

/// The rate-limit settings of a server.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Off: nothing is counted or refused (the in-process server of `tdsync bench`).
    pub enabled: bool,
    pub push: Rate,
    pub pull: Rate,
    pub other: Rate,
    pub unauthenticated: Rate,
    pub failed_auth: Rate,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: TrustedProxies,
    pub clock: LimitClock,
}

impl Default for Limits {
    /// On, with the default rates, no trusted proxies, the monotonic clock.
    fn default() -> Limits {
        Limits {
            enabled: true,
            push: DEFAULT_PUSH,
            pull: DEFAULT_PULL,
            other: DEFAULT_OTHER,
            unauthenticated: DEFAULT_UNAUTHENTICATED,
            failed_auth: DEFAULT_FAILED_AUTH,
            trusted_proxies: TrustedProxies::default(),
            clock: LimitClock::monotonic(),
        }
    }
}

/// What `tdsync serve` logs at start: every limit, or `off`.
impl fmt::Display for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.enabled {
            return f.write_str("off");
        }
        for (i, class) in Class::ALL.into_iter().enumerate() {
            let Rate { per_minute, burst } = self.rate(class);
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{} {per_minute}/min (burst {burst})", class.label())?;
        }
        write!(f, "; trusted proxies: [{}]", self.trusted_proxies)
    }
}

impl Limits {
    /// No limits.
    pub fn off() -> Limits {
        Limits {
            enabled: false,
            ..Limits::default()
        }
    }

    pub fn rate(&self, class: Class) -> Rate {
        match class {
            Class::Push => self.push,
            Class::Pull => self.pull,
            Class::Other => self.other,
            Class::Unauthenticated => self.unauthenticated,
            Class::FailedAuth => self.failed_auth,
        }
    }

    /// The address a request is counted against: the peer, or what a trusted proxy says.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusted_proxies.contains(client) {
            return client;
        }
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .rev()
            .flat_map(|v| v.to_str().unwrap_or("").rsplit(','));
        for hop in hops {
            let Some(ip) = parse_hop(hop) else {
                // Unreadable: nothing left of it can be believed; the last proxy is the client.
                return client;
            };
            client = ip;
            if !self.trusted_proxies.contains(ip) {
                return ip;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, perhaps with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

/// The client address a request is counted against (see [`Limits::client_ip`]), for handlers
/// with limits of their own (starting a login).
pub struct ClientAddress(String);

impl ClientAddress {
    /// The bucket key: the address, or its /64 for IPv6; `unknown` without a peer (in-process).
    pub fn key(&self) -> &str {
        &self.0
    }
}

impl axum::extract::FromRequestParts<AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<ClientAddress, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let client = peer.map(|peer| state.limits().client_ip(peer, &parts.headers));
        Ok(ClientAddress(
            client.map_or_else(|| "unknown".to_string(), address_key),
        ))
    }
}

/// A bucket name for a value that must not be kept in clear (an email address).
pub fn hashed(raw: &str) -> String {
    use sha2::Digest as _;
    hex::encode(&sha2::Sha256::digest(raw.as_bytes())[..16])
}

/// The bucket key of an address: itself, or its /64 for IPv6.
fn address_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// Where limits read the time: the monotonic clock, or one a test moves by hand.
#[derive(Clone)]
pub struct LimitClock(Option<Arc<dyn Fn() -> Instant + Send + Sync>>);

impl LimitClock {
    pub fn monotonic() -> LimitClock {
        LimitClock(None)
    }

    /// A clock that reads `now` (tests).
    pub fn from_fn(now: impl Fn() -> Instant + Send + Sync + 'static) -> LimitClock {
        LimitClock(Some(Arc::new(now)))
    }

    pub fn now(&self) -> Instant {
        self.0.as_ref().map_or_else(Instant::now, |f| f())
    }
}

impl fmt::Debug for LimitClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "LimitClock(manual)"
        } else {
            "LimitClock(monotonic)"
        })
    }
}

/// A block of addresses: `10.0.0.0/8`, `fd00::/8`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Why a trusted-proxy entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{entry:?} is not an address or a CIDR block (like 10.0.0.0/8, 192.168.1.7, fd00::/8)")]
pub struct BadCidr {
    pub entry: String,
}

impl FromStr for Cidr {
    type Err = BadCidr;

    fn from_str(s: &str) -> Result<Cidr, BadCidr> {
        let bad = || BadCidr {
            entry: s.to_string(),
        };
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s.trim(), None),
        };
        let addr = addr.parse::<IpAddr>().map_err(|_| bad())?.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?
            }
            Some(_) => return Err(bad()),
        };
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The trusted proxies: a comma-separated list of addresses and CIDR blocks (empty: none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(pub Vec<Cidr>);

impl TrustedProxies {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }
}

impl FromStr for TrustedProxies {
    type Err = BadCidr;

    fn from_str(s: &str) -> Result<TrustedProxies, BadCidr> {
        s.split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(Cidr::from_str)
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries: Vec<String> = self.0.iter().map(Cidr::to_string).collect();
        f.write_str(&entries.join(","))
    }
}

/// The outcome of verifying the request's bearer token, left in the request's extensions for
/// the `Caller` extractor.
#[derive(Debug, Clone)]
pub struct Verified(pub Result<Arc<TokenGrant>, AuthError>);

/// The middleware: counts the request against its bucket, refuses it when that is empty.
pub async fn enforce(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let limits = state.limits();
    if !limits.enabled {
        return next.run(req).await;
    }
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let class = Class::of(req.method(), route);
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let client = peer.map(|peer| limits.client_ip(peer, req.headers()));
    let address = client.map_or_else(|| "unknown".to_string(), address_key);
    let now = limits.clock.now();
    let live = state.live();

    let bearer = match class {
        Class::Unauthenticated => None,
        _ => crate::auth::bearer(req.headers()).ok().map(str::to_string),
    };
    let Some(bearer) = bearer else {
        let admission = live.admit_at(
            &bucket(Class::Unauthenticated, &address),
            limits.unauthenticated,
            now,
        );
        if let Some(refusal) = refuse(&state, Class::Unauthenticated, admission) {
            return refusal;
        }
        return next.run(req).await;
    };

    let failures = bucket(Class::FailedAuth, &address);
    let admission = live.peek_at(&failures, limits.failed_auth, now);
    if let Some(refusal) = refuse(&state, Class::FailedAuth, admission) {
        return refusal;
    }
    let verified = state.acl().verify(&bearer).await;
    let (charged, admission) = match &verified {
        Ok(grant) => (
            class,
            live.admit_at(
                &bucket(class, grant.id.as_str()),
                limits.rate(class),
                limits.clock.now(),
            ),
        ),
        // Not the caller's failure: the control plane could not answer (503).
        Err(AuthError::Unavailable(_)) => (class, Admission::Allowed),
        // Counted against the address; answered with its 401 unless over the limit.
        Err(_) => (
            Class::FailedAuth,
            live.admit_at(&failures, limits.failed_auth, limits.clock.now()),
        ),
    };
    if let Some(refusal) = refuse(&state, charged, admission) {
        return refusal;
    }
    req.extensions_mut().insert(Verified(verified));
    next.run(req).await
}

fn bucket(class: Class, who: &str) -> String {
    format!("{}:{who}", class.label())
}

/// The 429 for a refused admission (counted in the metrics), or None when it was allowed.
fn refuse(state: &AppState, class: Class, admission: Admission) -> Option<Response> {
    let Admission::Refused { retry_after } = admission else {
        return None;
    };
    state.metrics().rate_limited(class);
    Some(refusal(class, state.limits().rate(class), retry_after))
}

/// Whole seconds to wait, 1 to 60 (a client that waits that long finds a token back; a rate
/// is at least one a minute, so no wait is longer, rounding aside).
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().clamp(1.0, 60.0) as u64
}

/// `429 rate_limited` in td's envelope, with `Retry-After` and a message naming the limit.
pub fn refusal(class: Class, rate: Rate, wait: Duration) -> Response {
    let secs = retry_after_secs(wait);
    let Rate { per_minute, burst } = rate;
    let message = match class {
        Class::Push => format!(
            "rate limit exceeded: this token's pushes are limited to {per_minute} a minute (bursts of {burst}); retry after {secs} s"
        ),
        Class::Pull => format!(
            "rate limit exceeded: this token's pulls are limited to {per_minute} a minute (bursts of {burst}); retry after {secs} s"
        ),
        Class::Other => format!(
            "rate limit exceeded: this token's requests other than push and pull are limited to {per_minute} a minute (bursts of {burst}); retry after {secs} s"
        ),
        Class::Unauthenticated => format!(
            "rate limit exceeded: requests without a token are limited to {per_minute} a minute (bursts of {burst}) per client address; retry after {secs} s"
        ),
        Class::FailedAuth => format!(
            "rate limit exceeded: too many failed authentications from this client address (at most {per_minute} a minute, bursts of {burst}); retry after {secs} s"
        ),
    };
    tracing::debug!(class = class.label(), retry_after = secs, "rate limited");
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        tdsync_protocol::wire::error_code::RATE_LIMITED,
        message,
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(trusted: &str) -> Limits {
        Limits {
            trusted_proxies: trusted.parse().unwrap(),
            ..Limits::default()
        }
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn routes_are_classified_by_template_and_method() {
        let push = Some("/v1/projects/{id}/sync/push");
        let pull = Some("/v1/projects/{id}/sync/pull");
        assert_eq!(Class::of(&Method::POST, push), Class::Push);
        assert_eq!(Class::of(&Method::GET, push), Class::Other);
        assert_eq!(Class::of(&Method::GET, pull), Class::Pull);
        assert_eq!(
            Class::of(&Method::GET, Some("/v1/projects/{id}/sync/status")),
            Class::Other
        );
        assert_eq!(
            Class::of(&Method::DELETE, Some("/v1/tokens/{id}")),
            Class::Other
        );
        for service in ["/healthz", "/metrics", "/openapi.json"] {
            assert_eq!(
                Class::of(&Method::GET, Some(service)),
                Class::Unauthenticated
            );
        }
        assert_eq!(Class::of(&Method::GET, None), Class::Unauthenticated);
    }

    #[test]
    fn forwarded_for_is_read_only_from_a_trusted_peer_right_to_left() {
        let none = limits("");
        let h = xff(&["203.0.113.9"]);
        assert_eq!(none.client_ip(ip("127.0.0.1"), &h), ip("127.0.0.1"));

        let lb = limits("10.0.0.0/8, 127.0.0.1");
        assert_eq!(lb.client_ip(ip("10.1.2.3"), &h), ip("203.0.113.9"));
        assert_eq!(
            lb.client_ip(ip("192.0.2.1"), &h),
            ip("192.0.2.1"),
            "an untrusted peer's header is ignored"
        );
        // A client's own entry is left of what its proxy appended.
        let spoofed = xff(&["198.51.100.1, 203.0.113.9"]);
        assert_eq!(lb.client_ip(ip("10.0.0.1"), &spoofed), ip("203.0.113.9"));
        // Chained proxies: trusted hops are skipped, across several headers too.
        let chain = xff(&["198.51.100.1, 203.0.113.9", "10.9.9.9"]);
        assert_eq!(lb.client_ip(ip("127.0.0.1"), &chain), ip("203.0.113.9"));
        // Ports, IPv6 and IPv4-mapped addresses.
        assert_eq!(
            lb.client_ip(ip("::ffff:10.0.0.1"), &xff(&["[2001:db8::7]:443"])),
            ip("2001:db8::7")
        );
        assert_eq!(
            lb.client_ip(ip("10.0.0.1"), &xff(&["203.0.113.9:5555"])),
            ip("203.0.113.9")
        );
        // Garbage: nothing left of it is believed; the proxy that sent it is the client.
        assert_eq!(
            lb.client_ip(ip("10.0.0.1"), &xff(&["203.0.113.9, garbage"])),
            ip("10.0.0.1")
        );
        // Only trusted addresses, or no header: the left-most trusted hop, or the peer.
        assert_eq!(
            lb.client_ip(ip("10.0.0.1"), &xff(&["10.0.0.2"])),
            ip("10.0.0.2")
        );
        assert_eq!(
            lb.client_ip(ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn cidrs_parse_and_match() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains(ip("10.255.0.1")));
        assert!(c.contains(ip("::ffff:10.0.0.1")));
        assert!(!c.contains(ip("11.0.0.1")));
        let one: Cidr = "192.168.1.7".parse().unwrap();
        assert!(one.contains(ip("192.168.1.7")) && !one.contains(ip("192.168.1.8")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")) && !all.contains(ip("::1")));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        for bad in [
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0/8",
            "::/129",
            "x",
            "10.0.0.0/+8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        let list: TrustedProxies = " 10.0.0.0/8 ,, ::1 ".parse().unwrap();
        assert_eq!(list.to_string(), "10.0.0.0/8,::1/128");
        assert_eq!(
            "".parse::<TrustedProxies>().unwrap(),
            TrustedProxies(vec![])
        );
    }

    #[test]
    fn limits_read_as_logged() {
        assert_eq!(
            limits("10.0.0.0/8").to_string(),
            "push 1200/min (burst 200), pull 2400/min (burst 400), other 1200/min (burst 200), \
             unauthenticated 600/min (burst 100), failed_auth 60/min (burst 30); \
             trusted proxies: [10.0.0.0/8]"
        );
        assert_eq!(Limits::off().to_string(), "off");
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        assert_eq!(address_key(ip("2001:db8:1:2:3:4:5:6")), "2001:db8:1:2::/64");
        assert_eq!(address_key(ip("203.0.113.9")), "203.0.113.9");
    }

    #[test]
    fn retry_after_is_whole_seconds_and_at_least_one() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1000)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(59)), 59);
        assert_eq!(retry_after_secs(Duration::from_secs_f64(60.000_001)), 60);
    }
}
