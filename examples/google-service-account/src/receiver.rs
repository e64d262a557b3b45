//! The receiving service: `GET /whoami` accepts JWTs that listed service accounts signed through
//! `signJwt` for this service's audience, and answers with the verified `gituser` and `email`.
//!
//! Each account is its own issuer (`iss` = its email) with its own key set, so the accounts sit in an
//! [`IssuerRegistry`] as a [`ServiceAccounts`] pattern: a token's `iss` picks the account, and only that
//! account's keys can vouch for it. The list is what stops a stranger from making the service fetch
//! the keys of an account of their own: an unlisted `iss` is refused (401) before any fetch.

use axum::routing::get;
use axum::{Json, Router};
use oidc_bearer::claims::RegisteredClaims;
use oidc_bearer::issuers::google::ServiceAccounts;
use oidc_bearer::policy::{AuthorizeLayer, Denied};
use oidc_bearer::{BearerAuthLayer, Claims, ConfigError};
use oidc_bearer_registry::IssuerRegistry;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The path of Google's service-account key sets (`https://www.googleapis.com` + this +
/// `/{email}`); the stand-in issuer serves the same path on 127.0.0.1.
pub const JWKS_PATH: &str = "/service_accounts/v1/jwk";

/// The claims the caller asks `signJwt` to sign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployClaims {
    /// `iss` and `sub` are the signing account's email; `aud` is this service.
    #[serde(flatten)]
    pub registered: RegisteredClaims,
    /// The Git user the deployment is for.
    pub gituser: String,
    /// The account's email, as the caller wrote it.
    pub email: String,
}

/// Trusts the JWTs of `accounts` meant for `audience`, with keys from Google, or from
/// `{jwks_base}/{email}` when given (the stand-in issuer's `…/service_accounts/v1/jwk`).
pub fn registry(
    audience: &str,
    accounts: &[&str],
    jwks_base: Option<&str>,
) -> Result<IssuerRegistry, ConfigError> {
    let mut pattern = ServiceAccounts::new(audience, accounts.iter().copied())?;
    if let Some(base) = jwks_base {
        let base = base.trim_end_matches('/').to_owned();
        pattern = pattern
            .with_configure(move |builder, email| builder.with_jwks_uri(format!("{base}/{email}")));
    }
    IssuerRegistry::builder().with_pattern(pattern).build()
}

/// Whoever may call `signJwt` on an account chooses every claim: the signature proves only which
/// account signed (`iss`). A payload whose `email` names another account is refused (403) rather
/// than believed.
fn email_is_the_signer(claims: &DeployClaims) -> Result<(), Denied> {
    if claims.email == claims.registered.iss {
        Ok(())
    } else {
        Err(Denied::new(
            "the email claim must be the signing service account",
        ))
    }
}

async fn whoami(Claims(claims): Claims<DeployClaims>) -> Json<Value> {
    Json(json!({
        "gituser": claims.gituser,
        "email": claims.email,
        "issuer": claims.registered.iss,
    }))
}

/// The receiving service's routes: `/whoami` behind the bearer layer (401) and the email policy
/// (403), `/healthz` open.
pub fn app(registry: IssuerRegistry) -> Router {
    Router::new()
        .route("/whoami", get(whoami))
        .route_layer(AuthorizeLayer::new(email_is_the_signer).claims::<DeployClaims>())
        .route_layer(BearerAuthLayer::new(registry).claims::<DeployClaims>())
        .route("/healthz", get(|| async { "ok" }))
}
