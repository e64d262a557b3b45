//! Google-issued ID tokens: the user's or service account's `email`, the `azp` and `hd` claims, and
//! the `google.compute_engine` claim of Compute Engine instance identity tokens.
//!
//! ```
//! use oidc_bearer::claims::google::GoogleIdClaims;
//!
//! let claims: GoogleIdClaims = serde_json::from_str(r#"{
//!     "iss": "https://accounts.google.com",
//!     "sub": "112233445566778899000",
//!     "aud": "my-service",
//!     "exp": 2000000000,
//!     "email": "builder@my-project.iam.gserviceaccount.com",
//!     "email_verified": true,
//!     "google": {"compute_engine": {
//!         "project_id": "my-project", "project_number": 123456789012, "zone": "europe-west1-b",
//!         "instance_id": "4455667788990011223", "instance_name": "builder-1",
//!         "instance_creation_timestamp": 1700000000
//!     }}
//! }"#).unwrap();
//! assert_eq!(claims.verified_email(), Some("builder@my-project.iam.gserviceaccount.com"));
//! assert_eq!(claims.compute_engine().unwrap().zone, "europe-west1-b");
//! ```
//!
//! Tokens that a service account signs through IAM `signJwt` carry whatever claims the signer chose;
//! decode them into your own type (see [`issuers::google`](crate::issuers::google)).

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use super::{NumericDate, RegisteredClaims};

/// The claims of a Google-issued ID token (`https://accounts.google.com`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GoogleIdClaims {
    /// The registered claims. `sub` is the account's stable numeric id; prefer it to `email` as a key.
    #[serde(flatten)]
    pub registered: RegisteredClaims,
    /// The account's email, when the token was requested with the `email` scope or
    /// `includeEmail`/`format=full`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Whether Google verified that the account owns `email`. Accepted as a boolean or as the strings
    /// `"true"`/`"false"`, which some Google tokens carry (go-oidc's `stringAsBool` does the same).
    #[serde(
        default,
        deserialize_with = "bool_or_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub email_verified: Option<bool>,
    /// The authorized party: the client the token was issued to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
    /// The Google Workspace or Cloud Identity domain of a user, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hd: Option<String>,
    /// The `google` claim of Compute Engine instance identity tokens: read it with
    /// [`compute_engine`](Self::compute_engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    google: Option<GoogleClaim>,
}

impl GoogleIdClaims {
    /// `email`, only when `email_verified` is true.
    pub fn verified_email(&self) -> Option<&str> {
        match self.email_verified {
            Some(true) => self.email.as_deref(),
            _ => None,
        }
    }

    /// The Compute Engine instance the token was requested from, if it is an instance identity token
    /// requested with `format=full`.
    pub fn compute_engine(&self) -> Option<&ComputeEngine> {
        self.google.as_ref()?.compute_engine.as_ref()
    }
}

/// The `google` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct GoogleClaim {
    /// The Compute Engine instance, for instance identity tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    compute_engine: Option<ComputeEngine>,
}

/// A Compute Engine instance, as its identity token describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ComputeEngine {
    /// The project's id.
    pub project_id: String,
    /// The project's number.
    pub project_number: u64,
    /// The zone, e.g. `europe-west1-b`.
    pub zone: String,
    /// The instance's id (a decimal string).
    pub instance_id: String,
    /// The instance's name.
    pub instance_name: String,
    /// When the instance was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_creation_timestamp: Option<NumericDate>,
    /// The instance's license codes, when the token was requested with `licenses=TRUE`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub license_id: Vec<String>,
}

fn bool_or_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Option<bool>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a boolean or \"true\"/\"false\"")
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            match v {
                "true" => Ok(Some(true)),
                "false" => Ok(Some(false)),
                _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
            }
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    deserializer.deserialize_any(V)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn email_verified_is_a_boolean_or_its_string() {
        let rows = [
            (json!(true), Some(true)),
            (json!(false), Some(false)),
            (json!("true"), Some(true)),
            (json!("false"), Some(false)),
            (json!(null), None),
        ];
        for (value, expected) in rows {
            let claims: GoogleIdClaims = serde_json::from_value(
                json!({"iss": "https://accounts.google.com", "email": "a@b.c", "email_verified": value}),
            )
            .unwrap();
            assert_eq!(claims.email_verified, expected, "{value}");
            assert_eq!(claims.verified_email().is_some(), expected == Some(true));
        }
        let missing: GoogleIdClaims =
            serde_json::from_value(json!({"iss": "https://accounts.google.com"})).unwrap();
        assert_eq!(missing.email_verified, None);
        assert!(
            serde_json::from_value::<GoogleIdClaims>(json!({"iss": "x", "email_verified": "yes"}))
                .is_err()
        );
    }
}
