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
// Review R3: the core's hidden items used from outside it (HS256 helpers of refusal_order).
#[cfg(feature = "aws-lc-rs")]
mod private_surface;
