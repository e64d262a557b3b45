//! What a rejected request gets back: RFC 6750 §3 responses (401, 400, 403, with `WWW-Authenticate:
//! Bearer …`) or 503 when the issuer's keys are unavailable — built by a [`RejectionResponse`] you
//! can replace (closures implement it).
//!
//! The typed reason, [`AuthRejection`], is put into the response's extensions so that logging,
//! metrics and tests can see exactly why.

use std::fmt;
use std::sync::Arc;

use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Response, StatusCode};

use crate::bearer::BearerError;
use crate::error::{DpopChallengeError, DpopError, VerifyError};

/// Why a request was not let through. The layers put it into every rejection's extensions, for
/// logs, metrics and tests:
///
/// ```
/// use oidc_bearer::rejection::AuthRejection;
/// use oidc_bearer::{BearerAuthLayer, Verifier};
/// use tower::{Layer, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let verifier = Verifier::new("https://issuer.example", "my-service").unwrap();
/// let service = BearerAuthLayer::new(verifier).layer(service_fn(|_: http::Request<String>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
/// }));
/// let request = http::Request::builder()
///     .header("authorization", "Bearer not-a-jwt")
///     .body(String::new())
///     .unwrap();
/// let response = service.oneshot(request).await.unwrap();
/// let rejection = response.extensions().get::<AuthRejection>().unwrap();
/// assert_eq!((rejection.status(), rejection.code()), (http::StatusCode::UNAUTHORIZED, "malformed"));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AuthRejection {
    /// The request has no bearer credentials (401, a challenge without an `error`, RFC 6750 §3.1).
    MissingToken,
    /// The credentials are malformed (400 `invalid_request`).
    InvalidRequest(BearerError),
    /// The token was refused (401 `invalid_token`).
    InvalidToken(VerifyError),
    /// The issuer's keys are unavailable, so the token could not be checked (503 with `Retry-After`).
    Unavailable(VerifyError),
    /// The token is valid but a policy refused it (403 `insufficient_scope`).
    Forbidden {
        /// What the policy requires, for the `error_description` (no token contents).
        reason: String,
        /// The scope that would be sufficient, if the policy is about scopes (RFC 6750 §3).
        scope: Option<String>,
    },
    /// The server is wired wrong — a policy or the `Claims` extractor found no claims of its type
    /// although it needs them — so the request cannot be judged (500). It says what to change; it
    /// is also logged at ERROR.
    Misconfigured(String),
    /// A DPoP rule refused the request (RFC 9449, on a layer
    /// [`with_dpop`](crate::BearerAuthLayer::with_dpop)): 401 with a `DPoP` challenge whose
    /// `error` is `invalid_dpop_proof`, `use_dpop_nonce` or `invalid_token`, or 400
    /// `invalid_request` for two `DPoP` headers.
    Dpop(DpopError),
}

impl AuthRejection {
    pub(crate) fn from_verify(error: VerifyError) -> Self {
        if error.is_unavailable() {
            Self::Unavailable(error)
        } else {
            Self::InvalidToken(error)
        }
    }

    /// The HTTP status: 401, 400, 403 or 503.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingToken | Self::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Misconfigured(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Dpop(e) => match e.challenge_error() {
                DpopChallengeError::InvalidRequest => StatusCode::BAD_REQUEST,
                _ => StatusCode::UNAUTHORIZED,
            },
        }
    }

    /// The `error` attribute of the `WWW-Authenticate: Bearer` challenge (RFC 6750 §3.1:
    /// `invalid_request`, `invalid_token` or `insufficient_scope`), when there is one; the exact
    /// reason is [`code`](Self::code).
    pub(crate) fn challenge_error(&self) -> Option<&'static str> {
        match self {
            Self::MissingToken | Self::Unavailable(_) | Self::Misconfigured(_) => None,
            Self::InvalidRequest(_) => Some("invalid_request"),
            Self::InvalidToken(_) => Some("invalid_token"),
            Self::Forbidden { .. } => Some("insufficient_scope"),
            // RFC 9449 §7.1 and §12.2.
            Self::Dpop(e) => Some(match e.challenge_error() {
                DpopChallengeError::InvalidRequest => "invalid_request",
                DpopChallengeError::InvalidDpopProof => "invalid_dpop_proof",
                DpopChallengeError::UseDpopNonce => "use_dpop_nonce",
                DpopChallengeError::InvalidToken => "invalid_token",
            }),
        }
    }

    /// A stable code naming the exact reason, for logs and metrics (`missing_token`, or the
    /// [`VerifyError::code`], …).
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidToken(e) | Self::Unavailable(e) => e.code(),
            Self::Forbidden { .. } => "forbidden",
            Self::Misconfigured(_) => "misconfigured",
            Self::Dpop(e) => e.code(),
        }
    }

    /// A human-readable description safe to send to the client: fixed text per reason, never the
    /// token's contents or internal detail (the full error is in the extensions and the logs). A
    /// [`Misconfigured`](Self::Misconfigured) server says what to change, as axum's extractors do.
    pub fn description(&self) -> &str {
        match self {
            Self::MissingToken => "a bearer token is required",
            Self::InvalidRequest(e) => e.description(),
            Self::Forbidden { reason, .. } => reason,
            Self::Misconfigured(fix) => fix,
            Self::InvalidToken(e) | Self::Unavailable(e) => verify_description(e),
            Self::Dpop(e) => e.description(),
        }
    }
}

/// The client-facing texts of refused tokens, indexed by [`verify_text`].
const VERIFY_TEXTS: [&str; 16] = [
    "the token is malformed",
    "the token's algorithm is not accepted",
    "the token is not signed with a key of its issuer",
    "the token's signing key is not known yet; try again later",
    "the token uses unsupported critical extensions",
    "the token's type is not accepted",
    "the token's signature is invalid",
    "the token's issuer is not trusted",
    "the token is not meant for this service",
    "the token lacks a required claim or has an invalid one",
    "the token has expired",
    "the token is not valid yet",
    "the token was issued in the future",
    "the token's claims do not have the expected shape",
    "the token issuer's keys are not available; try again later",
    "the token was refused by the cluster",
];
/// The last text, kept apart so that the table above stays one line per text.
const REVIEW_UNAVAILABLE: &str =
    "the token cannot be checked with the cluster now; try again later";

/// The client-facing text for each [`VerifyError`].
fn verify_description(error: &VerifyError) -> &'static str {
    VERIFY_TEXTS
        .get(verify_text(error))
        .copied()
        .unwrap_or(REVIEW_UNAVAILABLE)
}

/// The index of `error`'s client-facing text: in [`VERIFY_TEXTS`], or its length for
/// [`REVIEW_UNAVAILABLE`]. Exhaustive, with no `_` arm, so that a new variant is a compile error
/// here rather than a wrong answer ("malformed") to the client.
fn verify_text(error: &VerifyError) -> usize {
    use VerifyError as E;
    match error {
        E::TooLarge { .. } | E::Malformed { .. } => 0,
        E::UnsupportedAlgorithm { .. } | E::AlgorithmNotAllowed { .. } => 1,
        E::AlgorithmKeyMismatch { .. } | E::UnknownKey { .. } | E::AmbiguousKey { .. } => 2,
        E::UnknownKeyRetry { .. } => 3,
        E::UnsupportedCritical { .. } => 4,
        E::InvalidType { .. } => 5,
        E::InvalidSignature => 6,
        E::IssuerMismatch { .. } | E::UntrustedIssuer { .. } => 7,
        E::AudienceMismatch { .. } => 8,
        E::MissingClaim { .. } | E::InvalidClaim { .. } => 9,
        E::Expired { .. } => 10,
        E::NotYetValid { .. } => 11,
        E::IssuedInFuture { .. } => 12,
        E::ClaimsDecode { .. } => 13,
        // A registry that did not try a new issuer has no keys for it: the same words, still true.
        E::KeysUnavailable { .. } | E::TooManyNewIssuers { .. } => 14,
        E::ReviewRefused { .. } => 15,
        E::ReviewUnavailable { .. } => VERIFY_TEXTS.len(),
    }
}

/// The `WWW-Authenticate` values whose text does not vary with the request, for one realm: a
/// missing token and every refused token (RFC 6750 §3: the realm, `invalid_token` and a fixed
/// description). Built once per realm, so that a refusal, the path an attacker chooses, clones a
/// shared value instead of writing one.
#[derive(Debug)]
struct FixedChallenges {
    missing_token: Option<HeaderValue>,
    /// Indexed by [`verify_text`].
    invalid_token: Vec<Option<HeaderValue>>,
}

impl FixedChallenges {
    fn new(realm: &str) -> Self {
        let value = |rejection: &AuthRejection, description: &str| {
            // Visible ASCII only (`push_quoted` drops the rest), so always a valid value.
            HeaderValue::from_maybe_shared(bytes::Bytes::from(write_challenge(
                realm,
                rejection,
                description,
            )))
            .ok()
        };
        let invalid = AuthRejection::InvalidToken(VerifyError::InvalidSignature);
        Self {
            missing_token: value(&AuthRejection::MissingToken, ""),
            invalid_token: VERIFY_TEXTS
                .iter()
                .chain([&REVIEW_UNAVAILABLE])
                .map(|description| value(&invalid, description))
                .collect(),
        }
    }
}

impl fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingToken => f.write_str("no bearer token"),
            Self::InvalidRequest(e) => write!(f, "malformed credentials: {e}"),
            Self::InvalidToken(e) => write!(f, "invalid token: {e}"),
            Self::Unavailable(e) => write!(f, "cannot verify: {e}"),
            Self::Forbidden { reason, .. } => write!(f, "forbidden: {reason}"),
            Self::Misconfigured(fix) => write!(f, "misconfigured: {fix}"),
            Self::Dpop(e) => write!(f, "refused by DPoP: {e}"),
        }
    }
}

/// Builds the response for a rejected request. Implemented by [`DefaultRejection`] (JSON),
/// [`BodyRejection`] (your body, RFC 6750 headers kept), [`GrpcRejection`] (for tonic), and closures
/// `Fn(&AuthRejection) -> Response<B>`.
///
/// A closure builds the whole response, headers included: to shape only the body and keep the
/// `WWW-Authenticate` challenge and `Retry-After`, use [`DefaultRejection::with_body`]. Whatever it
/// returns, the layer adds the [`AuthRejection`] to the response's extensions.
pub trait RejectionResponse<B>: Clone + Send + Sync + 'static {
    /// The response for `rejection`.
    fn response(&self, rejection: &AuthRejection) -> Response<B>;
}

impl<B, F> RejectionResponse<B> for F
where
    F: Fn(&AuthRejection) -> Response<B> + Clone + Send + Sync + 'static,
{
    fn response(&self, rejection: &AuthRejection) -> Response<B> {
        self(rejection)
    }
}

/// The default responses: RFC 6750 `WWW-Authenticate` challenges and a short JSON body
/// `{"error": …, "error_description": …}`.
///
/// ```
/// use oidc_bearer::rejection::{AuthRejection, DefaultRejection, RejectionResponse};
///
/// let response: http::Response<String> = DefaultRejection::new().with_realm("api").response(&AuthRejection::MissingToken);
/// assert_eq!(response.status(), 401);
/// assert_eq!(response.headers()["www-authenticate"], r#"Bearer realm="api""#);
/// ```
#[derive(Debug, Clone)]
pub struct DefaultRejection {
    realm: Arc<str>,
    retry_after_secs: u32,
    fixed: Arc<FixedChallenges>,
}

impl Default for DefaultRejection {
    fn default() -> Self {
        Self::new()
    }
}

impl DefaultRejection {
    /// Realm `api`; on 503, `Retry-After` says when the verifier expects to be able to answer (the
    /// next allowed key fetch), or 5 s when it cannot tell.
    pub fn new() -> Self {
        static API: std::sync::OnceLock<Arc<FixedChallenges>> = std::sync::OnceLock::new();
        Self {
            realm: Arc::from("api"),
            retry_after_secs: 5,
            fixed: API
                .get_or_init(|| Arc::new(FixedChallenges::new("api")))
                .clone(),
        }
    }

    /// The `realm` of the challenge (RFC 7235 §2.2).
    #[must_use]
    pub fn with_realm(mut self, realm: impl AsRef<str>) -> Self {
        self.realm = Arc::from(realm.as_ref());
        self.fixed = Arc::new(FixedChallenges::new(&self.realm));
        self
    }

    /// The `WWW-Authenticate` value for `rejection`, if it has one (503 and 500 have none: they
    /// are not about the client's credentials).
    pub(crate) fn challenge(&self, rejection: &AuthRejection) -> Option<String> {
        if matches!(
            rejection,
            AuthRejection::Unavailable(_) | AuthRejection::Misconfigured(_)
        ) {
            return None;
        }
        Some(write_challenge(
            &self.realm,
            rejection,
            rejection.description(),
        ))
    }

    /// [`challenge`](Self::challenge) as a header value: the one built for this realm when its
    /// text is fixed, else written now.
    fn challenge_value(&self, rejection: &AuthRejection) -> Option<HeaderValue> {
        match rejection {
            AuthRejection::MissingToken => self.fixed.missing_token.clone(),
            AuthRejection::InvalidToken(error) => {
                self.fixed.invalid_token.get(verify_text(error))?.clone()
            }
            _ => HeaderValue::try_from(self.challenge(rejection)?).ok(),
        }
    }

    /// The `Retry-After` seconds for an unavailable verification: the error's own delay rounded up
    /// (at least 1 s, RFC 9110 §10.2.3 takes whole seconds), else the configured default.
    fn retry_after(&self, error: &VerifyError) -> u64 {
        error
            .retry_after()
            .map_or(u64::from(self.retry_after_secs), |d| {
                (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
            })
    }

    /// Keeps this rejection's status and RFC 6750 headers (`WWW-Authenticate` with the right
    /// `error`, `Retry-After` on 503) and lets `body` write the body — the way to shape rejections
    /// without losing the challenge. Works for the bearer layer and the policy layers alike.
    ///
    /// ```
    /// use oidc_bearer::rejection::{AuthRejection, DefaultRejection, RejectionResponse};
    ///
    /// let rejection = DefaultRejection::new()
    ///     .with_body(|r: &AuthRejection| format!(r#"{{"message":"{}"}}"#, r.code()));
    /// let response: http::Response<String> = rejection.response(&AuthRejection::MissingToken);
    /// assert_eq!(response.status(), 401);
    /// assert_eq!(response.headers()["www-authenticate"], r#"Bearer realm="api""#);
    /// assert_eq!(response.body(), r#"{"message":"missing_token"}"#);
    /// ```
    #[must_use]
    pub fn with_body<F>(self, body: F) -> BodyRejection<F>
    where
        F: Fn(&AuthRejection) -> String + Clone + Send + Sync + 'static,
    {
        BodyRejection {
            headers: self,
            body,
            content_type: HeaderValue::from_static("application/json"),
        }
    }

    /// The status and the RFC 6750 headers of `rejection`'s response.
    fn response_with<B>(
        &self,
        rejection: &AuthRejection,
        body: B,
        content_type: HeaderValue,
    ) -> Response<B> {
        let mut response = Response::new(body);
        *response.status_mut() = rejection.status();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, content_type);
        if let Some(value) = self.challenge_value(rejection) {
            headers.insert(WWW_AUTHENTICATE, value);
        }
        if let AuthRejection::Unavailable(error) = rejection {
            headers.insert(RETRY_AFTER, HeaderValue::from(self.retry_after(error)));
        }
        response
    }
}

/// The `WWW-Authenticate` value for `rejection` in `realm`, with `description` (RFC 6750 §3),
/// written into one buffer.
fn write_challenge(realm: &str, rejection: &AuthRejection, description: &str) -> String {
    let mut value = String::with_capacity(64 + realm.len() + description.len());
    value.push_str("Bearer realm=\"");
    push_quoted(&mut value, realm);
    value.push('"');
    if let Some(error) = rejection.challenge_error() {
        value.push_str(", error=\"");
        value.push_str(error);
        value.push_str("\", error_description=\"");
        push_quoted(&mut value, description);
        value.push('"');
    }
    if let AuthRejection::Forbidden {
        scope: Some(scope), ..
    } = rejection
    {
        value.push_str(", scope=\"");
        push_quoted(&mut value, scope);
        value.push('"');
    }
    value
}

impl<B: From<String>> RejectionResponse<B> for DefaultRejection {
    fn response(&self, rejection: &AuthRejection) -> Response<B> {
        let error = match rejection {
            AuthRejection::MissingToken => "unauthorized",
            AuthRejection::Unavailable(_) => "temporarily_unavailable",
            AuthRejection::Misconfigured(_) => "server_error",
            other => other.challenge_error().unwrap_or("unauthorized"),
        };
        // `{"error":…,"error_description":…}`, as serde_json writes it, without building a `Value`.
        let description = rejection.description();
        let mut body = String::with_capacity(40 + error.len() + description.len());
        body.push_str("{\"error\":");
        push_json_string(&mut body, error);
        body.push_str(",\"error_description\":");
        push_json_string(&mut body, description);
        body.push('}');
        self.response_with(
            rejection,
            B::from(body),
            HeaderValue::from_static("application/json"),
        )
    }
}

/// [`DefaultRejection`]'s status and RFC 6750 headers with a body of your own: made by
/// [`DefaultRejection::with_body`].
#[derive(Clone)]
pub struct BodyRejection<F> {
    headers: DefaultRejection,
    body: F,
    content_type: HeaderValue,
}

impl<F> BodyRejection<F> {
    /// The `Content-Type` of the body (default `application/json`); an invalid value is ignored.
    #[must_use]
    pub fn with_content_type(mut self, content_type: &str) -> Self {
        if let Ok(value) = HeaderValue::try_from(content_type) {
            self.content_type = value;
        }
        self
    }
}

impl<F> fmt::Debug for BodyRejection<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyRejection")
            .field("headers", &self.headers)
            .field("content_type", &self.content_type)
            .finish_non_exhaustive()
    }
}

impl<B, F> RejectionResponse<B> for BodyRejection<F>
where
    B: From<String>,
    F: Fn(&AuthRejection) -> String + Clone + Send + Sync + 'static,
{
    fn response(&self, rejection: &AuthRejection) -> Response<B> {
        let body = B::from((self.body)(rejection));
        self.headers
            .response_with(rejection, body, self.content_type.clone())
    }
}

/// Responses for gRPC services (tonic): the refusal as a gRPC status in a trailers-only response
/// (HTTP 200, `content-type: application/grpc`, `grpc-status` and `grpc-message` headers, an empty
/// body), as tonic's own interceptors answer, so that a gRPC client reads it as a status.
///
/// | rejection | `grpc-status` | metadata the client reads |
/// |---|---|---|
/// | no token, invalid token | UNAUTHENTICATED (16) | `www-authenticate`: the RFC 6750 challenge, as on HTTP |
/// | malformed credentials | INVALID_ARGUMENT (3) | `www-authenticate` |
/// | a policy refused | PERMISSION_DENIED (7) | `www-authenticate` (`insufficient_scope`) |
/// | keys (or TokenReview) unavailable | UNAVAILABLE (14) | `retry-after` (seconds, as a 503's) and `grpc-retry-pushback-ms` (gRFC A6) |
/// | the server is wired wrong | INTERNAL (13) | |
///
/// The layer is told it serves gRPC by this builder: a tonic server's body type cannot carry
/// [`DefaultRejection`]'s JSON (it does not implement `From<String>`), so a tonic server behind a
/// layer without it does not compile. An axum app that also routes gRPC gives its gRPC routes a
/// layer of their own with this builder.
///
/// ```no_run
/// use oidc_bearer::{BearerAuthLayer, Verifier, policy, rejection::GrpcRejection};
/// use tonic::{service::Routes, transport::Server};
///
/// /// Serves your services (`Routes::new(GreeterServer::new(MyGreeter))`, generated by tonic) behind
/// /// the layer; a handler reads `request.extensions().get::<Claims<DefaultClaims>>()`.
/// async fn serve(routes: Routes) -> Result<(), Box<dyn std::error::Error>> {
///     let verifier = Verifier::new("https://issuer.example", "my-service")?;
///     verifier.warm_up();
///     let auth = BearerAuthLayer::new(verifier)
///         .with_rejection(GrpcRejection::new())
///         .authorize(policy::scopes(["greet"]));
///     Server::builder().layer(auth).add_routes(routes).serve("0.0.0.0:50051".parse()?).await?;
///     Ok(())
/// }
/// ```
///
/// A complete server and client: `tests/tests/it/grpc.rs` in the repository.
#[derive(Debug, Clone, Default)]
pub struct GrpcRejection {
    challenge: DefaultRejection,
}

impl GrpcRejection {
    /// gRPC rejections with realm `api`; on UNAVAILABLE, `retry-after` as [`DefaultRejection`]
    /// sets it.
    pub fn new() -> Self {
        Self::default()
    }

    /// The `realm` of the challenge (RFC 7235 §2.2).
    #[must_use]
    pub fn with_realm(mut self, realm: impl AsRef<str>) -> Self {
        self.challenge = self.challenge.with_realm(realm);
        self
    }
}

impl<B: Default> RejectionResponse<B> for GrpcRejection {
    fn response(&self, rejection: &AuthRejection) -> Response<B> {
        let status = match rejection {
            AuthRejection::MissingToken | AuthRejection::InvalidToken(_) => 16,
            AuthRejection::Dpop(e) if e.challenge_error() != DpopChallengeError::InvalidRequest => {
                16
            }
            AuthRejection::InvalidRequest(_) | AuthRejection::Dpop(_) => 3,
            AuthRejection::Forbidden { .. } => 7,
            AuthRejection::Unavailable(_) => 14,
            AuthRejection::Misconfigured(_) => 13,
        };
        let mut response = Response::new(B::default());
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert("grpc-status", HeaderValue::from(status));
        if let Ok(value) = HeaderValue::try_from(grpc_message(rejection.description())) {
            headers.insert("grpc-message", value);
        }
        if let Some(value) = self.challenge.challenge_value(rejection) {
            headers.insert(WWW_AUTHENTICATE, value);
        }
        if let AuthRejection::Unavailable(error) = rejection {
            let secs = self.challenge.retry_after(error);
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
            // gRFC A6: a client whose retry policy covers UNAVAILABLE waits this long.
            headers.insert(
                "grpc-retry-pushback-ms",
                HeaderValue::from(secs.saturating_mul(1000)),
            );
        }
        response
    }
}

/// `text` as a `grpc-message` value: percent-encoded as the gRPC HTTP/2 protocol's
/// `Percent-Encoded` (every byte outside `%x20-%x7E`, and `%` itself, as `%XX` of its UTF-8), so
/// that a client decodes exactly the text (a policy's reason may hold `%` or non-ASCII).
fn grpc_message(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
}

/// Escapes a value for an HTTP quoted-string (RFC 9110 §5.6.4): backslash-escape `"` and `\`,
/// and drop control characters, which cannot appear at all.
#[cfg(test)]
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    push_quoted(&mut out, value);
    out
}

/// [`quote`] into `out`.
fn push_quoted(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_ascii_control() || !c.is_ascii() => {}
            c => out.push(c),
        }
    }
}

/// `value` as a JSON string (RFC 8259 §7) into `out`: as is between quotes when nothing needs
/// escaping (every fixed description), else as serde_json escapes it.
fn push_json_string(out: &mut String, value: &str) {
    if value.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(value);
        out.push('"');
    } else {
        out.push_str(&serde_json::Value::from(value).to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_strings_are_escaped() {
        assert_eq!(quote(r#"a "b" \c"#), r#"a \"b\" \\c"#);
        assert_eq!(quote("line\r\nbreak"), "linebreak");
    }

    #[test]
    fn challenges_follow_rfc_6750() {
        let d = DefaultRejection::new().with_realm(r#"my "realm""#);
        let rows = [
            (AuthRejection::MissingToken, Some(r#"Bearer realm="my \"realm\"""#.to_owned())),
            (
                AuthRejection::InvalidToken(VerifyError::InvalidSignature),
                Some(r#"Bearer realm="my \"realm\"", error="invalid_token", error_description="the token's signature is invalid""#.to_owned()),
            ),
            (
                AuthRejection::InvalidRequest(BearerError::MultipleAuthorizationHeaders),
                Some(r#"Bearer realm="my \"realm\"", error="invalid_request", error_description="more than one Authorization header""#.to_owned()),
            ),
            (
                AuthRejection::Forbidden { reason: "needs \"admin\"".into(), scope: Some("admin".into()) },
                Some(r#"Bearer realm="my \"realm\"", error="insufficient_scope", error_description="needs \"admin\"", scope="admin""#.to_owned()),
            ),
        ];
        for (rejection, expected) in rows {
            assert_eq!(d.challenge(&rejection), expected, "{rejection}");
        }
    }

    /// The values built once per realm are the text `challenge` writes, for every refused token
    /// (each client-facing text) and a missing one, in the default realm and another.
    #[test]
    fn fixed_challenges_are_the_written_ones() {
        let errors = [
            VerifyError::Malformed { reason: "x" },
            VerifyError::InvalidSignature,
            VerifyError::Expired { exp: 1, now: 2 },
            VerifyError::UntrustedIssuer { found: None },
            VerifyError::AudienceMismatch {
                expected: vec!["a".into()],
                found: vec![],
            },
        ];
        for rejection in [
            DefaultRejection::new(),
            DefaultRejection::new().with_realm("a \"b\""),
        ] {
            let rows = errors
                .iter()
                .cloned()
                .map(AuthRejection::InvalidToken)
                .chain([AuthRejection::MissingToken]);
            for row in rows {
                let fixed = rejection.challenge_value(&row).unwrap();
                assert_eq!(
                    fixed.to_str().unwrap(),
                    rejection.challenge(&row).unwrap(),
                    "{row}"
                );
            }
        }
        // One text per index, the last one apart.
        let texts: std::collections::HashSet<_> =
            VERIFY_TEXTS.iter().chain([&REVIEW_UNAVAILABLE]).collect();
        assert_eq!(texts.len(), VERIFY_TEXTS.len() + 1);
    }

    #[test]
    fn the_json_body_is_what_serde_json_writes() {
        let rows = [
            AuthRejection::MissingToken,
            AuthRejection::InvalidToken(VerifyError::InvalidSignature),
            AuthRejection::Unavailable(VerifyError::InvalidSignature),
            AuthRejection::Forbidden {
                reason: "needs \"admin\" \\ é\n".into(),
                scope: None,
            },
        ];
        for rejection in rows {
            let response: Response<String> = DefaultRejection::new().response(&rejection);
            let expected = serde_json::json!({
                "error": match &rejection {
                    AuthRejection::MissingToken => "unauthorized",
                    AuthRejection::Unavailable(_) => "temporarily_unavailable",
                    other => other.challenge_error().unwrap(),
                },
                "error_description": rejection.description(),
            })
            .to_string();
            assert_eq!(response.body(), &expected, "{rejection}");
        }
    }

    #[test]
    fn grpc_rejection_uses_grpc_status() {
        let r: Response<String> = GrpcRejection::new().response(&AuthRejection::MissingToken);
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["grpc-status"], "16");
        assert_eq!(r.headers()["grpc-message"], "a bearer token is required");
    }

    #[test]
    fn grpc_messages_are_percent_encoded() {
        assert_eq!(grpc_message("100% café\n"), "100%25 caf%C3%A9%0A");
    }
}
