//! Helpers shared by this crate's integration tests (each test binary uses a part of them).
#![allow(dead_code)]

use oidc_bearer::VerifyError;
use oidc_bearer::keys::Jwks;
use oidc_bearer_testing::{KeyAlg, TestIssuer};

/// `"ok"`, or the error's stable code: what a verification table compares.
pub(crate) fn code<T>(result: Result<T, VerifyError>) -> &'static str {
    result.map_or_else(|e| e.code(), |_| "ok")
}

/// The keys `issuer` publishes now, parsed as a verifier would.
pub(crate) fn jwks_of(issuer: &TestIssuer) -> Jwks {
    Jwks::from_json(&serde_json::to_vec(&issuer.jwks_json()).unwrap()).unwrap()
}

/// `(discovery, JWKS)` requests `issuer` has seen.
pub(crate) fn fetches(issuer: &TestIssuer) -> (usize, usize) {
    (issuer.discovery_fetches(), issuer.jwks_fetches())
}

/// Every algorithm of [`KeyAlg::ALL`] this build verifies (ML-DSA needs the `ml-dsa` feature).
pub(crate) fn verifiable_algs() -> impl Iterator<Item = KeyAlg> {
    KeyAlg::ALL
        .into_iter()
        .filter(|alg| !alg.is_ml_dsa() || cfg!(feature = "ml-dsa"))
}

pub(crate) use oidc_bearer_testing::harness::{
    one_blocking_thread_runtime, with_the_blocking_thread_held,
};
