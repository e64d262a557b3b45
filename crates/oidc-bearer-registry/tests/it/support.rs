//! Helpers of this crate's integration tests.

use oidc_bearer::VerifyError;
use oidc_bearer_testing::TestIssuer;

// Copied from oidc-bearer's tests/it/support (a few lines each, over its types), as
// oidc-bearer-kubernetes' tests do.
/// `"ok"`, or the error's stable code: what a verification table compares.
pub(crate) fn code<T>(result: Result<T, VerifyError>) -> &'static str {
    result.map_or_else(|e| e.code(), |_| "ok")
}

/// `(discovery, JWKS)` requests `issuer` has seen.
pub(crate) fn fetches(issuer: &TestIssuer) -> (usize, usize) {
    (issuer.discovery_fetches(), issuer.jwks_fetches())
}
