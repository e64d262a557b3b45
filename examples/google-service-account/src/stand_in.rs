//! A local stand-in for IAM Credentials `signJwt`, on top of a
//! [`TestIssuer`]: each account gets an RS256 key of the issuer, published at
//! `{issuer}/service_accounts/v1/jwk/{email}` as Google publishes its keys, and `signJwt` signs the
//! caller's payload with it, unchanged.
//!
//! Like the real API, it refuses a payload that is not a JSON object or whose `exp` is not an integer,
//! is in the past or is more than 12 hours ahead, and answers 404 for an account it does not know. It
//! checks no access token: who may sign as an account is IAM's business, not this example's.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use oidc_bearer_testing::{KeyAlg, TestIssuer, now};
use serde_json::{Value, json};

use crate::iam::{MAX_LIFETIME_SECS, SignJwtRequest, SignJwtResponse};
use crate::receiver::JWKS_PATH;

/// Accounts the stand-in signs for, each with its own key of one issuer.
#[derive(Debug, Clone)]
pub struct IamStandIn {
    issuer: TestIssuer,
    /// email → kid.
    accounts: HashMap<String, String>,
}

impl IamStandIn {
    /// A stand-in signing with keys of `issuer`, for no account yet.
    pub fn new(issuer: TestIssuer) -> Self {
        Self {
            issuer,
            accounts: HashMap::new(),
        }
    }

    /// Creates `email`'s key, publishes it at [`jwks_path`]`(email)`, and returns its kid.
    pub fn add_account(&mut self, email: &str) -> String {
        // Google signs service-account JWTs with RS256 only, and the receiver accepts nothing else.
        let kid = self.issuer.add_key(KeyAlg::RS256);
        self.issuer.serve_jwks_at(&jwks_path(email), &[&kid]);
        self.accounts.insert(email.to_owned(), kid.clone());
        kid
    }

    /// The HTTP API: `POST /v1/projects/-/serviceAccounts/{email}:signJwt`.
    pub fn router(self) -> Router {
        Router::new()
            .route("/v1/projects/-/serviceAccounts/{name}", post(sign_jwt))
            .with_state(Arc::new(self))
    }
}

/// Where the stand-in's issuer serves `email`'s keys (the path of Google's URL).
pub fn jwks_path(email: &str) -> String {
    format!("{JWKS_PATH}/{email}")
}

/// A Google API error body: `{"error": {"code", "message", "status"}}`.
fn google_error(status: StatusCode, reason: &str, message: String) -> Response {
    let body = json!({"error": {"code": status.as_u16(), "message": message, "status": reason}});
    (status, Json(body)).into_response()
}

async fn sign_jwt(
    State(stand_in): State<Arc<IamStandIn>>,
    Path(name): Path<String>,
    Json(request): Json<SignJwtRequest>,
) -> Response {
    // The method is part of the last segment (`{email}:signJwt`, gRPC transcoding's custom verb).
    let Some(email) = name.strip_suffix(":signJwt") else {
        return google_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("no method in {name:?}"),
        );
    };
    let Some(kid) = stand_in.accounts.get(email) else {
        return google_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("Not found; Gaia id not found for email {email}"),
        );
    };
    let claims = match serde_json::from_str::<Value>(&request.payload) {
        Ok(Value::Object(claims)) => claims,
        _ => {
            return google_error(
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                "the payload must be a serialized JSON object".into(),
            );
        }
    };
    if let Some(exp) = claims.get("exp") {
        let now = now();
        match exp.as_i64() {
            Some(exp) if exp >= now && exp <= now + MAX_LIFETIME_SECS => {}
            _ => {
                return google_error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_ARGUMENT",
                    "exp must be an integer timestamp, not in the past and at most 12 hours ahead"
                        .into(),
                );
            }
        }
    }
    // The payload is signed as given: start from the issuer's builder, drop its defaults.
    let mut token = stand_in.issuer.token().sign_with(kid);
    if let Value::Object(defaults) = token.claims() {
        for name in defaults.keys() {
            token = token.remove_claim(name);
        }
    }
    for (name, value) in claims {
        token = token.claim(&name, value);
    }
    Json(SignJwtResponse {
        key_id: kid.clone(),
        signed_jwt: token.sign(),
    })
    .into_response()
}
