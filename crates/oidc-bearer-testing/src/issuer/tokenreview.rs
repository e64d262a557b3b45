//! A Kubernetes TokenReview endpoint (`POST /apis/authentication.k8s.io/v1/tokenreviews`) on the
//! [`TestIssuer`](crate::TestIssuer)'s server, behaving like the API server's: it authenticates
//! its caller, validates the tokens the issuer minted (signature with a published key, issuer,
//! expiry, audiences, and that the pod or secret a token is bound to still exists), and answers
//! with the API server's JSON shapes and error strings.
//!
//! Tests drive it through [`TokenReviews`], from [`TestIssuer::token_reviews`](crate::TestIssuer::token_reviews).

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::token::{TokenBuilder, now};
use super::{Shared, wait_for_count};

/// Where the API server serves TokenReviews.
pub const TOKEN_REVIEW_PATH: &str = "/apis/authentication.k8s.io/v1/tokenreviews";

/// The largest review request read (the API server's limit is far larger; ours only bounds tests).
const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// The review endpoint's switches and counters, kept in the issuer's shared state.
pub(crate) struct ReviewState {
    config: Mutex<Config>,
    calls: watch::Sender<usize>,
    holds: watch::Sender<usize>,
}

#[derive(Default)]
struct Config {
    /// Uids of deleted pods, secrets and service accounts.
    deleted: HashSet<String>,
    /// The API server's own audiences (default: the issuer), used when a review names none and
    /// for callers' credentials.
    api_audiences: Option<Vec<String>>,
    /// Answer every review with this status.
    status: Option<u16>,
    forbid_callers: bool,
    answer: Option<Value>,
    last_spec: Option<Value>,
}

impl Default for ReviewState {
    fn default() -> Self {
        Self {
            config: Mutex::default(),
            calls: watch::Sender::new(0),
            holds: watch::Sender::new(0),
        }
    }
}

impl ReviewState {
    fn lock(&self) -> MutexGuard<'_, Config> {
        self.config.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Drives the TokenReview endpoint of a [`TestIssuer`](crate::TestIssuer): revoke tokens by
/// deleting the pod or secret they are bound to, refuse the caller, take the endpoint down, hold
/// reviews, count them.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use oidc_bearer_testing::TestIssuer;
///
/// let issuer = TestIssuer::start().await;
/// let reviews = issuer.token_reviews();
/// let token = issuer.token().kubernetes("prod", "billing").aud("my-api").sign();
/// let review = serde_json::json!({
///     "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
///     "spec": {"token": token, "audiences": ["my-api"]},
/// });
/// let post = |body: serde_json::Value| {
///     let (url, caller) = (reviews.url(), reviews.caller_token());
///     async move {
///         reqwest::Client::new().post(url).bearer_auth(caller).json(&body).send().await.unwrap()
///     }
/// };
/// let answer: serde_json::Value = post(review.clone()).await.json().await.unwrap();
/// assert_eq!(answer["status"]["authenticated"], true);
/// assert_eq!(answer["status"]["user"]["username"], "system:serviceaccount:prod:billing");
///
/// reviews.delete_bound_object(&token); // the pod is gone
/// let answer: serde_json::Value = post(review).await.json().await.unwrap();
/// assert_eq!(answer["status"]["error"], "[invalid bearer token, service account token has been invalidated]");
/// assert_eq!(reviews.calls(), 2);
/// # }
/// ```
#[derive(Clone)]
pub struct TokenReviews {
    shared: Arc<Shared>,
}

impl TokenReviews {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    fn state(&self) -> &ReviewState {
        &self.shared.reviews
    }

    /// The API server's base URL (the issuer's): what a TokenReview client is configured with.
    pub fn api_server_url(&self) -> String {
        format!("http://{}", self.shared.addr())
    }

    /// The TokenReview URL.
    pub fn url(&self) -> String {
        format!("{}{TOKEN_REVIEW_PATH}", self.api_server_url())
    }

    /// A credential the endpoint accepts from its caller: a token of the issuer for the API
    /// server's audience, for the service account `kube-system/token-reviewer`.
    pub fn caller_token(&self) -> String {
        let audience = api_audiences(&self.shared)[0].clone();
        TokenBuilder::new(Arc::clone(&self.shared), self.shared.signing_kid())
            .kubernetes("kube-system", "token-reviewer")
            .aud(&audience)
            .sign()
    }

    /// Deletes the pod (or, for a token bound to a secret, the secret) `token` is bound to: its
    /// reviews say `service account token has been invalidated` from now on.
    ///
    /// # Panics
    /// If the token names no bound pod or secret.
    pub fn delete_bound_object(&self, token: &str) {
        let claims = payload(token).unwrap_or_else(|| {
            panic!("oidc-bearer-testing: delete_bound_object: not a JWT of this issuer")
        });
        let k8s = &claims["kubernetes.io"];
        let uid = k8s["pod"]["uid"]
            .as_str()
            .or_else(|| k8s["secret"]["uid"].as_str())
            .unwrap_or_else(|| {
                panic!(
                    "oidc-bearer-testing: delete_bound_object: the token is bound to no pod or \
                     secret (mint it with TokenBuilder::kubernetes)"
                )
            });
        self.delete_object(uid);
    }

    /// Deletes the object (pod, secret or service account) with this uid.
    pub fn delete_object(&self, uid: &str) {
        self.state().lock().deleted.insert(uid.to_owned());
    }

    /// Brings a deleted object back (the same uid: as if it had never been deleted).
    pub fn restore_object(&self, uid: &str) {
        self.state().lock().deleted.remove(uid);
    }

    /// Answers every review with 503 (while `down`), as an API server that is shutting down.
    pub fn set_down(&self, down: bool) {
        self.fail_with(down.then_some(503));
    }

    /// Answers every review with this status and a Kubernetes `Status` body (429, 500, 404…), or
    /// normally again with `None`.
    ///
    /// # Panics
    /// If `status` is not an HTTP status code.
    pub fn fail_with(&self, status: Option<u16>) {
        if let Some(status) = status {
            assert!(
                StatusCode::from_u16(status).is_ok(),
                "oidc-bearer-testing: fail_with({status}): not an HTTP status"
            );
        }
        self.state().lock().status = status;
    }

    /// Refuses every caller with 403, as an API server whose RBAC does not let the caller's
    /// service account create TokenReviews.
    pub fn forbid_callers(&self, forbid: bool) {
        self.state().lock().forbid_callers = forbid;
    }

    /// Answers every review with `status` as the TokenReview's `status` (201), whatever the token:
    /// an API server that misbehaves, or a shape the endpoint does not produce by itself. `None`
    /// goes back to reviewing.
    pub fn answer_with(&self, status: Option<Value>) {
        self.state().lock().answer = status;
    }

    /// The API server's own audiences (default: the issuer), used for reviews that name none and
    /// to authenticate callers.
    pub fn set_api_audiences(&self, audiences: &[&str]) {
        self.state().lock().api_audiences = Some(audiences.iter().map(|&a| a.into()).collect());
    }

    /// The `spec` of the last review received (with its token), if any.
    pub fn last_spec(&self) -> Option<Value> {
        self.state().lock().last_spec.clone()
    }

    /// Makes reviews wait until the returned guard is dropped. They are counted in
    /// [`calls`](Self::calls) on arrival, so `wait_for_calls(n)` tells when they are parked.
    pub fn hold(&self) -> ReviewHold {
        self.state().holds.send_modify(|n| *n += 1);
        ReviewHold {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Requests that reached the endpoint, answered or not (refused callers and held requests
    /// count).
    pub fn calls(&self) -> usize {
        *self.state().calls.borrow()
    }

    /// Resolves once [`calls`](Self::calls) is at least `n`.
    ///
    /// # Panics
    /// After 30 seconds of real time, with the count reached.
    pub async fn wait_for_calls(&self, n: usize) {
        wait_for_count(&self.state().calls, n, "wait_for_calls", "TokenReview").await;
    }
}

impl fmt::Debug for TokenReviews {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenReviews")
            .field("url", &self.url())
            .field("calls", &self.calls())
            .finish_non_exhaustive()
    }
}

/// While this guard lives, reviews wait; see [`TokenReviews::hold`].
#[must_use = "dropping the hold releases the reviews at once"]
pub struct ReviewHold {
    shared: Arc<Shared>,
}

impl ReviewHold {
    /// Releases the held reviews (the same as dropping the guard).
    pub fn release(self) {}
}

impl Drop for ReviewHold {
    fn drop(&mut self) {
        self.shared.reviews.holds.send_modify(|n| *n -= 1);
    }
}

impl fmt::Debug for ReviewHold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReviewHold").finish_non_exhaustive()
    }
}

fn api_audiences(shared: &Shared) -> Vec<String> {
    shared
        .reviews
        .lock()
        .api_audiences
        .clone()
        .unwrap_or_else(|| vec![shared.issuer().to_owned()])
}

/// Serves one request to [`TOKEN_REVIEW_PATH`].
pub(crate) async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<String> {
    let state = &shared.reviews;
    // Counted on arrival, before any hold, so tests can wait until a request is parked.
    state.calls.send_modify(|n| *n += 1);
    let mut holds = state.holds.subscribe();
    let _ = holds.wait_for(|n| *n == 0).await;

    if shared.is_down() {
        return status(
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
        );
    }
    if let Some(code) = state.lock().status {
        return status(
            code,
            "InternalError",
            "the test endpoint was told to fail (fail_with)",
        );
    }
    if req.method() != Method::POST {
        return status(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        );
    }
    // The caller: a valid token of the issuer for the API server's audiences, as the API server's
    // service-account authenticator would check it.
    let caller = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|token| review(shared, token, &api_audiences(shared)).ok());
    let Some(caller) = caller else {
        return status(401, "Unauthorized", "Unauthorized");
    };
    if state.lock().forbid_callers {
        let user = caller.0["username"].as_str().unwrap_or_default().to_owned();
        return status(
            403,
            "Forbidden",
            &format!(
                "tokenreviews.authentication.k8s.io is forbidden: User \"{user}\" cannot create \
                 resource \"tokenreviews\" in API group \"authentication.k8s.io\" at the cluster scope"
            ),
        );
    }
    let body = match Limited::new(req.into_body(), MAX_REQUEST_BYTES)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(_) => return status(413, "RequestEntityTooLarge", "the request is too large"),
    };
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if request["kind"] != "TokenReview" || request["apiVersion"] != "authentication.k8s.io/v1" {
        return status(
            400,
            "BadRequest",
            "the body is not an authentication.k8s.io/v1 TokenReview",
        );
    }
    let spec = request["spec"].clone();
    let Some(token) = spec["token"].as_str() else {
        return status(
            422,
            "Invalid",
            "TokenReview.authentication.k8s.io is invalid: spec.token: Required value",
        );
    };
    state.lock().last_spec = Some(spec.clone());
    let answer = state.lock().answer.clone();
    let review_status = match answer {
        Some(answer) => answer,
        None => {
            // No audiences asked for: the API server checks against its own.
            let asked: Vec<String> = match spec["audiences"].as_array() {
                Some(a) if !a.is_empty() => a
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                _ => api_audiences(shared),
            };
            match review(shared, token, &asked) {
                Ok((user, audiences)) => json!({
                    "authenticated": true,
                    "user": user,
                    "audiences": audiences,
                }),
                Err(error) => json!({
                    "user": {},
                    // The aggregate of the bearer-token authenticator's error and the cause, as
                    // the API server words it.
                    "error": format!("[invalid bearer token, {error}]"),
                }),
            }
        }
    };
    let body = json!({
        "kind": "TokenReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": { "creationTimestamp": null },
        "spec": spec,
        "status": review_status,
    });
    json_response(StatusCode::CREATED, &body)
}

/// Reviews `token` for `asked` audiences: its user and the audiences it is valid for, or the API
/// server's reason.
fn review(shared: &Shared, token: &str, asked: &[String]) -> Result<(Value, Vec<String>), String> {
    let invalid = || "invalid bearer token".to_owned();
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    let decode = |segment: &str| URL_SAFE_NO_PAD.decode(segment).ok();
    let header: Value = decode(h)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(invalid)?;
    let claims: Value = decode(p)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(invalid)?;
    let signature = decode(s).ok_or_else(invalid)?;
    if claims["iss"] != shared.issuer() {
        return Err(invalid());
    }
    let alg = header["alg"].as_str().unwrap_or_default();
    let (jwks, _) = shared.jwks_document(None);
    let jwk = jwks["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| header["kid"].is_null() || k["kid"] == header["kid"])
        .filter(|k| k["alg"] == alg);
    let signing_input = &token.as_bytes()[..h.len() + 1 + p.len()];
    if !jwk.is_some_and(|jwk| verify(jwk, signing_input, &signature)) {
        return Err("square/go-jose: error in cryptographic primitive".into());
    }
    let now = now();
    if claims["exp"].as_i64().is_none_or(|exp| now > exp) {
        return Err("service account token has expired".into());
    }
    if claims["nbf"].as_i64().is_some_and(|nbf| now < nbf) {
        return Err("service account token is not valid yet".into());
    }
    let token_auds: Vec<String> = match &claims["aud"] {
        Value::String(one) => vec![one.clone()],
        Value::Array(many) => many
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    let audiences: Vec<String> = asked
        .iter()
        .filter(|a| token_auds.contains(a))
        .cloned()
        .collect();
    if audiences.is_empty() {
        return Err(format!(
            "token audiences {token_auds:?} is invalid for the target audiences {asked:?}"
        ));
    }
    let k8s = &claims["kubernetes.io"];
    let deleted = |object: &Value| {
        object["uid"]
            .as_str()
            .is_some_and(|uid| shared.reviews.lock().deleted.contains(uid))
    };
    if deleted(&k8s["pod"]) || deleted(&k8s["secret"]) || deleted(&k8s["serviceaccount"]) {
        return Err("service account token has been invalidated".into());
    }
    let username = claims["sub"].as_str().unwrap_or_default().to_owned();
    let mut user = json!({ "username": username });
    if let Some(namespace) = k8s["namespace"].as_str() {
        user["uid"] = k8s["serviceaccount"]["uid"].clone();
        user["groups"] = json!([
            "system:serviceaccounts",
            format!("system:serviceaccounts:{namespace}"),
            "system:authenticated",
        ]);
        let mut extra = BTreeMap::new();
        for (object, key) in [("pod", "pod"), ("node", "node")] {
            if let (Some(name), Some(uid)) =
                (k8s[object]["name"].as_str(), k8s[object]["uid"].as_str())
            {
                extra.insert(
                    format!("authentication.kubernetes.io/{key}-name"),
                    json!([name]),
                );
                extra.insert(
                    format!("authentication.kubernetes.io/{key}-uid"),
                    json!([uid]),
                );
            }
        }
        if let Some(jti) = claims["jti"].as_str() {
            extra.insert(
                "authentication.kubernetes.io/credential-id".into(),
                json!([format!("JTI={jti}")]),
            );
        }
        user["extra"] = json!(extra);
    } else {
        user["groups"] = json!(["system:authenticated"]);
    }
    Ok((user, audiences))
}

/// The token's payload as JSON, unverified.
fn payload(token: &str) -> Option<Value> {
    let p = token.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()
}

/// Verifies `signature` over `message` with a published JWK, the way the API server would.
fn verify(jwk: &Value, message: &[u8], signature: &[u8]) -> bool {
    use aws_lc_rs::signature::{
        self, RsaPublicKeyComponents, UnparsedPublicKey, VerificationAlgorithm,
    };
    let b64 = |v: &Value| v.as_str().and_then(|s| URL_SAFE_NO_PAD.decode(s).ok());
    let rsa = |params: &'static signature::RsaParameters| {
        let (Some(n), Some(e)) = (b64(&jwk["n"]), b64(&jwk["e"])) else {
            return false;
        };
        RsaPublicKeyComponents { n, e }
            .verify(params, message, signature)
            .is_ok()
    };
    let point = || -> Option<Vec<u8>> {
        let mut point = vec![4];
        point.extend(b64(&jwk["x"])?);
        point.extend(b64(&jwk["y"])?);
        Some(point)
    };
    let other = |alg: &'static dyn VerificationAlgorithm, key: Option<Vec<u8>>| {
        key.is_some_and(|key| {
            UnparsedPublicKey::new(alg, key)
                .verify(message, signature)
                .is_ok()
        })
    };
    match jwk["alg"].as_str().unwrap_or_default() {
        "RS256" => rsa(&signature::RSA_PKCS1_2048_8192_SHA256),
        "RS384" => rsa(&signature::RSA_PKCS1_2048_8192_SHA384),
        "RS512" => rsa(&signature::RSA_PKCS1_2048_8192_SHA512),
        "PS256" => rsa(&signature::RSA_PSS_2048_8192_SHA256),
        "PS384" => rsa(&signature::RSA_PSS_2048_8192_SHA384),
        "PS512" => rsa(&signature::RSA_PSS_2048_8192_SHA512),
        "ES256" => other(&signature::ECDSA_P256_SHA256_FIXED, point()),
        "ES384" => other(&signature::ECDSA_P384_SHA384_FIXED, point()),
        "EdDSA" => other(&signature::ED25519, b64(&jwk["x"])),
        _ => false,
    }
}

/// A Kubernetes `Status` object with this code.
fn status(code: u16, reason: &str, message: &str) -> Response<String> {
    let body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    json_response(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &body,
    )
}

fn json_response(code: StatusCode, body: &Value) -> Response<String> {
    let mut response = Response::new(body.to_string());
    *response.status_mut() = code;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
