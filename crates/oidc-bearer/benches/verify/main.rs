//! Verification speed next to the bare signature check of the same token, in the same run.
//!
//! Run: `cargo bench -p oidc-bearer --bench verify` (about two and a half minutes on 2 cores).
//! Shorter: `cargo bench -p oidc-bearer --bench verify -- --warm-up-time 1 --measurement-time 3`.
//! Only the ratio table: `cargo bench -p oidc-bearer --bench verify -- table`.
//!
//! Criterion groups, one per algorithm (RS256, ES256, PS256, EdDSA, ES512, Ed25519, and with
//! `--features ml-dsa` ML-DSA-44/65/87); jsonwebtoken has no ES512, `Ed25519` name or ML-DSA, so
//! its columns are empty for those:
//! - `signature_only`: aws-lc-rs `ParsedPublicKey::verify_sig` over the token's signing input, the
//!   key prepared once: the floor any verifier pays;
//! - `jsonwebtoken_signature`: `jsonwebtoken::crypto::verify`, which prepares the key per call;
//! - `jsonwebtoken_decode`: `jsonwebtoken::decode` with an equivalent `Validation`;
//! - `ours_uncached`: `Verifier::verify_token` with the token cache off (every call is a full
//!   verification);
//! - `ours_miss`: the cache on, every call a token the cache has not seen (pre-minted tokens, a
//!   cache smaller than the cycle, so the cost of hashing, inserting and evicting is included);
//! - `ours_hit`: the cache on, the same token again.
//!
//! Group `reject` (RS256): malformed, oversized and badly encoded tokens, a bad signature and a
//! forged `kid`.
//!
//! After the groups, a table of ops/s measured by interleaved rounds (each variant in turn, the
//! best of several rounds, so drift on a shared machine hits all columns alike) with the ratios
//! to `signature_only`; then the rejections, and the HTTP layer's own cost per request with a
//! cached token (a bare tower service against the same service behind `BearerAuth`, and the
//! SHA-256 of the token's signature segment that the cache lookup needs).
//!
//! `-- decode`: the token's payload decoded into each claims type, nothing else (serde_json alone,
//! no verification), in ns per decode: what `DefaultClaims`' shape costs next to a plain struct.
//!
//! `-- concurrent`: cache hits per second from one and two threads on one verifier (same token,
//! distinct tokens). `-- hit-profile N`, `-- registry-hit-profile N`, `-- verify-hit-profile N`,
//! `-- miss-profile N`: N cached requests through the layer (over a `Verifier`, or an
//! `IssuerRegistry`), N hits through `verify_token`, N full verifications into a full cache, and
//! nothing else, for `valgrind --tool=callgrind --toggle-collect=...` (see BENCHMARKS.md).

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{self as sig, ParsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::Criterion;
use oidc_bearer::cache::TokenCacheSettings;
use oidc_bearer::claims::{Audience, DefaultClaims};
use oidc_bearer::clock::ManualClock;
use oidc_bearer::keys::{Jwks, StaticKeySet};
use oidc_bearer::{Verifier, VerifyError, VerifyToken};
use oidc_bearer_testing::{KeyAlg, TestIssuer};
use serde::Deserialize;
use serde_json::Value;

const AUD: &str = "bench-service";
/// Distinct pre-minted tokens per algorithm for `ours_miss`.
const FRESH_TOKENS: usize = 256;

/// A typed claims struct, as a service that reads a few claims would declare it.
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct WorkloadClaims {
    iss: String,
    sub: String,
    aud: Audience,
    exp: i64,
    iat: i64,
    jti: String,
}

/// Polls a future that must complete without waiting (the keys are loaded, no fetch happens).
fn now_or_never<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("verification waited: the bench must not fetch keys"),
    }
}

mod cases;
mod rounds;

use cases::*;
use rounds::*;

fn bench_algorithms(c: &mut Criterion, cases: &[Case]) {
    for case in cases {
        let mut group = c.benchmark_group(case.alg.name());
        group.bench_function("signature_only", |b| b.iter(|| case.signature_only()));
        if case.jwt.is_some() {
            group.bench_function("jsonwebtoken_signature", |b| {
                b.iter(|| case.jsonwebtoken_signature())
            });
            group.bench_function("jsonwebtoken_decode", |b| {
                b.iter(|| case.jsonwebtoken_decode())
            });
        }
        group.bench_function("ours_uncached", |b| b.iter(|| case.ours_uncached()));
        group.bench_function("ours_miss", |b| b.iter(|| case.ours_miss()));
        group.bench_function("ours_hit", |b| b.iter(|| case.ours_hit()));
        group.finish();
    }
}

fn bench_rejects(c: &mut Criterion, rejects: &Rejects) {
    let mut group = c.benchmark_group("reject");
    group.bench_function("malformed", |b| {
        b.iter(|| rejects.reject(&rejects.malformed))
    });
    group.bench_function("oversized", |b| {
        b.iter(|| rejects.reject(&rejects.oversized))
    });
    group.bench_function("bad_base64", |b| {
        b.iter(|| rejects.reject(&rejects.bad_base64))
    });
    group.bench_function("bad_signature", |b| {
        b.iter(|| rejects.reject(&rejects.bad_signature))
    });
    group.bench_function("forged_kid", |b| b.iter(|| rejects.forged()));
    group.finish();
}

fn main() {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    // With feature `metrics`, a real exporter records what the library emits (the cost measured is
    // that of a service scraped by Prometheus, not of the facade's no-op recorder).
    #[cfg(feature = "metrics")]
    let _metrics = {
        let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .unwrap();
        oidc_bearer::metrics::register();
        println!("metrics: on (Prometheus recorder installed)");
        handle
    };
    let args: Vec<String> = std::env::args().collect();
    // `cargo test --benches` runs this binary with `--test`: check that it works, quickly.
    let testing = args.iter().any(|a| a == "--test");
    let table_only = args.iter().any(|a| a == "table");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut algs = vec![
        KeyAlg::RS256,
        KeyAlg::ES256,
        KeyAlg::PS256,
        KeyAlg::EdDSA,
        KeyAlg::ES512,
        KeyAlg::Ed25519,
    ];
    if cfg!(feature = "ml-dsa") {
        algs.extend([KeyAlg::MlDsa44, KeyAlg::MlDsa65, KeyAlg::MlDsa87]);
    }
    let cases: Vec<Case> = algs.into_iter().map(Case::new).collect();
    let sizes: Vec<String> = cases
        .iter()
        .map(|c| format!("{} {}", c.alg.name(), c.token.len()))
        .collect();
    println!(
        "token bytes (Kubernetes-shaped claims): {}",
        sizes.join(", ")
    );
    // `refusal-profile N`: N bad-signature requests through the layer and nothing else, for
    // `valgrind --tool=callgrind` (instruction counts, since there is no PMU here).
    if let Some(n) = args
        .iter()
        .position(|a| a == "refusal-profile")
        .and_then(|i| args.get(i + 1)?.parse::<usize>().ok())
    {
        let rejects = Rejects::new(&runtime);
        for _ in 0..n {
            black_box(rejects.layered_refusal());
        }
        return;
    }
    // `fresh-forgery-profile N` / `registry-forgery-profile N`: N forged tokens never sent before,
    // through the layer over a `Verifier` or over an `IssuerRegistry`, for callgrind
    // (`--toggle-collect='*fresh_forgery*'`).
    for (mode, registry) in [
        ("fresh-forgery-profile", false),
        ("registry-forgery-profile", true),
    ] {
        if let Some(n) = args
            .iter()
            .position(|a| a == mode)
            .and_then(|i| args.get(i + 1)?.parse::<usize>().ok())
        {
            let rejects = Rejects::new(&runtime);
            for _ in 0..n {
                black_box(rejects.fresh_forgery(registry));
            }
            return;
        }
    }
    // `signature-profile N`: N RS256 signature checks alone (aws-lc-rs, key prepared once), for
    // valgrind's DHAT: what the check itself allocates, next to a whole refusal.
    if let Some(n) = args
        .iter()
        .position(|a| a == "signature-profile")
        .and_then(|i| args.get(i + 1)?.parse::<usize>().ok())
    {
        let case = Case::new(KeyAlg::RS256);
        for _ in 0..n {
            black_box(case.signature_only());
        }
        return;
    }
    // `refusal-parts`: the refusal path in parts, by wall-clock time and allocations.
    if args.iter().any(|a| a == "refusal-parts") {
        refusal_parts(&Rejects::new(&runtime), 15, Duration::from_millis(50));
        return;
    }
    // `hit-profile N`: N cached requests through the layer, for callgrind (the layer's own cost in
    // instructions, with and without feature `metrics`, free of the machine's noise);
    // `registry-hit-profile N`: the same through an `IssuerRegistry` (`'*registry_call*'`).
    for (mode, registry) in [("hit-profile", false), ("registry-hit-profile", true)] {
        if let Some(n) = args
            .iter()
            .position(|a| a == mode)
            .and_then(|i| args.get(i + 1)?.parse::<usize>().ok())
        {
            let layer = LayerCase::new(&Case::new(KeyAlg::RS256));
            for _ in 0..n {
                black_box(if registry {
                    layer.registry_call()
                } else {
                    layer.layered_call()
                });
            }
            return;
        }
    }
    // `verify-hit-profile N` and `miss-profile N`: N cache hits through `VerifyToken::verify_token` on a `Verifier`,
    // or N full verifications that each insert into a full cache (RS256), for callgrind
    // (`--toggle-collect='*hit_call*'` or `'*miss_call*'`).
    for (mode, miss) in [("verify-hit-profile", false), ("miss-profile", true)] {
        if let Some(n) = args
            .iter()
            .position(|a| a == mode)
            .and_then(|i| args.get(i + 1)?.parse::<usize>().ok())
        {
            let case = Case::new(KeyAlg::RS256);
            for _ in 0..n {
                black_box(if miss {
                    case.miss_call()
                } else {
                    case.hit_call()
                });
            }
            return;
        }
    }
    // `decode`: the claims decoding alone (only this table).
    if args.iter().any(|a| a == "decode") {
        decode_table(&Case::new(KeyAlg::RS256), 15, Duration::from_millis(50));
        return;
    }
    // `concurrent`: cache hits from one and two threads (only this table).
    if args.iter().any(|a| a == "concurrent") {
        concurrent_table(&Case::new(KeyAlg::RS256), 9, Duration::from_millis(100));
        return;
    }
    // `sig-only`: the RS256 signature check alone, in µs of this thread's CPU time (the scheduler's
    // own count, /proc/thread-self/schedstat; the median of 9 rounds of 200 ms), for
    // scripts/load-refusal.sh, which compares it with the server's CPU time per request: CPU time,
    // unlike a rate, leaves out the time other processes had the core.
    if args.iter().any(|a| a == "sig-only") {
        let case = Case::new(KeyAlg::RS256);
        let cpu_ns = || -> f64 {
            std::fs::read_to_string("/proc/thread-self/schedstat")
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse().ok())
                .expect("/proc/thread-self/schedstat (Linux)")
        };
        let mut rounds: Vec<f64> = (0..9)
            .map(|_| {
                let (start, cpu) = (Instant::now(), cpu_ns());
                let mut n = 0u64;
                while start.elapsed() < Duration::from_millis(200) {
                    for _ in 0..16 {
                        black_box(case.signature_only());
                    }
                    n += 16;
                }
                (cpu_ns() - cpu) / 1e3 / n as f64
            })
            .collect();
        rounds.sort_by(f64::total_cmp);
        println!("sig-only {:.3}", rounds[rounds.len() / 2]);
        return;
    }
    let cases: Vec<Case> = [KeyAlg::RS256, KeyAlg::ES256, KeyAlg::PS256, KeyAlg::EdDSA]
        .into_iter()
        .map(Case::new)
        .collect();
    let rejects = Rejects::new(&runtime);
    let sample = &cases[0].token;
    println!("token: {} bytes (Kubernetes-shaped claims)", sample.len());
    if testing {
        table(&cases, &rejects, 1, Duration::from_millis(1));
        concurrent_table(&cases[0], 1, Duration::from_millis(1));
        return;
    }
    if !table_only {
        let mut c = Criterion::default()
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3))
            .sample_size(50)
            .configure_from_args();
        bench_algorithms(&mut c, &cases);
        bench_rejects(&mut c, &rejects);
        c.final_summary();
    }
    table(&cases, &rejects, 9, Duration::from_millis(50));
}
