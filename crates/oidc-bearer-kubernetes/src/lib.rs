//! Kubernetes for [`oidc-bearer`](oidc_bearer): TokenReview, the object-binding check, and the
//! in-cluster issuer.
//!
//! - [`InCluster`]: the cluster this pod runs in, as an issuer (discovery and keys from the API
//!   server, with the pod's own token and the cluster's CA), and its API server for reviews.
//!   [`dangerous_legacy_service_account_verifier`] for legacy secret-based tokens.
//! - Decode a local verifier's claims into
//!   [`KubernetesClaims`](oidc_bearer::claims::kubernetes::KubernetesClaims) (in the core).
//!
//! Kubernetes TokenReview: ask the API server whether a token is valid — signature, expiry,
//! audience, *and* that the pod or secret it is bound to still exists — so that a deleted pod's
//! token stops working within seconds instead of at its `exp`.
//!
//! Two ways to use it:
//!
//! - [`TokenReview`], a verifier of its own (it implements [`VerifyToken`](oidc_bearer::VerifyToken), so it plugs into
//!   [`BearerAuthLayer`](oidc_bearer::BearerAuthLayer) and `IssuerRegistry` (crate `oidc-bearer-registry`)
//!   like any other). It also validates tokens of clusters that publish no discovery document.
//!   Handlers read [`TokenReviewClaims`].
//! - The object-binding check around a local [`Verifier`](oidc_bearer::Verifier):
//!   [`ObjectBindingCheck::wrap`] gives an [`ObjectBinding`], which verifies the JWT locally (the
//!   fast path) and confirms with a TokenReview at most once per interval per token.
//!
//! ```no_run
//! # fn run() -> Result<(), oidc_bearer::ConfigError> {
//! use oidc_bearer::BearerAuthLayer;
//! use oidc_bearer_kubernetes::InCluster;
//! use oidc_bearer_kubernetes::{TokenReview, TokenReviewClaims};
//!
//! // The pod's own token and CA authenticate the reviews; tokens must be meant for "my-service".
//! let review = TokenReview::builder(InCluster::new().api_server()?, "my-service").build()?;
//! let layer = BearerAuthLayer::new(review).claims::<TokenReviewClaims>();
//! # Ok(()) }
//! ```
//!
//! The service account sending reviews needs `create` on `tokenreviews.authentication.k8s.io`:
//! bind it to the `system:auth-delegator` cluster role (see [the TokenReview notes](https://example.invalid/oidc-bearer/blob/main/docs/tokenreview.md)
//! for the manifest and the API-server load to expect).
//!
//! Answers are cached by the SHA-256 of the token's signature, a hit matching the rest of the
//! token byte for byte (the token itself is never kept): acceptances for 30 s and never past the
//! token's `exp`, refusals for 5 s. One review is in flight per token however many requests carry
//! it, and it runs detached: a request that goes away neither cancels nor repeats it. Reviews are
//! capped (8 at once) and time out (5 s); [`TokenReviewSettings`] changes these. Anything that is
//! not a well-formed, unexpired JWS is refused before any review, so garbage never costs an API call.
//! An API server that cannot answer (down, 5xx, 429, timeout) or that refuses our own credentials
//! (401/403, logged at ERROR as a configuration mistake) gives 503 with `Retry-After`, never an
//! acceptance.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod in_cluster;
mod tokenreview;

pub use self::{
    error::ReviewError,
    in_cluster::{InCluster, dangerous_legacy_service_account_verifier},
    tokenreview::{
        ApiServer, ApiServerBuilder, BindingCheck, ObjectBinding, ObjectBindingCheck, TokenReview,
        TokenReviewBuilder, TokenReviewClaims, TokenReviewSettings, TokenReviewStats,
    },
};

use std::sync::Arc;

use oidc_bearer::clock::Clock;

/// The clock a verifier reads (shared with the local verifier a check wraps).
type SharedClock = Arc<dyn Clock>;
/// A SHA-256 digest: the answer cache's key (of a token's signature segment, as the token cache's).
type Sha256 = [u8; 32];
