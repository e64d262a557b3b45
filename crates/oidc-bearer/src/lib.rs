//! Accept workloads' identity tokens — Kubernetes service-account tokens, Google ID tokens, any
//! OpenID Connect issuer's JWTs — in tower and axum services, safely and fast.
//!
//! # Quick start
//!
//! A verifier for an issuer and an audience, layered onto `/private`; handlers read [`Claims<T>`].
//! The core types are at the crate root, each feature in its module:
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use oidc_bearer::claims::DefaultClaims;
//! use oidc_bearer::{BearerAuthLayer, Claims, Verifier};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let verifier = Verifier::new("https://issuer.example", "my-service")?;
//!     // Fail fast: refuse to start rather than answer 503 until the issuer is reachable
//!     // (go-oidc's `NewProvider` does the same). Leave it out to start regardless.
//!     verifier.ready().await?;
//!
//!     let app = Router::new()
//!         .route("/private", get(|Claims(c): Claims<DefaultClaims>| async move {
//!             format!("hello {}", c.subject().unwrap_or_default())
//!         }))
//!         .route_layer(BearerAuthLayer::new(verifier))
//!         .route("/", get(|| async { "open" }));
//!     let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await?;
//!     axum::serve(listener, app).await?;
//!     Ok(())
//! }
//! ```
//!
//! Keys are found by OpenID Connect Discovery on first use, cached, and followed through rotation;
//! construction never contacts the issuer. Without HTTP, call [`Verifier::verify`] directly.
//!
//! # The flow
//!
//! request → [`bearer`] (read `Authorization: Bearer`) → [`BearerAuthLayer`] → [`Verifier`] (→ the
//! [`cache`] of tokens seen before → the issuer's [`keys`], found by OpenID Connect Discovery) →
//! [`claims`] into the request's extensions as [`Claims<T>`] → your handler
//! ([`axum`](mod@crate::axum) extractor), or → [`rejection`] (401/400/503) and [`policy`] (403).
//! Many issuers at once (each token checked by its own issuer's verifier, new issuers admitted by
//! pattern): crate `oidc-bearer-registry`, with presets by issuer kind in [`issuers`]. Asking the
//! Kubernetes API server (TokenReview, revocation of a deleted pod's token), and the in-cluster
//! preset: crate `oidc-bearer-kubernetes`, through [`confirm`].
//!
//! Errors come one type per phase: configuring a verifier ([`ConfigError`]), fetching an issuer's
//! keys ([`KeysError`]) and verifying a token ([`VerifyError`], with its [`Phase`]). Each carries the
//! data a report needs and a stable, machine-readable `code()` for logs and metrics; no third-party
//! error type appears in the public API.
//!
//! [`Verifier::verify`] takes the token apart and rejects garbage before any crypto
//! ([`VerifyError::Malformed`], [`VerifyError::TooLarge`]), binds the header's `alg` to the key
//! found by `kid` in the issuer's [key set](keys), checks the signature, then the claims (`iss`,
//! `aud`, `exp`, `nbf`, `iat`), and finally decodes the payload into your claims type.
//!
//! # Verifying without HTTP
//!
//! A [`Verifier`] checks one issuer's tokens; here against a [`TestIssuer`] (crate
//! `oidc-bearer-testing`), a real issuer on 127.0.0.1 with real keys:
//!
//! [`TestIssuer`]: https://docs.rs/oidc-bearer-testing
//!
//! ```
//! use oidc_bearer::claims::DefaultClaims;
//! use oidc_bearer::Verifier;
//! use oidc_bearer_testing::TestIssuer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let issuer = TestIssuer::start().await;
//! let verifier = Verifier::new(issuer.issuer(), "my-service").unwrap();
//!
//! let token = issuer.token().sub("alice").aud("my-service").sign();
//! let claims: DefaultClaims = verifier.verify(&token).await.unwrap();
//! assert_eq!(claims.subject(), Some("alice"));
//!
//! let other = issuer.token().aud("another-service").sign();
//! let error = verifier.verify::<DefaultClaims>(&other).await.unwrap_err();
//! assert_eq!(error.code(), "audience_mismatch");
//! # }
//! ```
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
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
pub mod bearer;
pub mod cache;
pub mod claims;
pub mod clock;
pub mod confirm;
mod crypto;
mod discovery;
mod dpop;
mod error;
mod fetch;
pub mod issuers;
pub mod keys;
mod layer;
pub mod metrics;
pub mod policy;
pub mod rejection;
mod sealed;
mod token;
mod verify;

// The core, at the root: each item has this one path (the modules that define them are private).
// A module's re-exports are one statement, its public list.
pub use self::{
    algorithm::{Algorithm, UnknownAlgorithm},
    dpop::{Dpop, DpopMode, DpopThumbprint},
    error::{
        Escaped, config::ConfigError, dpop::DpopError, keys::KeysError, source::ReviewSource,
        verify::Phase, verify::VerifyError,
    },
    layer::{Claims, future::BearerAuthFuture, layer::BearerAuthLayer, service::BearerAuth},
    sealed::Presented,
    verify::{Verifier, VerifyToken, builder::VerifierBuilder},
};
// Why an HTTP exchange failed (status, transport, timeout, size cap), wrapped by `KeysError::Fetch`
// (and oidc-bearer-kubernetes' `ReviewError::Fetch`); why detached work (a key fetch, a
// TokenReview) gave no outcome, wrapped by `KeysError::Flight` (and `ReviewError::Flight`).
pub use oidc_bearer_shared::{fetch::FetchError, flight::FlightError};

/// Internals that `oidc-bearer-kubernetes` and `oidc-bearer-registry` (released with this crate,
/// same version) use. Not public API: no stability promise, may change in any release.
///
/// Nothing here can pair a digest with other bytes ([`cache::TokenKey`] is built only from the
/// bytes it borrows, [`Presented`] only inside this crate), and nothing here makes a verifier
/// accept bytes it did not verify: `IssuerRead` keeps a token's bytes with their parse, and a
/// verifier given one verifies and caches exactly those bytes. What the other crates may do with a
/// verifier and its builder is one contract each, `VerifierAccess` and `BuilderAccess` (in
/// `verify/access.rs`): `cached_key` answers only from the verifier's own cache, for the bytes of
/// the key; the rest read or configure, and accept nothing. So do `TokenCacheSettings::validate`
/// and `Presented::hashed` (the digest of its own bytes).
#[doc(hidden)]
pub mod __private {
    pub use crate::{
        discovery::discovery_url,
        error::Excerpt,
        fetch::{
            Credential, CredentialFuture, SharedClients, USER_AGENT, bearer_authorization, client,
            credential, parse_url,
        },
        verify::{
            DEFAULT_MAX_TOKEN_BYTES, WeakVerifier,
            access::{BuilderAccess, VerifierAccess},
            claims_decode_error,
            read::IssuerRead,
            rules::{review_check_size, review_precheck},
        },
    };

    /// An issuer registry's pattern issuers changed: how many are proven and on probation now (of the
    /// registry that changed last, when a process has several).
    #[inline]
    pub fn registry_issuers(proven: usize, probation: usize) {
        #[cfg(feature = "metrics")]
        {
            ::metrics::gauge!("oidc_bearer_registry_issuers", "state" => "proven")
                .set(proven as f64);
            ::metrics::gauge!("oidc_bearer_registry_issuers", "state" => "probation")
                .set(probation as f64);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (proven, probation);
    }
}
