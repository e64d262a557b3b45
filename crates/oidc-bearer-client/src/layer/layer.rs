//! The layer that wraps a client in [`AddBearer`].

use std::sync::Arc;

use tower_layer::Layer;

use super::AddBearer;

/// Wraps a tower client so each request carries `Authorization: Bearer <token>` from a
/// [`TokenSource`](crate::TokenSource).
///
/// The header value is marked sensitive. A request that already has an `Authorization` header is sent
/// as it is and no token is fetched, so one call can use other credentials (client-go's bearer
/// round-tripper does the same, "to allow --token to override other bearer token providers").
///
/// ```
/// use std::convert::Infallible;
/// use http::{Request, Response, header::AUTHORIZATION};
/// use oidc_bearer_client::{AddBearerLayer, BearerToken};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// // A stand-in for hyper-util's client or a tonic channel that echoes the header it got.
/// let client = service_fn(|request: Request<()>| async move {
///     let sent = request.headers()[AUTHORIZATION].clone();
///     assert!(sent.is_sensitive());
///     Ok::<_, Infallible>(Response::new(sent))
/// });
/// let client = ServiceBuilder::new()
///     .layer(AddBearerLayer::new(BearerToken::new("t0k3n")?))
///     .service(client);
///
/// let response = client.oneshot(Request::new(())).await?;
/// assert_eq!(response.body(), "Bearer t0k3n");
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// # }).unwrap();
/// ```
pub struct AddBearerLayer<T> {
    source: Arc<T>,
}

impl<T> AddBearerLayer<T> {
    /// A layer that takes its tokens from `source`.
    ///
    /// The layer and every service it makes share the source, and so its cache. To share it with
    /// other code as well (a reqwest client, say), pass an `Arc<T>` and keep a clone.
    pub fn new(source: T) -> Self {
        Self {
            source: Arc::new(source),
        }
    }

    /// The token source.
    pub fn source(&self) -> &T {
        &self.source
    }
}

impl<T> Clone for AddBearerLayer<T> {
    fn clone(&self) -> Self {
        Self {
            source: Arc::clone(&self.source),
        }
    }
}

impl<T> std::fmt::Debug for AddBearerLayer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddBearerLayer")
            .field("source", &std::any::type_name::<T>())
            .finish()
    }
}

impl<S, T> Layer<S> for AddBearerLayer<T> {
    type Service = AddBearer<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        AddBearer::from_shared(inner, Arc::clone(&self.source))
    }
}
