//! Google: ID tokens issued by `accounts.google.com` (to users, service accounts, Compute Engine
//! instances, Cloud Run and Cloud Functions callers), and JWTs that service accounts sign themselves
//! through IAM `signJwt`.
//!
//! ```
//! use oidc_bearer::issuers::google;
//!
//! let verifier = google::id_token_verifier("https://my-service.example").build().unwrap();
//! assert_eq!(verifier.issuer(), "https://accounts.google.com");
//! ```

use std::collections::HashSet;
use std::fmt;

use super::Configure;
use crate::error::ConfigError;
use crate::issuers::IssuerPattern;
use crate::{Algorithm, Verifier, VerifierBuilder};

/// Google's issuer, as discovery names it.
pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";
/// The other spelling of Google's issuer found in older ID tokens (go-oidc's
/// `issuerGoogleAccountsNoScheme`).
const GOOGLE_ISSUER_NO_SCHEME: &str = "accounts.google.com";
/// Where Google publishes each service account's public keys: `{base}/{email}`.
const SERVICE_ACCOUNT_JWKS_BASE: &str = "https://www.googleapis.com/service_accounts/v1/jwk";

/// A verifier for Google-issued ID tokens meant for `audience` (for Cloud Run and metadata-server
/// tokens, the audience the caller asked for, often the service's URL).
///
/// Accepts `iss` spelled `https://accounts.google.com` or `accounts.google.com`, as Google issues
/// both (discovery uses the first); only RS256, the one algorithm Google signs ID tokens with.
/// Decode the claims into [`GoogleIdClaims`](crate::claims::google::GoogleIdClaims).
///
/// Any Google account can obtain an ID token for any audience string: check `email` or `sub`
/// (and `email_verified`) to decide who is allowed.
pub fn id_token_verifier(audience: impl Into<String>) -> VerifierBuilder {
    Verifier::builder(GOOGLE_ISSUER, audience)
        .with_issuer_alias(GOOGLE_ISSUER_NO_SCHEME)
        .with_algorithms(&[Algorithm::RS256])
}

/// The URL of a service account's public keys (JWKS).
fn service_account_jwks_uri(email: &str) -> String {
    format!("{SERVICE_ACCOUNT_JWKS_BASE}/{email}")
}

/// A verifier for the JWTs one service account signs through IAM `signJwt` (`iss` = the account's
/// email), with the account's keys from Google, meant for `audience`.
///
/// Whoever may call `signJwt` on the account (`roles/iam.serviceAccountTokenCreator`) chooses every
/// claim but `iss`'s meaning: the signature proves the account (or a delegate) signed, nothing more.
/// Decode the claims into your own type. For several accounts, use [`ServiceAccounts`] in a registry.
pub fn service_account_verifier(
    email: &str,
    audience: impl Into<String>,
) -> Result<VerifierBuilder, ConfigError> {
    check_email(email)?;
    Ok(account_builder(email, audience.into()))
}

fn account_builder(email: &str, audience: String) -> VerifierBuilder {
    Verifier::builder(email, audience)
        .with_jwks_uri(service_account_jwks_uri(email))
        .with_algorithms(&[Algorithm::RS256])
}

/// A registry pattern for the JWTs of an explicit list of service accounts, signed through IAM
/// `signJwt`: each account is its own issuer, whose keys come from
/// `https://www.googleapis.com/service_accounts/v1/jwk/{email}`.
///
/// The key URL is derived from the token's `iss`, so the allow-list is what keeps an attacker from
/// making the service fetch keys of an account of their own: an account not listed is refused as an
/// untrusted issuer without any fetch.
///
/// ```
/// use oidc_bearer::issuers::google::ServiceAccounts;
/// use oidc_bearer::issuers::IssuerPattern;
/// use oidc_bearer_registry::IssuerRegistry;
///
/// let accounts = ServiceAccounts::new(
///     "my-service",
///     ["deployer@my-project.iam.gserviceaccount.com"],
/// ).unwrap();
/// assert!(accounts.verifier_for("deployer@my-project.iam.gserviceaccount.com").is_some());
/// assert!(accounts.verifier_for("attacker@evil.iam.gserviceaccount.com").is_none());
/// let registry = IssuerRegistry::builder().with_pattern(accounts).build().unwrap();
/// ```
#[derive(Clone)]
#[must_use]
pub struct ServiceAccounts {
    audience: String,
    accounts: HashSet<String>,
    configure: Configure,
}

impl ServiceAccounts {
    /// Trusts the JWTs of these accounts (by email) meant for `audience`.
    pub fn new(
        audience: impl Into<String>,
        accounts: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<Self, ConfigError> {
        let accounts: HashSet<String> = accounts.into_iter().map(Into::into).collect();
        for email in &accounts {
            check_email(email)?;
        }
        Ok(Self {
            audience: audience.into(),
            accounts,
            configure: Configure::default(),
        })
    }

    /// Finishes each account's builder (given with the account's email): cache settings, a clock,
    /// extra audiences, or another key URL (`with_jwks_uri`, for a local stand-in in tests).
    pub fn with_configure(
        mut self,
        configure: impl Fn(VerifierBuilder, &str) -> VerifierBuilder + Send + Sync + 'static,
    ) -> Self {
        self.configure = Configure::new(configure);
        self
    }
}

impl IssuerPattern for ServiceAccounts {
    fn verifier_for(&self, issuer: &str) -> Option<VerifierBuilder> {
        if !self.accounts.contains(issuer) {
            return None;
        }
        let builder = account_builder(issuer, self.audience.clone());
        Some(self.configure.apply(builder, issuer))
    }
}

impl fmt::Debug for ServiceAccounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccounts")
            .field("audience", &self.audience)
            .field("accounts", &self.accounts)
            .finish_non_exhaustive()
    }
}

/// An email that is safe to put in a URL path as is: one `@`, then only letters, digits and `.`, `_`,
/// `+`, `-` (service accounts are `name@project.iam.gserviceaccount.com`).
fn check_email(email: &str) -> Result<(), ConfigError> {
    let ok = match email.split_once('@') {
        Some((local, domain)) => {
            let allowed =
                |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-');
            !local.is_empty()
                && !domain.is_empty()
                && local.bytes().all(allowed)
                && domain.bytes().all(allowed)
        }
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(ConfigError::InvalidIssuer {
            issuer: email.to_owned(),
            reason: "not a service account email".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_account_emails_are_checked() {
        let rows = [
            ("sa@p.iam.gserviceaccount.com", true),
            ("p-compute@developer.gserviceaccount.com", true),
            ("a+b@example.com", true),
            ("no-at-sign", false),
            ("@p.iam.gserviceaccount.com", false),
            ("sa@", false),
            ("sa@p/../other", false),
            ("sa@p?x=1", false),
            ("sa@p#f", false),
            ("sa@p%2F", false),
            ("a@b@c", false),
            ("sa @p", false),
        ];
        for (email, ok) in rows {
            assert_eq!(check_email(email).is_ok(), ok, "{email}");
            assert_eq!(
                service_account_verifier(email, "aud").is_ok(),
                ok,
                "{email}"
            );
        }
        assert!(ServiceAccounts::new("aud", ["ok@p.iam.gserviceaccount.com", "bad"]).is_err());
    }

    #[test]
    fn the_jwks_url_is_derived_from_the_account() {
        assert_eq!(
            service_account_jwks_uri("sa@p.iam.gserviceaccount.com"),
            "https://www.googleapis.com/service_accounts/v1/jwk/sa@p.iam.gserviceaccount.com"
        );
        let verifier = service_account_verifier("sa@p.iam.gserviceaccount.com", "aud")
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(verifier.issuer(), "sa@p.iam.gserviceaccount.com");
    }
}
