//! [`AuthorizeLayer`]: a [`Policy`] applied per route, after the bearer layer.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::mem;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::{Layer, Stack};
use tower_service::Service;

use super::{Denied, Policy};
use crate::claims::DefaultClaims;
use crate::layer::{Anonymous, BearerAuthLayer, BearerRan, Claims, refuse};
use crate::rejection::{AuthRejection, DefaultRejection, RejectionResponse};

/// Applies a [`Policy`] to requests that passed [`BearerAuthLayer`](crate::BearerAuthLayer), per
/// route. Prefer [`BearerAuthLayer::authorize`](crate::BearerAuthLayer::authorize) where one bearer
/// layer guards the route: it types the policy by the layer's claims.
///
/// It reads `Claims<T>`, where `T` is [`DefaultClaims`] unless named with [`claims`](Self::claims).
/// A request without `Claims<T>` although a bearer layer ran (it decodes another type), or that no
/// bearer layer handled before this one (the wrong order), is answered **500** and logged at ERROR
/// with the fix; only a request that an optional bearer layer let through without credentials gets
/// a 401.
///
/// ```
/// use axum::{Router, routing::get};
/// use oidc_bearer::policy::{self, AuthorizeLayer};
/// use oidc_bearer::{BearerAuthLayer, ConfigError, Verifier};
///
/// let verifier = Verifier::new("https://issuer.example", "my-service")?;
/// let app: Router = Router::new()
///     .route("/admin", get(|| async { "admin" }))
///     // With `route_layer`, the layer added last runs first: the policy goes first.
///     .route_layer(AuthorizeLayer::new(policy::subjects(["system:serviceaccount:ops:deployer"])))
///     .route("/private", get(|| async { "private" }))
///     .route_layer(BearerAuthLayer::new(verifier));
/// # Ok::<(), oidc_bearer::ConfigError>(())
/// ```
pub struct AuthorizeLayer<P, T = DefaultClaims, R = DefaultRejection> {
    policy: P,
    rejection: R,
    _claims: PhantomData<fn() -> T>,
}

impl<P> AuthorizeLayer<P> {
    /// Applies `policy` to `Claims<DefaultClaims>`; name the claims type of your bearer layer with
    /// [`claims`](Self::claims) (a policy over another type, a closure on `&MyClaims` say, needs it).
    pub fn new(policy: P) -> Self {
        Self::from_parts(policy, DefaultRejection::new())
    }
}

impl<P, T, R> AuthorizeLayer<P, T, R> {
    pub(crate) fn from_parts(policy: P, rejection: R) -> Self {
        Self {
            policy,
            rejection,
            _claims: PhantomData,
        }
    }
}

/// Here rather than beside [`BearerAuthLayer`]'s other methods so that `policy` builds on `layer`,
/// never the other way round.
impl<V, T, R, Src> BearerAuthLayer<V, T, R, Src> {
    /// Applies `policy` to every request this layer lets through, typed by this layer's claims type
    /// `T` — so it cannot be attached to the wrong type or in the wrong order. Refusals (403) are
    /// built by this layer's rejection builder. Call it last: it returns the two layers stacked.
    ///
    /// ```
    /// use oidc_bearer::policy;
    /// use oidc_bearer::rejection::DefaultRejection;
    /// use oidc_bearer::{BearerAuthLayer, ConfigError, Verifier};
    ///
    /// let verifier = Verifier::new("https://issuer.example", "my-service")?;
    /// let layer = BearerAuthLayer::new(verifier)
    ///     .with_rejection(DefaultRejection::new().with_realm("billing"))
    ///     .authorize(policy::namespaces(["prod"]).for_issuer(["https://issuer.example"]));
    /// # Ok::<(), ConfigError>(())
    /// ```
    ///
    /// In optional mode, a request without credentials reaches the policy with no claims and is
    /// answered 401 (`MissingToken`): a policy needs a caller.
    pub fn authorize<P: Policy<T>>(self, policy: P) -> Stack<AuthorizeLayer<P, T, R>, Self>
    where
        R: Clone,
    {
        let authorize = AuthorizeLayer::from_parts(policy, self.rejection().clone());
        // Stack::new(inner, outer): this layer runs first, the policy after it.
        Stack::new(authorize, self)
    }
}

impl<P, T, R> AuthorizeLayer<P, T, R> {
    /// Applies the policy to `Claims<T2>` instead (the built-in policies work with any
    /// [`PolicyClaims`](super::PolicyClaims) type).
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
    crate::layer::define_inner_service_accessors!();
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
        let extensions = req.extensions();
        let decision = match extensions.get::<Claims<T>>() {
            Some(claims) => self
                .layer
                .policy
                .check(claims)
                .map_err(Denied::into_rejection),
            // An optional bearer layer for `T` let a request without credentials through: the
            // client must authenticate (RFC 6750 §3.1, a challenge without an `error`).
            None if extensions.get::<Anonymous<T>>().is_some() => Err(AuthRejection::MissingToken),
            // Not the client's fault: never a 401 that would send it looking for a better token.
            None => Err(misconfigured::<T>(extensions.get::<BearerRan>().is_some())),
        };
        match decision {
            Ok(()) => {
                let clone = self.inner.clone();
                let mut inner = mem::replace(&mut self.inner, clone);
                AuthorizeFuture::inner(inner.call(req))
            }
            Err(rejection) => AuthorizeFuture::refused(refuse(&self.layer.rejection, rejection)),
        }
    }
}

/// The 500 for a policy that found no `Claims<T>`, naming the fix.
fn misconfigured<T>(bearer_ran: bool) -> AuthRejection {
    let claims = std::any::type_name::<T>();
    let message = if bearer_ran {
        format!(
            "a policy on `Claims<{claims}>` found no such claims although a bearer layer ran: that \
             layer decodes another claims type. Pass the policy to the bearer layer, which types it by \
             the layer's claims (`BearerAuthLayer::new(verifier).claims::<{claims}>().authorize(policy)`), \
             or name the layer's type with `AuthorizeLayer::claims::<T>()`"
        )
    } else {
        format!(
            "a policy on `Claims<{claims}>` ran before any bearer layer: pass the policy to the bearer \
             layer (`BearerAuthLayer::new(verifier).claims::<{claims}>().authorize(policy)`), or put \
             `BearerAuthLayer` in front of the policy (with axum's \
             `route_layer`, the layer added last runs first: add the policy first)"
        )
    };
    AuthRejection::Misconfigured(message)
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
