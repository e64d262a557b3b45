//! The [`TokenReview`] verifier and its builder; the parts of the reviews (API server, answer cache,
//! reviewer) that it shares with the object-binding check.

mod api;
mod binding;
mod cache;
mod claims;
mod reviewer;

pub use self::{
    api::{ApiServer, ApiServerBuilder},
    binding::{BindingCheck, ObjectBinding, ObjectBindingCheck},
    claims::TokenReviewClaims,
    reviewer::{TokenReviewSettings, TokenReviewStats},
};

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use self::cache::Answer;
use self::reviewer::Reviewer;
use crate::SharedClock;
use oidc_bearer::__private::{DEFAULT_MAX_TOKEN_BYTES, review_check_size, review_precheck};
use oidc_bearer::cache::TokenKey;
use oidc_bearer::clock::{Clock, SystemClock};
use oidc_bearer::{ConfigError, VerifyError};
use oidc_bearer::{Presented, VerifyToken};

/// A verifier that asks the Kubernetes API server about each token (`POST
/// /apis/authentication.k8s.io/v1/tokenreviews`), with the audiences it accepts.
///
/// Cheap to clone; clones share the answer cache. Construction sends nothing.
#[derive(Clone)]
pub struct TokenReview {
    reviewer: Arc<Reviewer>,
    max_token_bytes: usize,
}

impl TokenReview {
    /// Starts configuring a verifier that sends reviews to `api` for tokens meant for `audience`
    /// (required: the API server checks the token's `aud` against it).
    pub fn builder(api: ApiServer, audience: impl Into<String>) -> TokenReviewBuilder {
        TokenReviewBuilder {
            api,
            audiences: vec![audience.into()],
            settings: TokenReviewSettings::default(),
            clock: Arc::new(SystemClock),
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
        }
    }

    /// The audiences asked for.
    pub(crate) fn audiences(&self) -> &[String] {
        self.reviewer.audiences()
    }

    /// Counters of reviews and of the answer cache.
    pub fn stats(&self) -> TokenReviewStats {
        self.reviewer.stats()
    }

    /// Reviews `token` (or finds its answer cached) and returns who it belongs to.
    pub async fn verify(&self, token: &str) -> Result<TokenReviewClaims, VerifyError> {
        self.verify_token::<TokenReviewClaims>(token)
            .await
            .map(Arc::unwrap_or_clone)
    }

    /// The cache key of a token within the size cap (the token cache's: the cache also compares
    /// the signing input, which is verified nowhere here). Bytes without a `.` are no JWS.
    fn key<'a>(&self, token: &'a [u8]) -> Result<TokenKey<'a>, VerifyError> {
        review_check_size(self.max_token_bytes, token.len())?;
        TokenKey::new(token).ok_or(VerifyError::Malformed {
            reason: "a JWS has three dot-separated parts",
        })
    }
}

/// The claims of an answer as the caller's type.
fn convert<T>(answer: Answer) -> Result<Arc<T>, VerifyError>
where
    T: DeserializeOwned + Send + Sync + 'static,
{
    let claims = answer?;
    if TypeId::of::<T>() == TypeId::of::<TokenReviewClaims>() {
        let any: Arc<dyn Any + Send + Sync> = claims.clone();
        if let Ok(same) = any.downcast::<T>() {
            return Ok(same);
        }
    }
    let value = serde_json::to_value(&*claims).map_err(|_| VerifyError::ClaimsDecode {
        message: "the review's claims could not be encoded".into(),
    })?;
    // Never the values: only a missing field's name, as the local verifier says it.
    serde_json::from_value(value)
        .map(Arc::new)
        .map_err(oidc_bearer::__private::claims_decode_error)
}

impl VerifyToken for TokenReview {
    /// Reviews `token` and returns its claims as a shared `T`: [`TokenReviewClaims`] itself
    /// (shared with the cache, nothing copied), or any type that deserializes from its JSON
    /// (`{"username", "uid", "groups", "extra", "audiences"}`).
    ///
    /// A cached answer is found here, before anything is parsed.
    async fn verify_token<T>(&self, token: &str) -> Result<Arc<T>, VerifyError>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let key = self.key(token.as_bytes())?;
        let reviewer = &self.reviewer;
        let now = reviewer.now();
        if let Some(answer) = reviewer.cached(&key, now) {
            return convert(answer);
        }
        // Refused before any review, by the local verifier's rules (in the core): anything but a
        // compact JWS, an `alg` other than an asymmetric one, an `exp` that is no NumericDate or
        // is past. None of it is trusted; it only spares the API server garbage.
        let exp = review_precheck(token, self.max_token_bytes, now)?;
        convert(reviewer.review(&key, token, exp).await)
    }

    /// The HTTP layer's synchronous lookup: a cached acceptance as [`TokenReviewClaims`], from the
    /// same answer cache as [`verify_token`](Self::verify_token), with the same rules (a hit matches
    /// the signing input byte for byte, and holds only while `stored_at <= now < expires_at`,
    /// acceptances never past the token's `exp`). Anything else (a refusal, another claims type,
    /// no answer, a token over the size cap, which is never hashed) goes through `verify_token`.
    fn verify_token_cached<T>(&self, token: Presented<'_>) -> Option<Arc<T>>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        if TypeId::of::<T>() != TypeId::of::<TokenReviewClaims>() {
            return None;
        }
        review_check_size(self.max_token_bytes, token.get().len()).ok()?;
        let claims = self
            .reviewer
            .cached(&token.key()?, self.reviewer.now())?
            .ok()?;
        let any: Arc<dyn Any + Send + Sync> = claims;
        any.downcast::<T>().ok()
    }
}

impl fmt::Debug for TokenReview {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenReview")
            .field("audiences", &self.audiences())
            .finish_non_exhaustive()
    }
}

/// Configures a [`TokenReview`] verifier; from [`TokenReview::builder`] (in a pod, with
/// [`InCluster::api_server`](crate::InCluster::api_server)).
#[must_use = "a builder does nothing until `build` is called"]
pub struct TokenReviewBuilder {
    api: ApiServer,
    audiences: Vec<String>,
    settings: TokenReviewSettings,
    clock: SharedClock,
    max_token_bytes: usize,
}

impl TokenReviewBuilder {
    /// Accepts another audience too (all are sent in `spec.audiences`).
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// The cache and limit settings: how long acceptances (30 s, never past the token's `exp`:
    /// it bounds how long a deleted pod's token keeps working) and refusals (5 s) are kept, the
    /// caps on reviews, their timeout.
    pub fn with_settings(mut self, settings: TokenReviewSettings) -> Self {
        self.settings = settings;
        self
    }

    /// The clock for cache lifetimes and the `exp` pre-check (default: the system clock).
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The largest token accepted, in bytes (default 8 KiB).
    pub fn with_max_token_bytes(mut self, max: usize) -> Self {
        self.max_token_bytes = max;
        self
    }

    /// Checks the settings and builds the verifier. Nothing is sent.
    pub fn build(self) -> Result<TokenReview, ConfigError> {
        let mut audiences = self.audiences;
        audiences.retain(|a| !a.is_empty());
        if audiences.is_empty() {
            return Err(ConfigError::NoAudience);
        }
        if self.max_token_bytes == 0 {
            return Err(ConfigError::invalid("max_token_bytes", "must be positive"));
        }
        self.settings.validate()?;
        warn_if_api_server_audience("a TokenReview verifier", &audiences, None);
        Ok(TokenReview {
            reviewer: Arc::new(Reviewer::new(
                self.api,
                audiences,
                self.settings,
                self.clock,
            )),
            max_token_bytes: self.max_token_bytes,
        })
    }
}

impl fmt::Debug for TokenReviewBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenReviewBuilder")
            .field("api", &self.api)
            .field("audiences", &self.audiences)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The audiences a Kubernetes API server accepts for itself on common clusters: its in-cluster
/// name (EKS's default token audience) and the kubeadm/kind issuer. `--api-audiences` defaults to
/// the `--service-account-issuer` (kube-apiserver's flag reference), so a verifier's own issuer is
/// one too.
const API_SERVER_AUDIENCES: [&str; 2] = [
    "https://kubernetes.default.svc",
    "https://kubernetes.default.svc.cluster.local",
];

/// Logs a WARN when `audiences` include one of the API server's own: a TokenReview for it
/// authenticates every credential the API server accepts from its users — every pod's default
/// service-account token, OIDC users' tokens — so any of them would pass. `issuer`: the issuer of
/// the tokens, when known (its URL is the API server's default audience). Compared exactly, as the
/// API server does.
fn warn_if_api_server_audience(what: &'static str, audiences: &[String], issuer: Option<&str>) {
    let own = audiences
        .iter()
        .find(|a| API_SERVER_AUDIENCES.contains(&a.as_str()) || Some(a.as_str()) == issuer);
    if let Some(audience) = own {
        tracing::warn!(
            audience = audience.as_str(),
            "{what} asks for the API server's own audience {audience:?}: the API server then \
             authenticates every credential it accepts from its users (every pod's default \
             service-account token, OIDC users' tokens), and each of them is accepted here; \
             give this service an audience of its own (a projected service-account token with \
             `audience: <your service>`) and ask for that"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read as _, Seek as _};
    use std::time::Duration;

    /// The WARN lines logged while `build` runs on this thread, through a subscriber set for this
    /// thread only (the warning's callsite is reached by no other test of this binary, so no other
    /// thread can cache its interest while no subscriber wants it).
    fn warnings(build: impl FnOnce()) -> Vec<String> {
        let file = tempfile::tempfile().unwrap();
        let mut written = file.try_clone().unwrap();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(file)
            .finish();
        tracing::subscriber::with_default(subscriber, build);
        let mut text = String::new();
        written.rewind().unwrap();
        written.read_to_string(&mut text).unwrap();
        text.lines()
            .filter(|l| l.contains("WARN"))
            .map(str::to_owned)
            .collect()
    }

    fn api() -> ApiServer {
        ApiServer::builder("http://127.0.0.1:1")
            .with_bearer_token(|| None)
            .build()
            .unwrap()
    }

    #[test]
    fn asking_for_the_api_servers_own_audience_is_a_warning() {
        const ISSUER: &str = "https://oidc.example/cluster";
        let review = |audiences: &[&str]| {
            warnings(|| {
                let mut builder = TokenReview::builder(api(), audiences[0]);
                for audience in &audiences[1..] {
                    builder = builder.with_audience(*audience);
                }
                builder.build().unwrap();
            })
        };
        let binding = |audience: &str| {
            warnings(|| {
                ObjectBindingCheck::new(Duration::from_secs(30))
                    .with_api_server(api())
                    .build(ISSUER, vec![audience.to_owned()], Arc::new(SystemClock))
                    .unwrap();
            })
        };
        let rows: [(&str, Vec<String>, Option<&str>); 8] = [
            ("own audience", review(&["my-service"]), None),
            (
                "in-cluster name",
                review(&["https://kubernetes.default.svc"]),
                Some("https://kubernetes.default.svc"),
            ),
            (
                "kubeadm issuer, second",
                review(&["my-service", "https://kubernetes.default.svc.cluster.local"]),
                Some("https://kubernetes.default.svc.cluster.local"),
            ),
            (
                "another string is another audience",
                review(&["https://kubernetes.default.svc/"]),
                None,
            ),
            ("binding, own audience", binding("my-service"), None),
            ("binding, the issuer", binding(ISSUER), Some(ISSUER)),
            (
                "binding, in-cluster name",
                binding("https://kubernetes.default.svc"),
                Some("https://kubernetes.default.svc"),
            ),
            (
                "binding, kubeadm issuer",
                binding("https://kubernetes.default.svc.cluster.local"),
                Some("https://kubernetes.default.svc.cluster.local"),
            ),
        ];
        for (case, logged, audience) in rows {
            match audience {
                None => assert!(logged.is_empty(), "{case}: {logged:?}"),
                Some(audience) => {
                    assert_eq!(logged.len(), 1, "{case}: {logged:?}");
                    assert!(
                        logged[0].contains(&format!("own audience {audience:?}"))
                            && logged[0].contains("every pod's default service-account token"),
                        "{case}: {logged:?}"
                    );
                }
            }
        }
    }
}
