//! The object-binding check: a token that another verifier accepted is confirmed with a
//! TokenReview at most once per interval, so that a token whose pod or secret was deleted stops
//! working within that interval while nearly every request costs a local cache hit.
//!
//! [`ObjectBinding`] wraps any [`VerifyToken`]: it verifies first, then confirms — never the
//! other way round. A confirmation is kept by the SHA-256 of the token's signature together with
//! the token's signing input, compared byte for byte: a signature checked over the rest of the
//! token identifies it only under one key, and a wrapped `IssuerRegistry` (crate `oidc-bearer-registry`)
//! accepts keys that issuers choose (an ECDSA public key can be computed under which another
//! token's signature verifies over any payload: duplicate-signature key selection).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use oidc_bearer_shared::log_limit::LogLimiter;

use super::api::ApiServer;
use super::reviewer::{LOG_PERIOD, Reviewer, Started, TokenReviewSettings, TokenReviewStats};
use crate::SharedClock;
use crate::error::ReviewError;
use oidc_bearer::Verifier;
use oidc_bearer::cache::TokenKey;
use oidc_bearer::confirm::{Confirm, Confirmed};
use oidc_bearer::{ConfigError, Presented, VerifyError};

/// The default grace period of the object-binding check (see `with_grace_period`).
const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(60);

/// Settings of the object-binding check; [`wrap`](Self::wrap) puts it around a
/// [`Verifier`], giving an [`ObjectBinding`].
///
/// **When the API server itself fails** (unreachable, 5xx, 429, or no answer within the
/// timeout: [`ReviewError::is_api_server_failure`](crate::ReviewError::is_api_server_failure)):
/// tokens that pass local verification are still accepted during the grace period
/// (60 s by default, counted from the first review that failed so), without waiting for
/// reviews that would fail (they are retried in the background, once per token per
/// [`retry_interval`](TokenReviewSettings::retry_interval)); after it, requests get 503 with
/// `Retry-After` until a review is answered. A refusal from the API server is never overridden
/// while it is cached ([`negative_ttl`](TokenReviewSettings::negative_ttl)).
/// `with_grace_period(Duration::ZERO)` answers 503 from the first failure.
///
/// **Nothing else opens the grace period.** A review this process could not run — as many
/// reviews pending as [`max_pending_reviews`](TokenReviewSettings::max_pending_reviews) allows,
/// no free slot within the timeout, no Tokio runtime, the runtime shutting down — and our own
/// credentials refused (401/403), a wrong URL or an answer that cannot be trusted are 503 with
/// `Retry-After`, and record no outage: the API server may be up, and would refuse a deleted
/// pod's token.
///
/// ```no_run
/// # fn run() -> Result<(), oidc_bearer::ConfigError> {
/// use std::time::Duration;
/// use oidc_bearer_kubernetes::InCluster;
/// use oidc_bearer_kubernetes::ObjectBindingCheck;
///
/// let cluster = InCluster::new();
/// let verifier = cluster
///     .verifier_builder("https://kubernetes.default.svc.cluster.local", "my-service")?
///     .build()?;
/// let bound = ObjectBindingCheck::new(Duration::from_secs(30))
///     .with_api_server(cluster.api_server()?)
///     .with_grace_period(Duration::from_secs(120))
///     .wrap(verifier)?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use]
pub struct ObjectBindingCheck {
    interval: Duration,
    grace: Duration,
    api: Option<ApiServer>,
    settings: TokenReviewSettings,
}

impl ObjectBindingCheck {
    /// Confirms each token at most once per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            grace: DEFAULT_GRACE_PERIOD,
            api: None,
            settings: TokenReviewSettings::default(),
        }
    }

    /// The API server to ask (required; `InCluster::object_binding_check` gives its own
    /// cluster's).
    pub fn with_api_server(mut self, api: ApiServer) -> Self {
        self.api = Some(api);
        self
    }

    /// How long tokens are accepted on local verification alone while the API server itself
    /// fails (default 60 s; zero: 503 at once). A minute rides out an API-server restart or a
    /// leader election. A deleted pod's token then works only while the API server is failing, for
    /// at most `grace` from the start of the outage — however long after the deletion it begins: a
    /// refusal is remembered only for the negative TTL.
    pub fn with_grace_period(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The cache and limit settings of the reviews (the acceptance TTL is the interval).
    pub fn with_settings(mut self, settings: TokenReviewSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Wraps `verifier`: each token it accepts is then confirmed by a TokenReview asking for its
    /// audiences, timed by its clock.
    pub fn wrap(self, verifier: Verifier) -> Result<ObjectBinding<Verifier>, ConfigError> {
        // Without an audience to ask for, every review would be refused.
        if verifier.audiences().is_empty() {
            return Err(ConfigError::invalid(
                "object_binding_check",
                "needs an audience: TokenReview checks the token against it",
            ));
        }
        let check = self.build(
            verifier.issuer(),
            verifier.audiences().to_vec(),
            verifier.clock(),
        )?;
        Ok(Confirmed::new(verifier, check))
    }

    /// The runtime check, for a verifier of `issuer` accepting `audiences`.
    pub(crate) fn build(
        self,
        issuer: &str,
        audiences: Vec<String>,
        clock: SharedClock,
    ) -> Result<BindingCheck, ConfigError> {
        if self.interval.is_zero() {
            return Err(ConfigError::invalid(
                "object_binding_check",
                "the interval must be positive",
            ));
        }
        let Some(api) = self.api else {
            return Err(ConfigError::invalid(
                "object_binding_check",
                "no API server to send TokenReviews to: start from \
                         InCluster::object_binding_check, or give one with \
                         ObjectBindingCheck::with_api_server",
            ));
        };
        let mut settings = self.settings;
        settings.cache_ttl = self.interval;
        settings.negative_ttl = settings.negative_ttl.min(self.interval);
        settings.retry_interval = settings.retry_interval.min(self.interval);
        settings.validate()?;
        super::warn_if_api_server_audience("the object-binding check", &audiences, Some(issuer));
        Ok(BindingCheck {
            // Keyed by the token cache's key of a token verified locally, and the signing input
            // compared: the inner verifier may accept one signature over several inputs, each
            // under a key an issuer chose (see the module's documentation).
            reviewer: Arc::new(Reviewer::new(api, audiences, settings, clock)),
            grace: self.grace,
        })
    }
}

impl fmt::Debug for ObjectBindingCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectBindingCheck")
            .field("interval", &self.interval)
            .field("grace", &self.grace)
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

/// A verifier wrapped in the object-binding check (see [`ObjectBindingCheck`]): a token passes when
/// the inner verifier accepts it, then when a TokenReview within the interval confirmed it.
///
/// Cheap to clone; clones share the reviews, their answers and the counters
/// ([`check`](Confirmed::check)`().`[`stats`](BindingCheck::stats)`()`).
pub type ObjectBinding<V> = Confirmed<V, BindingCheck>;

/// Whether `error` may open the grace period: only a failure of the API server itself, read by
/// downcast from `ReviewUnavailable`'s source. Anything else — a refusal, a local limit, a source
/// that is not this crate's [`ReviewError`] and so cannot be read — is no grace (503, or the
/// refusal), never an acceptance.
fn opens_grace(error: &VerifyError) -> bool {
    ReviewError::of(error).is_some_and(ReviewError::is_api_server_failure)
}

/// The object-binding check as [`ObjectBinding`] runs it: its reviews, their answers, its grace
/// period.
pub struct BindingCheck {
    reviewer: Arc<Reviewer>,
    grace: Duration,
}

impl BindingCheck {
    /// Counters of the check (TokenReviews sent, answers cached, reviews pending).
    pub fn stats(&self) -> TokenReviewStats {
        self.reviewer.stats()
    }
}

impl fmt::Debug for BindingCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BindingCheck")
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

/// The contract of [`Confirm`] (stated on the trait) holds here: `confirmed` is the answer cache's
/// lookup alone (`AnswerCache::get`: `stored_at <= now < expires_at`, `expires_at` never past the
/// token's `exp`, digest and signing input both compared), an acceptance only; the grace period
/// is answered in `confirm` only, which logs it and retries in the background.
impl Confirm for BindingCheck {
    /// Whether the token keyed `key` was confirmed within the interval (the synchronous fast
    /// path: nothing is started; a refusal, an outage or no answer is `false`).
    fn confirmed(&self, key: &TokenKey<'_>) -> bool {
        matches!(self.reviewer.cached(key, self.reviewer.now()), Some(Ok(_)))
    }

    async fn confirm(&self, token: Presented<'_, str>) -> Result<(), VerifyError> {
        // A `Presented` is made in the core alone, from the bytes it carries: their key is theirs,
        // so no review of one token is ever filed under another token's key (review R1 of split A
        // found that hole in the signature `confirm(token, key)`, now impossible to write). A call
        // is no proof of local verification (review R4): what is kept here is only used after the
        // inner verifier accepted the same bytes, and never past their `exp`.
        let key = token.key().ok_or(VerifyError::Malformed {
            reason: "a JWS has three dot-separated parts",
        })?;
        self.check(token.get(), &key).await
    }
}

impl BindingCheck {
    /// Confirms a locally verified `token` (whose token-cache key is `key`): at most one review per
    /// interval, shared by every request with the token.
    pub(crate) async fn check(&self, token: &str, key: &TokenKey<'_>) -> Result<(), VerifyError> {
        let now = self.reviewer.now();
        let cached = self.reviewer.cached(key, now);
        match cached {
            Some(Ok(_)) => return Ok(()),
            Some(Err(e)) if !e.is_unavailable() => return Err(e),
            _ => {}
        }
        // A confirmation is kept no longer than the token's `exp` (the `Confirm` contract): the
        // inner verifier accepted the token, so its `exp` is the issuer's. A token the pre-check
        // refuses (past `exp` by more than its leeway, an `alg` TokenReview never sees) though the
        // inner verifier accepted it is reviewed, but its answer is kept for no time (review R2).
        let exp =
            || oidc_bearer::__private::review_precheck(token, usize::MAX, now).unwrap_or(Some(now));
        if let Some(since) = self.reviewer.outage_since() {
            if self.in_window(since, now) {
                // In the grace period: no request waits for a review that will likely fail; one
                // is retried in the background per token and retry interval.
                // A review that answered between the lookup above and this start is heeded: a
                // refusal in hand is never overridden by the grace period.
                if cached.is_none()
                    && let Started::Answer(Err(refusal)) = self.reviewer.start(key, token, exp())
                    && !refusal.is_unavailable()
                {
                    return Err(refusal);
                }
                return self.in_grace(since, now);
            }
            if let Some(Err(error)) = cached {
                return Err(error);
            }
        }
        match self.reviewer.review(key, token, exp()).await {
            Ok(_) => Ok(()),
            Err(e) if !e.is_unavailable() => Err(e),
            Err(error) => {
                // Grace only for a failure of the API server itself, inside the window of the
                // outage it recorded (none if a review answered since). A local limit — queue
                // full, no slot in time, no runtime, shutting down — records no outage and is
                // 503: the API server may well be up and would refuse a deleted pod's token.
                let own_failure = opens_grace(&error);
                let now = self.reviewer.now();
                match self.reviewer.outage_since() {
                    Some(since) if own_failure && self.in_window(since, now) => {
                        self.in_grace(since, now)
                    }
                    _ => Err(error),
                }
            }
        }
    }

    /// Whether `now` is inside the grace window of an outage that began at `since`:
    /// `[since, since + grace)` by the clock. A clock set back before the outage began (an NTP
    /// correction) is outside it — the outage's age is then unknown — so that no clock step can
    /// open a grace period that is off or reopen one that is over.
    fn in_window(&self, since: Duration, now: Duration) -> bool {
        since <= now && now < since.saturating_add(self.grace)
    }

    fn in_grace(&self, since: Duration, now: Duration) -> Result<(), VerifyError> {
        static GRACE: LogLimiter = LogLimiter::new();
        if let Some(suppressed) = GRACE.allow(LOG_PERIOD) {
            tracing::warn!(
                outage_secs = now.saturating_sub(since).as_secs(),
                grace_secs = self.grace.as_secs_f64(),
                suppressed,
                "TokenReview unavailable: accepting locally verified tokens without confirming \
                 their bound object until the grace period ends"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde::de::DeserializeOwned;

    use super::*;
    use oidc_bearer::VerifyToken;
    use oidc_bearer::clock::ManualClock;

    const AUD: &str = "my-service";

    /// The check of `issuer`'s tokens (audience [`AUD`], interval 30 s, a manual clock), asking
    /// `issuer`'s TokenReview endpoint.
    fn check_of(
        issuer: &oidc_bearer_testing::TestIssuer,
        settings: TokenReviewSettings,
    ) -> BindingCheck {
        let reviews = issuer.token_reviews();
        let caller = reviews.caller_token();
        let api = ApiServer::builder(reviews.api_server_url())
            .with_bearer_token(move || Some(caller.clone()))
            .build()
            .unwrap();
        ObjectBindingCheck::new(Duration::from_secs(30))
            .with_api_server(api)
            .with_settings(settings)
            .build(
                &issuer.issuer(),
                vec![AUD.into()],
                Arc::new(ManualClock::new()),
            )
            .unwrap()
    }

    /// A verifier standing for an `IssuerRegistry` (crate `oidc-bearer-registry`) one of whose
    /// admitted issuers chose its own key: it accepts a token carrying another issuer's
    /// signature segment over its own header and payload. With ECDSA that takes no forgery — a
    /// public key can be computed under which a given signature verifies over any message
    /// (duplicate-signature key selection; Menezes & Smart 2004) — so a signature identifies a
    /// token only together with the key it was checked under.
    ///
    /// (The wrapper's fast path is called only by the HTTP layer, with a `Presented` made in the
    /// core: it is tested there, in `confirm.rs`, and through the layer with this check in
    /// `tests/it/object_binding/seal.rs`; here the check's own half: `confirmed`, which the
    /// wrapper asks on every fast-path answer.)
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
    }

    /// A confirmation is for one token: another token with the same signature segment (its own
    /// header and payload, accepted by the inner verifier under a key its issuer chose) is
    /// reviewed on its own — and refused — neither on the fast path nor on the slow one reusing
    /// the first token's answer.
    #[tokio::test]
    async fn a_confirmation_is_never_reused_by_a_token_sharing_its_signature() {
        let issuer = oidc_bearer_testing::TestIssuer::start().await;
        let reviews = issuer.token_reviews();
        let check = check_of(&issuer, TokenReviewSettings::default());
        let binding = Confirmed::new(AcceptsAnyKey, check);
        let genuine = issuer.token().kubernetes("prod", "billing").aud(AUD).sign();
        binding
            .verify_token::<serde_json::Value>(&genuine)
            .await
            .expect("the genuine token is confirmed");
        assert!(
            binding
                .check()
                .confirmed(&TokenKey::new(genuine.as_bytes()).unwrap())
        );

        // Another issuer's header and payload under the genuine token's signature.
        let signature = genuine.rsplit_once('.').unwrap().1;
        let other = issuer
            .token()
            .kubernetes("kube-system", "admin")
            .aud(AUD)
            .sign();
        let (input, _) = other.rsplit_once('.').unwrap();
        let substituted = format!("{input}.{signature}");
        // The key the wrapper hands the check for these bytes (the digest of the shared
        // signature, with these bytes' signing input).
        assert!(
            !binding
                .check()
                .confirmed(&TokenKey::new(substituted.as_bytes()).unwrap()),
            "the fast path confirmed a token by another token's review"
        );
        let calls = reviews.calls();
        let result = binding
            .verify_token::<serde_json::Value>(&substituted)
            .await;
        assert!(
            matches!(result, Err(VerifyError::ReviewRefused { .. })),
            "a token never reviewed was confirmed by another token's review: {result:?}"
        );
        assert_eq!(reviews.calls(), calls + 1, "reviewed on its own");
    }

    /// The grace period opens only for a failure of the API server itself that this crate can
    /// read: an unavailability whose source is not a [`ReviewError`] (here another type that even
    /// prints as one) is no grace — 503 — as are a local limit, our own credentials refused, and
    /// a refusal.
    #[test]
    fn only_a_readable_api_server_failure_opens_the_grace_period() {
        #[derive(Debug)]
        struct Foreign(ReviewError);
        impl fmt::Display for Foreign {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
        impl std::error::Error for Foreign {}

        let failure = ReviewError::Fetch(oidc_bearer::FetchError::Status { status: 503 });
        assert!(failure.is_api_server_failure());
        assert!(opens_grace(&VerifyError::from(failure.clone())));
        let unreadable = VerifyError::ReviewUnavailable {
            source: oidc_bearer::ReviewSource::new(Foreign(failure)),
        };
        assert_eq!(
            unreadable.to_string(),
            VerifyError::from(ReviewError::Fetch(oidc_bearer::FetchError::Status {
                status: 503
            }))
            .to_string()
        );
        assert!(
            !opens_grace(&unreadable),
            "an unreadable source opened the grace period"
        );
        assert!(!opens_grace(&VerifyError::from(
            ReviewError::Unauthorized { status: 403 }
        )));
        assert!(!opens_grace(&VerifyError::from(
            ReviewError::QueueTimeout {
                timeout: Duration::from_secs(1)
            }
        )));
        assert!(!opens_grace(&VerifyError::ReviewRefused { error: None }));
    }

    /// A review that found no free slot within its timeout is a local limit: it records no
    /// API-server outage, so it opens no grace period, neither for its own token nor for a token
    /// whose pod was deleted, reviewed afterwards.
    #[tokio::test(start_paused = true)]
    async fn a_review_timing_out_for_a_local_slot_records_no_outage() {
        let issuer = oidc_bearer_testing::TestIssuer::start().await;
        let reviews = issuer.token_reviews();
        let settings = TokenReviewSettings {
            max_concurrent_reviews: 1,
            timeout: Duration::from_secs(10),
            ..TokenReviewSettings::default()
        };
        let binding = check_of(&issuer, settings);
        let token = |issuer: &oidc_bearer_testing::TestIssuer| {
            issuer.token().kubernetes("prod", "billing").aud(AUD).sign()
        };

        // Every slot busy (as with reviews in flight); the paused clock lets the wait time out.
        let slots = binding.reviewer.take_all_slots();
        let waiting = token(&issuer);
        let result = binding
            .check(&waiting, &TokenKey::new(waiting.as_bytes()).unwrap())
            .await;
        let Err(error @ VerifyError::ReviewUnavailable { .. }) = result else {
            panic!("a review that never ran was accepted: {result:?}")
        };
        let source = ReviewError::of(&error).unwrap();
        assert_eq!(
            source,
            &ReviewError::QueueTimeout {
                timeout: Duration::from_secs(10)
            }
        );
        assert!(!source.is_api_server_failure());
        assert_eq!(binding.reviewer.outage_since(), None);
        assert_eq!(reviews.calls(), 0);

        // The API server is up: a deleted pod's token is reviewed, and refused.
        drop(slots);
        tokio::time::resume();
        let revoked = token(&issuer);
        reviews.delete_bound_object(&revoked);
        let result = binding
            .check(&revoked, &TokenKey::new(revoked.as_bytes()).unwrap())
            .await;
        assert!(
            matches!(result, Err(VerifyError::ReviewRefused { .. })),
            "{result:?}"
        );
    }
}
