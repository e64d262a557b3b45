//! [`BearerAuthLayer`]: configuration of the middleware.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use tower_layer::Layer;

use super::BearerAuth;
use crate::bearer::{AuthorizationHeader, TokenExtractor};
use crate::claims::DefaultClaims;
use crate::dpop::{Dpop, DpopCheck};
use crate::rejection::DefaultRejection;

/// Requires a valid bearer token on every request of the wrapped service.
///
/// Generic over the token verifier `V` (a [`Verifier`](crate::Verifier) or anything implementing
/// [`VerifyToken`](crate::VerifyToken)), the claims type `T` (default [`DefaultClaims`]), the rejection
/// response builder `R` and the token extractor `Src`.
///
/// ```
/// use oidc_bearer::claims::kubernetes::KubernetesClaims;
/// use oidc_bearer::policy;
/// use oidc_bearer::rejection::{AuthRejection, DefaultRejection};
/// use oidc_bearer::{BearerAuthLayer, Claims, ConfigError, Verifier};
///
/// let verifier = Verifier::new("https://kubernetes.default.svc.cluster.local", "my-service")?;
/// let layer = BearerAuthLayer::new(verifier)
///     .claims::<KubernetesClaims>()                      // handlers take Claims<KubernetesClaims>
///     .with_rejection(DefaultRejection::new().with_realm("billing")
///         .with_body(|r: &AuthRejection| format!("{{\"reason\":\"{}\"}}", r.code())))
///     .authorize(policy::namespaces(["prod"]));         // 403 for other namespaces; call it last
/// # Ok::<(), oidc_bearer::ConfigError>(())
/// ```
///
/// Any tower service, not only axum's: the layer puts the claims into the request's extensions as
/// [`Claims<T>`](crate::Claims), or answers itself without calling the inner service.
///
/// ```
/// use oidc_bearer::{BearerAuthLayer, Claims, Verifier};
/// use oidc_bearer::claims::DefaultClaims;
/// use std::convert::Infallible;
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let verifier = Verifier::new("https://issuer.example", "my-service").unwrap();
/// let service = ServiceBuilder::new()
///     .layer(BearerAuthLayer::new(verifier))
///     .service(service_fn(|req: http::Request<String>| async move {
///         let claims = req.extensions().get::<Claims<DefaultClaims>>().unwrap();
///         Ok::<_, Infallible>(http::Response::new(format!("hello {}", claims.subject().unwrap_or_default())))
///     }));
///
/// // No token: 401 with a challenge, and the inner service is not called.
/// let response = service.oneshot(http::Request::new(String::new())).await.unwrap();
/// assert_eq!(response.status(), 401);
/// assert_eq!(response.headers()["www-authenticate"], r#"Bearer realm="api""#);
/// # }
/// ```
pub struct BearerAuthLayer<V, T = DefaultClaims, R = DefaultRejection, Src = AuthorizationHeader> {
    pub(super) verifier: V,
    pub(super) rejection: R,
    pub(super) source: Src,
    pub(super) optional: bool,
    /// DPoP (RFC 9449), when on: shared by clones, with its replay memory.
    pub(super) dpop: Option<Arc<DpopCheck>>,
    pub(super) _claims: PhantomData<fn() -> T>,
}

impl<V> BearerAuthLayer<V> {
    /// Requires tokens verified by `verifier`, decoded as [`DefaultClaims`], read from
    /// `Authorization: Bearer`, rejected with [`DefaultRejection`].
    pub fn new(verifier: V) -> Self {
        Self {
            verifier,
            rejection: DefaultRejection::new(),
            source: AuthorizationHeader,
            optional: false,
            dpop: None,
            _claims: PhantomData,
        }
    }
}

impl<V, T, R, Src> BearerAuthLayer<V, T, R, Src> {
    /// Decodes the claims as `T2` instead (any `DeserializeOwned + Send + Sync + 'static` type);
    /// handlers then take `Claims<T2>`.
    #[must_use]
    pub fn claims<T2>(self) -> BearerAuthLayer<V, T2, R, Src> {
        BearerAuthLayer {
            verifier: self.verifier,
            rejection: self.rejection,
            source: self.source,
            optional: self.optional,
            dpop: self.dpop,
            _claims: PhantomData,
        }
    }

    /// Lets requests without credentials through without claims (handlers take `Option<Claims<T>>`);
    /// a request with a bad token is still rejected. Envoy calls this `allow_missing`.
    #[must_use]
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    /// Builds rejection responses with `rejection` instead (a
    /// [`RejectionResponse`](crate::rejection::RejectionResponse), e.g. a closure).
    #[must_use]
    pub fn with_rejection<R2>(self, rejection: R2) -> BearerAuthLayer<V, T, R2, Src> {
        BearerAuthLayer {
            verifier: self.verifier,
            rejection,
            source: self.source,
            optional: self.optional,
            dpop: self.dpop,
            _claims: PhantomData,
        }
    }

    /// Reads tokens with `extractor` instead of from the `Authorization` header (e.g.
    /// [`HeaderToken`](crate::bearer::HeaderToken) for another header, or a closure).
    #[must_use]
    pub fn with_token_extractor<Src2: TokenExtractor>(
        self,
        extractor: Src2,
    ) -> BearerAuthLayer<V, T, R, Src2> {
        BearerAuthLayer {
            verifier: self.verifier,
            rejection: self.rejection,
            source: extractor,
            optional: self.optional,
            dpop: self.dpop,
            _claims: PhantomData,
        }
    }

    /// Takes DPoP-bound tokens (RFC 9449) as `dpop` says: `Authorization: DPoP <token>` with a
    /// `DPoP` proof header, checked against the request and bound to the token's `cnf.jkt`
    /// ([`DpopMode::Required`](crate::DpopMode::Required)), or that and `Bearer` tokens that are
    /// not bound ([`DpopMode::Allowed`](crate::DpopMode::Allowed)). Refusals are
    /// [`AuthRejection::Dpop`](crate::rejection::AuthRejection::Dpop) with a `DPoP` challenge;
    /// handlers find the proof key's [`DpopThumbprint`](crate::DpopThumbprint) in the request's
    /// extensions. `Bearer` tokens are still read by the layer's token extractor; DPoP ones
    /// always from `Authorization`.
    ///
    /// The token's `cnf` is read from its JWT payload once the verifier has accepted it, so the
    /// verifier must accept only the exact token it was given (this crate's verifiers do).
    #[must_use]
    pub fn with_dpop(mut self, dpop: Dpop) -> Self {
        self.dpop = dpop.build();
        self
    }
}

impl<V, T, R, Src> BearerAuthLayer<V, T, R, Src> {
    /// The rejection builder, for the layers stacked on this one.
    pub(crate) fn rejection(&self) -> &R {
        &self.rejection
    }
}

impl<V: Clone, T, R: Clone, Src: Clone> Clone for BearerAuthLayer<V, T, R, Src> {
    fn clone(&self) -> Self {
        Self {
            verifier: self.verifier.clone(),
            rejection: self.rejection.clone(),
            source: self.source.clone(),
            optional: self.optional,
            dpop: self.dpop.clone(),
            _claims: PhantomData,
        }
    }
}

impl<V: fmt::Debug, T, R: fmt::Debug, Src: fmt::Debug> fmt::Debug
    for BearerAuthLayer<V, T, R, Src>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerAuthLayer")
            .field("verifier", &self.verifier)
            .field("claims", &std::any::type_name::<T>())
            .field("rejection", &self.rejection)
            .field("source", &self.source)
            .field("optional", &self.optional)
            .field("dpop", &self.dpop.as_ref().map(|d| d.mode()))
            .finish()
    }
}

impl<S, V: Clone, T, R: Clone, Src: Clone> Layer<S> for BearerAuthLayer<V, T, R, Src> {
    type Service = BearerAuth<S, V, T, R, Src>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerAuth {
            inner,
            layer: self.clone(),
        }
    }
}
