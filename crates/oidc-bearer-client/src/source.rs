//! The [`TokenSource`] trait that joins token sources to the layer, and [`SharedTokenSource`] to erase them.

use std::{fmt, future::Future, pin::Pin, sync::Arc};

use http::HeaderValue;

use crate::{BearerToken, TokenError};

/// Something that hands out the current bearer token: a file, the metadata server, or your own.
///
/// `token` is called for every request the [`AddBearerLayer`](crate::AddBearerLayer) sends, so it
/// should answer from a cache and do I/O only when the cached token is due for renewal, as
/// [`FileTokenSource`](crate::FileTokenSource) and `MetadataTokenSource` do. It is the Rust shape of
/// golang.org/x/oauth2's `TokenSource`.
///
/// Implement it with an `async fn`:
///
/// ```
/// use std::sync::RwLock;
/// use oidc_bearer_client::{BearerToken, TokenError, TokenSource};
///
/// /// A token that another task pushes in, e.g. from a sidecar.
/// #[derive(Default)]
/// struct Pushed(RwLock<Option<BearerToken>>);
///
/// impl TokenSource for Pushed {
///     async fn token(&self) -> Result<BearerToken, TokenError> {
///         let current = self.0.read().unwrap().clone();
///         current.ok_or_else(|| TokenError::other("no token pushed yet"))
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let source = Pushed::default();
/// assert!(source.token().await.is_err());
/// *source.0.write().unwrap() = Some(BearerToken::new("abc")?);
/// assert_eq!(source.header_value().await?, "Bearer abc");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub trait TokenSource: Send + Sync + 'static {
    /// The token to send now.
    fn token(&self) -> impl Future<Output = Result<BearerToken, TokenError>> + Send;

    /// The `Authorization` header value to send now: `Bearer <token>`, marked sensitive.
    ///
    /// This is the way to use a source with a client that is not a tower service, such as reqwest:
    ///
    /// ```no_run
    /// # async fn demo(client: reqwest::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// use oidc_bearer_client::{FileTokenSource, TokenSource};
    ///
    /// let source = FileTokenSource::new("/var/run/secrets/tokens/api-token");
    /// let response = client
    ///     .get("http://api.internal/private")
    ///     .header(http::header::AUTHORIZATION, source.header_value().await?)
    ///     .send()
    ///     .await?;
    /// # drop(response); Ok(()) }
    /// ```
    fn header_value(&self) -> impl Future<Output = Result<HeaderValue, TokenError>> + Send {
        async move { Ok(self.token().await?.header_value()) }
    }
}

/// A fixed token is a source that always returns itself.
impl TokenSource for BearerToken {
    async fn token(&self) -> Result<BearerToken, TokenError> {
        Ok(self.clone())
    }
}

/// Share one source (and so one cache) between a layer and other clients.
impl<T: TokenSource> TokenSource for Arc<T> {
    fn token(&self) -> impl Future<Output = Result<BearerToken, TokenError>> + Send {
        T::token(self)
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The object-safe half of [`TokenSource`], implemented for every source.
trait ErasedTokenSource: Send + Sync + 'static {
    fn token_boxed(&self) -> BoxFuture<'_, Result<BearerToken, TokenError>>;
}

impl<T: TokenSource> ErasedTokenSource for T {
    fn token_boxed(&self) -> BoxFuture<'_, Result<BearerToken, TokenError>> {
        Box::pin(self.token())
    }
}

/// Any [`TokenSource`] behind one type, cheap to clone; clones share the source and its cache.
///
/// Use it to pick a source at run time, or to name the layer's type without generics:
///
/// ```
/// use oidc_bearer_client::{AddBearerLayer, BearerToken, FileTokenSource, SharedTokenSource, TokenSource};
///
/// fn source_from_env() -> SharedTokenSource {
///     match std::env::var_os("TOKEN_FILE") {
///         Some(path) => SharedTokenSource::new(FileTokenSource::new(path)),
///         None => SharedTokenSource::new(BearerToken::new("dev-token").unwrap()),
///     }
/// }
///
/// let layer: AddBearerLayer<SharedTokenSource> = AddBearerLayer::new(source_from_env());
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// # if std::env::var_os("TOKEN_FILE").is_none() {
/// assert_eq!(source_from_env().token().await.unwrap().secret(), "dev-token");
/// # }
/// # });
/// # drop(layer);
/// ```
#[derive(Clone)]
pub struct SharedTokenSource(Arc<dyn ErasedTokenSource>);

impl SharedTokenSource {
    /// Erases the source's type.
    pub fn new(source: impl TokenSource) -> Self {
        Self(Arc::new(source))
    }
}

impl TokenSource for SharedTokenSource {
    fn token(&self) -> impl Future<Output = Result<BearerToken, TokenError>> + Send {
        self.0.token_boxed()
    }
}

impl fmt::Debug for SharedTokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedTokenSource(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fixed_token_is_its_own_source() {
        let token = BearerToken::new("fixed").unwrap();
        assert_eq!(token.token().await.unwrap(), token);
        assert_eq!(
            TokenSource::header_value(&token).await.unwrap(),
            "Bearer fixed"
        );
    }

    #[tokio::test]
    async fn shared_and_arc_sources_forward_to_the_inner_source() {
        let token = BearerToken::new("inner").unwrap();
        let shared = SharedTokenSource::new(Arc::new(token.clone()));
        assert_eq!(shared.clone().token().await.unwrap(), token);
        assert_eq!(format!("{shared:?}"), "SharedTokenSource(..)");
    }
}
