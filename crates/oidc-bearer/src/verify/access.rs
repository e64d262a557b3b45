//! What the crates beside the core (`oidc-bearer-registry`, `oidc-bearer-kubernetes`) may do with a
//! [`Verifier`](crate::Verifier) and a [`VerifierBuilder`](crate::VerifierBuilder) beyond their public API: two hidden traits, reached
//! through `__private`, so that this contract is read in one place. Nothing here makes a verifier
//! accept bytes it did not verify, or skips a rule of its configuration.

use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::WeakVerifier;
use super::read::IssuerRead;
use crate::cache::TokenKey;
use crate::error::{ConfigError, VerifyError};
use crate::fetch::{Credential, SharedClients};

/// An issuer registry's access to the verifiers it chose.
#[doc(hidden)]
#[allow(async_fn_in_trait)] // Implemented by `Verifier` alone: callers see its futures are `Send`.
pub trait VerifierAccess {
    /// [`verify_token_cached`](crate::VerifyToken::verify_token_cached) for a token whose cache key
    /// the caller has computed. No size check: a key found in the cache is that of a token this
    /// verifier accepted, so within its cap. Answers only for a token this verifier accepted: a
    /// [`TokenKey`] is always the key of the bytes it borrows, and the cache compares their signing
    /// input.
    fn cached_key<T: Send + Sync + 'static>(&self, token: &TokenKey<'_>) -> Option<Arc<T>>;

    /// A reference to this verifier that does not keep it alive (a registry's index of recent
    /// tokens holds these, so that it never outlives the registry's own choice of issuers).
    fn downgrade(&self) -> WeakVerifier;

    /// Verifies a token a registry has taken apart to read its `iss`: the same checks as
    /// [`Verifier::verify`](crate::Verifier::verify), this verifier's size cap included, the rest of the payload read after
    /// the signature check. The bytes verified and cached are those `read` was parsed from.
    async fn verify_parsed<T: DeserializeOwned>(
        &self,
        read: &IssuerRead<'_>,
    ) -> Result<T, VerifyError>;

    /// [`verify_parsed`](Self::verify_parsed) into a shared `T`, cached like
    /// [`verify_token`](crate::VerifyToken::verify_token), with the digest of its token cache key
    /// (that of the bytes verified) when the cache is on: a registry indexes it.
    async fn verify_parsed_shared<T>(
        &self,
        read: &IssuerRead<'_>,
    ) -> Result<(Arc<T>, Option<crate::crypto::Sha256>), VerifyError>
    where
        T: DeserializeOwned + Send + Sync + 'static;

    /// The `iss` values accepted: the issuer, then its aliases.
    fn accepted_issuers(&self) -> impl Iterator<Item = &str>;
}

/// What a registry and the in-cluster preset set or ask of a builder.
#[doc(hidden)]
pub trait BuilderAccess: Sized {
    /// The issuer and its aliases.
    fn accepted_issuers(&self) -> impl Iterator<Item = &str>;

    /// Trusts exactly this CA (PEM, one or more certificates), and not the system's roots, for
    /// discovery and JWKS fetches: a cluster's own API server (client-go trusts only the cluster
    /// CA in-cluster). Roots added by `with_root_certificates_pem` are trusted too.
    fn with_cluster_ca_pem(self, pem: Vec<u8>) -> Self;

    /// `with_fetch_bearer_token` with a credential that may wait (`InCluster`'s token file, read
    /// off the runtime's workers).
    fn with_fetch_credential(self, credential: Credential) -> Self;

    /// Whether the token cache is left at its default (a registry then applies its per-issuer
    /// bounds).
    fn has_default_token_cache(&self) -> bool;

    /// Draws the HTTP client from `clients` (a registry's) instead of building one.
    fn with_shared_clients(self, clients: SharedClients) -> Self;

    /// The checks of `build` that need nothing built: a registry makes them before it takes an
    /// admission for a new issuer, so that a wrong pattern is reported as one.
    fn validate(&self) -> Result<(), ConfigError>;
}
