//! The background caller: builds the claims, has `signJwt` sign them as its service account, and
//! calls the receiver with the JWT as a bearer token.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::iam::IamClient;

/// How long the JWTs the caller asks for live: one per call, so a few minutes is plenty (`signJwt`
/// accepts up to 12 hours).
pub const LIFETIME_SECS: i64 = 600;

/// The claims for one call: `iss` = `sub` = the account, `aud` = the receiver, `iat`, `exp`, and the
/// custom `gituser` and `email`.
pub fn payload(email: &str, audience: &str, gituser: &str, now: i64) -> Value {
    json!({
        "iss": email,
        "sub": email,
        "aud": audience,
        "iat": now,
        "exp": now + LIFETIME_SECS,
        "gituser": gituser,
        "email": email,
    })
}

/// What the receiver answered.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The kid `signJwt` signed with.
    pub key_id: String,
    /// The HTTP status.
    pub status: u16,
    /// The `WWW-Authenticate` challenge, if any.
    pub challenge: Option<String>,
    /// The body.
    pub body: String,
}

/// Obtains JWTs through `signJwt` and presents them to the receiver.
#[derive(Debug, Clone)]
pub struct Caller {
    iam: IamClient,
    http: reqwest::Client,
    receiver: String,
    audience: String,
    gituser: String,
}

impl Caller {
    /// A caller of `receiver` (its `/whoami` URL) for `audience`, acting for `gituser`.
    pub fn new(iam: IamClient, receiver: String, audience: String, gituser: String) -> Self {
        Self {
            iam,
            http: reqwest::Client::new(),
            receiver,
            audience,
            gituser,
        }
    }

    /// Signs a fresh JWT as `email` and calls the receiver with it. Errors are a failed `signJwt`
    /// ([`IamError`](crate::iam::IamError)) or a receiver that could not be reached; any HTTP answer
    /// of the receiver is an [`Answer`].
    pub async fn call_as(
        &self,
        email: &str,
    ) -> Result<Answer, Box<dyn std::error::Error + Send + Sync>> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let claims = payload(email, &self.audience, &self.gituser, i64::try_from(now)?);
        let signed = self.iam.sign_jwt(email, &claims).await?;
        let response = self
            .http
            .get(&self.receiver)
            .bearer_auth(&signed.signed_jwt)
            .send()
            .await
            .map_err(|e| format!("calling the receiver at {}: {e}", self.receiver))?;
        let status = response.status().as_u16();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.text().await?;
        Ok(Answer {
            key_id: signed.key_id,
            status,
            challenge,
            body,
        })
    }
}
