//! `Presented` seen from another crate (these tests are one): every way to obtain one outside the
//! core — the HTTP layer handing it to a verifier's hooks, and the core verifiers' `hash_token`
//! handing it back — gives a value whose key is the key of its own bytes, so a digest is never
//! paired with other bytes (that pairing would file a token under another token's signature).

use std::future::Future;
use std::sync::{Arc, Mutex};

use http::header::AUTHORIZATION;
use oidc_bearer::bearer::{BearerError, HeaderToken};
use oidc_bearer::cache::TokenKey;
use oidc_bearer::claims::DefaultClaims;
use oidc_bearer::{BearerAuthLayer, Presented, Verifier, VerifyError, VerifyToken};
use oidc_bearer_registry::IssuerRegistry;
use oidc_bearer_testing::TestIssuer;
use serde::de::DeserializeOwned;
use tower::{Layer as _, ServiceExt as _, service_fn};

const AUD: &str = "my-service";

/// What a hook was handed or given back: whether its key is its bytes' key, and whether it carried
/// a digest (its `Debug` says so; never the token).
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    hook: &'static str,
    own_key: bool,
    hashed: bool,
}

/// A verifier of this crate around one of the core's, forwarding every hook, recording each
/// `Presented` it is handed (by the layer) or given back (by the inner verifier's `hash_token`).
#[derive(Clone)]
struct Watch<V> {
    inner: V,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl<V> Watch<V> {
    fn new(inner: V) -> Self {
        Self {
            inner,
            seen: Arc::default(),
        }
    }

    fn record<B: ?Sized + AsRef<[u8]>>(&self, hook: &'static str, token: Presented<'_, B>) {
        let parts = |key: TokenKey<'_>| (*key.digest(), key.signing_input().to_vec());
        self.seen.lock().unwrap().push(Seen {
            hook,
            own_key: token.key().map(parts) == TokenKey::new(token.get().as_ref()).map(parts),
            hashed: format!("{token:?}").contains("hashed: true"),
        });
    }

    fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

impl<V: VerifyToken> VerifyToken for Watch<V> {
    fn verify_token<T>(
        &self,
        token: &str,
    ) -> impl Future<Output = Result<Arc<T>, VerifyError>> + Send
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        self.inner.verify_token(token)
    }

    fn verify_token_cached<T>(&self, token: Presented<'_>) -> Option<Arc<T>>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        self.record("verify_token_cached", token);
        self.inner.verify_token_cached(token)
    }

    fn hash_token<'a>(&self, token: Presented<'a>) -> Presented<'a> {
        self.record("hash_token (handed)", token);
        let hashed = self.inner.hash_token(token);
        self.record("hash_token (given back)", hashed);
        hashed
    }

    fn verify_token_hashed<T>(
        &self,
        token: Presented<'_, str>,
    ) -> impl Future<Output = Result<Arc<T>, VerifyError>> + Send
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        self.record("verify_token_hashed", token);
        self.inner.verify_token_hashed(token)
    }
}

/// An extractor of this crate (a function): no unchecked read.
fn x_token(headers: &http::HeaderMap) -> Result<Option<&str>, BearerError> {
    let value = headers.get("x-token").map(|v| v.to_str());
    value.transpose().map_err(|_| BearerError::NotAscii)
}

/// The status of a request carrying `token` through the layer over `verifier`: in the
/// `Authorization` header (the extractor with an unchecked read), in `X-Token` (another built-in
/// one), or through a closure (an extractor without one: the layer hashes the checked token).
async fn status<V: VerifyToken>(verifier: &V, extractor: &str, token: &str) -> u16 {
    let ok = service_fn(|_: http::Request<String>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    });
    let layer = BearerAuthLayer::new(verifier.clone()).claims::<DefaultClaims>();
    let request = http::Request::builder();
    let response = match extractor {
        "authorization" => {
            let request = request.header(AUTHORIZATION, format!("Bearer {token}"));
            layer
                .layer(ok)
                .oneshot(request.body(String::new()).unwrap())
                .await
        }
        "header" => {
            let request = request.header("x-token", token);
            let layer = layer.with_token_extractor(HeaderToken::new("x-token".parse().unwrap()));
            layer
                .layer(ok)
                .oneshot(request.body(String::new()).unwrap())
                .await
        }
        _ => {
            let request = request.header("x-token", token);
            let layer = layer.with_token_extractor(x_token);
            layer
                .layer(ok)
                .oneshot(request.body(String::new()).unwrap())
                .await
        }
    };
    response.unwrap().status().as_u16()
}

/// Through the layer over `watch`, with each kind of extractor: a first request (a miss), the same
/// token again (a hit), and a token carrying that token's signature over another payload (the same
/// digest, other bytes: refused). Returns what the hooks saw, per extractor.
async fn requests<V: VerifyToken>(watch: &Watch<V>, issuer: &TestIssuer) -> Vec<Vec<Seen>> {
    let mut seen = Vec::new();
    for extractor in ["authorization", "header", "closure"] {
        let token = issuer.token().aud(AUD).sign();
        let other = issuer.token().aud(AUD).sub("admin").sign();
        let (input, _) = other.rsplit_once('.').unwrap();
        let substituted = format!("{input}.{}", token.rsplit_once('.').unwrap().1);
        assert_eq!(
            status(watch, extractor, &token).await,
            200,
            "{extractor}: miss"
        );
        assert_eq!(
            status(watch, extractor, &token).await,
            200,
            "{extractor}: hit"
        );
        assert_eq!(
            status(watch, extractor, &substituted).await,
            401,
            "{extractor}"
        );
        seen.push(watch.take());
    }
    seen
}

/// Over a `Verifier` and over an `IssuerRegistry`: every `Presented` the layer hands the hooks,
/// and every one the core's `hash_token` gives back, has the key of its own bytes. And the digest
/// really travels, so that this is no vacuous check: `hash_token` gives it back, the hit's lookup
/// and the miss's verification receive it.
#[tokio::test]
async fn every_presented_another_crate_obtains_has_its_own_bytes_key() {
    let issuer = TestIssuer::start().await;
    let verifier = Verifier::new(issuer.issuer(), AUD).unwrap();
    let registry = IssuerRegistry::builder()
        .with_verifier(verifier.clone())
        .build()
        .unwrap();
    let by_verifier = requests(&Watch::new(verifier), &issuer).await;
    let by_registry = requests(&Watch::new(registry), &issuer).await;
    for (inner, seen) in [("verifier", by_verifier), ("registry", by_registry)] {
        for (extractor, seen) in ["authorization", "header", "closure"].into_iter().zip(seen) {
            let case = format!("{inner}, {extractor}");
            assert!(!seen.is_empty(), "{case}: no hook was called");
            for s in &seen {
                assert!(s.own_key, "{case}: a digest paired with other bytes: {s:?}");
            }
            for hook in [
                "hash_token (given back)",
                "verify_token_cached",
                "verify_token_hashed",
            ] {
                assert!(
                    seen.iter().any(|s| s.hook == hook && s.hashed),
                    "{case}: no digest reached `{hook}`: {seen:?}"
                );
            }
        }
    }
}

/// Bytes over the registry's size cap are refused before anything is hashed (moved from
/// oidc-bearer's `an_oversized_token_is_not_hashed_for_the_seal`, whose verifier and object-binding
/// halves stay there): the registry's `hash_token` gives the layer's token back without a digest,
/// or a request of a header's full size costs a SHA-256 over all of it.
#[tokio::test]
async fn an_oversized_token_is_not_hashed_by_a_registry() {
    let issuer = TestIssuer::start().await;
    let token = issuer.token().aud(AUD).sign();
    let registry = IssuerRegistry::builder()
        .with_verifier(Verifier::new(issuer.issuer(), AUD).unwrap())
        .with_max_token_bytes(token.len() - 1)
        .build()
        .unwrap();
    let watch = Watch::new(registry);
    assert_eq!(status(&watch, "authorization", &token).await, 401);
    let given_back: Vec<Seen> = watch
        .take()
        .into_iter()
        .filter(|s| s.hook == "hash_token (given back)")
        .collect();
    assert!(!given_back.is_empty(), "hash_token was not called");
    assert!(
        given_back.iter().all(|s| !s.hashed),
        "registry: hashed a token over its cap: {given_back:?}"
    );
}
