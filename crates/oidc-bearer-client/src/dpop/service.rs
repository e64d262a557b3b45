//! The service that adds the token and the proof: [`AddDpop`].

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use http::{Request, Response, header::AUTHORIZATION};
use tower_service::Service;

use super::{AddDpopFuture, AddDpopLayer, DpopKey, Prover};
use crate::{BoxError, TokenSource};

/// Adds `Authorization: DPoP <token>` and a `DPoP` proof to each request before passing it to the
/// inner service, and retries once when the server asks for a nonce.
///
/// Made by [`AddDpopLayer`]; see there for the behaviour.
pub struct AddDpop<S, T> {
    inner: S,
    source: Arc<T>,
    prover: Arc<Prover>,
}

impl<S, T> AddDpop<S, T> {
    /// Wraps `inner`, taking tokens from `source` and signing proofs with `key`.
    pub fn new(inner: S, source: T, key: DpopKey) -> Self {
        tower_layer::Layer::layer(&AddDpopLayer::new(source, key), inner)
    }

    pub(super) fn from_shared(inner: S, source: Arc<T>, prover: Arc<Prover>) -> Self {
        Self {
            inner,
            source,
            prover,
        }
    }

    /// A layer that wraps services the same way.
    pub fn layer(source: T, key: DpopKey) -> AddDpopLayer<T> {
        AddDpopLayer::new(source, key)
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The token source.
    pub fn source(&self) -> &T {
        &self.source
    }

    /// The key the proofs are signed with.
    pub fn key(&self) -> &DpopKey {
        &self.prover.key
    }
}

impl<S: Clone, T> Clone for AddDpop<S, T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            source: Arc::clone(&self.source),
            prover: Arc::clone(&self.prover),
        }
    }
}

impl<S: std::fmt::Debug, T> std::fmt::Debug for AddDpop<S, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddDpop")
            .field("inner", &self.inner)
            .field("source", &std::any::type_name::<T>())
            .field("key", &self.prover.key)
            .finish()
    }
}

impl<S, T, B, ResBody> Service<Request<B>> for AddDpop<S, T>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone,
    S::Error: Into<BoxError>,
    T: TokenSource,
    B: Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = AddDpopFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // Leave a caller's own credentials alone, as `AddBearer` does.
        if request.headers().contains_key(AUTHORIZATION) {
            return AddDpopFuture::send(self.inner.call(request));
        }
        let (inner, token) = crate::layer::readied_with_token(&mut self.inner, &self.source);
        AddDpopFuture::fetch_token(token, Arc::clone(&self.prover), inner, request)
    }
}
