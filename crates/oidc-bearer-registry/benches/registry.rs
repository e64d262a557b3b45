//! The issuer registry's lookup cost does not grow with the number of issuers: selecting (and here
//! refusing) a token's issuer with 10,000 registered issuers, side by side with one. Then a trusted
//! issuer's token seen before, in a request through the HTTP layer, whose fast path (the
//! recent-token index) answers it, and through the full path (parse, select, the issuer's token
//! cache).
//!
//! `cargo bench -p oidc-bearer-registry --bench registry`

// criterion's macros generate undocumented functions.
#![allow(missing_docs)]

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use oidc_bearer::claims::DefaultClaims;
use oidc_bearer::{Verifier, VerifyToken};
use oidc_bearer_registry::IssuerRegistry;
use oidc_bearer_testing::TestIssuer;

#[path = "../../oidc-bearer/benches/support/layer_hit.rs"]
mod layer_hit;

use layer_hit::LayerHit;

fn registry(issuers: usize) -> IssuerRegistry {
    let mut builder = IssuerRegistry::builder();
    for i in 0..issuers {
        builder = builder.with_issuer(Verifier::builder(
            format!("https://issuer-{i}.example/tenant/{i}"),
            "my-service",
        ));
    }
    builder.build().expect("registry")
}

fn lookup(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // A token from an issuer nobody registered: the registry refuses it after one lookup, before any
    // fetch, so the measurement is the parse plus the lookup.
    let stranger = runtime.block_on(TestIssuer::start());
    let token = stranger.token().aud("my-service").sign();
    let mut group = c.benchmark_group("registry_untrusted_lookup");
    for issuers in [1, 10_000] {
        let registry = registry(issuers);
        group.bench_with_input(
            BenchmarkId::from_parameter(issuers),
            &registry,
            |b, registry| {
                b.iter(|| {
                    let result = runtime.block_on(registry.verify::<DefaultClaims>(&token));
                    assert!(result.is_err());
                });
            },
        );
    }
    group.finish();
}

fn known(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let issuer = runtime.block_on(TestIssuer::start());
    let token = issuer.token().aud("my-service").sign();
    let mut group = c.benchmark_group("registry_known_token");
    for issuers in [1, 10_000] {
        let mut builder = IssuerRegistry::builder();
        for i in 1..issuers {
            builder = builder.with_issuer(Verifier::builder(
                format!("https://issuer-{i}.example/tenant/{i}"),
                "my-service",
            ));
        }
        let registry = builder
            .with_issuer(Verifier::builder(issuer.issuer(), "my-service"))
            .build()
            .expect("registry");
        // The first verification loads the keys (over loopback) and fills the caches.
        runtime
            .block_on(registry.verify_token::<DefaultClaims>(&token))
            .expect("token verifies");
        let through_layer = LayerHit::<_, DefaultClaims>::new(registry.clone(), &token);
        group.bench_with_input(
            BenchmarkId::new("fast_path", issuers),
            &through_layer,
            |b, through_layer| b.iter(|| through_layer.hit()),
        );
        group.bench_with_input(
            BenchmarkId::new("full_path", issuers),
            &registry,
            |b, registry| {
                b.iter(|| {
                    let claims = runtime.block_on(registry.verify_token::<DefaultClaims>(&token));
                    assert!(claims.is_ok());
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, lookup, known);
criterion_main!(benches);
