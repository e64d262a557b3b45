//! The layer that wraps a client in [`AddDpop`].

use std::sync::Arc;

use oidc_bearer_shared::clock::{Clock, SystemClock};
use tower_layer::Layer;

use super::{AddDpop, DpopKey, Prover};

/// Wraps a tower client so each request carries a DPoP-bound token: `Authorization: DPoP <token>`
/// from a [`TokenSource`](crate::TokenSource) and a `DPoP` header with a new proof (RFC 9449 §7.1),
/// and answers a server's `use_dpop_nonce` challenge once.
///
/// - The proof: header `typ: dpop+jwt`, `alg`, `jwk` (the [`DpopKey`]'s public key); claims `jti`
///   (random, new for every request, retries included), `htm`, `htu` (the request URI without query
///   and fragment, so requests need absolute URIs, as hyper-util's client takes), `iat` (from the
///   layer's clock), `ath` (the token's SHA-256) and `nonce` when the server sent one.
/// - Nonces (RFC 9449 §8, §9): the last `DPoP-Nonce` each server (origin) sent, on any response, is
///   put into the next proof for it. A `401` with `WWW-Authenticate: DPoP error="use_dpop_nonce"`
///   and a `DPoP-Nonce` is retried once with a new proof; if the server refuses again, that second
///   response is what the caller gets.
/// - The retry re-sends the request, so the body type must be `Clone`: `Full<Bytes>`, `Empty`,
///   `String` and `Bytes` are, cheaply. A streaming body is not replayable; buffer it first.
/// - A request that already has an `Authorization` header is sent as it is, with no proof, as
///   [`AddBearerLayer`](crate::AddBearerLayer) does.
///
/// ```
/// use std::convert::Infallible;
/// use http::{Request, Response, header::AUTHORIZATION};
/// use oidc_bearer_client::{AddDpopLayer, BearerToken, DpopKey};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// // A stand-in for hyper-util's client that echoes the headers it got.
/// let client = service_fn(|request: Request<()>| async move {
///     Ok::<_, Infallible>(Response::new(request.headers().clone()))
/// });
/// let layer = AddDpopLayer::new(BearerToken::new("t0k3n")?, DpopKey::generate()?);
/// // Request the token bound to this thumbprint (`cnf.jkt`).
/// let jkt = layer.key().thumbprint().to_owned();
/// let client = ServiceBuilder::new().layer(layer).service(client);
///
/// let request = Request::get("https://api.example.com/orders").body(())?;
/// let sent = client.oneshot(request).await?.into_body();
/// assert_eq!(sent[AUTHORIZATION], "DPoP t0k3n");
/// assert_eq!(sent["dpop"].to_str()?.split('.').count(), 3);
/// # assert_eq!(jkt.len(), 43);
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// # }).unwrap();
/// ```
pub struct AddDpopLayer<T> {
    source: Arc<T>,
    prover: Prover,
}

impl<T> AddDpopLayer<T> {
    /// A layer that takes its tokens from `source` and signs proofs with `key`.
    ///
    /// The layer and every service it makes share the source, the key and the servers' nonces.
    pub fn new(source: T, key: DpopKey) -> Self {
        Self {
            source: Arc::new(source),
            prover: Prover {
                key: Arc::new(key),
                nonces: Arc::default(),
                clock: Arc::new(SystemClock),
            },
        }
    }

    /// Reads the proofs' `iat` from `clock` instead of the system clock (for tests: a
    /// [`ManualClock`](crate::clock::ManualClock)).
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.prover.clock = Arc::new(clock);
        self
    }

    /// The token source.
    pub fn source(&self) -> &T {
        &self.source
    }

    /// The key the proofs are signed with; its [`thumbprint`](DpopKey::thumbprint) is the `jkt` to
    /// bind tokens to.
    pub fn key(&self) -> &DpopKey {
        &self.prover.key
    }
}

impl<T> Clone for AddDpopLayer<T> {
    fn clone(&self) -> Self {
        Self {
            source: Arc::clone(&self.source),
            prover: self.prover.clone(),
        }
    }
}

impl<T> std::fmt::Debug for AddDpopLayer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddDpopLayer")
            .field("source", &std::any::type_name::<T>())
            .field("key", &self.prover.key)
            .finish()
    }
}

impl<S, T> Layer<S> for AddDpopLayer<T> {
    type Service = AddDpop<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        AddDpop::from_shared(
            inner,
            Arc::clone(&self.source),
            Arc::new(self.prover.clone()),
        )
    }
}
