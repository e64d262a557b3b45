//! Authorization policies: checks on verified claims that answer **403** `insufficient_scope`
//! (RFC 6750 §3.1) instead of 401 — allowed subjects, Kubernetes namespaces or service accounts,
//! required scopes, or any closure over your claims type.
//!
//! A policy runs after [`BearerAuthLayer`](crate::BearerAuthLayer) and reads the [`Claims<T>`] it put
//! into the request. Attach it per route; with axum's `route_layer`, the layer added last runs first,
//! so add the policy before the bearer layer:
//!
//! ```
//! use axum::{Router, routing::get};
//! use oidc_bearer::{BearerAuthLayer, Verifier, policy::AuthorizeLayer};
//!
//! let verifier = Verifier::new("https://issuer.example", "my-service").unwrap();
//! let app: Router = Router::new()
//!     .route("/admin", get(|| async { "admin" }))
//!     .route_layer(AuthorizeLayer::subjects(["system:serviceaccount:ops:deployer"]))
//!     .route_layer(BearerAuthLayer::new(verifier));
//! ```
//!
//! The tutorial's `AuthorizedSubjects` check called `forbid(w)` and forgot to `return`, so the private
//! handler still ran. Here a refusal is the response: the inner service is never called.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::claims::DefaultClaims;
use crate::layer::Claims;
use crate::rejection::{AuthRejection, DefaultRejection, RejectionResponse};

/// A policy's refusal: what it requires, said without repeating the token's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    reason: String,
    scope: Option<String>,
}

impl Denied {
    /// A refusal with this description (sent to the client as `error_description`).
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            scope: None,
        }
    }

    /// Names the scope that would be sufficient (the `scope` attribute of the challenge).
    #[must_use]
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    fn into_rejection(self) -> AuthRejection {
        AuthRejection::Forbidden {
            reason: self.reason,
            scope: self.scope,
        }
    }
}

/// A check on verified claims of type `T`. Closures `Fn(&T) -> Result<(), Denied>` implement it.
pub trait Policy<T>: Clone + Send + Sync + 'static {
    /// Allows or refuses the request.
    fn check(&self, claims: &T) -> Result<(), Denied>;
}

impl<T, F> Policy<T> for F
where
    F: Fn(&T) -> Result<(), Denied> + Clone + Send + Sync + 'static,
{
    fn check(&self, claims: &T) -> Result<(), Denied> {
        self(claims)
    }
}

/// What the built-in policies read from a claims type. Implemented by
/// [`DefaultClaims`] (from the payload's claims) and the Kubernetes claim types; implement it for
/// your own type to use the built-in policies with it.
pub trait PolicyClaims {
    /// The `sub` claim.
    fn subject(&self) -> Option<&str>;

    /// The granted scopes: the space-separated `scope` claim (RFC 8693 §4.2, RFC 9068 §2.2.3) or the
    /// `scp` array.
    fn scopes(&self) -> Vec<&str> {
        Vec::new()
    }

    /// The Kubernetes service account `(namespace, name)` the token was issued to.
    fn kubernetes_service_account(&self) -> Option<(&str, &str)> {
        self.subject().and_then(parse_service_account_subject)
    }
}

/// Parses `system:serviceaccount:<namespace>:<name>`.
pub fn parse_service_account_subject(sub: &str) -> Option<(&str, &str)> {
    let rest = sub.strip_prefix("system:serviceaccount:")?;
    let (namespace, name) = rest.split_once(':')?;
    (!namespace.is_empty() && !name.is_empty() && !name.contains(':')).then_some((namespace, name))
}

impl PolicyClaims for DefaultClaims {
    fn subject(&self) -> Option<&str> {
        self.registered.sub.as_deref()
    }

    fn scopes(&self) -> Vec<&str> {
        match (self.extra.get("scope"), self.extra.get("scp")) {
            (Some(serde_json::Value::String(s)), _) => {
                s.split(' ').filter(|s| !s.is_empty()).collect()
            }
            (_, Some(serde_json::Value::Array(a))) => a.iter().filter_map(|v| v.as_str()).collect(),
            (_, Some(serde_json::Value::String(s))) => {
                s.split(' ').filter(|s| !s.is_empty()).collect()
            }
            _ => Vec::new(),
        }
    }

    fn kubernetes_service_account(&self) -> Option<(&str, &str)> {
        // The nested `kubernetes.io` object of bound tokens must agree with `sub`.
        let from_sub = PolicyClaims::subject(self).and_then(parse_service_account_subject)?;
        let k8s = self.extra.get("kubernetes.io");
        match k8s {
            Some(k8s) => {
                let ns = k8s.get("namespace").and_then(|v| v.as_str());
                let name = k8s
                    .get("serviceaccount")
                    .and_then(|sa| sa.get("name"))
                    .and_then(|v| v.as_str());
                (ns == Some(from_sub.0) && name == Some(from_sub.1)).then_some(from_sub)
            }
            None => Some(from_sub),
        }
    }
}

/// Allows only these subjects (`sub`).
#[derive(Debug, Clone)]
pub struct Subjects(Arc<HashSet<String>>);

impl<T: PolicyClaims> Policy<T> for Subjects {
    fn check(&self, claims: &T) -> Result<(), Denied> {
        match claims.subject() {
            Some(sub) if self.0.contains(sub) => Ok(()),
            _ => Err(Denied::new("the token's subject is not allowed here")),
        }
    }
}

/// Allows only service accounts of these Kubernetes namespaces.
#[derive(Debug, Clone)]
pub struct Namespaces(Arc<HashSet<String>>);

impl<T: PolicyClaims> Policy<T> for Namespaces {
    fn check(&self, claims: &T) -> Result<(), Denied> {
        match claims.kubernetes_service_account() {
            Some((ns, _)) if self.0.contains(ns) => Ok(()),
            _ => Err(Denied::new(
                "the token's Kubernetes namespace is not allowed here",
            )),
        }
    }
}

/// Allows only these Kubernetes service accounts, as `namespace/name`.
#[derive(Debug, Clone)]
pub struct ServiceAccounts(Arc<HashSet<String>>);

impl<T: PolicyClaims> Policy<T> for ServiceAccounts {
    fn check(&self, claims: &T) -> Result<(), Denied> {
        match claims.kubernetes_service_account() {
            Some((ns, name)) if self.0.contains(&format!("{ns}/{name}")) => Ok(()),
            _ => Err(Denied::new(
                "the token's Kubernetes service account is not allowed here",
            )),
        }
    }
}

/// Requires every one of these scopes.
#[derive(Debug, Clone)]
pub struct Scopes(Arc<Vec<String>>);

impl<T: PolicyClaims> Policy<T> for Scopes {
    fn check(&self, claims: &T) -> Result<(), Denied> {
        let granted = claims.scopes();
        if self.0.iter().all(|s| granted.contains(&s.as_str())) {
            Ok(())
        } else {
            Err(Denied::new("the token lacks a required scope").with_scope(self.0.join(" ")))
        }
    }
}

fn set<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> Arc<HashSet<String>> {
    Arc::new(items.into_iter().map(Into::into).collect())
}

/// Applies a [`Policy`] to requests that passed [`BearerAuthLayer`](crate::BearerAuthLayer).
pub struct AuthorizeLayer<P, T = DefaultClaims, R = DefaultRejection> {
    policy: P,
    rejection: R,
    _claims: PhantomData<fn() -> T>,
}

impl<P: Policy<T>, T> AuthorizeLayer<P, T> {
    /// Applies `policy` to `Claims<T>`.
    pub fn new(policy: P) -> Self {
        Self {
            policy,
            rejection: DefaultRejection::new(),
            _claims: PhantomData,
        }
    }
}

impl AuthorizeLayer<Subjects> {
    /// Allows only these subjects.
    pub fn subjects<I: IntoIterator<Item = S>, S: Into<String>>(subjects: I) -> Self {
        Self::new(Subjects(set(subjects)))
    }
}

impl AuthorizeLayer<Namespaces> {
    /// Allows only service accounts of these Kubernetes namespaces.
    pub fn namespaces<I: IntoIterator<Item = S>, S: Into<String>>(namespaces: I) -> Self {
        Self::new(Namespaces(set(namespaces)))
    }
}

impl AuthorizeLayer<ServiceAccounts> {
    /// Allows only these Kubernetes service accounts, each as `namespace/name`.
    pub fn service_accounts<I: IntoIterator<Item = S>, S: Into<String>>(accounts: I) -> Self {
        Self::new(ServiceAccounts(set(accounts)))
    }
}

impl AuthorizeLayer<Scopes> {
    /// Requires every one of these scopes (`scope` string or `scp` array).
    pub fn scopes<I: IntoIterator<Item = S>, S: Into<String>>(scopes: I) -> Self {
        Self::new(Scopes(Arc::new(
            scopes.into_iter().map(Into::into).collect(),
        )))
    }
}

impl<P, T, R> AuthorizeLayer<P, T, R> {
    /// Applies the policy to `Claims<T2>` instead (the built-in policies work with any
    /// [`PolicyClaims`] type).
    #[must_use]
    pub fn claims<T2>(self) -> AuthorizeLayer<P, T2, R> {
        AuthorizeLayer {
            policy: self.policy,
            rejection: self.rejection,
            _claims: PhantomData,
        }
    }

    /// Builds refusals with `rejection` instead.
    #[must_use]
    pub fn with_rejection<R2>(self, rejection: R2) -> AuthorizeLayer<P, T, R2> {
        AuthorizeLayer {
            policy: self.policy,
            rejection,
            _claims: PhantomData,
        }
    }
}

impl<P: Clone, T, R: Clone> Clone for AuthorizeLayer<P, T, R> {
    fn clone(&self) -> Self {
        Self {
            policy: self.policy.clone(),
            rejection: self.rejection.clone(),
            _claims: PhantomData,
        }
    }
}

impl<P: fmt::Debug, T, R: fmt::Debug> fmt::Debug for AuthorizeLayer<P, T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizeLayer")
            .field("policy", &self.policy)
            .field("claims", &std::any::type_name::<T>())
            .field("rejection", &self.rejection)
            .finish()
    }
}

impl<S, P: Clone, T, R: Clone> Layer<S> for AuthorizeLayer<P, T, R> {
    type Service = Authorize<S, P, T, R>;

    fn layer(&self, inner: S) -> Self::Service {
        Authorize {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service built by [`AuthorizeLayer`].
pub struct Authorize<S, P, T, R> {
    inner: S,
    layer: AuthorizeLayer<P, T, R>,
}

impl<S, P, T, R> Authorize<S, P, T, R> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, P: Clone, T, R: Clone> Clone for Authorize<S, P, T, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S: fmt::Debug, P: fmt::Debug, T, R: fmt::Debug> fmt::Debug for Authorize<S, P, T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorize")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<S, P, T, R, ReqBody, ResBody> Service<Request<ReqBody>> for Authorize<S, P, T, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    P: Policy<T>,
    T: Send + Sync + 'static,
    R: RejectionResponse<ResBody>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = AuthorizeFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let decision = match req.extensions().get::<Claims<T>>() {
            Some(claims) => self
                .layer
                .policy
                .check(claims)
                .map_err(Denied::into_rejection),
            // No claims: the bearer layer is in optional mode and the request is anonymous.
            None => Err(AuthRejection::MissingToken),
        };
        match decision {
            Ok(()) => {
                let clone = self.inner.clone();
                let mut inner = mem::replace(&mut self.inner, clone);
                AuthorizeFuture::inner(inner.call(req))
            }
            Err(rejection) => {
                // Rate-limited like the bearer layer's lines: callers choose how often this runs.
                static REFUSED: crate::log_limit::LogLimiter = crate::log_limit::LogLimiter::new();
                if tracing::enabled!(tracing::Level::INFO)
                    && let Some(suppressed) = REFUSED.allow(crate::log_limit::PERIOD)
                {
                    tracing::info!(code = rejection.code(), status = rejection.status().as_u16(), reason = %rejection, suppressed, "request refused by policy");
                }
                let mut response = self.layer.rejection.response(&rejection);
                response.extensions_mut().insert(rejection);
                AuthorizeFuture::refused(response)
            }
        }
    }
}

pin_project! {
    /// The response future of [`Authorize`].
    pub struct AuthorizeFuture<F, B> {
        #[pin]
        state: AuthorizeState<F, B>,
    }
}

pin_project! {
    #[project = AuthorizeProj]
    enum AuthorizeState<F, B> {
        Inner { #[pin] future: F },
        Refused { response: Option<Response<B>> },
    }
}

impl<F, B> AuthorizeFuture<F, B> {
    fn inner(future: F) -> Self {
        Self {
            state: AuthorizeState::Inner { future },
        }
    }

    fn refused(response: Response<B>) -> Self {
        Self {
            state: AuthorizeState::Refused {
                response: Some(response),
            },
        }
    }
}

impl<F, B, E> Future for AuthorizeFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            AuthorizeProj::Inner { future } => future.poll(cx),
            AuthorizeProj::Refused { response } => {
                Poll::Ready(Ok(response.take().expect("polled after completion")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: serde_json::Value) -> DefaultClaims {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn service_account_subject_parsing() {
        let rows = [
            (
                "system:serviceaccount:prod:billing",
                Some(("prod", "billing")),
            ),
            ("system:serviceaccount:prod:", None),
            ("system:serviceaccount::billing", None),
            ("system:serviceaccount:a:b:c", None),
            ("alice", None),
        ];
        for (sub, expected) in rows {
            assert_eq!(parse_service_account_subject(sub), expected, "{sub}");
        }
    }

    #[test]
    fn built_in_policies_table() {
        let bound = claims(serde_json::json!({
            "iss": "i", "sub": "system:serviceaccount:prod:billing", "scope": "read write",
            "kubernetes.io": {"namespace": "prod", "serviceaccount": {"name": "billing", "uid": "u"}}
        }));
        let forged_sub = claims(serde_json::json!({
            "iss": "i", "sub": "system:serviceaccount:prod:billing",
            "kubernetes.io": {"namespace": "dev", "serviceaccount": {"name": "billing", "uid": "u"}}
        }));
        let scp = claims(serde_json::json!({"iss": "i", "sub": "x", "scp": ["read"]}));
        let ns = Namespaces(set(["prod"]));
        let sa = ServiceAccounts(set(["prod/billing"]));
        let subjects = Subjects(set(["system:serviceaccount:prod:billing"]));
        let read = Scopes(Arc::new(vec!["read".into()]));
        let admin = Scopes(Arc::new(vec!["read".into(), "admin".into()]));
        assert!(ns.check(&bound).is_ok());
        assert!(sa.check(&bound).is_ok());
        assert!(subjects.check(&bound).is_ok());
        assert!(read.check(&bound).is_ok());
        assert!(read.check(&scp).is_ok());
        assert_eq!(
            admin.check(&bound).unwrap_err().scope.as_deref(),
            Some("read admin")
        );
        assert!(
            ns.check(&forged_sub).is_err(),
            "sub and kubernetes.io disagree"
        );
        assert!(ns.check(&scp).is_err());
        assert!(subjects.check(&scp).is_err());
    }
}
