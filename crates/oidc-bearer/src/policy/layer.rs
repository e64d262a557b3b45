//! [`AuthorizeLayer`]: a [`Policy`] applied per route, after the bearer layer.

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

use super::{Denied, Namespaces, Policy, Scopes, ServiceAccounts, Subjects, set};
use crate::claims::DefaultClaims;
use crate::layer::Claims;
use crate::rejection::{AuthRejection, DefaultRejection, RejectionResponse};

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
