//! [`ApiServer`]: where TokenReviews are sent and with which credentials, and the mapping of the
//! API server's answer.
//!
//! The POST goes through the one bounded fetch of the discovery and key fetches (`fetch.rs`,
//! [`oidc_bearer_shared::fetch`]): no redirects, connect and total timeouts, a size cap on the
//! answer, and `https` only (plain `http` on loopback for tests).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;

use serde::{Deserialize, Serialize};
use url::Url;

use oidc_bearer_shared::fetch::{self as shared, ClientSettings, LocalCause};

use super::claims::TokenReviewClaims;
use crate::error::ReviewError;
use oidc_bearer::__private::{Credential, bearer_authorization};
use oidc_bearer::{ConfigError, FetchError, VerifyError};

/// The TokenReview API's path on the API server.
const TOKEN_REVIEW_PATH: &str = "/apis/authentication.k8s.io/v1/tokenreviews";

/// The connect timeout of a review: a bound of its own, so that a connect nobody waits for any
/// more (hyper-util finishes a raced connect in the background) ends, and each of a name's
/// addresses gets its share before the next is tried (review R5, session 4: without one, a dead
/// first address took the whole review). A stall of this process across it is judged by
/// oidc-bearer-shared's `fetch` (a stall seen during the exchange makes its timeout ours).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The cap on a TokenReview answer (real ones are under 2 KiB).
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// The longest `status.error` kept from an answer (they are a line of text).
const MAX_ERROR_CHARS: usize = 512;

/// A Kubernetes API server to send TokenReviews to, with the credential to send and the CA to
/// trust. Cheap to clone.
///
/// In a pod, [`InCluster::api_server`](crate::InCluster::api_server) builds
/// it from the mounted token and CA. The caller's service account needs `create` on
/// `tokenreviews.authentication.k8s.io` (the `system:auth-delegator` cluster role grants it).
///
/// ```
/// use oidc_bearer_kubernetes::ApiServer;
///
/// let api = ApiServer::builder("https://kubernetes.default.svc")
///     .with_bearer_token(|| std::fs::read_to_string("/path/to/token").ok())
///     .build()?;
/// # Ok::<(), oidc_bearer::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct ApiServer {
    inner: Arc<ApiInner>,
}

struct ApiInner {
    url: Url,
    client: shared::Client,
    credential: Credential,
    /// Whether reviews go through the environment's proxy: then a failed connection may be the
    /// proxy's (a `CONNECT` refused), which is no failure of the API server.
    proxied: bool,
}

impl ApiServer {
    /// Starts configuring the API server at `base_url` (`https://…`; the TokenReview path is
    /// appended).
    pub fn builder(base_url: impl Into<String>) -> ApiServerBuilder {
        ApiServerBuilder {
            base_url: base_url.into(),
            credential: None,
            ca_certificates: Vec::new(),
            allow_insecure_http: false,
        }
    }

    /// The TokenReview URL.
    pub(crate) fn url(&self) -> &str {
        self.inner.url.as_str()
    }

    /// `error`, as it must be counted: through a proxy, no failure of the exchange is known to be
    /// the API server's — a connection refused or timed out (by any timer, ours included), a
    /// `CONNECT` answered 407, 403 or 502, any other status — since each may be the proxy's own
    /// (hyper-util does not say which): all are [`LocalCause::Proxy`], which opens no grace period
    /// and blames neither the API server nor our RBAC. Without a proxy, `error` as it is.
    pub(crate) fn classify(&self, error: ReviewError) -> ReviewError {
        if !self.inner.proxied {
            return error;
        }
        let message = match error {
            ReviewError::Unauthorized { status }
            | ReviewError::Fetch(FetchError::Status { status }) => {
                format!("HTTP {status}, from the proxy or the API server")
            }
            ReviewError::Fetch(FetchError::Transport { message }) => message,
            ReviewError::Fetch(FetchError::Timeout { timeout }) => {
                format!("no answer within {timeout:?}")
            }
            other => return other,
        };
        ReviewError::Fetch(FetchError::Local {
            cause: LocalCause::Proxy,
            message,
        })
    }

    /// Our own credential, as the `Authorization` value to send. Awaited before a review's
    /// timeout starts: however long it takes (the pod's token file is re-read when it changes),
    /// it is our own time, never the API server's, so it can never be recorded as the API
    /// server's `Timeout` (which would open the object-binding grace period). A credential that
    /// cannot be sent is our own configuration, never a failure of the API server either.
    pub(crate) async fn authorization(&self) -> Result<HeaderValue, ReviewError> {
        (self.inner.credential)()
            .await
            .and_then(|credential| bearer_authorization(&credential))
            .ok_or(ReviewError::NoCredentials)
    }

    /// Sends one TokenReview for `token` and `audiences` with our `authorization` and maps the
    /// answer: `Ok(Ok(claims))` when the API server authenticated it for one of `audiences`,
    /// `Ok(Err(refusal))` when it refused it, `Err` when there is no answer to trust.
    pub(crate) async fn review(
        &self,
        authorization: HeaderValue,
        token: &str,
        audiences: &[String],
        timeout: Duration,
    ) -> Result<Result<TokenReviewClaims, VerifyError>, ReviewError> {
        let inner = &*self.inner;
        let body = serde_json::to_vec(&Request {
            api_version: "authentication.k8s.io/v1",
            kind: "TokenReview",
            spec: Spec { token, audiences },
        })
        .map_err(|e| ReviewError::InvalidResponse {
            message: e.to_string(),
        })?;
        let request = inner
            .client
            .post(inner.url.clone())
            .header(http::header::AUTHORIZATION, authorization)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json")
            .body(body);
        let response = request.send(timeout).await.map_err(ReviewError::Fetch)?;
        let status = response.status().as_u16();
        match status {
            200 | 201 => {}
            401 | 403 => return Err(ReviewError::Unauthorized { status }),
            _ => return Err(ReviewError::Fetch(FetchError::Status { status })),
        }
        let bytes = response
            .body(MAX_RESPONSE_BYTES)
            .await
            .map_err(ReviewError::Fetch)?;
        interpret(&bytes, audiences)
    }
}

/// Maps a TokenReview answer (2xx body) to claims, a refusal, or an answer not to trust.
///
/// The rules, from the TokenReview API reference: `status.authenticated` false is a refusal whose
/// `status.error` we keep; when true, `status.audiences` must share one audience with those we
/// asked for ("clients should validate that the audiences in the status intersect the spec
/// audiences"; an API server that ignores `spec.audiences` answers without them, which is a
/// refusal too, since the token was then never checked against our audience).
pub(crate) fn interpret(
    body: &[u8],
    asked: &[String],
) -> Result<Result<TokenReviewClaims, VerifyError>, ReviewError> {
    let invalid = |message: String| ReviewError::InvalidResponse { message };
    let review: Response =
        serde_json::from_slice(body).map_err(|e| invalid(format!("not a TokenReview: {e}")))?;
    let status = review.status.ok_or_else(|| invalid("no `status`".into()))?;
    if !status.authenticated {
        let error = status.error.filter(|e| !e.is_empty()).map(|e| {
            match e.char_indices().nth(MAX_ERROR_CHARS) {
                Some((end, _)) => e[..end].to_owned(),
                None => e,
            }
        });
        return Ok(Err(VerifyError::ReviewRefused { error }));
    }
    let found = status.audiences.unwrap_or_default();
    if !found.iter().any(|a| asked.contains(a)) {
        return Ok(Err(VerifyError::AudienceMismatch {
            expected: asked.to_vec(),
            found,
        }));
    }
    let user = status
        .user
        .filter(|u| !u.username.is_empty())
        .ok_or_else(|| invalid("`authenticated` without a `user.username`".into()))?;
    Ok(Ok(TokenReviewClaims {
        username: user.username,
        uid: user.uid.filter(|u| !u.is_empty()),
        groups: user.groups,
        extra: user.extra,
        audiences: found.into_iter().filter(|a| asked.contains(a)).collect(),
    }))
}

#[derive(Serialize)]
struct Request<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    spec: Spec<'a>,
}

#[derive(Serialize)]
struct Spec<'a> {
    token: &'a str,
    audiences: &'a [String],
}

#[derive(Deserialize)]
struct Response {
    status: Option<Status>,
}

#[derive(Deserialize)]
struct Status {
    #[serde(default)]
    authenticated: bool,
    user: Option<User>,
    audiences: Option<Vec<String>>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct User {
    #[serde(default)]
    username: String,
    uid: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    extra: std::collections::BTreeMap<String, Vec<String>>,
}

impl fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiServer")
            .field("url", &self.inner.url.as_str())
            .finish_non_exhaustive()
    }
}

/// Configures an [`ApiServer`]; from [`ApiServer::builder`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct ApiServerBuilder {
    base_url: String,
    credential: Option<Credential>,
    ca_certificates: Vec<Vec<u8>>,
    allow_insecure_http: bool,
}

impl ApiServerBuilder {
    /// The bearer token to authenticate with, read per review (so that a rotating file can be
    /// re-read); required. The closure runs on the runtime's worker, so it must not block:
    /// [`InCluster::api_server`](crate::InCluster::api_server) reads the pod's
    /// token file off the workers.
    pub fn with_bearer_token(
        self,
        token: impl Fn() -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.with_credential(oidc_bearer::__private::credential(token))
    }

    /// [`with_bearer_token`](Self::with_bearer_token) with a credential that may wait
    /// (`InCluster`'s token file, read off the runtime's workers).
    pub(crate) fn with_credential(mut self, credential: Credential) -> Self {
        self.credential = Some(credential);
        self
    }

    /// Trusts exactly this CA (PEM, one or more certificates; the cluster's CA) for the API
    /// server, and not the system's roots: every review carries our own credential and the token
    /// under review, so no other CA may vouch for the API server (client-go likewise trusts only
    /// a configured `certificate-authority`: `rest.InClusterConfig` sets only
    /// `TLSClientConfig.CAFile`). Several calls trust each of the CAs. Without any, the system's
    /// roots are trusted.
    pub fn with_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_certificates.push(pem.into());
        self
    }

    /// **Dangerous**: allows plain `http` off loopback, where anyone on the path reads the tokens
    /// under review and our own credential, and can answer for the API server.
    pub fn dangerous_allow_insecure_http(mut self) -> Self {
        self.allow_insecure_http = true;
        self
    }

    /// Checks the URL, reads the certificates and builds the HTTP client. Nothing is sent.
    pub fn build(self) -> Result<ApiServer, ConfigError> {
        let base = oidc_bearer::__private::parse_url(&self.base_url, self.allow_insecure_http)?;
        if base.query().is_some() || base.fragment().is_some() {
            return Err(ConfigError::InvalidUrl {
                url: self.base_url,
                reason: "the API server's URL has no query or fragment".into(),
            });
        }
        let url = Url::parse(&format!(
            "{}{TOKEN_REVIEW_PATH}",
            base.as_str().trim_end_matches('/')
        ))
        .map_err(|e| ConfigError::InvalidUrl {
            url: self.base_url.clone(),
            reason: e.to_string(),
        })?;
        let credential = self.credential.ok_or_else(|| {
            ConfigError::invalid(
                "bearer_token",
                "the API server only answers TokenReviews from authenticated callers: give \
                     `with_bearer_token` (InCluster::api_server reads the pod's token)",
            )
        })?;
        // No redirects (one could take the token under review to a host we never vetted); a
        // configured CA is trusted alone.
        let mut settings = ClientSettings::new(CONNECT_TIMEOUT, oidc_bearer::__private::USER_AGENT);
        settings.system_roots = self.ca_certificates.is_empty();
        settings.root_certificates = self.ca_certificates;
        // A new connection per review: a request sent into a pooled connection that the API
        // server (or its load balancer) closed while it sat idle fails as a broken connection,
        // which nothing can tell from an outage (review R6: it opened the grace period). Reviews
        // are one per token per interval; a handshake each is their price.
        settings.reuse_connections = false;
        let client = oidc_bearer::__private::client(&settings)?;
        let proxied = shared::proxied(&settings, url.as_str());
        Ok(ApiServer {
            inner: Arc::new(ApiInner {
                url,
                client,
                credential,
                proxied,
            }),
        })
    }
}

impl fmt::Debug for ApiServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiServerBuilder")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn asked() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    fn answer(
        status: serde_json::Value,
    ) -> Result<Result<TokenReviewClaims, VerifyError>, ReviewError> {
        interpret(
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": status})
                .to_string()
                .as_bytes(),
            &asked(),
        )
    }

    const USER: &str = "system:serviceaccount:ns:sa";

    #[test]
    fn answers_map_as_the_api_reference_requires() {
        let user = json!({"username": USER, "uid": "u", "groups": ["g"]});
        // Accepted: the audiences found are the intersection.
        let ok = answer(json!({"authenticated": true, "user": user, "audiences": ["b", "z"]}))
            .unwrap()
            .unwrap();
        assert_eq!(
            (ok.username.as_str(), ok.audiences.clone()),
            (USER, vec!["b".to_owned()])
        );
        // Refused, with the API server's error kept.
        let refused = answer(json!({"authenticated": false, "error": "[invalid bearer token, x]"}));
        assert_eq!(
            refused,
            Ok(Err(VerifyError::ReviewRefused {
                error: Some("[invalid bearer token, x]".into())
            }))
        );
        assert_eq!(
            answer(json!({"authenticated": false, "error": ""})),
            Ok(Err(VerifyError::ReviewRefused { error: None }))
        );
        assert_eq!(
            answer(json!({})),
            Ok(Err(VerifyError::ReviewRefused { error: None }))
        );
        // Authenticated for other audiences, for none, or without saying: refused.
        for audiences in [json!(["z"]), json!([]), json!(null)] {
            let got = answer(json!({"authenticated": true, "user": user, "audiences": audiences}));
            assert!(
                matches!(got, Ok(Err(VerifyError::AudienceMismatch { .. }))),
                "{audiences}: {got:?}"
            );
        }
        // Authenticated without a user: not an answer to trust.
        for user in [json!(null), json!({"username": ""})] {
            let got = answer(json!({"authenticated": true, "user": user, "audiences": ["a"]}));
            assert_eq!(got.unwrap_err().code(), "review_invalid_response");
        }
        // Not a TokenReview at all.
        assert_eq!(
            interpret(b"<html>", &asked()).unwrap_err().code(),
            "review_invalid_response"
        );
        assert_eq!(
            interpret(b"{}", &asked()).unwrap_err().code(),
            "review_invalid_response"
        );
    }

    #[test]
    fn long_errors_are_cut() {
        let long = "e".repeat(10_000);
        let Ok(Err(VerifyError::ReviewRefused { error: Some(kept) })) =
            answer(json!({"authenticated": false, "error": long}))
        else {
            panic!("refusal expected")
        };
        assert_eq!(kept.len(), MAX_ERROR_CHARS);
    }

    #[test]
    fn the_builder_checks_url_and_credential() {
        let no_credential = ApiServer::builder("https://k.example").build().unwrap_err();
        assert_eq!(no_credential.code(), "invalid_setting");
        let insecure = ApiServer::builder("http://k.example")
            .with_bearer_token(|| None)
            .build()
            .unwrap_err();
        assert_eq!(insecure.code(), "insecure_url");
        let api = ApiServer::builder("http://127.0.0.1:1/")
            .with_bearer_token(|| None)
            .build()
            .unwrap();
        assert_eq!(api.url(), format!("http://127.0.0.1:1{TOKEN_REVIEW_PATH}"));
    }
}
