//! The tutorial's resource server, as a library so that other examples' tests can run it in process:
//!
//! - [`app`]: the routes, `/` open and `/private` behind the bearer layer;
//! - [`embedded`]: the offline mode, issuers and all: a Kubernetes test issuer whose token the kubelet
//!   stand-in writes to a file and rotates, and [`google`]'s stand-ins for `https://accounts.google.com`
//!   and the GKE metadata server, both trusted through one `IssuerRegistry`.
//!
//! The binary (`src/main.rs`) reads the environment and wires these together.

pub mod app;
pub mod embedded;
pub mod google;
