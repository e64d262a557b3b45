//! Review of 3a59f38 (s4-review-seal): `ObjectBinding` hands on its inner verifier's digest
//! (`hash_token`, `verify_token_hashed`, carried in a `Presented`) and keys its confirmation with
//! the digest the HTTP layer computed. Each test below drives the real layer (`layer_status`)
//! through one composition the digest passes through, and checks that a deleted pod's token is refused once its confirmation is
//! over, whatever the composition.

use std::sync::{Arc, Mutex};

use super::*;

/// Without a token cache the inner verifier computes no digest (`hash_token` gives the token back
/// as it came): the binding keys its confirmation by hashing for itself, through the layer as well.
#[tokio::test]
async fn without_a_token_cache_a_deleted_pods_token_is_refused_through_the_layer() {
    let cluster = Cluster::start().await;
    let clock = ManualClock::new();
    let verifier = cluster
        .check()
        .wrap(
            cluster
                .builder(&clock)
                .without_token_cache()
                .build()
                .unwrap(),
        )
        .unwrap();
    let (token, other) = (cluster.token().sign(), cluster.token().sign());
    assert_eq!(
        layer_status::<KubernetesClaims>(&verifier, &token).await,
        200
    );
    assert_eq!(
        layer_status::<KubernetesClaims>(&verifier, &other).await,
        200
    );
    assert_eq!(cluster.reviews.calls(), 2);
    cluster.reviews.delete_bound_object(&token);
    assert_eq!(
        layer_status::<KubernetesClaims>(&verifier, &token).await,
        200,
        "within the interval of its confirmation"
    );
    clock.advance(INTERVAL);
    assert_eq!(
        layer_status::<KubernetesClaims>(&verifier, &token).await,
        401,
        "a deleted pod's token accepted past its confirmation (no token cache)"
    );
    assert_eq!(
        layer_status::<KubernetesClaims>(&verifier, &other).await,
        200
    );
    assert_eq!(cluster.reviews.calls(), 4);
}

/// A binding around a binding (each with its own interval, `wrapping`): the digest goes through
/// both, and each confirmation is its own — the outer one, shorter, refuses a deleted pod's token
/// while the inner one still holds it confirmed, on the layer's cached path and on the full one,
/// for a token and for another claim type alike.
#[tokio::test]
async fn nested_bindings_each_refuse_a_deleted_pods_token_on_their_own_interval() {
    let cluster = Cluster::start().await;
    let clock = ManualClock::new();
    let inner = cluster.bound(&clock, cluster.check());
    let short = INTERVAL / 3;
    let outer = cluster
        .bound(
            &clock,
            ObjectBindingCheck::new(short)
                .with_api_server(cluster.in_cluster().api_server().unwrap()),
        )
        .wrapping(inner.clone());
    let (token, other) = (cluster.token().sign(), cluster.token().sign());
    for t in [&token, &other] {
        assert_eq!(layer_status::<KubernetesClaims>(&outer, t).await, 200);
        assert_eq!(layer_status::<KubernetesClaims>(&outer, t).await, 200);
    }
    assert_eq!(
        cluster.reviews.calls(),
        4,
        "one review per token per binding"
    );
    cluster.reviews.delete_bound_object(&token);
    clock.advance(short);
    // The inner binding still holds the token confirmed; the outer one reviews it again.
    assert_eq!(layer_status::<KubernetesClaims>(&inner, &token).await, 200);
    assert_eq!(
        layer_status::<KubernetesClaims>(&outer, &token).await,
        401,
        "the outer binding answered a deleted pod's token from the inner one's confirmation"
    );
    assert_eq!(
        layer_status::<serde_json::Value>(&outer, &token).await,
        401,
        "another claim type"
    );
    assert_eq!(layer_status::<KubernetesClaims>(&outer, &other).await, 200);
    clock.advance(INTERVAL);
    assert_eq!(layer_status::<KubernetesClaims>(&inner, &token).await, 401);
}

/// A binding around a registry whose own token cap is smaller than the token: the registry's
/// `hash_token` computes no digest for it, the layer refuses it without a review (never a panic),
/// and a token within the cap is still confirmed and, once its pod is deleted, refused after the
/// interval.
#[tokio::test]
async fn an_oversized_token_through_a_bound_registry_is_refused_unreviewed() {
    let (cluster, clock, verifier) = Cluster::with_binding().await;
    let token = cluster.token().sign();
    let cap = token.len() + 64;
    let registry = verifier.wrapping(
        IssuerRegistry::builder()
            .with_verifier(verifier.get_ref().clone())
            .with_max_token_bytes(cap)
            .build()
            .unwrap(),
    );
    let oversized = cluster.token().claim("padding", "p".repeat(cap)).sign();
    assert!(oversized.len() > cap);
    assert_eq!(
        layer_status::<KubernetesClaims>(&registry, &oversized).await,
        401
    );
    assert_eq!(
        layer_status::<KubernetesClaims>(&verifier, &oversized).await,
        200
    );
    let calls = cluster.reviews.calls();
    assert_eq!(
        layer_status::<KubernetesClaims>(&registry, &oversized).await,
        401
    );
    assert_eq!(
        cluster.reviews.calls(),
        calls,
        "an oversized token was reviewed"
    );
    // No dot at all: no key, no review, a refusal.
    assert_eq!(
        layer_status::<KubernetesClaims>(&registry, "nodot").await,
        401
    );
    assert_eq!(cluster.reviews.calls(), calls);

    assert_eq!(
        layer_status::<KubernetesClaims>(&registry, &token).await,
        200
    );
    cluster.reviews.delete_bound_object(&token);
    assert_eq!(
        layer_status::<KubernetesClaims>(&registry, &token).await,
        200
    );
    clock.advance(INTERVAL);
    assert_eq!(
        layer_status::<KubernetesClaims>(&registry, &token).await,
        401,
        "a deleted pod's token accepted through a bound registry past its confirmation"
    );
}

/// An inner verifier whose synchronous lookup knows tokens by their signature segment alone (what
/// a verifier that let an issuer choose its own key would answer: duplicate-signature key selection
/// makes a known signature verify over other bytes); its full path is a real `Verifier`'s.
#[derive(Clone)]
struct BySignatureAlone {
    verifier: Verifier,
    accepted: Arc<Mutex<Vec<String>>>,
}

impl VerifyToken for BySignatureAlone {
    async fn verify_token<T>(&self, token: &str) -> Result<Arc<T>, VerifyError>
    where
        T: serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        let claims = self.verifier.verify_token(token).await?;
        let signature = token.rsplit_once('.').map_or("", |(_, s)| s);
        self.accepted.lock().unwrap().push(signature.to_owned());
        Ok(claims)
    }

    fn verify_token_cached<T>(&self, token: oidc_bearer::Presented<'_>) -> Option<Arc<T>>
    where
        T: serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        let token = std::str::from_utf8(token.get()).ok()?;
        let signature = token.rsplit_once('.')?.1;
        if !self.accepted.lock().unwrap().iter().any(|s| s == signature) {
            return None;
        }
        // Its claims, unverified: what such a lookup would hand out.
        let (_, payload) = token.rsplit_once('.')?.0.split_once('.')?;
        let json =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload);
        serde_json::from_slice(&json.ok()?).ok().map(Arc::new)
    }
}

/// The binding's fast path asks the check on every answer of the inner verifier's, with the key of
/// the bytes presented: a token carrying a confirmed token's signature over another payload, which
/// the inner lookup answers for, is not answered from the confirmation (the check holds it for
/// other bytes) but goes the full path, where the inner verifier refuses it.
#[tokio::test]
async fn the_fast_path_never_confirms_another_payload_under_a_confirmed_signature() {
    let (cluster, _clock, verifier) = Cluster::with_binding().await;
    let binding = verifier.wrapping(BySignatureAlone {
        verifier: verifier.get_ref().clone(),
        accepted: Arc::default(),
    });
    let token = cluster.token().sign();
    let other = cluster.token().sign();
    let substituted = format!(
        "{}.{}",
        other.rsplit_once('.').unwrap().0,
        token.rsplit_once('.').unwrap().1
    );
    assert_eq!(
        layer_status::<KubernetesClaims>(&binding, &token).await,
        200
    );
    assert_eq!(
        layer_status::<KubernetesClaims>(&binding, &token).await,
        200
    );
    assert_eq!(
        cluster.reviews.calls(),
        1,
        "the second answered from the confirmation"
    );
    assert_eq!(
        layer_status::<KubernetesClaims>(&binding, &substituted).await,
        401,
        "the fast path confirmed a token by another token's confirmation"
    );
    assert_eq!(
        cluster.reviews.calls(),
        1,
        "refused locally, never reviewed"
    );
}
