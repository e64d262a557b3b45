//! A local OpenID Connect issuer for tests, like go-oidc's `oidctest`: it listens on
//! 127.0.0.1, serves a discovery document and a JWKS, and mints signed JWTs.
//!
//! ```
//! use oidc_bearer_testing::{KeyAlg, TestIssuer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let issuer = TestIssuer::builder().key(KeyAlg::ES256).start().await;
//!
//! // Point the verifier under test at these.
//! assert_eq!(issuer.discovery_url(), format!("{}/.well-known/openid-configuration", issuer.base_url()));
//! assert_eq!(issuer.jwks_uri(), format!("{}/keys", issuer.base_url()));
//!
//! // A token signed by the key the JWKS publishes.
//! let token = issuer.token().aud("my-api").sub("alice").sign();
//! let header = token.split('.').next().unwrap();
//! # use base64::Engine as _;
//! let header: serde_json::Value =
//!     serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
//! assert_eq!(header["alg"], "ES256");
//! assert_eq!(header["kid"], issuer.jwks_json()["keys"][0]["kid"]);
//!
//! // And the ways an issuer misbehaves.
//! issuer.rotate();                         // a new signing key; the old one stays published
//! issuer.set_down(true);                   // every endpoint answers 503
//! issuer.set_down(false);
//! issuer.stop_listening().await;           // connection refused
//! issuer.resume_listening().await;         // same port again
//! assert_eq!(issuer.jwks_fetches(), 0);
//! # }
//! ```
//!
//! - [`TestIssuer`] runs the server and holds the keys: add, rotate, unpublish, publish odd raw
//!   JWKs; change the discovery document; take the endpoints down; hold JWKS requests to test
//!   single-flight refreshes; count fetches and wait for them.
//! - [`TokenReviews`] is a Kubernetes TokenReview endpoint on the same server, behaving like the
//!   API server's: delete a token's bound pod to revoke it, refuse the caller, go down, hold and
//!   count reviews.
//! - [`TokenBuilder`] shapes the claims and header (including wrong ones) and signs with a key
//!   of the issuer, with `alg: none`, or with HMAC; [`TokenBuilder::dpop_bound`] binds a token to
//!   a client's [`DpopKey`], whose [`DpopProof`]s (RFC 9449) can break each rule.
//!
//! Signing is done with aws-lc-rs directly, not `jsonwebtoken`, so adding this crate to
//! `[dev-dependencies]` does not change which crypto backend your `jsonwebtoken` uses. It is
//! a test tool: misuse panics with a message that says what is wrong, and nothing waits
//! forever.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod dpop;
pub mod harness;
mod issuer;
mod key;
mod server;

pub use dpop::{DpopKey, DpopProof};
pub use issuer::token::{TokenBuilder, now};
pub use issuer::tokenreview::{ReviewHold, TOKEN_REVIEW_PATH, TokenReviews};
pub use issuer::{JwksHold, TestIssuer, TestIssuerBuilder};
pub use key::{KeyAlg, UnknownKeyAlg};
