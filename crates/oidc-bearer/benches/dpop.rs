//! The cost of DPoP (RFC 9449) next to a bearer token's, through the HTTP layer, with the token in
//! the verifier's cache (the common case: a client reuses its token). A DPoP request adds one proof
//! check, whose floor is the proof's ES256 signature (each proof is new: no cache can remove it),
//! plus the `ath` digest, the thumbprint, `htu`/`htm` and the replay memory's insert. The third
//! row is that floor alone (aws-lc-rs, the same verification the proof check makes).
//!
//! Each DPoP iteration sends a proof never sent before (signed in the untimed setup), since a
//! replayed one is refused.
//!
//! `cargo bench -p oidc-bearer --bench dpop`

// criterion's macros generate undocumented functions.
#![allow(missing_docs)]

use std::time::Duration;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{HeaderValue, Request};
use oidc_bearer::claims::DefaultClaims;
use oidc_bearer::{BearerAuthLayer, Dpop, DpopMode, Verifier, VerifyToken};
use oidc_bearer_testing::{DpopKey, KeyAlg, TestIssuer};

#[path = "support/layer_hit.rs"]
mod layer_hit;

use layer_hit::LayerHit;

const BASE: &str = "https://api.example";
const AUD: &str = "orders-api";

fn dpop(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let issuer = runtime.block_on(TestIssuer::start());
    let key = DpopKey::generate(KeyAlg::ES256);
    let bearer = issuer.token().aud(AUD).sign();
    let bound = issuer.token().aud(AUD).dpop_bound(&key).sign();
    let verifier = Verifier::new(issuer.issuer(), AUD).expect("verifier");
    for token in [&bearer, &bound] {
        runtime
            .block_on(verifier.verify_token::<DefaultClaims>(token))
            .expect("the token verifies (and is cached)");
    }
    let mut group = c.benchmark_group("dpop");

    let plain = LayerHit::<_, DefaultClaims>::new(verifier.clone(), &bearer);
    group.bench_function("bearer_cached_token", |b| b.iter(|| plain.hit()));

    // A window wide enough for the whole run: the bench measures the checks, not the clock.
    let settings = Dpop::new(DpopMode::Required, BASE)
        .expect("base URL")
        .with_iat_window(Duration::from_secs(3600));
    let layer = BearerAuthLayer::new(verifier).with_dpop(settings);
    let with_proof = LayerHit::with_layer(layer, "DPoP", &bound);
    let url = format!("{BASE}/orders");
    group.bench_function("dpop_cached_token_fresh_proof", |b| {
        b.iter_batched(
            || {
                let proof = key.proof("GET", &url).access_token(&bound).sign();
                let mut request = Request::get("/orders")
                    .body(String::new())
                    .expect("request");
                let value = HeaderValue::from_str(&proof).expect("proof header");
                request.headers_mut().insert("dpop", value);
                request
            },
            |request| with_proof.hit_with(request),
            BatchSize::SmallInput,
        )
    });

    // The floor: the proof's signature alone.
    let proof = key.proof("GET", &url).access_token(&bound).sign();
    let (signing_input, signature) = proof.rsplit_once('.').expect("a JWS");
    let signature = URL_SAFE_NO_PAD.decode(signature).expect("base64url");
    let jwk = key.public_jwk();
    let coordinate = |name: &str| {
        URL_SAFE_NO_PAD
            .decode(jwk[name].as_str().expect("coordinate"))
            .expect("base64url")
    };
    let point = [vec![4], coordinate("x"), coordinate("y")].concat();
    let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point);
    group.bench_function("es256_signature_alone", |b| {
        b.iter(|| {
            public
                .verify(signing_input.as_bytes(), &signature)
                .expect("the proof's signature verifies")
        })
    });
    group.finish();
}

criterion_group!(benches, dpop);
criterion_main!(benches);
