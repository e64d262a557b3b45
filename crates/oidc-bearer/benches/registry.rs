//! The issuer registry's lookup cost does not grow with the number of issuers: selecting (and here
//! refusing) a token's issuer with 10,000 registered issuers, side by side with one.
//!
//! `cargo bench -p oidc-bearer --bench registry`

// criterion's macros generate undocumented functions.
#![allow(missing_docs)]

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use oidc_bearer::Verifier;
use oidc_bearer::claims::DefaultClaims;
use oidc_bearer::issuers::IssuerRegistry;
use oidc_bearer_testing::TestIssuer;

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

criterion_group!(benches, lookup);
criterion_main!(benches);
