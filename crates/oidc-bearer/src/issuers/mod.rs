//! Issuers by name: presets for Kubernetes (in-cluster, GKE, legacy tokens) and Google (ID tokens,
//! service-account JWTs), and [`IssuerRegistry`], which trusts many issuers at once.
//!
//! A preset is a function that returns a [`VerifierBuilder`](crate::VerifierBuilder) with the issuer's
//! quirks set; finish it with your own settings and `build`, or hand it to a registry.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use oidc_bearer::issuers::{self, IssuerRegistry, gke::GkeClusters};
//! use oidc_bearer::claims::DefaultClaims;
//!
//! // Trust this pod's own cluster, every GKE cluster of two projects, and Google's ID tokens.
//! let registry = IssuerRegistry::builder()
//!     .with_issuer(
//!         issuers::kubernetes::InCluster::new()
//!             .verifier_builder("https://kubernetes.default.svc.cluster.local", "my-service")?,
//!     )
//!     .with_pattern(GkeClusters::new("my-service").project("prod-1").project("prod-2"))
//!     .with_issuer(issuers::google::id_token_verifier("my-service"))
//!     .build()?;
//! # let token = "";
//! let claims: DefaultClaims = registry.verify(token).await?;
//! # Ok(()) }
//! ```

pub mod gke;
pub mod google;
pub mod kubernetes;

pub use crate::registry::{
    DEFAULT_MAX_LIVE_ISSUERS, DEFAULT_MAX_PENDING_ISSUERS, DEFAULT_NEGATIVE_TTL,
    DEFAULT_NEW_ISSUER_BURST, DEFAULT_NEW_ISSUER_INTERVAL, IssuerPattern, IssuerRegistry,
    IssuerRegistryBuilder,
};
pub use gke::gke_issuer;

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SharedClock};

/// A shared clock as a [`Clock`], to hand one clock to many builders.
#[derive(Clone)]
pub(crate) struct ClockHandle(pub(crate) SharedClock);

impl Clock for ClockHandle {
    fn now(&self) -> Duration {
        self.0.now()
    }
}

/// A hook that finishes the builders a pattern makes (clock, cache settings, test URLs...).
pub(crate) type Configure =
    Arc<dyn Fn(crate::VerifierBuilder, &str) -> crate::VerifierBuilder + Send + Sync>;
