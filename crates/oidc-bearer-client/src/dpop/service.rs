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

#[cfg(test)]
mod tests {
    use std::{
        convert::Infallible,
        sync::atomic::{AtomicUsize, Ordering},
    };

    use http::HeaderMap;
    use tower::{ServiceExt, service_fn};

    use super::*;
    use crate::{BearerToken, DpopError};

    /// Answers with the headers it received, counting calls.
    fn echo(
        calls: &Arc<AtomicUsize>,
    ) -> impl Service<
        Request<()>,
        Response = Response<HeaderMap>,
        Error = Infallible,
        Future = impl Send,
    > + Clone {
        let calls = Arc::clone(calls);
        service_fn(move |request: Request<()>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, Infallible>(Response::new(request.headers().clone())) }
        })
    }

    fn dpop<S>(inner: S) -> AddDpop<S, BearerToken> {
        AddDpop::new(
            inner,
            BearerToken::new("abc").unwrap(),
            DpopKey::generate().unwrap(),
        )
    }

    #[tokio::test]
    async fn existing_authorization_is_sent_without_a_proof() {
        let calls = Arc::new(AtomicUsize::new(0));
        let request = Request::get("https://api.example.com/x")
            .header(AUTHORIZATION, "Basic dXNlcjpwYXNz")
            .body(())
            .unwrap();
        let sent = dpop(echo(&calls))
            .oneshot(request)
            .await
            .unwrap()
            .into_body();
        assert_eq!(sent[AUTHORIZATION], "Basic dXNlcjpwYXNz");
        assert!(!sent.contains_key("dpop"));
    }

    #[tokio::test]
    async fn the_token_and_proof_headers_are_sensitive() {
        let calls = Arc::new(AtomicUsize::new(0));
        let request = Request::get("https://api.example.com/x").body(()).unwrap();
        let sent = dpop(echo(&calls))
            .oneshot(request)
            .await
            .unwrap()
            .into_body();
        assert_eq!(sent[AUTHORIZATION], "DPoP abc");
        assert!(sent[AUTHORIZATION].is_sensitive());
        assert!(sent["dpop"].is_sensitive());
    }

    #[tokio::test]
    async fn a_relative_uri_fails_the_call_without_sending() {
        let calls = Arc::new(AtomicUsize::new(0));
        let request = Request::get("/x?y").body(()).unwrap();
        let error = dpop(echo(&calls)).oneshot(request).await.unwrap_err();
        assert_eq!(
            error.downcast_ref::<DpopError>(),
            Some(&DpopError::NotAbsoluteUri { uri: "/x?y".into() })
        );
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn the_service_and_its_future_are_send() {
        fn assert_send<T: Send>(_: &T) {}
        let calls = Arc::new(AtomicUsize::new(0));
        let mut client = AddDpop::new(
            echo(&calls),
            BearerToken::new("abc").unwrap(),
            DpopKey::generate().unwrap(),
        );
        assert_send(&client);
        assert_send(&client.call(Request::new(())));
    }
}
