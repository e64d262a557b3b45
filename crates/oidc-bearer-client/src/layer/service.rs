//! The service that adds the header: [`AddBearer`].

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use http::{Request, header::AUTHORIZATION};
use tower_service::Service;

use super::{AddBearerFuture, AddBearerLayer, BoxError};
use crate::TokenSource;

/// Adds `Authorization: Bearer <token>` to each request before passing it to the inner service.
///
/// Made by [`AddBearerLayer`]; see there for the behaviour.
pub struct AddBearer<S, T> {
    inner: S,
    source: Arc<T>,
}

impl<S, T> AddBearer<S, T> {
    /// Wraps `inner`, taking tokens from `source`.
    pub fn new(inner: S, source: T) -> Self {
        Self::from_shared(inner, Arc::new(source))
    }

    pub(super) fn from_shared(inner: S, source: Arc<T>) -> Self {
        Self { inner, source }
    }

    /// A layer that wraps services the same way.
    pub fn layer(source: T) -> AddBearerLayer<T> {
        AddBearerLayer::new(source)
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
}

impl<S: Clone, T> Clone for AddBearer<S, T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            source: Arc::clone(&self.source),
        }
    }
}

impl<S: std::fmt::Debug, T> std::fmt::Debug for AddBearer<S, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddBearer")
            .field("inner", &self.inner)
            .field("source", &std::any::type_name::<T>())
            .finish()
    }
}

impl<S, T, B> Service<Request<B>> for AddBearer<S, T>
where
    S: Service<Request<B>> + Clone,
    S::Error: Into<BoxError>,
    T: TokenSource,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = AddBearerFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // Leave a caller's own credentials alone (client-go's tokenSourceTransport does the same).
        if request.headers().contains_key(AUTHORIZATION) {
            return AddBearerFuture::send(self.inner.call(request));
        }
        let (inner, token) = super::readied_with_token(&mut self.inner, &self.source);
        AddBearerFuture::fetch_token(token, inner, request)
    }
}

#[cfg(test)]
mod tests {
    use std::{
        convert::Infallible,
        sync::atomic::{AtomicUsize, Ordering},
    };

    use http::{HeaderValue, Response};
    use tower::{ServiceExt, service_fn};

    use super::*;
    use crate::{BearerToken, TokenError};

    /// Counts calls and returns a fixed result.
    struct Counting {
        calls: AtomicUsize,
        result: Result<BearerToken, TokenError>,
    }

    impl TokenSource for Counting {
        async fn token(&self) -> Result<BearerToken, TokenError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.result.clone()
        }
    }

    fn counting(result: Result<BearerToken, TokenError>) -> Arc<Counting> {
        Arc::new(Counting {
            calls: AtomicUsize::new(0),
            result,
        })
    }

    /// Answers with the Authorization header it received.
    fn echo() -> impl Service<
        Request<()>,
        Response = Response<Option<HeaderValue>>,
        Error = Infallible,
        Future = impl Send,
    > + Clone {
        service_fn(|request: Request<()>| async move {
            Ok::<_, Infallible>(Response::new(request.headers().get(AUTHORIZATION).cloned()))
        })
    }

    #[tokio::test]
    async fn header_is_added_and_marked_sensitive() {
        let source = counting(Ok(BearerToken::new("abc").unwrap()));
        let client = AddBearer::new(echo(), Arc::clone(&source));
        let response = client.oneshot(Request::new(())).await.unwrap();
        let sent = response.into_body().unwrap();
        assert_eq!(sent, "Bearer abc");
        assert!(sent.is_sensitive());
        assert_eq!(source.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn existing_authorization_is_left_alone_and_no_token_is_fetched() {
        let source = counting(Ok(BearerToken::new("abc").unwrap()));
        let client = AddBearer::new(echo(), Arc::clone(&source));
        let request = Request::builder()
            .header(AUTHORIZATION, "Basic dXNlcjpwYXNz")
            .body(())
            .unwrap();
        let response = client.oneshot(request).await.unwrap();
        assert_eq!(response.into_body().unwrap(), "Basic dXNlcjpwYXNz");
        assert_eq!(source.calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn token_error_fails_the_call_without_sending() {
        let sent = Arc::new(AtomicUsize::new(0));
        let inner = {
            let sent = Arc::clone(&sent);
            service_fn(move |_: Request<()>| {
                sent.fetch_add(1, Ordering::SeqCst);
                async { Ok::<_, Infallible>(Response::new(())) }
            })
        };
        let source = counting(Err(TokenError::other("no token today")));
        let error = AddBearer::new(inner, source)
            .oneshot(Request::new(()))
            .await
            .unwrap_err();
        let error = error.downcast_ref::<TokenError>().expect("a TokenError");
        assert!(matches!(error, TokenError::Other(_)), "{error:?}");
        assert_eq!(sent.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn inner_errors_pass_through() {
        let inner = service_fn(|_: Request<()>| async {
            Err::<Response<()>, _>(std::io::Error::other("connection reset"))
        });
        let error = AddBearer::new(inner, BearerToken::new("abc").unwrap())
            .oneshot(Request::new(()))
            .await
            .unwrap_err();
        assert_eq!(error.to_string(), "connection reset");
        assert!(error.downcast_ref::<std::io::Error>().is_some());
    }

    #[test]
    fn the_service_and_its_future_are_send() {
        fn assert_send<T: Send>(_: &T) {}
        let mut client = AddBearer::new(echo(), BearerToken::new("abc").unwrap());
        assert_send(&client);
        assert_send(&client.call(Request::new(())));
    }
}
