//! The integration tests of `oidc-bearer-client`: one binary, a module per topic (`reload_warning`
//! runs alone: it installs a global subscriber).

#[cfg(feature = "dpop")]
mod dpop;
mod end_to_end;
mod tonic_channel;
