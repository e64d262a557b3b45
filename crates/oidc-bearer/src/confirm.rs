//! A confirmation, by an authority outside the token, of tokens a verifier accepted: the
//! [`Confirm`] trait and the [`Confirmed`] wrapper that runs it after the inner verifier.
//!
//! A JWT's signature says the issuer issued the token; it cannot say the token is still wanted
//! (its pod deleted, its session revoked). A [`Confirm`] asks whoever knows (the Kubernetes API
//! server's TokenReview for object binding) and remembers the answer for a while, keyed by the
//! token cache's [`TokenKey`], so that most requests cost a local lookup.
//!
//! The wrapper keeps, in this crate, what the seal of [`VerifyToken`]'s hooks protects: the inner
//! verifier always runs first, and the key handed to [`Confirm`] is always the key of the exact
//! bytes that were verified.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::VerifyToken;
use crate::cache::TokenKey;
use crate::error::VerifyError;
use crate::sealed::Presented;

/// A confirmation, kept by an external authority, of tokens another verifier accepted; run by
/// [`Confirmed`] after that verifier.
///
/// # Contract (security)
///
/// [`Confirmed`] guarantees, for every request:
/// - the inner verifier runs first: nothing here is asked before, or instead of, its acceptance;
/// - the synchronous fast path answers only when the inner verifier's own fast path answered
///   **and** [`confirmed`](Self::confirmed) returned `true` — on every such answer, even when the
///   inner verifier answered from its cache;
/// - [`confirmed`](Self::confirmed) is asked with the [`TokenKey`] of the exact bytes the inner
///   verifier answered for (a key always belongs to the bytes it borrows);
/// - [`confirm`](Self::confirm) is given the exact bytes the inner verifier accepted, as a
///   [`Presented`]: made only inside this crate, so its key (`token.key()`) is always the key of
///   its bytes, and a review of one token can never be filed under another token's key;
/// - a token over the inner verifier's size cap is never hashed.
///
/// An implementation of [`confirmed`](Self::confirmed) must:
/// - be synchronous: never block, never start work (no request, no task);
/// - return `true` only if it holds a confirmation for this key — the same digest **and** a
///   byte-equal signing input — with `stored_at <= now < expires_at` on its own clock, where
///   `expires_at` is never later than the token's `exp`;
/// - treat any doubt (a clock set back, no entry, a refusal, an outage) as `false`;
/// - **never** answer a grace-period acceptance: grace belongs in [`confirm`](Self::confirm),
///   which logs it and schedules the retry.
///
/// [`confirm`](Self::confirm) is called by [`Confirmed`] after the inner verifier accepted `token`,
/// but a `Presented` reaches any [`VerifyToken`]'s hooks, which may pass it on: an implementation
/// must not take a call as proof that the bytes were verified (what it confirms is only ever used
/// after the inner verifier's acceptance), and must refuse a token without a key
/// (`token.key()` is `None`: no JWS). `Ok`
/// means confirmed, or inside a grace window the implementation was explicitly configured with; a
/// refusal is `Err`, and so is any unavailability outside grace.
pub trait Confirm: Send + Sync + 'static {
    /// Whether a confirmation of exactly this token is held and valid now (the fast path; see the
    /// trait's contract).
    fn confirmed(&self, key: &TokenKey<'_>) -> bool;

    /// Confirms `token`, which the inner verifier has just accepted: its text is `token.get()`, its
    /// key `token.key()` (may send a request, may apply a configured grace period; see the trait's
    /// contract). Outside this crate no `Presented` can be made, so it cannot be called with bytes
    /// and a key of the caller's choosing:
    ///
    /// ```compile_fail,E0624
    /// use oidc_bearer::{Presented, confirm::Confirm};
    /// async fn pair(check: &impl Confirm, token: &str) {
    ///     let _ = check.confirm(Presented::new(token)).await;
    /// }
    /// ```
    fn confirm(
        &self,
        token: Presented<'_, str>,
    ) -> impl Future<Output = Result<(), VerifyError>> + Send;
}

/// A verifier whose accepted tokens are then confirmed by a [`Confirm`]: a token passes when the
/// inner verifier accepts it **and** the confirmation holds (see [`Confirm`]'s contract).
///
/// Cheap to clone when `V` is; clones share the check (its answers and counters).
pub struct Confirmed<V, C> {
    inner: V,
    check: Arc<C>,
}

impl<V, C> Confirmed<V, C> {
    /// `inner`, each token it accepts then confirmed by `check`.
    pub fn new(inner: V, check: C) -> Self {
        Self {
            inner,
            check: Arc::new(check),
        }
    }

    /// The verifier inside.
    pub fn get_ref(&self) -> &V {
        &self.inner
    }

    /// The check.
    pub fn check(&self) -> &C {
        &self.check
    }

    /// The same check (shared: its answers and counters) around another verifier, e.g. an
    /// `IssuerRegistry` (crate `oidc-bearer-registry`) holding [`get_ref`](Self::get_ref).
    pub fn wrapping<W>(&self, inner: W) -> Confirmed<W, C> {
        Confirmed {
            inner,
            check: self.check.clone(),
        }
    }
}

impl<V: Clone, C> Clone for Confirmed<V, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            check: self.check.clone(),
        }
    }
}

impl<V: fmt::Debug, C: fmt::Debug> fmt::Debug for Confirmed<V, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Confirmed")
            .field("inner", &self.inner)
            .field("check", &self.check)
            .finish()
    }
}

impl<V: VerifyToken, C: Confirm> VerifyToken for Confirmed<V, C> {
    /// Verifies with the inner verifier, then confirms.
    fn verify_token<T>(
        &self,
        token: &str,
    ) -> impl Future<Output = Result<Arc<T>, VerifyError>> + Send
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        self.verify_token_hashed(Presented::new(token))
    }

    /// Only what the inner verifier answers from its cache (so a token it accepted), and only
    /// while the check holds a confirmation of these bytes: `confirmed` is asked on every answer.
    fn verify_token_cached<T>(&self, token: Presented<'_>) -> Option<Arc<T>>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let claims = self.inner.verify_token_cached::<T>(token)?;
        // The key of these bytes: their digest if `token` carries it (made once per request by
        // `hash_token`, over the same bytes), or computed now.
        let key = token.key()?;
        self.check.confirmed(&key).then_some(claims)
    }

    /// The inner verifier's: one digest of the token per request, for its cache and the
    /// confirmation's key alike (and none over its size cap).
    #[inline]
    fn hash_token<'a>(&self, token: Presented<'a>) -> Presented<'a> {
        self.inner.hash_token(token)
    }

    /// Verifies with the inner verifier, then confirms the same bytes.
    async fn verify_token_hashed<T>(&self, token: Presented<'_, str>) -> Result<Arc<T>, VerifyError>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let claims = self.inner.verify_token_hashed::<T>(token).await?;
        self.check.confirm(token).await?;
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A verifier standing for an `IssuerRegistry` (crate `oidc-bearer-registry`) one of whose admitted
    /// issuers chose its own key: it accepts (and answers from its "cache") any bytes, so also a
    /// token carrying another token's signature segment over its own header and payload
    /// (duplicate-signature key selection; Menezes & Smart 2004).
    #[derive(Clone)]
    struct AcceptsAnyKey;

    impl VerifyToken for AcceptsAnyKey {
        async fn verify_token<T>(&self, _token: &str) -> Result<Arc<T>, VerifyError>
        where
            T: DeserializeOwned + Send + Sync + 'static,
        {
            serde_json::from_str("{}")
                .map(Arc::new)
                .map_err(|_| VerifyError::Malformed { reason: "claims" })
        }

        fn verify_token_cached<T>(&self, _: Presented<'_>) -> Option<Arc<T>>
        where
            T: DeserializeOwned + Send + Sync + 'static,
        {
            serde_json::from_str("{}").ok().map(Arc::new)
        }
    }

    /// Confirms every token it is asked to confirm, and holds its confirmations as the contract
    /// says: by digest **and** signing input. Records the keys the wrapper hands it.
    #[derive(Default)]
    struct Keeps {
        confirmed: Mutex<Vec<([u8; 32], Vec<u8>)>>,
        asked: Mutex<Vec<([u8; 32], Vec<u8>)>>,
    }

    fn owned(key: &TokenKey<'_>) -> ([u8; 32], Vec<u8>) {
        (*key.digest(), key.signing_input().to_vec())
    }

    impl Confirm for Keeps {
        fn confirmed(&self, key: &TokenKey<'_>) -> bool {
            self.asked.lock().unwrap().push(owned(key));
            self.confirmed.lock().unwrap().contains(&owned(key))
        }

        async fn confirm(&self, token: Presented<'_, str>) -> Result<(), VerifyError> {
            self.confirmed
                .lock()
                .unwrap()
                .push(owned(&token.key().unwrap()));
            Ok(())
        }
    }

    /// The key the wrapper hands `confirmed` is the key of the bytes presented — never of the
    /// token confirmed before with the same signature segment — without a digest and with the one
    /// the HTTP layer computes (the digest of the shared signature): a confirmation is never reused
    /// by a token sharing its signature.
    #[tokio::test]
    async fn the_fast_path_asks_with_the_key_of_the_bytes_presented() {
        let binding = Confirmed::new(AcceptsAnyKey, Keeps::default());
        let genuine = "eyJoZWFkZXIiOjF9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl";
        let substituted = "eyJoZWFkZXIiOjJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJl";
        binding
            .verify_token::<serde_json::Value>(genuine)
            .await
            .unwrap();
        let genuine_bytes = Presented::new(genuine.as_bytes());
        for presented in [genuine_bytes, genuine_bytes.hashed()] {
            assert!(
                binding
                    .verify_token_cached::<serde_json::Value>(presented)
                    .is_some()
            );
        }
        let substituted_key = TokenKey::new(substituted.as_bytes()).unwrap();
        assert_eq!(
            substituted_key.digest(),
            TokenKey::new(genuine.as_bytes()).unwrap().digest(),
            "the same signature segment"
        );
        let substituted_bytes = Presented::new(substituted.as_bytes());
        for presented in [substituted_bytes, substituted_bytes.hashed()] {
            assert!(
                binding
                    .verify_token_cached::<serde_json::Value>(presented)
                    .is_none(),
                "the fast path confirmed a token by another token's confirmation"
            );
            let asked = binding.check().asked.lock().unwrap().last().cloned();
            assert_eq!(asked, Some(owned(&substituted_key)));
        }
    }

    /// Nothing is confirmed before, or instead of, the inner verifier's acceptance: a token it
    /// refuses never reaches `confirm`.
    #[tokio::test]
    async fn a_token_the_inner_verifier_refuses_is_never_confirmed() {
        let verifier = crate::Verifier::shared_secret_builder(
            "https://auth.internal",
            "aud",
            b"0123456789abcdef0123456789abcdef",
        )
        .unwrap()
        .build()
        .unwrap();
        let binding = Confirmed::new(verifier, Keeps::default());
        let result = binding
            .verify_token::<serde_json::Value>("e30.e30.c2ln")
            .await;
        assert!(result.is_err(), "{result:?}");
        assert!(binding.check().confirmed.lock().unwrap().is_empty());
    }
}
