//! The IAM Service Account Credentials API's `signJwt`, as a client: `POST
//! {base}/v1/projects/-/serviceAccounts/{email}:signJwt` with `{"payload": "<claims as a JSON
//! string>"}`, answered with `{"keyId": …, "signedJwt": …}`.
//!
//! Google signs with one of the account's system-managed keys and publishes the public half at
//! `https://www.googleapis.com/service_accounts/v1/jwk/{email}`. The real API needs an OAuth access
//! token of a principal holding `roles/iam.serviceAccountTokenCreator` on the account (e.g. `gcloud auth
//! print-access-token`, or the metadata server's token on GCP); the local [stand-in](crate::stand_in)
//! asks for none.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The real API's base URL.
pub const IAM_CREDENTIALS_URL: &str = "https://iamcredentials.googleapis.com";

/// The longest lifetime `signJwt` accepts for a JWT it signs: `exp` at most 12 hours ahead.
pub const MAX_LIFETIME_SECS: i64 = 12 * 3600;

/// The request body of `signJwt`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignJwtRequest {
    /// Service accounts in a delegation chain (`projects/-/serviceAccounts/{email}`), if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delegates: Vec<String>,
    /// The JWT claims set, serialized as a JSON object.
    pub payload: String,
}

/// The response body of `signJwt`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignJwtResponse {
    /// The id of the key that signed (the `kid` of the JWT's header).
    pub key_id: String,
    /// The signed JWT, in compact serialization.
    pub signed_jwt: String,
}

/// The path of `signJwt` for `email`, after the base URL.
pub fn sign_jwt_path(email: &str) -> String {
    format!("/v1/projects/-/serviceAccounts/{email}:signJwt")
}

/// Why `signJwt` did not give a JWT.
#[derive(Debug)]
pub struct IamError {
    message: String,
}

impl fmt::Display for IamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for IamError {}

/// Calls `signJwt` at one base URL (Google's, or the local stand-in's).
#[derive(Debug, Clone)]
pub struct IamClient {
    http: reqwest::Client,
    base: String,
    access_token: Option<String>,
}

impl IamClient {
    /// A client of the API at `base` (e.g. [`IAM_CREDENTIALS_URL`]).
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.into().trim_end_matches('/').to_owned(),
            access_token: None,
        }
    }

    /// Sends this OAuth access token with each call (required by the real API).
    #[must_use]
    pub fn with_access_token(mut self, token: impl Into<String>) -> Self {
        self.access_token = Some(token.into());
        self
    }

    /// Has `email`'s key sign `claims` (a JSON object).
    pub async fn sign_jwt(&self, email: &str, claims: &Value) -> Result<SignJwtResponse, IamError> {
        let url = format!("{}{}", self.base, sign_jwt_path(email));
        let body = SignJwtRequest {
            delegates: Vec::new(),
            payload: claims.to_string(),
        };
        let mut request = self.http.post(&url).json(&body);
        if let Some(token) = &self.access_token {
            request = request.bearer_auth(token);
        }
        let error = |what: &str, e: &dyn fmt::Display| IamError {
            message: format!("signJwt for {email} at {url}: {what}: {e}"),
        };
        let response = request
            .send()
            .await
            .map_err(|e| error("request failed", &e))?;
        let status = response.status();
        if !status.is_success() {
            // Google answers `{"error": {"code", "message", "status"}}`; show its message.
            let text = response.text().await.unwrap_or_default();
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or(text);
            return Err(error(&format!("HTTP {status}"), &message));
        }
        response
            .json()
            .await
            .map_err(|e| error("unexpected response", &e))
    }
}
