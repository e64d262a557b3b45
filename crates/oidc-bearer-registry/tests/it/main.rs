//! The integration tests of `oidc-bearer-registry`: one binary, a module per topic.

mod support;

mod fetch_reliability;
mod google;
mod presented;
mod registry;
mod registry_admission;
// Signs its HS256 tokens with aws-lc-rs, which the rust-crypto build does not link.
#[cfg(feature = "aws-lc-rs")]
mod refusal_order;
