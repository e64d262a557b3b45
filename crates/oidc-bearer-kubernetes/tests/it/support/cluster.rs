//! A Kubernetes cluster stand-in for the TokenReview and object-binding tests: a [`TestIssuer`]
//! whose API server answers TokenReviews, and the pod's own token on disk for `InCluster`.

use std::path::PathBuf;

use oidc_bearer_kubernetes::InCluster;
use oidc_bearer_testing::{TestIssuer, TokenBuilder, TokenReviews};

/// Where a Kubernetes API server publishes the service-account issuer's keys, and where
/// `InCluster` fetches them.
const API_SERVER_JWKS_PATH: &str = "/openid/v1/jwks";

/// The audience the cluster's tokens are issued for.
pub(crate) const AUD: &str = "my-service";

pub(crate) struct Cluster {
    pub(crate) issuer: TestIssuer,
    pub(crate) reviews: TokenReviews,
    pub(crate) token_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts the API server; it also serves the issuer's keys where `InCluster` fetches them.
    pub(crate) async fn start() -> Self {
        let issuer = TestIssuer::builder()
            .jwks_path(API_SERVER_JWKS_PATH)
            .start()
            .await;
        let reviews = issuer.token_reviews();
        let dir = tempfile::tempdir().unwrap();
        let token_path = dir.path().join("token");
        std::fs::write(&token_path, reviews.caller_token()).unwrap();
        Self {
            issuer,
            reviews,
            token_path,
            _dir: dir,
        }
    }

    /// `InCluster` pointed at this cluster's API server, with the caller's token file.
    pub(crate) fn in_cluster(&self) -> InCluster {
        InCluster::new()
            .with_api_server(self.reviews.api_server_url())
            .with_token_path(&self.token_path)
            .without_ca()
    }

    /// A bound service-account token of `prod/billing` for [`AUD`].
    pub(crate) fn token(&self) -> TokenBuilder {
        self.issuer.token().kubernetes("prod", "billing").aud(AUD)
    }
}
