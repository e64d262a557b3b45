//! The integration tests of `oidc-bearer`: one binary (the crypto backend is linked once), a module
//! per topic.

mod support;

mod algorithms;
mod authorization_forms;
mod dpop;
mod dpop_attacks;
// Signs its HS256 tokens with aws-lc-rs, which the rust-crypto build does not link.
#[cfg(feature = "aws-lc-rs")]
mod duplicate_members;
mod fetch_reliability;
mod fuzz;
mod google;
mod key_cache;
mod token_cache;
mod verify;
