//! Offline stand-ins for Google: an issuer that calls itself `https://accounts.google.com` and signs
//! Google-shaped ID tokens, and the GKE metadata server that hands them out to the workload.
//!
//! The metadata server speaks the documented protocol ("Get an ID token from the metadata server"):
//!
//! ```text
//! GET /computeMetadata/v1/instance/service-accounts/default/identity?audience=AUD&format=full
//! Metadata-Flavor: Google
//! ```
//!
//! It answers 403 without the `Metadata-Flavor: Google` header, 400 without an audience, and otherwise
//! the token as the body. With `format=full` the token carries the `google.compute_engine` claims; the
//! others (`iss`, `aud`, `sub`, `azp`, `email`, `email_verified`, `iat`, `exp`) are always there, as
//! in the ID tokens Google issues to a service account.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use oidc_bearer::issuers::google::GOOGLE_ISSUER;
use oidc_bearer::{Verifier, VerifierBuilder, issuers};
use oidc_bearer_testing::{KeyAlg, TestIssuer, now};
use serde_json::json;

/// The metadata server's path for the default service account's ID token.
pub const IDENTITY_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/identity";

/// The service account the stand-in metadata server's instance runs as.
#[derive(Debug, Clone)]
pub struct ServiceAccount {
    /// Its email, the `email` claim.
    pub email: String,
    /// Its unique ID, the `sub` and `azp` claims.
    pub unique_id: String,
}

impl Default for ServiceAccount {
    fn default() -> Self {
        Self {
            email: "workload-client@demo-project.iam.gserviceaccount.com".to_owned(),
            unique_id: "109876543210987654321".to_owned(),
        }
    }
}

/// A stand-in for `https://accounts.google.com` on 127.0.0.1, and the metadata server of one instance
/// whose default service account is [`ServiceAccount`].
#[derive(Debug, Clone)]
pub struct GoogleStandIn {
    issuer: TestIssuer,
    account: ServiceAccount,
    lifetime: Duration,
}

impl GoogleStandIn {
    /// Starts the issuer (RS256, the one algorithm Google signs ID tokens with) on 127.0.0.1; its
    /// tokens live `lifetime` (Google's live an hour).
    pub async fn start(account: ServiceAccount, lifetime: Duration) -> Self {
        let issuer = TestIssuer::builder()
            .issuer(GOOGLE_ISSUER)
            .key(KeyAlg::RS256)
            .full_discovery(true)
            .start()
            .await;
        Self {
            issuer,
            account,
            lifetime,
        }
    }

    /// The service account the tokens name.
    pub fn account(&self) -> &ServiceAccount {
        &self.account
    }

    /// The issuer, to count its fetches or take it down in tests.
    pub fn issuer(&self) -> &TestIssuer {
        &self.issuer
    }

    /// The verifier a service uses for Google ID tokens ([`issuers::google::id_token_verifier`]), with
    /// discovery pointed at this stand-in instead of `https://accounts.google.com`; the issuer string
    /// checked in tokens is Google's own.
    pub fn verifier_builder(&self, audience: &str) -> VerifierBuilder {
        issuers::google::id_token_verifier(audience).with_discovery_url(self.issuer.discovery_url())
    }

    /// [`verifier_builder`](Self::verifier_builder), built.
    pub fn verifier(&self, audience: &str) -> Result<Verifier, oidc_bearer::ConfigError> {
        self.verifier_builder(audience).build()
    }

    /// An ID token for `audience`, as the metadata server mints it (`full`: with `format=full`).
    pub fn id_token(&self, audience: &str, full: bool) -> String {
        let now = now();
        let lifetime = i64::try_from(self.lifetime.as_secs()).unwrap_or(3600);
        let mut token = self
            .issuer
            .token()
            .sub(&self.account.unique_id)
            .aud(audience)
            .claim("azp", json!(self.account.unique_id))
            .claim("email", json!(self.account.email))
            .claim("email_verified", json!(true))
            .iat(now)
            .exp(now + lifetime);
        if full {
            token = token.claim(
                "google",
                json!({"compute_engine": {
                    "project_id": "demo-project",
                    "project_number": 123456789012_u64,
                    "zone": "europe-west1-b",
                    "instance_id": "4567890123456789012",
                    "instance_name": "gke-demo-default-pool-1a2b3c4d-x7yz",
                    "instance_creation_timestamp": now - 86_400,
                }}),
            );
        }
        token.sign()
    }

    /// The metadata server's routes; serve them on their own listener, as `GCE_METADATA_HOST`.
    pub fn metadata_router(&self) -> Router {
        Router::new()
            .route(IDENTITY_PATH, get(identity))
            .with_state(Arc::new(self.clone()))
    }
}

async fn identity(
    State(stand_in): State<Arc<GoogleStandIn>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    // The real server's answers to the two usual mistakes.
    if headers.get("metadata-flavor").and_then(|v| v.to_str().ok()) != Some("Google") {
        return (
            StatusCode::FORBIDDEN,
            "Missing required header: Metadata-Flavor\n",
        )
            .into_response();
    }
    let Some(audience) = query.get("audience").filter(|a| !a.is_empty()) else {
        return (
            StatusCode::BAD_REQUEST,
            "non-empty audience parameter required\n",
        )
            .into_response();
    };
    let full = query.get("format").map(String::as_str) == Some("full");
    (
        [("Metadata-Flavor", "Google")],
        stand_in.id_token(audience, full),
    )
        .into_response()
}
