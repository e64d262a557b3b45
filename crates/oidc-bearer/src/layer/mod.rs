//! The tower middleware: [`BearerAuthLayer`] (configuration), [`BearerAuth`] (the service) and
//! [`BearerAuthFuture`] (verification, then the inner service), re-exported at the crate root; the
//! one place a refusal becomes a response and is logged.

/// `get_ref`, `get_mut` and `into_inner` for a middleware service whose inner service `S` is its
/// field `inner` (tower-http defines its services' accessors with a macro of this name).
macro_rules! define_inner_service_accessors {
    () => {
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
    };
}
pub(crate) use define_inner_service_accessors;

mod dpop;
pub(crate) mod future;
#[allow(clippy::module_inception)]
pub(crate) mod layer;
mod refusal;
pub(crate) mod service;

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

pub(crate) use layer::BearerAuthLayer;
pub(crate) use refusal::refuse;
pub(crate) use service::BearerAuth;

/// A request's verified claims, as the layer puts them into the request's extensions.
///
/// The claims are shared (`Arc`), so handing them to a handler (or serving them from the verified-token
/// cache) copies nothing. `Claims<T>` dereferences to `T`. With the `axum` feature it is also an
/// extractor: take `Claims<T>` or `Option<Claims<T>>` in a handler.
///
/// Required and optional routes side by side, with claims of your own type:
///
/// ```
/// use axum::{Router, routing::get};
/// use oidc_bearer::claims::RegisteredClaims;
/// use oidc_bearer::{BearerAuthLayer, Claims, ConfigError, Verifier};
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// struct MyClaims {
///     #[serde(flatten)]
///     registered: RegisteredClaims,
///     email: Option<String>,
/// }
///
/// async fn private(Claims(c): Claims<MyClaims>) -> String {
///     format!("hello {}", c.email.as_deref().unwrap_or("stranger"))
/// }
///
/// async fn maybe(claims: Option<Claims<MyClaims>>) -> &'static str {
///     if claims.is_some() { "signed in" } else { "anonymous" }
/// }
///
/// let verifier = Verifier::new("https://issuer.example", "my-service")?;
/// let layer = BearerAuthLayer::new(verifier).claims::<MyClaims>();
/// let app: Router = Router::new()
///     .route("/private", get(private))
///     .route_layer(layer.clone())
///     // Without credentials: let through, no claims. With a bad token: still 401.
///     .merge(Router::new().route("/maybe", get(maybe)).route_layer(layer.optional()));
/// # Ok::<(), oidc_bearer::ConfigError>(())
/// ```
pub struct Claims<T>(pub Arc<T>);

impl<T> Clone for Claims<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> Deref for Claims<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: fmt::Debug> fmt::Debug for Claims<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Claims").field(&self.0).finish()
    }
}

/// Put into a request's extensions by every bearer layer that handled it, so that a policy finding
/// no claims of its type can tell a wiring mistake (500, naming the fix) from an anonymous request
/// (401). Zero-sized: inserting it allocates nothing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BearerRan;

/// Put into the extensions of a request without credentials that an optional bearer layer decoding
/// `T` let through.
pub(crate) struct Anonymous<T>(PhantomData<fn() -> T>);

impl<T> Anonymous<T> {
    pub(crate) fn new() -> Self {
        Self(PhantomData)
    }
}

impl<T> Clone for Anonymous<T> {
    fn clone(&self) -> Self {
        Self::new()
    }
}
