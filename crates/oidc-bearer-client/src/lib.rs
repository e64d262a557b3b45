//! Send workload identity tokens from any tower client, or from reqwest.
//!
//! The client half of [`oidc-bearer`](https://docs.rs/oidc-bearer): where that crate verifies
//! `Authorization: Bearer` tokens in a service, this one attaches them to the requests a workload
//! sends, taking them from
//!
//! - a **token file** that a Kubernetes projected volume mounts and the kubelet rotates
//!   ([`FileTokenSource`]), re-read when due and on rotation;
//! - the **Google metadata server**, which mints ID tokens for an audience (`MetadataTokenSource`,
//!   feature `metadata`, on by default);
//! - **your own** source: implement [`TokenSource`].
//!
//! With feature `dpop`, `AddDpopLayer` sends DPoP-bound tokens (RFC 9449) instead: each request
//! carries `Authorization: DPoP <token>` and a fresh proof signed with a `DpopKey` the client holds.
//!
//! A client never verifies its own token: it only reads `exp` from the payload to know when to renew
//! it. Both sources share one refresh engine: one load for all callers, run as a task of its own so
//! that a cancelled caller neither stops nor repeats it, the last good token kept while a load fails,
//! and a pause before retrying counted from the start of the failed load. Loads need a Tokio runtime.
//! The clock ([`clock`]) and the single-flight task are the ones `oidc-bearer` uses, from the small
//! crate both depend on (`oidc-bearer-shared`): this crate needs neither the verifier nor a signature
//! crypto backend.
//!
//! # Quick start: a tower client (hyper-util, tonic)
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, header::AUTHORIZATION};
//! use oidc_bearer_client::{AddBearerLayer, FileTokenSource};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! # let dir = tempfile::tempdir()?;
//! # let token_path = dir.path().join("token");
//! # std::fs::write(&token_path, "token-from-the-kubelet\n")?;
//! // In a pod: the path of a projected serviceAccountToken volume, e.g.
//! // /var/run/secrets/tokens/api-token.
//! let source = FileTokenSource::new(&token_path);
//! source.reload().await?; // fail fast if the file is missing
//!
//! // Any tower client: hyper_util::client::legacy::Client, a tonic Channel, ...
//! # let client = service_fn(|request: Request<String>| async move {
//! #     Ok::<_, Infallible>(Response::new(request.headers()[AUTHORIZATION].clone()))
//! # });
//! let client = ServiceBuilder::new()
//!     .layer(AddBearerLayer::new(source))
//!     .service(client);
//!
//! let response = client.oneshot(Request::new(String::new())).await?;
//! assert_eq!(response.body(), "Bearer token-from-the-kubelet");
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! # }).unwrap();
//! ```
//!
//! With hyper-util the inner service is
//! `hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http::<Body>()`; with
//! tonic, a `tonic::transport::Channel`, and the layered service goes to the generated client's
//! `new` (its error is a [`BoxError`], which tonic accepts). tonic's interceptors are
//! synchronous and cannot wait for a token refresh, so use the layer rather than an interceptor.
//!
//! # reqwest
//!
//! reqwest is not a tower service; ask the source for the header value per request. Sources cache,
//! so this costs no I/O while the token is fresh.
//!
//! ```no_run
//! use std::sync::Arc;
//! use oidc_bearer_client::{FileTokenSource, TokenSource};
//! use reqwest::header::AUTHORIZATION;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let source = Arc::new(FileTokenSource::new("/var/run/secrets/tokens/api-token"));
//! let client = reqwest::Client::new();
//!
//! let response = client
//!     .get("http://api.internal/private")
//!     .header(AUTHORIZATION, source.header_value().await?)
//!     .send()
//!     .await?;
//! println!("{}", response.status());
//! # Ok(()) }
//! ```
//!
//! # Google Cloud
//!
//! ```no_run
//! use oidc_bearer_client::{AddBearerLayer, MetadataTokenSource};
//!
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // The audience is what the receiving service checks `aud` against.
//! let source = MetadataTokenSource::new("https://api.example.com")?;
//! let layer = AddBearerLayer::new(source);
//! # drop(layer); Ok(()) }
//! ```
//!
//! # How the pieces fit
//!
//! request → [`AddBearer`] → [`TokenSource::token`] (a cached [`BearerToken`], or a re-read / fetch
//! when due) → `Authorization: Bearer …` (sensitive) → inner client. No token → [`TokenError`], and
//! the request is not sent.

#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "dpop")]
mod dpop;
mod error;
mod file;
mod layer;
#[cfg(feature = "metadata")]
mod metadata;
mod refresh;
mod source;
mod token;

/// The clock the sources read, shared with `oidc-bearer`: implement [`Clock`](clock::Clock) or use
/// [`ManualClock`](clock::ManualClock) in tests, and pass it to a source's `with_clock`.
pub use oidc_bearer_shared::clock;

/// An error and its causes as one line ("a: b: c"), for logging a [`TokenError`] or an HTTP
/// client's error, whose own message often leaves the cause out; shared with `oidc-bearer`.
pub use oidc_bearer_shared::error_chain;
/// Why a request to the metadata server failed ([`TokenError::MetadataUnavailable`]): the same
/// transport-level error as `oidc-bearer`'s.
pub use oidc_bearer_shared::fetch::FetchError;
/// Why a load gave no outcome ([`TokenError::Flight`]): no Tokio runtime, or interrupted.
pub use oidc_bearer_shared::flight::FlightError;

pub use self::{
    error::{MetadataConfigError, TokenError},
    file::{DEFAULT_POLL_INTERVAL, FileTokenSource},
    layer::{AddBearer, AddBearerFuture, AddBearerLayer, BoxError},
    source::{SharedTokenSource, TokenSource},
    token::{BearerToken, InvalidToken, MAX_TOKEN_LEN},
};

#[cfg(feature = "dpop")]
#[cfg_attr(docsrs, doc(cfg(feature = "dpop")))]
pub use self::dpop::{AddDpop, AddDpopFuture, AddDpopLayer, DpopError, DpopKey, InvalidDpopKey};
#[cfg(feature = "metadata")]
#[cfg_attr(docsrs, doc(cfg(feature = "metadata")))]
pub use self::metadata::{DEFAULT_METADATA_BASE_URL, METADATA_HOST_ENV, MetadataTokenSource};
