//! [`IssuerPattern`]: how a registry decides whether an issuer not listed exactly is trusted.

use crate::verify::VerifierBuilder;

/// Decides whether an issuer not listed exactly is trusted, and with which policy.
///
/// Implemented by closures `Fn(&str) -> Option<VerifierBuilder>`, and by
/// [`GkeClusters`](crate::issuers::gke::GkeClusters) and
/// [`ServiceAccounts`](crate::issuers::google::ServiceAccounts).
///
/// The issuer it is called with is the token's `iss` **before** any verification: anyone can put
/// anything there. A pattern must match strictly (whole URL, known projects), must not fetch anything,
/// and should be cheap; the registry calls it once per new issuer (and again after the issuer was
/// evicted, refused by the limits on new issuers, or its negative entry expired). The builder it
/// returns must accept that exact issuer.
pub trait IssuerPattern: Send + Sync + 'static {
    /// The policy for `issuer`, or `None` if this pattern does not trust it.
    fn verifier_for(&self, issuer: &str) -> Option<VerifierBuilder>;
}

impl<F> IssuerPattern for F
where
    F: Fn(&str) -> Option<VerifierBuilder> + Send + Sync + 'static,
{
    fn verifier_for(&self, issuer: &str) -> Option<VerifierBuilder> {
        self(issuer)
    }
}
