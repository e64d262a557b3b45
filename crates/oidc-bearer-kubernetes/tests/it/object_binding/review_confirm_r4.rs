//! Review R4 of ce5e4f5 (branch `confirm-key`): `Confirm::confirm` takes one `Presented` (the
//! accepted token's text and its key together), so that (the claim) only `Confirmed` can call it
//! and its key is always the bytes' own. Each test drives the real layer (`layer_status`) or the
//! public API, against the API-server stand-in on 127.0.0.1 (which checks signatures).

use std::sync::Arc;

use super::*;
use oidc_bearer::Presented;
use oidc_bearer::cache::TokenKey;
use oidc_bearer::confirm::Confirm as _;

/// An inner verifier standing for one that lets an issuer choose its own key (an
/// `IssuerRegistry`: duplicate-signature key selection): it accepts any bytes, and hands out
/// their payload unverified (`{}` when there is none). Its acceptance is what the check then
/// confirms — or not.
#[derive(Clone)]
struct AcceptsAny;

impl VerifyToken for AcceptsAny {
    async fn verify_token<T>(&self, token: &str) -> Result<Arc<T>, VerifyError>
    where
        T: serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        let payload = token
            .split('.')
            .nth(1)
            .and_then(|p| {
                base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, p).ok()
            })
            .unwrap_or_else(|| b"{}".to_vec());
        serde_json::from_slice(&payload)
            .map(Arc::new)
            .map_err(|_| VerifyError::Malformed { reason: "claims" })
    }
}

/// The property of the removed `confirm_refuses_a_key_that_shares_only_half_of_the_tokens`
/// (review_presented_r2.rs), through the one caller left (`Confirmed`) and an inner verifier that
/// accepts anything: once a token is confirmed, a token sharing only its signature segment, or
/// only its signing input, is not confirmed by that answer — neither by `confirmed` nor through
/// the layer — but reviewed on its own, and refused (its signature does not verify).
#[tokio::test]
async fn a_token_sharing_only_half_of_a_confirmed_tokens_parts_is_reviewed_on_its_own() {
    let (cluster, _clock, verifier) = Cluster::with_binding().await;
    let binding = verifier.wrapping(AcceptsAny);
    let genuine = cluster.token().sign();
    let deleted = cluster.token().sign();
    cluster.reviews.delete_bound_object(&deleted);
    assert_eq!(
        layer_status::<KubernetesClaims>(&binding, &genuine).await,
        200
    );
    assert_eq!(cluster.reviews.calls(), 1);

    let (genuine_input, genuine_sig) = genuine.rsplit_once('.').unwrap();
    let (deleted_input, deleted_sig) = deleted.rsplit_once('.').unwrap();
    // `deleted`'s payload under `genuine`'s signature; `genuine`'s payload under `deleted`'s.
    let same_signature = format!("{deleted_input}.{genuine_sig}");
    let same_input = format!("{genuine_input}.{deleted_sig}");
    for (calls, other) in [(2, &same_signature), (3, &same_input)] {
        let key = TokenKey::new(other.as_bytes()).unwrap();
        assert!(
            !binding.check().confirmed(&key),
            "confirmed by another token's answer"
        );
        assert_eq!(
            layer_status::<KubernetesClaims>(&binding, other).await,
            401,
            "a token sharing half of a confirmed token's parts accepted"
        );
        assert_eq!(cluster.reviews.calls(), calls, "reviewed on its own");
    }
    // And the deleted pod's token itself, through the real verifier.
    assert_eq!(
        layer_status::<KubernetesClaims>(&verifier, &deleted).await,
        401
    );
}

/// The key check moved from `Confirmed::verify_token_hashed` into `BindingCheck::confirm`: a
/// token without a `.` (no JWS, so no key) that the inner verifier accepted is refused, with
/// nothing reviewed, through `verify_token` and through the layer.
#[tokio::test]
async fn an_accepted_token_without_a_key_is_refused_unreviewed() {
    let (cluster, _clock, verifier) = Cluster::with_binding().await;
    let binding = verifier.wrapping(AcceptsAny);
    let opaque = "opaque-token-without-a-dot";
    let result = binding.verify_token::<serde_json::Value>(opaque).await;
    assert_eq!(code(result), "malformed");
    assert_eq!(
        layer_status::<serde_json::Value>(&binding, opaque).await,
        401
    );
    assert_eq!(cluster.reviews.calls(), 0, "a keyless token reviewed");
}

/// `confirm` files its answer under the key of the `Presented` it is handed: with the digest the
/// layer computed (`hash_token`), or computed by itself when there is none (`verify_token`). The
/// fast path then asks with the other form; both must be the same key, or every request is
/// reviewed again (or, worse, a confirmation is found for other bytes).
#[tokio::test]
async fn a_confirmation_is_found_whether_the_token_was_hashed_or_not() {
    let (cluster, _clock, verifier) = Cluster::with_binding().await;
    // Confirmed unhashed (`verify_token`: `Presented::new`), looked up hashed (the layer).
    let first = cluster.token().sign();
    verify(&verifier, &first).await.unwrap();
    assert_eq!(
        layer_status::<KubernetesClaims>(&verifier, &first).await,
        200
    );
    assert_eq!(cluster.reviews.calls(), 1, "unhashed confirmation missed");
    // Confirmed hashed (the layer's miss path carries the digest), looked up unhashed.
    let second = cluster.token().sign();
    assert_eq!(
        layer_status::<KubernetesClaims>(&verifier, &second).await,
        200
    );
    assert_eq!(cluster.reviews.calls(), 2);
    assert!(
        verifier
            .check()
            .confirmed(&TokenKey::new(second.as_bytes()).unwrap())
    );
    verify(&verifier, &second).await.unwrap();
    assert_eq!(cluster.reviews.calls(), 2, "hashed confirmation missed");
}

/// A verifier outside the core that holds an object binding and, when handed a `Presented` (by
/// the layer, or by any `Confirmed::verify_token(&str)`), passes it to the binding's check itself,
/// before — and instead of — any verification.
#[derive(Clone)]
struct SideDoor {
    binding: ObjectBinding<Verifier>,
}

impl VerifyToken for SideDoor {
    async fn verify_token<T>(&self, _: &str) -> Result<Arc<T>, VerifyError>
    where
        T: serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        Err(VerifyError::Malformed {
            reason: "refuses everything",
        })
    }

    async fn verify_token_hashed<T>(&self, token: Presented<'_, str>) -> Result<Arc<T>, VerifyError>
    where
        T: serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        let _ = self.binding.check().confirm(token).await;
        Err(VerifyError::Malformed {
            reason: "refuses everything",
        })
    }
}

/// What a side door cannot do (any `VerifyToken` handed a `Presented` may pass it to a check it
/// holds, so `Confirm`'s contract does not promise that only `Confirmed` calls `confirm`): a token the inner verifier refuses (expired by the
/// verifier's clock; the stand-in judges `exp` by the system clock, which does not move here, so
/// it authenticates the token) is reviewed through it, but the check keeps no confirmation past
/// the token's `exp` (read from the very bytes the API server authenticated), and the binding
/// still refuses the token: `confirm` never stands in for the inner verifier.
#[tokio::test]
async fn a_confirm_through_a_side_door_accepts_nothing() {
    let (cluster, clock, verifier) = Cluster::with_binding().await;
    let now = clock.now().as_secs() as i64;
    let token = cluster.token().exp(now + 10).sign();
    clock.advance(Duration::from_secs(600));
    let side = SideDoor {
        binding: verifier.clone(),
    };
    assert_eq!(layer_status::<KubernetesClaims>(&side, &token).await, 401);
    assert_eq!(cluster.reviews.calls(), 1, "reviewed through the side door");
    assert!(
        !verifier
            .check()
            .confirmed(&TokenKey::new(token.as_bytes()).unwrap()),
        "a confirmation kept past the token's exp"
    );
    assert_eq!(
        layer_status::<KubernetesClaims>(&verifier, &token).await,
        401,
        "an expired token accepted on a side door's confirmation"
    );
    assert_eq!(code(verify(&verifier, &token).await), "expired");
}
