//! The axum extractor: handlers take [`Claims<T>`] or `Option<Claims<T>>`.
//!
//! ```
//! use axum::{Router, routing::get};
//! use oidc_bearer::claims::DefaultClaims;
//! use oidc_bearer::{BearerAuthLayer, Claims, Verifier};
//!
//! async fn private(Claims(claims): Claims<DefaultClaims>) -> String {
//!     format!("hello {}", claims.subject().unwrap_or_default())
//! }
//!
//! let verifier = Verifier::new("https://issuer.example", "my-service").unwrap();
//! let app: Router = Router::new()
//!     .route("/private", get(private))
//!     // `route_layer`: only matched routes are guarded, so unknown paths stay 404 instead of 401.
//!     .route_layer(BearerAuthLayer::new(verifier))
//!     .route("/", get(|| async { "open" }));
//! ```

use std::any::type_name;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;

use crate::layer::{Claims, refuse};
use crate::rejection::{AuthRejection, DefaultRejection};

/// The rejection of the [`Claims`] extractor when the layer is missing (or was configured for another
/// claims type): a programmer error, answered like a policy that finds no claims
/// ([`AuthRejection::Misconfigured`]): 500, a body that says what to add, logged at ERROR.
#[derive(Debug, Clone)]
pub struct MissingClaimsLayer {
    pub(crate) type_name: &'static str,
}

impl std::fmt::Display for MissingClaimsLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Missing request extension `Claims<{0}>`: add `BearerAuthLayer::new(verifier).claims::<{0}>()` \
             in front of this handler (with `.layer` or `.route_layer`)",
            self.type_name
        )
    }
}

impl std::error::Error for MissingClaimsLayer {}

impl IntoResponse for MissingClaimsLayer {
    /// 500, logged at ERROR with the fix: the one "wired wrong" answer, as a policy gives.
    fn into_response(self) -> Response {
        let reason = AuthRejection::Misconfigured(self.to_string());
        refuse(&DefaultRejection::new(), reason)
    }
}

impl<S, T> FromRequestParts<S> for Claims<T>
where
    S: Send + Sync,
    T: Send + Sync + 'static,
{
    type Rejection = MissingClaimsLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Claims<T>>()
            .cloned()
            .ok_or(MissingClaimsLayer {
                type_name: type_name::<T>(),
            })
    }
}

impl<S, T> OptionalFromRequestParts<S> for Claims<T>
where
    S: Send + Sync,
    T: Send + Sync + 'static,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Claims<T>>().cloned())
    }
}
