//! Token verification benchmarks: first sight (argon2id with the production parameters, plus the
//! store lookup) and steady state (served from the cache after the revocation-generation check),
//! each next to a baseline measured in the same run: for steady state one SHA-256 of the token
//! (the least any cache keyed by the token must do), for first sight one bare argon2id
//! verification (the least any first verification must do).
//!
//! Run: `cargo bench -p tdsync-acl --bench verify` (add `-- quick` for a short run). The
//! Postgres rows appear when `TDSYNC_TEST_POSTGRES_URL` names a server (infra/services.sh
//! starts one). Prints one line per measurement: name, median of the rounds, ratio to baseline.

use std::time::{Duration, Instant};

use argon2::{
    Argon2,
    password_hash::{PasswordHasher, PasswordVerifier},
};
use sha2::{Digest, Sha256};
use tdsync_acl::{
    Acl, AclConfig, Actor, AnyStore, ControlPlaneStore, ControlPlaneUrl, MintRequest, Scopes,
    testing::PostgresTestDb,
};

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

/// Median over `rounds` of the mean time per call of `f` run `n` times, in microseconds.
fn per_call(rounds: usize, n: usize, mut f: impl FnMut()) -> f64 {
    median(
        (0..rounds)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..n {
                    f();
                }
                start.elapsed().as_secs_f64() * 1e6 / n as f64
            })
            .collect(),
    )
}

fn line(name: &str, micros: f64, baseline: Option<f64>) {
    match baseline {
        Some(b) => println!(
            "{name:<58} {micros:>12.3} µs   {:>6.2}× baseline",
            micros / b
        ),
        None => println!("{name:<58} {micros:>12.3} µs"),
    }
}

struct Setup {
    acl: Acl,
    tokens: Vec<String>,
}

/// A store with one tenant and `n` read tokens (production argon2 parameters).
async fn setup(store: AnyStore, n: usize) -> Setup {
    let acl = Acl::new(store, AclConfig::default());
    let tenant = acl.create_tenant("bench", &Actor::Cli).await.unwrap();
    let mut tokens = Vec::new();
    for _ in 0..n {
        let issued = acl
            .mint(
                &tenant.id,
                MintRequest::new(Scopes::parse("write").unwrap()),
                &Actor::Cli,
            )
            .await
            .unwrap();
        tokens.push(issued.token.expose().to_string());
    }
    Setup { acl, tokens }
}

/// The baselines: what any cache keyed by the token must do (one SHA-256), and what any first
/// verification must do (one argon2id verification with the production parameters).
struct Baselines {
    sha: f64,
    argon: f64,
}

fn bench_backend(
    rt: &tokio::runtime::Runtime,
    label: &str,
    store: AnyStore,
    rounds: usize,
    quick: bool,
    base: &Baselines,
) {
    let firsts = if quick { 6 } else { 15 };
    let s = rt.block_on(setup(store, rounds * firsts));
    // First sight: every token verified once, each by a fresh cache (argon2 runs every time).
    let mut chunks = s.tokens.chunks(firsts);
    let first = median(
        (0..rounds)
            .map(|_| {
                let chunk = chunks.next().unwrap();
                let start = Instant::now();
                rt.block_on(async {
                    for t in chunk {
                        s.acl.verify(t).await.unwrap();
                    }
                });
                start.elapsed().as_secs_f64() * 1e6 / chunk.len() as f64
            })
            .collect(),
    );
    let name = format!("{label}: first verification (lookup + argon2id)");
    line(&name, first, Some(base.argon));
    // Steady state: the same (cached) token again and again, inside the runtime as the gateway
    // would call it.
    let token = &s.tokens[0];
    let n = if quick { 20_000 } else { 100_000 };
    let steady = median(
        (0..rounds)
            .map(|_| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..n {
                        s.acl.verify(token).await.unwrap();
                    }
                    start.elapsed().as_secs_f64() * 1e6 / n as f64
                })
            })
            .collect(),
    );
    let name = format!("{label}: steady-state verification (cached)");
    line(&name, steady, Some(base.sha));
    let generation = per_call(rounds, n, || {
        s.acl.store().revocation_generation().unwrap();
    });
    let name = format!("{label}:   of which the revocation-generation check");
    line(&name, generation, Some(base.sha));
    rt.block_on(s.acl.flush_last_used()).unwrap();
}

fn main() {
    let quick = std::env::args().skip(1).any(|a| a == "quick");
    let rounds = if quick { 3 } else { 7 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("# tdsync token verification ({rounds} rounds, median)");
    let sample = "tds_abcdefghijkl_0123456789ABCDEFGHIJKLMNOPQRSTUV";
    let sha = per_call(rounds, 1_000_000, || {
        std::hint::black_box(Sha256::digest(std::hint::black_box(sample).as_bytes()));
    });
    line("baseline: one SHA-256 of a token", sha, None);
    let argon = {
        let hash = Argon2::default()
            .hash_password(b"secret")
            .unwrap()
            .to_string();
        per_call(rounds, if quick { 5 } else { 10 }, || {
            Argon2::default()
                .verify_password(b"secret", hash.as_str())
                .unwrap();
        })
    };
    line(
        "baseline: one argon2id verification (19 MiB, t=2, p=1)",
        argon,
        None,
    );
    let base = Baselines { sha, argon };

    let dir = tempfile::tempdir().unwrap();
    let sqlite = rt
        .block_on(AnyStore::open(&ControlPlaneUrl::default_for(dir.path())))
        .unwrap();
    bench_backend(&rt, "sqlite", sqlite, rounds, quick, &base);

    if std::env::var("TDSYNC_TEST_POSTGRES_URL").is_ok() {
        let db = rt.block_on(PostgresTestDb::create("bench_verify")).unwrap();
        let store = rt
            .block_on(AnyStore::open(&ControlPlaneUrl::parse(db.url()).unwrap()))
            .unwrap();
        if let AnyStore::Postgres(pg) = &store {
            assert!(rt.block_on(pg.wait_listening(Duration::from_secs(10))));
        }
        bench_backend(&rt, "postgres", store, rounds, quick, &base);
    } else {
        println!("(postgres rows skipped: TDSYNC_TEST_POSTGRES_URL is not set)");
    }
}
