//! Accept workloads' identity tokens — Kubernetes service-account tokens, Google ID tokens, any
//! OpenID Connect issuer's JWTs — in tower and axum services, safely and fast.
//!
//! # Quick start
//!
//! A verifier for an issuer and an audience, layered onto `/private`; handlers read [`Claims<T>`]:
//!
//! ```
//! # #[cfg(feature = "axum")] {
//! use axum::{Router, routing::get};
//! use oidc_bearer::{BearerAuthLayer, Claims, Verifier, claims::DefaultClaims};
//!
//! let verifier = Verifier::new("https://issuer.example", "my-service")?;
//! let app: Router = Router::new()
//!     .route("/private", get(|Claims(c): Claims<DefaultClaims>| async move { format!("hello {}", c.subject()) }))
//!     .route_layer(BearerAuthLayer::new(verifier))
//!     .route("/", get(|| async { "open" }));
//! # }
//! # Ok::<(), oidc_bearer::ConfigError>(())
//! ```
//!
//! Keys are found by OpenID Connect Discovery on first use, cached, and followed through rotation;
//! construction never contacts the issuer. Without HTTP, call [`Verifier::verify`] directly.
//!
//! # The flow, one module each
//!
//! request → [`bearer`] (read `Authorization: Bearer`) → [`layer`] → [`verify`] (→ [`cache`] for
//! tokens seen before → [`keys`] → [`discovery`]) → [`claims`] into the request's extensions →
//! your handler ([`axum`](mod@crate::axum) extractor), or → [`rejection`] (401/400/503) and
//! [`policy`] (403). Many issuers at once: [`issuers`]. Asking the Kubernetes API server (TokenReview,
//! revocation of a deleted pod's token): [`tokenreview`]. Errors per phase: [`error`].
//!
//! [`Verifier::verify`] takes the token apart and rejects garbage before any crypto
//! ([`VerifyError::Malformed`], [`VerifyError::TooLarge`]), binds the header's `alg` to the key
//! found by `kid` in the issuer's [key set](keys), checks the signature, then the claims (`iss`,
//! `aud`, `exp`, `nbf`, `iat`), and finally decodes the payload into your claims type.
//!
//! # Crypto backends
//!
//! Feature `aws-lc-rs` (default) or `rust-crypto`. At least one must be enabled (a compile error says
//! so otherwise); when both are, aws-lc-rs is used. This library never relies on jsonwebtoken's
//! process-wide provider selection, which panics at the first verification when both or neither of
//! its backends are enabled.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod algorithm;
#[cfg(feature = "axum")]
pub mod axum;
pub mod bearer;
pub mod cache;
pub mod claims;
pub mod clock;
mod crypto;
pub mod discovery;
pub mod error;
mod fetch;
pub mod issuers;
pub mod keys;
pub mod layer;
mod log_limit;
pub mod metrics;
pub mod policy;
pub mod rejection;
mod token;
pub mod tokenreview;
pub mod verify;

pub use algorithm::{Algorithm, UnknownAlgorithm};
pub use error::{ConfigError, KeysError, VerifyError};
pub use fetch::HttpSettings;
pub use issuers::IssuerRegistry;
pub use layer::{BearerAuthLayer, Claims};
pub use verify::{Verifier, VerifierBuilder, VerifyToken};
