//! [`AddDpopLayer`]: sender-constrained tokens (DPoP, RFC 9449). Each request carries
//! `Authorization: DPoP <token>` and a `DPoP` header with a fresh proof, signed with a
//! [`DpopKey`] the client holds, so that a stolen token is useless without the key.
//!
//! The flow per request: the token from a [`TokenSource`](crate::TokenSource) → a proof (`htm`,
//! `htu`, `iat`, a random `jti`, `ath` binding the token, and the server's last `DPoP-Nonce`) → the
//! inner client. A `401` that says `DPoP error="use_dpop_nonce"` with a `DPoP-Nonce` header (RFC
//! 9449 §9) is answered once, with a new proof carrying the nonce; a `DPoP-Nonce` on any response
//! is kept for the next request to that server (§8.2).
//!
//! The key's thumbprint, [`DpopKey::thumbprint`], is what a DPoP-bound token's `cnf.jkt` holds:
//! ask the authorization server for a token bound to it.

mod error;
mod future;
mod key;
#[allow(clippy::module_inception)]
mod layer;
mod nonce;
mod proof;
mod service;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use http::{HeaderName, HeaderValue, Request, header::AUTHORIZATION};
use oidc_bearer_shared::clock::Clock;

pub use self::{
    error::{DpopError, InvalidDpopKey},
    future::AddDpopFuture,
    key::DpopKey,
    layer::AddDpopLayer,
    service::AddDpop,
};
use crate::BearerToken;

/// The `DPoP` request header (RFC 9449 §4.1).
const DPOP: HeaderName = HeaderName::from_static("dpop");

/// Whether a relative request URI, a setup mistake, has been logged.
static RELATIVE_URI_LOGGED: AtomicBool = AtomicBool::new(false);

/// What every request of one layer shares: the key, the servers' nonces and the clock.
#[derive(Clone)]
struct Prover {
    key: Arc<DpopKey>,
    nonces: Arc<nonce::Nonces>,
    clock: Arc<dyn Clock>,
}

impl Prover {
    /// Adds `Authorization: DPoP <token>` (RFC 9449 §7.1) and a new proof for `request`, with the
    /// last nonce its server sent. Returns the server's origin, to file the response's nonce under.
    fn prepare<B>(
        &self,
        request: &mut Request<B>,
        token: &BearerToken,
    ) -> Result<String, DpopError> {
        let origin = proof::origin(request.uri()).inspect_err(|error| {
            if !RELATIVE_URI_LOGGED.swap(true, Ordering::Relaxed) {
                tracing::error!(
                    "{error}; AddDpopLayer needs absolute request URIs (hyper-util's client takes \
                     them; a tonic Channel does not): send absolute URIs or put the layer where \
                     they are. Logged once per process."
                );
            }
        })?;
        let nonce = self.nonces.get(&origin);
        let now: Duration = self.clock.now();
        let proof = self.key.proof_at(
            request.method(),
            request.uri(),
            Some(token.secret()),
            nonce.as_deref(),
            now,
        )?;
        let mut authorization = HeaderValue::try_from(format!("DPoP {}", token.secret()))
            .expect("a BearerToken is a b64token, a valid header value");
        authorization.set_sensitive(true);
        let headers = request.headers_mut();
        headers.insert(AUTHORIZATION, authorization);
        // RFC 9449 §4.3 check 1: exactly one DPoP header.
        headers.insert(DPOP, proof);
        Ok(origin)
    }
}
