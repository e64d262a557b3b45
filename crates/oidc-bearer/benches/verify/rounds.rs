//! Interleaved rounds (each variant in turn, the best of several, so drift on a shared machine hits
//! all columns alike): the ratio table and the concurrent hits.

use super::*;

/// Cache hits per second from `threads` threads at once on one verifier: all presenting the same
/// token (one shard, the most contended case), or each its own token.
pub(crate) fn concurrent_hits(
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
pub(crate) fn concurrent_table(case: &Case, rounds: usize, window: Duration) {
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

/// Operations per second of `f`, over about `window` of time.
pub(crate) fn rate<R>(window: Duration, mut f: impl FnMut() -> R) -> f64 {
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
pub(crate) fn best(xs: Vec<f64>) -> f64 {
    xs.into_iter().fold(0.0, f64::max)
}

/// Interleaved rounds: each variant runs `window` in turn, `rounds` times; the best per variant.
pub(crate) fn interleaved(
    rounds: usize,
    window: Duration,
    variants: &mut [&mut dyn FnMut()],
) -> Vec<f64> {
    let mut samples = vec![Vec::with_capacity(rounds); variants.len()];
    for _ in 0..rounds {
        for (i, variant) in variants.iter_mut().enumerate() {
            samples[i].push(rate(window, &mut **variant));
        }
    }
    samples.into_iter().map(best).collect()
}

pub(crate) fn table(cases: &[Case], rejects: &Rejects, rounds: usize, window: Duration) {
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

/// ns per decode of the case's payload into each claims type (serde_json only): `WorkloadClaims`, a
/// plain struct, is the reference; the best of `rounds` interleaved rounds.
pub(crate) fn decode_table(case: &Case, rounds: usize, window: Duration) {
    let payload = URL_SAFE_NO_PAD
        .decode(case.token.split('.').nth(1).unwrap())
        .unwrap();
    fn decode<T: serde::de::DeserializeOwned>(payload: &[u8]) -> T {
        serde_json::from_slice(black_box(payload)).unwrap()
    }
    let rates = interleaved(
        rounds,
        window,
        &mut [
            &mut || {
                black_box(decode::<WorkloadClaims>(&payload));
            },
            &mut || {
                black_box(decode::<DefaultClaims>(&payload));
            },
            &mut || {
                black_box(decode::<DefaultClaims<serde_json::Map<String, Value>>>(
                    &payload,
                ));
            },
        ],
    );
    println!(
        "decode ({} bytes of Kubernetes-shaped claims), ns, best of {rounds} interleaved rounds of {} ms",
        payload.len(),
        window.as_millis()
    );
    let names = [
        "WorkloadClaims",
        "DefaultClaims",
        "DefaultClaims<Map<String, Value>>",
    ];
    for (name, rate) in names.iter().zip(&rates) {
        println!("  {name:<32} {:>8.0}", 1e9 / rate);
    }
}

/// `-- refusal-parts`: a forged RS256 token never sent before, refused, in parts: the signature
/// check alone, the verifier's refusal, the whole refusal through `BearerAuth` (over the verifier,
/// and over an `IssuerRegistry` as examples/resource-server serves it), the 401 alone and the
/// SHA-256 of the signature segment; µs per call (best of `rounds` interleaved rounds).
/// Allocations per call are counted by valgrind's DHAT on the `*-profile N` modes (the crate
/// forbids the `unsafe` a counting global allocator needs): see BENCHMARKS.md.
pub(crate) fn refusal_parts(rejects: &Rejects, rounds: usize, window: Duration) {
    let case = Case::new(KeyAlg::RS256);
    let layer = LayerCase::new(&case);
    type Variant<'a> = (&'static str, Box<dyn FnMut() + 'a>);
    let mut variants: Vec<Variant<'_>> = vec![
        (
            "signature check alone",
            Box::new(|| {
                black_box(case.signature_only());
            }),
        ),
        (
            "Verifier::verify_token, bad signature",
            Box::new(|| {
                black_box(rejects.reject(&rejects.bad_signature));
            }),
        ),
        (
            "BearerAuth over a Verifier, fresh forgery",
            Box::new(|| {
                black_box(rejects.fresh_forgery(false));
            }),
        ),
        (
            "BearerAuth over an IssuerRegistry, fresh forgery",
            Box::new(|| {
                black_box(rejects.fresh_forgery(true));
            }),
        ),
        (
            "the 401 alone (DefaultRejection + extension)",
            Box::new(|| {
                black_box(rejects.rejection_alone());
            }),
        ),
        (
            "SHA-256 of the signature segment",
            Box::new(|| {
                black_box(layer.sha256());
            }),
        ),
        (
            "a cached token through BearerAuth (hit)",
            Box::new(|| {
                black_box(layer.call(&layer.layered));
            }),
        ),
        (
            "a bare service (no layer)",
            Box::new(|| {
                black_box(layer.call(&layer.bare));
            }),
        ),
    ];
    let mut fns: Vec<&mut dyn FnMut()> = variants
        .iter_mut()
        .map(|(_, f)| &mut **f as &mut dyn FnMut())
        .collect();
    let rates = interleaved(rounds, window, &mut fns);
    println!(
        "refusal in parts (RS256; µs per call, best of {rounds} interleaved rounds of {} ms):",
        window.as_millis()
    );
    for ((name, _), rate) in variants.iter().zip(&rates) {
        println!("  {name:<50} {:>8.3} µs", 1e6 / rate);
    }
    let us = |i: usize| 1e6 / rates[i];
    println!(
        "  BearerAuth refusal - signature check: over a Verifier {:.3} µs, over a registry {:.3} µs",
        us(2) - us(0),
        us(3) - us(0)
    );
}
