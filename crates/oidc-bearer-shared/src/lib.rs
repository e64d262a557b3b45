//! The mechanisms that both [`oidc-bearer`](https://docs.rs/oidc-bearer) (which verifies tokens) and
//! [`oidc-bearer-client`](https://docs.rs/oidc-bearer-client) (which sends them) are built on, written
//! once, so that a workload that only sends tokens compiles neither the verifier nor a signature
//! crypto backend.
//!
//! - [`flight`]: the one detached single-flight task (key fetches, TokenReviews, token loads).
//!
//! Use these items through `oidc-bearer` and `oidc-bearer-client`, which re-export what their users
//! need.

pub mod flight;

pub use flight::FlightError;
