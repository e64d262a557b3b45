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
//! `-- concurrent`: cache hits per second from one and two threads on one verifier (same token,
//! distinct tokens). `-- hit-profile N`, `-- verify-hit-profile N`, `-- miss-profile N`: N cached
//! requests through the layer, N hits through `verify_token`, N full verifications into a full
//! cache, and nothing else, for `valgrind --tool=callgrind --toggle-collect=...` (see BENCHMARKS.md).

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

struct Case {
    alg: KeyAlg,
    token: String,
    fresh: Vec<String>,
    message: Vec<u8>,
    signature: Vec<u8>,
    aws_key: ParsedPublicKey,
    /// jsonwebtoken's key, algorithm and validation, where it supports the algorithm.
    jwt: Option<(
        jsonwebtoken::DecodingKey,
        jsonwebtoken::Algorithm,
        jsonwebtoken::Validation,
    )>,
    uncached: Verifier,
    cached: Verifier,
    churn: Verifier,
    next_fresh: std::cell::Cell<usize>,
}

impl Case {
    fn new(alg: KeyAlg) -> Self {
        let issuer = TestIssuer::builder().key(alg).start_blocking();
        let mint = || {
            issuer
                .token()
                .kubernetes("payments", "checkout")
                .aud(AUD)
                .sign()
        };
        let token = mint();
        let fresh: Vec<String> = (0..FRESH_TOKENS).map(|_| mint()).collect();
        let jwk = issuer.public_jwk(&issuer.signing_kid());
        let jwks_json = serde_json::to_vec(&issuer.jwks_json()).unwrap();

        let (input, signature) = token.rsplit_once('.').unwrap();
        let message = input.as_bytes().to_vec();
        let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
        let aws_key = aws_key(alg, &jwk);

        let jwt = alg
            .name()
            .parse::<jsonwebtoken::Algorithm>()
            .ok()
            .map(|jwt_alg| {
                let jwt_key =
                    jsonwebtoken::DecodingKey::from_jwk(&serde_json::from_value(jwk).unwrap())
                        .unwrap();
                let mut jwt_validation = jsonwebtoken::Validation::new(jwt_alg);
                jwt_validation.set_audience(&[AUD]);
                jwt_validation.set_issuer(&[issuer.issuer()]);
                jwt_validation.leeway = 60;
                jwt_validation.validate_nbf = true;
                (jwt_key, jwt_alg, jwt_validation)
            });

        let verifier = |cache: Option<TokenCacheSettings>| {
            let builder = Verifier::builder(issuer.issuer(), AUD)
                .with_key_set(StaticKeySet::new(Jwks::from_json(&jwks_json).unwrap()));
            match cache {
                Some(settings) => builder.with_token_cache(settings),
                None => builder.without_token_cache(),
            }
            .build()
            .unwrap()
        };
        // A cache far smaller than the cycle of fresh tokens: every lookup misses.
        let mut small = TokenCacheSettings::default();
        small.max_entries = 16;
        let case = Self {
            alg,
            token,
            fresh,
            message,
            signature,
            aws_key,
            jwt,
            uncached: verifier(None),
            cached: verifier(Some(TokenCacheSettings::default())),
            churn: verifier(Some(small)),
            next_fresh: std::cell::Cell::new(0),
        };
        // Every variant accepts the token before it is timed.
        assert!(case.signature_only());
        if case.jwt.is_some() {
            assert!(case.jsonwebtoken_signature());
            case.jsonwebtoken_decode();
        }
        case.ours_uncached();
        case.ours_uncached_default_claims();
        case.ours_hit();
        case.ours_miss();
        case
    }

    fn signature_only(&self) -> bool {
        self.aws_key
            .verify_sig(black_box(&self.message), black_box(&self.signature))
            .is_ok()
    }

    fn jsonwebtoken_signature(&self) -> bool {
        let (key, alg, _) = self.jwt.as_ref().unwrap();
        let signature = self.token.rsplit_once('.').unwrap().1;
        jsonwebtoken::crypto::verify(signature, &self.message, key, *alg).unwrap()
    }

    fn jsonwebtoken_decode(&self) -> WorkloadClaims {
        let (key, _, validation) = self.jwt.as_ref().unwrap();
        jsonwebtoken::decode::<WorkloadClaims>(black_box(&self.token), key, validation)
            .unwrap()
            .claims
    }

    fn ours_uncached(&self) -> Arc<WorkloadClaims> {
        now_or_never(self.uncached.verify_token(black_box(&self.token))).unwrap()
    }

    fn ours_uncached_default_claims(&self) -> Arc<DefaultClaims> {
        now_or_never(self.uncached.verify_token(black_box(&self.token))).unwrap()
    }

    fn ours_hit(&self) -> Arc<WorkloadClaims> {
        now_or_never(self.cached.verify_token(black_box(&self.token))).unwrap()
    }

    fn ours_miss(&self) -> Arc<WorkloadClaims> {
        let i = self.next_fresh.get();
        self.next_fresh.set((i + 1) % self.fresh.len());
        now_or_never(self.churn.verify_token(black_box(&self.fresh[i]))).unwrap()
    }

    /// [`ours_hit`](Self::ours_hit), never inlined, for callgrind's `--toggle-collect`.
    #[inline(never)]
    fn hit_call(&self) -> Arc<WorkloadClaims> {
        self.ours_hit()
    }

    /// [`ours_miss`](Self::ours_miss), never inlined, for callgrind's `--toggle-collect`.
    #[inline(never)]
    fn miss_call(&self) -> Arc<WorkloadClaims> {
        self.ours_miss()
    }
}

/// Cache hits per second from `threads` threads at once on one verifier: all presenting the same
/// token (one shard, the most contended case), or each its own token.
fn concurrent_hits(
    verifier: &Verifier,
    tokens: &[String],
    threads: usize,
    window: Duration,
) -> f64 {
    let start = std::sync::Barrier::new(threads);
    let total: u64 = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (start, token) = (&start, &tokens[t % tokens.len()]);
                scope.spawn(move || {
                    start.wait();
                    let begin = Instant::now();
                    let mut n = 0u64;
                    while begin.elapsed() < window {
                        for _ in 0..64 {
                            let claims: Arc<WorkloadClaims> =
                                now_or_never(verifier.verify_token(black_box(token))).unwrap();
                            black_box(claims);
                        }
                        n += 64;
                    }
                    n
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    total as f64 / window.as_secs_f64()
}

/// The `concurrent` table: hits/s with one and two threads, same token and distinct tokens.
fn concurrent_table(case: &Case, rounds: usize, window: Duration) {
    let same = [case.token.clone()];
    let distinct = &case.fresh[..2];
    for token in distinct {
        let _: Arc<WorkloadClaims> = now_or_never(case.cached.verify_token(token)).unwrap();
    }
    let mut samples = vec![Vec::new(); 4];
    for _ in 0..rounds {
        samples[0].push(concurrent_hits(&case.cached, &same, 1, window));
        samples[1].push(concurrent_hits(&case.cached, &same, 2, window));
        samples[2].push(concurrent_hits(&case.cached, distinct, 1, window));
        samples[3].push(concurrent_hits(&case.cached, distinct, 2, window));
    }
    let r: Vec<f64> = samples.into_iter().map(best).collect();
    println!();
    println!(
        "concurrent cache hits ({}, ops/s, best of {rounds} interleaved rounds of {} ms):",
        case.alg.name(),
        window.as_millis()
    );
    println!(
        "  same token      1 thread {:>9.0}   2 threads {:>9.0}",
        r[0], r[1]
    );
    println!(
        "  distinct tokens 1 thread {:>9.0}   2 threads {:>9.0}",
        r[2], r[3]
    );
}

/// The HTTP layer's cost per request with a cached token: the same request through a bare tower
/// service and through `BearerAuth` in front of it.
struct LayerCase {
    request: http::Request<()>,
    bare: tower::util::BoxCloneService<http::Request<()>, http::Response<String>, Infallible>,
    layered: tower::util::BoxCloneService<http::Request<()>, http::Response<String>, Infallible>,
    registry: tower::util::BoxCloneService<http::Request<()>, http::Response<String>, Infallible>,
    token: String,
}

impl LayerCase {
    fn new(case: &Case) -> Self {
        use tower::{Layer as _, ServiceExt as _};
        let inner = tower::service_fn(|req: http::Request<()>| async move {
            black_box(&req);
            Ok::<_, Infallible>(http::Response::new(String::new()))
        });
        let layer =
            oidc_bearer::BearerAuthLayer::new(case.cached.clone()).claims::<DefaultClaims>();
        let request = http::Request::get("/private")
            .header("authorization", format!("Bearer {}", case.token))
            .body(())
            .unwrap();
        // The same verifier as the one issuer of a registry (a service trusting several clusters).
        let registry = oidc_bearer::issuers::IssuerRegistry::builder()
            .with_verifier(case.cached.clone())
            .build()
            .unwrap();
        let registry = oidc_bearer::BearerAuthLayer::new(registry).claims::<DefaultClaims>();
        let this = Self {
            request,
            bare: inner.boxed_clone(),
            layered: layer.layer(inner).boxed_clone(),
            registry: registry.layer(inner).boxed_clone(),
            token: case.token.clone(),
        };
        for service in [&this.bare, &this.layered, &this.registry] {
            assert_eq!(this.call(service), http::StatusCode::OK);
        }
        this
    }

    fn call(
        &self,
        service: &tower::util::BoxCloneService<
            http::Request<()>,
            http::Response<String>,
            Infallible,
        >,
    ) -> http::StatusCode {
        use tower::Service as _;
        let mut request = http::Request::new(());
        *request.headers_mut() = self.request.headers().clone();
        now_or_never(service.clone().call(request))
            .unwrap()
            .status()
    }

    /// A cached request through `BearerAuth`; never inlined, for callgrind's `--toggle-collect`.
    #[inline(never)]
    fn layered_call(&self) -> http::StatusCode {
        self.call(&self.layered)
    }

    /// What a cache lookup hashes: the SHA-256 of the token's signature segment.
    fn sha256(&self) -> u8 {
        use sha2::Digest as _;
        let (_, signature) = self.token.rsplit_once('.').unwrap();
        sha2::Sha256::digest(black_box(signature.as_bytes()))[0]
    }
}

/// The same key as the verifier prepares, for the bare signature check.
fn aws_key(alg: KeyAlg, jwk: &Value) -> ParsedPublicKey {
    let field = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
    let (params, der): (&'static dyn sig::VerificationAlgorithm, Vec<u8>) = match alg {
        KeyAlg::RS256 | KeyAlg::PS256 => {
            let (n, e) = (field("n"), field("e"));
            let der = aws_lc_rs::rsa::PublicKeyComponents {
                n: &n[..],
                e: &e[..],
            }
            .as_der()
            .unwrap()
            .as_ref()
            .to_vec();
            let params: &'static dyn sig::VerificationAlgorithm = if alg == KeyAlg::RS256 {
                &sig::RSA_PKCS1_2048_8192_SHA256
            } else {
                &sig::RSA_PSS_2048_8192_SHA256
            };
            (params, der)
        }
        KeyAlg::ES256 | KeyAlg::ES512 => {
            let mut point = vec![4];
            point.extend(field("x"));
            point.extend(field("y"));
            let params: &'static dyn sig::VerificationAlgorithm = if alg == KeyAlg::ES256 {
                &sig::ECDSA_P256_SHA256_FIXED
            } else {
                &sig::ECDSA_P521_SHA512_FIXED
            };
            (params, point)
        }
        KeyAlg::EdDSA | KeyAlg::Ed25519 => (&sig::ED25519, field("x")),
        KeyAlg::MlDsa44 => (&sig::ML_DSA_44, field("pub")),
        KeyAlg::MlDsa65 => (&sig::ML_DSA_65, field("pub")),
        KeyAlg::MlDsa87 => (&sig::ML_DSA_87, field("pub")),
        other => unreachable!("not benchmarked: {other}"),
    };
    ParsedPublicKey::new(params, &der).unwrap()
}

/// Tokens that must be refused, and the verifiers refusing them.
struct Rejects {
    verifier: Verifier,
    forged_kid_verifier: Verifier,
    _issuer: TestIssuer,
    malformed: String,
    oversized: String,
    bad_base64: String,
    bad_signature: String,
    forged_kid: Vec<String>,
    next_forged: std::cell::Cell<usize>,
    /// `verifier` behind `BearerAuth`, for the refusal's cost through the layer.
    layered: tower::util::BoxCloneService<http::Request<()>, http::Response<String>, Infallible>,
}

impl Rejects {
    fn new(runtime: &tokio::runtime::Runtime) -> Self {
        let issuer = TestIssuer::builder().key(KeyAlg::RS256).start_blocking();
        let jwks_json = serde_json::to_vec(&issuer.jwks_json()).unwrap();
        let verifier = Verifier::builder(issuer.issuer(), AUD)
            .with_key_set(StaticKeySet::new(Jwks::from_json(&jwks_json).unwrap()))
            .build()
            .unwrap();
        let layered = {
            use tower::{Layer as _, ServiceExt as _};
            let inner = tower::service_fn(|req: http::Request<()>| async move {
                black_box(&req);
                Ok::<_, Infallible>(http::Response::new(String::new()))
            });
            oidc_bearer::BearerAuthLayer::new(verifier.clone())
                .claims::<WorkloadClaims>()
                .layer(inner)
                .boxed_clone()
        };
        // Forged kids go through the real remote key set: the first loads the keys, the rest
        // fall inside the refresh cooldown (the clock does not move), so none may fetch.
        let forged_kid_verifier = Verifier::builder(issuer.issuer(), AUD)
            .with_clock(ManualClock::new())
            .build()
            .unwrap();
        runtime.block_on(forged_kid_verifier.ready()).unwrap();
        let valid = issuer
            .token()
            .kubernetes("payments", "checkout")
            .aud(AUD)
            .sign();
        let (header, rest) = valid.split_once('.').unwrap();
        let (payload, signature) = rest.split_once('.').unwrap();
        let mut flipped = URL_SAFE_NO_PAD.decode(signature).unwrap();
        flipped[17] ^= 1;
        let rejects = Self {
            malformed: format!("{header}.{payload}"),
            oversized: "a".repeat(64 * 1024),
            bad_base64: format!("{header}.{}*.{signature}", &payload[..payload.len() - 1]),
            bad_signature: format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(flipped)),
            forged_kid: (0..1024)
                .map(|i| {
                    issuer
                        .token()
                        .kubernetes("payments", "checkout")
                        .aud(AUD)
                        .kid(&format!("forged-{i}"))
                        .sign()
                })
                .collect(),
            next_forged: std::cell::Cell::new(0),
            layered,
            verifier,
            forged_kid_verifier,
            _issuer: issuer,
        };
        for (token, code) in [
            (&rejects.malformed, "malformed"),
            (&rejects.oversized, "token_too_large"),
            (&rejects.bad_base64, "malformed"),
            (&rejects.bad_signature, "invalid_signature"),
        ] {
            assert_eq!(rejects.reject(token).code(), code);
        }
        // Inside the refresh cooldown an unknown `kid` is "retry later" (503) unless the token
        // predates the keys' fetch (verify/keys.rs); either way it is refused without crypto.
        let forged = rejects.forged().code();
        assert!(
            matches!(forged, "unknown_key" | "unknown_key_retry"),
            "{forged}"
        );
        assert_eq!(rejects.layered_refusal(), http::StatusCode::UNAUTHORIZED);
        rejects
    }

    /// The bad-signature token through `BearerAuth`: the request a flood of forged tokens makes.
    /// Never inlined, so that callgrind can count it alone (`--toggle-collect`).
    #[inline(never)]
    fn layered_refusal(&self) -> http::StatusCode {
        use tower::Service as _;
        let mut request = http::Request::new(());
        request.headers_mut().insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::try_from(format!("Bearer {}", self.bad_signature)).unwrap(),
        );
        let request = black_box(request);
        now_or_never(self.layered.clone().call(request))
            .unwrap()
            .status()
    }

    fn reject(&self, token: &str) -> VerifyError {
        now_or_never(
            self.verifier
                .verify_token::<WorkloadClaims>(black_box(token)),
        )
        .unwrap_err()
    }

    fn forged(&self) -> VerifyError {
        let i = self.next_forged.get();
        self.next_forged.set((i + 1) % self.forged_kid.len());
        now_or_never(
            self.forged_kid_verifier
                .verify_token::<WorkloadClaims>(black_box(&self.forged_kid[i])),
        )
        .unwrap_err()
    }
}

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

/// Operations per second of `f`, over about `window` of time.
fn rate<R>(window: Duration, mut f: impl FnMut() -> R) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    loop {
        for _ in 0..16 {
            black_box(f());
        }
        n += 16;
        let elapsed = start.elapsed();
        if elapsed >= window {
            return n as f64 / elapsed.as_secs_f64();
        }
    }
}

/// The fastest round: other processes on the machine only ever slow a round down, so the best
/// round is the closest to the code's own speed, for every variant alike.
fn best(xs: Vec<f64>) -> f64 {
    xs.into_iter().fold(0.0, f64::max)
}

/// Interleaved rounds: each variant runs `window` in turn, `rounds` times; the best per variant.
fn interleaved(rounds: usize, window: Duration, variants: &mut [&mut dyn FnMut()]) -> Vec<f64> {
    let mut samples = vec![Vec::with_capacity(rounds); variants.len()];
    for _ in 0..rounds {
        for (i, variant) in variants.iter_mut().enumerate() {
            samples[i].push(rate(window, &mut **variant));
        }
    }
    samples.into_iter().map(best).collect()
}

fn table(cases: &[Case], rejects: &Rejects, rounds: usize, window: Duration) {
    println!();
    println!(
        "ops/s, best of {rounds} interleaved rounds of {} ms; ratio = ops/s ÷ signature_only",
        window.as_millis()
    );
    println!(
        "{:<9} {:>10} {:>16} {:>16} {:>16} {:>16} {:>18} {:>12}",
        "alg",
        "sig-only",
        "jwt sig-only",
        "jwt decode",
        "ours uncached",
        "ours miss",
        "uncached Default",
        "ours hit"
    );
    for case in cases {
        let jwt = case.jwt.is_some();
        let r = interleaved(
            rounds,
            window,
            &mut [
                &mut || {
                    black_box(case.signature_only());
                },
                &mut || {
                    if jwt {
                        black_box(case.jsonwebtoken_signature());
                    }
                },
                &mut || {
                    if jwt {
                        black_box(case.jsonwebtoken_decode());
                    }
                },
                &mut || {
                    black_box(case.ours_uncached());
                },
                &mut || {
                    black_box(case.ours_miss());
                },
                &mut || {
                    black_box(case.ours_uncached_default_claims());
                },
                &mut || {
                    black_box(case.ours_hit());
                },
            ],
        );
        let cell = |x: f64| format!("{:>7.0} {:>5.2}×", x, x / r[0]);
        let jwt_cell = |x: f64| if jwt { cell(x) } else { "n/a".to_owned() };
        println!(
            "{:<9} {:>10.0} {:>16} {:>16} {:>16} {:>16} {:>18} {:>12.0}",
            case.alg.name(),
            r[0],
            jwt_cell(r[1]),
            jwt_cell(r[2]),
            cell(r[3]),
            cell(r[4]),
            cell(r[5]),
            r[6]
        );
    }
    let rs256 = &cases[0];
    let r = interleaved(
        rounds,
        window,
        &mut [
            &mut || {
                black_box(rs256.ours_uncached());
            },
            &mut || {
                black_box(rejects.reject(&rejects.bad_signature));
            },
            &mut || {
                black_box(rejects.reject(&rejects.malformed));
            },
            &mut || {
                black_box(rejects.reject(&rejects.oversized));
            },
            &mut || {
                black_box(rejects.reject(&rejects.bad_base64));
            },
            &mut || {
                black_box(rejects.forged());
            },
            &mut || {
                black_box(rejects.layered_refusal());
            },
            &mut || {
                black_box(rs256.signature_only());
            },
        ],
    );
    let us = |x: f64| format!("{:.3} µs", 1e6 / x);
    println!();
    println!("RS256 rejections (time per token):");
    println!("  valid token, uncached  {}", us(r[0]));
    println!("  bad signature          {}", us(r[1]));
    println!("  malformed (2 parts)    {}", us(r[2]));
    println!("  oversized (64 KiB)     {}", us(r[3]));
    println!("  bad base64             {}", us(r[4]));
    println!("  forged kid             {}", us(r[5]));
    println!(
        "  bad signature through BearerAuth {} (signature check alone {}: the rest is {:.3} µs)",
        us(r[6]),
        us(r[7]),
        1e6 / r[6] - 1e6 / r[7]
    );

    let layer = LayerCase::new(rs256);
    let r = interleaved(
        rounds,
        window,
        &mut [
            &mut || {
                black_box(layer.call(&layer.bare));
            },
            &mut || {
                black_box(layer.call(&layer.layered));
            },
            &mut || {
                black_box(layer.sha256());
            },
            &mut || {
                black_box(layer.call(&layer.registry));
            },
        ],
    );
    let ns = |x: f64| 1e9 / x;
    println!();
    println!(
        "HTTP layer, cached {}-byte token (time per request, in process):",
        layer.token.len()
    );
    println!("  bare service           {:.0} ns", ns(r[0]));
    println!("  behind BearerAuth      {:.0} ns", ns(r[1]));
    println!("  the layer's own cost   {:.0} ns", ns(r[1]) - ns(r[0]));
    println!(
        "  of which SHA-256       {:.0} ns (signature segment)",
        ns(r[2])
    );
    println!("  through IssuerRegistry {:.0} ns", ns(r[3]) - ns(r[0]));
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
    // `hit-profile N`: N cached requests through the layer, for callgrind (the layer's own cost in
    // instructions, with and without feature `metrics`, free of the machine's noise).
    if let Some(n) = args
        .iter()
        .position(|a| a == "hit-profile")
        .and_then(|i| args.get(i + 1)?.parse::<usize>().ok())
    {
        let layer = LayerCase::new(&Case::new(KeyAlg::RS256));
        for _ in 0..n {
            black_box(layer.layered_call());
        }
        return;
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
