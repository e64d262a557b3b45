//! A fault soak: steady concurrent traffic (valid tokens seen before, new valid tokens, forged,
//! expired) through the layer over real HTTP, while the issuer flaps: down (503), unreachable, slow,
//! an oversized JWKS, a JWKS without the signing key, rotations. The clock is manual and moves in
//! steps, so the fetch budget is exact.
//!
//! Asserted: a valid token whose key is cached and published is never refused; no invalid token is
//! ever accepted; at most one discovery and one JWKS fetch start per clock step (the cooldown and
//! the backoff never let two fetches start at one instant); the token cache stays within its
//! bounds. `SOAK_ROUNDS=2000 cargo test -p oidc-bearer-e2e --test it -- soak:: --nocapture` runs long
//! and prints the figures.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use oidc_bearer::cache::TokenCacheSettings;
use oidc_bearer::claims::DefaultClaims;
use oidc_bearer::clock::{Clock, ManualClock};
use oidc_bearer::{BearerAuthLayer, Claims, Verifier};
use oidc_bearer_testing::{KeyAlg, TestIssuer};
use serde_json::json;

const AUD: &str = "resource-server";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// Seen before, signed by a key that is cached and still published.
    Known,
    /// New, signed by the current signing key (which may not be published or fetched yet).
    New,
    Forged,
    Expired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    None,
    Down,
    Unreachable,
    Slow,
    Oversized,
    WithoutSigningKey,
    Rotated,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_through_a_flapping_issuer_keeps_every_invariant() {
    let rounds: usize = std::env::var("SOAK_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let issuer = TestIssuer::builder().key(KeyAlg::ES256).start().await;
    let clock = ManualClock::new();
    let mut cache = TokenCacheSettings::default();
    cache.max_entries = 64;
    let verifier = Verifier::builder(issuer.issuer(), AUD)
        .with_clock(clock.clone())
        .with_token_cache(cache.clone())
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/private",
            get(|Claims(c): Claims<DefaultClaims>| async move {
                c.subject().unwrap_or_default().to_owned()
            }),
        )
        .route_layer(BearerAuthLayer::new(verifier.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/private", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = reqwest::Client::new();

    let at = |clock: &ManualClock| clock.now().as_secs() as i64;
    let token = |kid: Option<&str>, sub: &str, clock: &ManualClock| {
        let mut b = issuer
            .token()
            .aud(AUD)
            .sub(sub)
            .iat(at(clock))
            .exp(at(clock) + 3600);
        if let Some(kid) = kid {
            b = b.sign_with(kid);
        }
        b.sign()
    };
    verifier.ready().await.unwrap();
    let mut known = vec![(issuer.signing_kid(), token(None, "known", &clock))];
    let mut outcomes: BTreeMap<(Kind, u16), usize> = BTreeMap::new();
    let mut faults: BTreeMap<Fault, usize> = BTreeMap::new();
    let (mut jwks_before, mut discovery_before) =
        (issuer.jwks_fetches(), issuer.discovery_fetches());
    let oversized = json!({"kty": "RSA", "kid": "huge", "n": "A".repeat(2 << 20), "e": "AQAB"});
    let mut published: Vec<String> = vec![issuer.signing_kid()];

    for round in 0..rounds {
        // The fault of this round (a fixed cycle: every run exercises each).
        let fault = [
            Fault::None,
            Fault::Down,
            Fault::None,
            Fault::Slow,
            Fault::Rotated,
            Fault::None,
            Fault::Oversized,
            Fault::None,
            Fault::Unreachable,
            Fault::WithoutSigningKey,
            Fault::None,
        ][round % 11];
        *faults.entry(fault).or_default() += 1;
        let mut hold = None;
        match fault {
            Fault::None => {}
            Fault::Down => issuer.set_down(true),
            Fault::Unreachable => issuer.stop_listening().await,
            Fault::Slow => hold = Some(issuer.hold_jwks()),
            Fault::Oversized => issuer.add_raw_jwk(oversized.clone()),
            Fault::WithoutSigningKey => {
                // The next signing key is used before it is published.
                let kid = issuer.add_unpublished_key(KeyAlg::ES256);
                issuer.set_signing_key(&kid);
            }
            Fault::Rotated => {
                let kid = issuer.rotate();
                published.push(kid);
            }
        }
        clock.advance(Duration::from_secs(7));

        let mut batch = Vec::new();
        for i in 0..12 {
            let (kind, t) = match i % 4 {
                0 => {
                    let (_, t) = &known[i % known.len()];
                    (Kind::Known, t.clone())
                }
                1 => (Kind::New, token(None, &format!("new-{round}-{i}"), &clock)),
                2 => {
                    let t = token(None, "forged", &clock);
                    let (input, _) = t.rsplit_once('.').unwrap();
                    let other = token(None, "other", &clock);
                    let (_, sig) = other.rsplit_once('.').unwrap();
                    (Kind::Forged, format!("{input}.{sig}"))
                }
                _ => {
                    let t = issuer
                        .token()
                        .aud(AUD)
                        .iat(at(&clock) - 7200)
                        .exp(at(&clock) - 3600)
                        .sign();
                    (Kind::Expired, t)
                }
            };
            let request = client.get(&url).bearer_auth(t).send();
            batch.push(tokio::spawn(async move {
                (kind, request.await.unwrap().status().as_u16())
            }));
        }
        if fault == Fault::Slow {
            // Let the held fetch (if one started) go once the requests are in flight.
            tokio::task::yield_now().await;
            drop(hold.take());
        }
        for request in batch {
            let (kind, status) = request.await.unwrap();
            *outcomes.entry((kind, status)).or_default() += 1;
            match kind {
                Kind::Known => assert_eq!(status, 200, "round {round} ({fault:?}): a known token"),
                // 503 "retry": the keys or the new key could not be fetched yet. 401 only when a
                // fetch since the request arrived showed the key unpublished.
                Kind::New => assert!(
                    matches!(status, 200 | 503)
                        || (status == 401 && fault == Fault::WithoutSigningKey),
                    "round {round} ({fault:?}): a new valid token got {status}"
                ),
                Kind::Forged | Kind::Expired => assert!(
                    matches!(status, 401 | 503),
                    "round {round} ({fault:?}): {kind:?} got {status}"
                ),
            }
        }
        // At most one fetch of each kind started at this clock instant.
        let (jwks, discovery) = (issuer.jwks_fetches(), issuer.discovery_fetches());
        assert!(
            jwks - jwks_before <= 1,
            "round {round}: {} JWKS fetches",
            jwks - jwks_before
        );
        assert!(
            discovery - discovery_before <= 1,
            "round {round}: discovery"
        );
        (jwks_before, discovery_before) = (jwks, discovery);

        // Undo the fault; the issuer publishes what it signs with again.
        match fault {
            Fault::Down => issuer.set_down(false),
            Fault::Unreachable => issuer.resume_listening().await,
            Fault::Oversized => issuer.remove_key("huge"),
            Fault::WithoutSigningKey => {
                let kid = issuer.signing_kid();
                issuer.publish_key(&kid);
                published.push(kid);
            }
            _ => {}
        }
        // A token of a key that the verifier has loaded becomes a "known" one.
        if let Ok(claims) = verifier
            .verify::<DefaultClaims>(&token(None, "probe", &clock))
            .await
        {
            assert_eq!(claims.subject(), Some("probe"));
            let kid = issuer.signing_kid();
            if !known.iter().any(|(k, _)| *k == kid) {
                known.push((kid.clone(), token(Some(&kid), "known", &clock)));
            }
        }
        let stats = verifier.token_cache_stats().unwrap();
        assert!(stats.entries <= cache.max_entries, "{stats:?}");
        assert!(stats.bytes <= cache.max_bytes, "{stats:?}");
    }
    println!("rounds {rounds}, faults {faults:?}");
    println!("outcomes (kind, status) → count: {outcomes:?}");
    println!(
        "fetches: {} discovery, {} JWKS over {} s of clock",
        issuer.discovery_fetches(),
        issuer.jwks_fetches(),
        rounds * 7
    );
    println!("token cache: {:?}", verifier.token_cache_stats().unwrap());
    // The run saw acceptance and refusal of each kind it should.
    assert!(outcomes.get(&(Kind::New, 200)).is_some_and(|n| *n > 0));
    assert!(outcomes.get(&(Kind::Forged, 401)).is_some_and(|n| *n > 0));
}
