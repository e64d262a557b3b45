//! Issuers by name: presets for GKE clusters and Google (ID tokens, service-account JWTs). The
//! in-cluster Kubernetes preset (`InCluster`) and legacy tokens are in crate
//! `oidc-bearer-kubernetes`. Hand them to an `IssuerRegistry` (crate `oidc-bearer-registry`) to
//! trust many issuers at once.
//!
//! A preset is a function that returns a [`VerifierBuilder`](crate::VerifierBuilder) with the issuer's
//! quirks set; finish it with your own settings and `build`, or hand it to a registry.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use oidc_bearer::issuers::{self, gke::GkeClusters};
//! use oidc_bearer_registry::IssuerRegistry;
//! use oidc_bearer::claims::DefaultClaims;
//!
//! // Trust every GKE cluster of two projects, and Google's ID tokens.
//! let registry = IssuerRegistry::builder()
//!     .with_pattern(GkeClusters::new("my-service").project("prod-1").project("prod-2"))
//!     .with_issuer(issuers::google::id_token_verifier("my-service"))
//!     .build()?;
//! # let token = "";
//! let claims: DefaultClaims = registry.verify(token).await?;
//! # Ok(()) }
//! ```

pub mod gke;
pub mod google;
mod pattern;

pub use pattern::IssuerPattern;

use std::sync::Arc;

/// A pattern's hook that finishes each builder it makes (clock, cache settings, test URLs...);
/// without one, the builder is used as made.
#[derive(Clone, Default)]
pub(crate) struct Configure(Option<Arc<ConfigureFn>>);

type ConfigureFn = dyn Fn(crate::VerifierBuilder, &str) -> crate::VerifierBuilder + Send + Sync;

impl Configure {
    pub(crate) fn new<F>(configure: F) -> Self
    where
        F: Fn(crate::VerifierBuilder, &str) -> crate::VerifierBuilder + Send + Sync + 'static,
    {
        Self(Some(Arc::new(configure)))
    }

    /// `builder`, finished by the hook for `issuer`.
    pub(crate) fn apply(
        &self,
        builder: crate::VerifierBuilder,
        issuer: &str,
    ) -> crate::VerifierBuilder {
        match &self.0 {
            Some(configure) => configure(builder, issuer),
            None => builder,
        }
    }
}
