//! Accept workloads' identity tokens — Kubernetes service-account tokens, Google ID tokens, any
//! OpenID Connect issuer's JWTs — in tower and axum services, safely and fast.
//!
//! # Quick start
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use oidc_bearer::{Verifier, claims::DefaultClaims};
//!
//! // Keys are found by OpenID Connect Discovery, cached, and followed through rotation.
//! let verifier = Verifier::new("https://issuer.example", "my-service")?;
//! # let token = "";
//! let claims: DefaultClaims = verifier.verify(token).await?;
//! assert_eq!(claims.registered.iss, "https://issuer.example");
//! # Ok(()) }
//! ```
//!
//! # How a token is verified
//!
//! [`Verifier::verify`] takes the token apart and rejects garbage before any crypto
//! ([`VerifyError::Malformed`], [`VerifyError::TooLarge`]), binds the header's `alg` to the key
//! found by `kid` in the issuer's [key set](keys), checks the signature, then the claims (`iss`,
//! `aud`, `exp`, `nbf`, `iat`), and finally decodes the payload into your claims type.
//!
//! The flow, one module each: [`verify`] → [`keys`] (→ [`discovery`]) → [`claims`]; errors per
//! phase in [`error`].
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
pub mod policy;
pub mod rejection;
mod token;
pub mod verify;

pub use algorithm::{Algorithm, UnknownAlgorithm};
pub use error::{ConfigError, KeysError, VerifyError};
pub use fetch::HttpSettings;
pub use issuers::IssuerRegistry;
pub use layer::{BearerAuthLayer, Claims};
pub use verify::{Verifier, VerifierBuilder, VerifyToken};
