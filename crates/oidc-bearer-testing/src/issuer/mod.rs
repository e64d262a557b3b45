//! [`TestIssuer`]: the handle tests drive the issuer with, and the state it shares with the server
//! task and the token builders. By concern: [`builder`] starts it, [`keys`] holds its keys,
//! [`documents`] shapes what it serves (discovery, JWKS), [`faults`] breaks it and counts its
//! requests.

mod builder;
mod documents;
mod faults;
mod keys;
mod serve;
pub(crate) mod token;
pub(crate) mod tokenreview;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::Value;
use tokio::sync::watch;

pub use self::builder::TestIssuerBuilder;
pub use self::faults::JwksHold;
pub(crate) use self::faults::wait_for_count;
use self::keys::KeyEntry;
use self::token::TokenBuilder;
use crate::server::Server;

/// Where discovery is served (OpenID Connect Discovery 1.0 §4).
const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

/// A local OpenID Connect issuer on 127.0.0.1: serves discovery and a JWKS, mints tokens, and
/// lets a test rotate keys, break the endpoints and watch the fetches.
///
/// Clones are handles to the same issuer; the server stops when the last handle is dropped.
/// Misuse (an unknown `kid`, a bad path) panics with a message that says what went wrong.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use oidc_bearer_testing::{KeyAlg, TestIssuer};
///
/// let issuer = TestIssuer::start().await;
/// assert_eq!(issuer.signing_kid(), "key-1");
///
/// let old = issuer.signing_kid();
/// let new = issuer.rotate();
/// assert_ne!(old, new);
/// assert_eq!(issuer.jwks_json()["keys"].as_array().unwrap().len(), 2);
///
/// let token = issuer.token().aud("my-api").sign();
/// assert_eq!(token.split('.').count(), 3);
/// # }
/// ```
#[derive(Clone)]
pub struct TestIssuer {
    inner: Arc<Inner>,
}

/// Owned by the handles only: when the last one goes, `server` is dropped (which stops the
/// accept loop) and `alive` closes (which lets a `start_blocking` thread end).
struct Inner {
    shared: Arc<Shared>,
    runtime: tokio::runtime::Handle,
    server: Mutex<Option<Server>>,
    /// Held by `stop_listening` and `resume_listening` from start to end, so they never overlap.
    switching: tokio::sync::Mutex<()>,
    alive: watch::Sender<()>,
}

/// The state the server task and the token builders share with the handles.
pub(crate) struct Shared {
    addr: SocketAddr,
    issuer: String,
    jwks_path: String,
    state: Mutex<State>,
    down: AtomicBool,
    discovery_fetches: watch::Sender<usize>,
    jwks_fetches: watch::Sender<usize>,
    /// Number of live [`JwksHold`]s; JWKS requests wait while it is non-zero.
    holds: watch::Sender<usize>,
    /// The TokenReview endpoint's state.
    pub(crate) reviews: self::tokenreview::ReviewState,
}

struct State {
    /// Every key the issuer can sign with, in creation order.
    keys: Vec<KeyEntry>,
    /// JWKs published verbatim after the generated keys.
    raw_jwks: Vec<Value>,
    signing_kid: String,
    cache_control: Option<String>,
    discovery_issuer: Option<String>,
    jwks_uri: Option<String>,
    full_discovery: bool,
    /// Extra JWKS documents: path → kids.
    extra_jwks: HashMap<String, Vec<String>>,
    requests: HashMap<String, usize>,
}

/// What a request path is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Discovery,
    /// The main JWKS (`None`) or an extra one with just these kids.
    Jwks(Option<Vec<String>>),
    NotFound,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock must not take every other test down with
        // a PoisonError; the state is still consistent (we never panic mid-update).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn issuer(&self) -> &str {
        &self.issuer
    }

    pub(crate) fn route(&self, path: &str) -> Route {
        let mut state = self.lock();
        *state.requests.entry(path.to_owned()).or_default() += 1;
        if path == DISCOVERY_PATH {
            Route::Discovery
        } else if path == self.jwks_path {
            Route::Jwks(None)
        } else if let Some(kids) = state.extra_jwks.get(path) {
            Route::Jwks(Some(kids.clone()))
        } else {
            Route::NotFound
        }
    }
}

impl TestIssuer {
    /// Starts an issuer on a free port of 127.0.0.1 with one RS256 key (kid `"key-1"`) and a
    /// minimal, Kubernetes-style discovery document.
    ///
    /// Must be called inside a tokio runtime: the server runs as tasks on it.
    pub async fn start() -> TestIssuer {
        TestIssuer::builder().start().await
    }

    /// A builder for an issuer with another key type, a fixed port, an issuer string of your
    /// choice, and so on.
    pub fn builder() -> TestIssuerBuilder {
        TestIssuerBuilder::default()
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// The issuer identifier used in tokens (`iss`) and in discovery: `"http://127.0.0.1:PORT"`
    /// (no trailing slash), unless overridden with [`TestIssuerBuilder::issuer`].
    pub fn issuer(&self) -> String {
        self.shared().issuer.clone()
    }

    /// Where the issuer listens, always `"http://127.0.0.1:PORT"`, whatever [`Self::issuer`] says.
    pub fn base_url(&self) -> String {
        self.shared().base_url()
    }

    /// The socket address the issuer listens on.
    pub fn addr(&self) -> SocketAddr {
        self.shared().addr
    }

    /// `base_url() + "/.well-known/openid-configuration"`.
    pub fn discovery_url(&self) -> String {
        format!("{}{DISCOVERY_PATH}", self.base_url())
    }

    /// The `jwks_uri` the discovery document advertises: `base_url() + jwks_path` (by default
    /// `/keys`), or the value given to [`Self::set_jwks_uri`].
    pub fn jwks_uri(&self) -> String {
        self.shared().jwks_uri()
    }

    /// The path the JWKS is served at (`"/keys"` unless set with [`TestIssuerBuilder::jwks_path`]).
    pub fn jwks_path(&self) -> String {
        self.shared().jwks_path.clone()
    }

    /// The issuer's Kubernetes TokenReview endpoint, on the same address: see
    /// [`TokenReviews`](crate::TokenReviews).
    pub fn token_reviews(&self) -> crate::TokenReviews {
        crate::TokenReviews::new(Arc::clone(&self.inner.shared))
    }

    /// A token builder pre-filled for this issuer: `iss`, `sub`, `iat`, `exp` one hour ahead,
    /// signed with the current signing key. See [`TokenBuilder`].
    pub fn token(&self) -> TokenBuilder {
        TokenBuilder::new(Arc::clone(&self.inner.shared), self.signing_kid())
    }
}

impl fmt::Debug for TestIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared().lock();
        let kids: Vec<(&str, &str, bool)> = state
            .keys
            .iter()
            .map(|e| (e.kid.as_str(), e.key.alg().name(), e.published))
            .collect();
        f.debug_struct("TestIssuer")
            .field("issuer", &self.shared().issuer)
            .field("addr", &self.shared().addr)
            .field("signing_kid", &state.signing_kid)
            .field("keys (kid, alg, published)", &kids)
            .finish_non_exhaustive()
    }
}
