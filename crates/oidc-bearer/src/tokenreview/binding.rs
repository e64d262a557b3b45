//! The object-binding check: a locally verified token is confirmed with a TokenReview at most once
//! per interval, so that a token whose pod or secret was deleted stops working within that
//! interval while nearly every request costs a local cache hit.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::api::ApiServer;
use super::reviewer::{LOG_PERIOD, Reviewer, TokenReviewSettings, TokenReviewStats};
use crate::clock::SharedClock;
use crate::crypto::Sha256;
use crate::error::{ConfigError, VerifyError};
use crate::log_limit::LogLimiter;

/// The default grace period of the object-binding check (see `with_grace_period`).
const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(60);

/// Settings of the object-binding check of a [`Verifier`](crate::Verifier); see
/// [`VerifierBuilder::with_object_binding`](crate::VerifierBuilder::with_object_binding).
///
/// **When the API server cannot answer** (unreachable, 5xx, 429, timeout, or refusing our
/// credentials): tokens that pass local verification are still accepted during the grace period
/// (60 s by default, counted from the first failed review), without waiting for reviews
/// that would fail (they are retried in the background, once per token per
/// [`retry_interval`](TokenReviewSettings::retry_interval)); after it, requests get 503 with
/// `Retry-After` until a review answers. A refusal from the API server is never overridden.
/// `with_grace_period(Duration::ZERO)` answers 503 from the first failure.
///
/// ```no_run
/// # fn run() -> Result<(), oidc_bearer::ConfigError> {
/// use std::time::Duration;
/// use oidc_bearer::issuers::kubernetes::InCluster;
/// use oidc_bearer::tokenreview::ObjectBindingCheck;
///
/// let cluster = InCluster::new();
/// let verifier = cluster
///     .verifier_builder("https://kubernetes.default.svc.cluster.local", "my-service")?
///     .with_object_binding(
///         ObjectBindingCheck::new(Duration::from_secs(30))
///             .with_api_server(cluster.api_server()?)
///             .with_grace_period(Duration::from_secs(120)),
///     )
///     .build()?;
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

    /// The API server to ask. Not needed for a verifier built by
    /// [`InCluster::verifier_builder`](crate::issuers::kubernetes::InCluster::verifier_builder),
    /// which asks its own cluster's.
    pub fn with_api_server(mut self, api: ApiServer) -> Self {
        self.api = Some(api);
        self
    }

    /// How long tokens are accepted on local verification alone while the API server cannot
    /// answer, counted from the first failed review (default 60 s; zero: 503 at once). A minute
    /// rides out an API-server restart or a leader election; a deleted pod's token then works at
    /// most `interval + grace` after the deletion.
    pub fn with_grace_period(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The cache and limit settings of the reviews (the acceptance TTL is the interval).
    pub fn with_settings(mut self, settings: TokenReviewSettings) -> Self {
        self.settings = settings;
        self
    }

    /// The runtime check, for a verifier accepting `audiences`.
    pub(crate) fn build(
        self,
        fallback: Option<Result<ApiServer, ConfigError>>,
        audiences: Vec<String>,
        clock: SharedClock,
    ) -> Result<ObjectBinding, ConfigError> {
        if self.interval.is_zero() {
            return Err(ConfigError::InvalidSetting {
                name: "object_binding_check",
                reason: "the interval must be positive".into(),
            });
        }
        let api = match (self.api, fallback) {
            (Some(api), _) => api,
            (None, Some(api)) => api?,
            (None, None) => {
                return Err(ConfigError::InvalidSetting {
                    name: "object_binding_check",
                    reason: "no API server to send TokenReviews to: build the verifier with \
                             InCluster::verifier_builder, or give one with \
                             ObjectBindingCheck::with_api_server"
                        .into(),
                });
            }
        };
        let mut settings = self.settings;
        settings.cache_ttl = self.interval;
        settings.negative_ttl = settings.negative_ttl.min(self.interval);
        settings.retry_interval = settings.retry_interval.min(self.interval);
        settings.validate()?;
        Ok(ObjectBinding {
            // Keyed by the token cache's key of a token verified locally: nothing to compare.
            reviewer: Arc::new(Reviewer::new(api, false, audiences, settings, clock)),
            grace: self.grace.as_secs_f64(),
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

/// The check as a verifier runs it.
pub(crate) struct ObjectBinding {
    reviewer: Arc<Reviewer>,
    grace: f64,
}

impl ObjectBinding {
    /// Whether the token with this key was confirmed within the interval (the synchronous fast
    /// path: nothing is started).
    pub(crate) fn confirmed(&self, key: &Sha256) -> bool {
        matches!(
            self.reviewer.cached(key, b"", self.reviewer.now()),
            Some(Ok(_))
        )
    }

    pub(crate) fn stats(&self) -> TokenReviewStats {
        self.reviewer.stats()
    }

    /// Confirms a locally verified `token` (whose token-cache key is `key`): at most one review per
    /// interval, shared by every request with the token.
    pub(crate) async fn check(&self, token: &str, key: Sha256) -> Result<(), VerifyError> {
        let now = self.reviewer.now();
        let cached = self.reviewer.cached(&key, b"", now);
        match cached {
            Some(Ok(_)) => return Ok(()),
            Some(Err(e)) if !e.is_unavailable() => return Err(e),
            _ => {}
        }
        if let Some(since) = self.reviewer.outage_since() {
            if now < since + self.grace {
                // In the grace period: no request waits for a review that will likely fail; one
                // is retried in the background per token and retry interval.
                if cached.is_none() {
                    let _ = self.reviewer.start(key, token, None);
                }
                return self.in_grace(since, now);
            }
            if let Some(Err(error)) = cached {
                return Err(error);
            }
        }
        match self.reviewer.review(key, token, None).await {
            Ok(_) => Ok(()),
            Err(e) if !e.is_unavailable() => Err(e),
            Err(error) => {
                let now = self.reviewer.now();
                // The review that failed recorded the outage (unless one answered since).
                let since = self.reviewer.outage_since().unwrap_or(now);
                if now < since + self.grace {
                    self.in_grace(since, now)
                } else {
                    Err(error)
                }
            }
        }
    }

    fn in_grace(&self, since: f64, now: f64) -> Result<(), VerifyError> {
        static GRACE: LogLimiter = LogLimiter::new();
        if let Some(suppressed) = GRACE.allow(LOG_PERIOD) {
            tracing::warn!(
                outage_secs = (now - since).floor(),
                grace_secs = self.grace,
                suppressed,
                "TokenReview unavailable: accepting locally verified tokens without confirming \
                 their bound object until the grace period ends"
            );
        }
        Ok(())
    }
}
