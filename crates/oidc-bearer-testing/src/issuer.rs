//! [`TestIssuer`]: the issuer's state (keys, discovery settings, fault switches, counters) and
//! the handle tests drive it with.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;

use crate::key::{KeyAlg, TestKey};
use crate::server::{self, Server};
use crate::token::TokenBuilder;

/// Where discovery is served (OpenID Connect Discovery 1.0 §4).
const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

/// How long the `wait_for_*` methods wait before panicking, so a broken test fails instead of
/// hanging.
const WAIT_LIMIT: Duration = Duration::from_secs(30);

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
    pub(crate) reviews: crate::tokenreview::ReviewState,
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

struct KeyEntry {
    kid: String,
    key: Arc<TestKey>,
    published: bool,
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

    pub(crate) fn count_discovery(&self) {
        self.discovery_fetches.send_modify(|n| *n += 1);
    }

    pub(crate) fn count_jwks(&self) {
        self.jwks_fetches.send_modify(|n| *n += 1);
    }

    pub(crate) async fn wait_for_release(&self) {
        let mut holds = self.holds.subscribe();
        // The sender lives as long as `self`, so this only returns once no hold is left.
        let _ = holds.wait_for(|n| *n == 0).await;
    }

    pub(crate) fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    /// The signing key with this kid; panics with the known kids otherwise.
    pub(crate) fn key(&self, kid: &str) -> Arc<TestKey> {
        let state = self.lock();
        match state.keys.iter().find(|e| e.kid == kid) {
            Some(entry) => Arc::clone(&entry.key),
            None => {
                let known = state.known_kids();
                drop(state);
                panic!(
                    "oidc-bearer-testing: no signing key with kid {kid:?} (keys: {known}; \
                     keys added with add_raw_jwk have no private half)"
                )
            }
        }
    }

    pub(crate) fn signing_kid(&self) -> String {
        self.lock().signing_kid.clone()
    }

    fn jwks_uri(&self) -> String {
        let state = self.lock();
        state
            .jwks_uri
            .clone()
            .unwrap_or_else(|| format!("{}{}", self.base_url(), self.jwks_path))
    }

    pub(crate) fn discovery_document(&self) -> Value {
        let state = self.lock();
        let base = self.base_url();
        let issuer = state.discovery_issuer.as_deref().unwrap_or(&self.issuer);
        let jwks_uri = state
            .jwks_uri
            .clone()
            .unwrap_or_else(|| format!("{base}{}", self.jwks_path));
        // The algorithms of the published keys, as Kubernetes advertises them.
        let mut algs: Vec<&str> = Vec::new();
        for entry in state.keys.iter().filter(|e| e.published) {
            let name = entry.key.alg().name();
            if !algs.contains(&name) {
                algs.push(name);
            }
        }
        if algs.is_empty() {
            algs.push("RS256");
        }
        if state.full_discovery {
            json!({
                "issuer": issuer,
                "authorization_endpoint": format!("{base}/authorize"),
                "token_endpoint": format!("{base}/token"),
                "userinfo_endpoint": format!("{base}/userinfo"),
                "jwks_uri": jwks_uri,
                "scopes_supported": ["openid", "email", "profile"],
                "response_types_supported": ["code", "id_token", "token id_token"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": algs,
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "claims_supported": ["aud", "email", "email_verified", "exp", "iat", "iss", "name", "sub"],
                "code_challenge_methods_supported": ["S256"],
            })
        } else {
            // What a Kubernetes API server serves for service-account issuer discovery.
            json!({
                "issuer": issuer,
                "jwks_uri": jwks_uri,
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": algs,
            })
        }
    }

    /// The JWKS (all published keys, or just `kids`) and the Cache-Control value to send.
    pub(crate) fn jwks_document(&self, kids: Option<&[String]>) -> (Value, Option<String>) {
        let state = self.lock();
        let mut keys = Vec::new();
        for entry in &state.keys {
            let wanted = match kids {
                None => entry.published,
                Some(kids) => kids.contains(&entry.kid),
            };
            if wanted {
                keys.push(entry.key.public_jwk(&entry.kid));
            }
        }
        for jwk in &state.raw_jwks {
            let wanted = match kids {
                None => true,
                Some(kids) => jwk["kid"]
                    .as_str()
                    .is_some_and(|k| kids.iter().any(|w| w == k)),
            };
            if wanted {
                keys.push(jwk.clone());
            }
        }
        (json!({ "keys": keys }), state.cache_control.clone())
    }
}

impl State {
    fn known_kids(&self) -> String {
        let kids: Vec<String> = self.keys.iter().map(|e| format!("{:?}", e.kid)).collect();
        if kids.is_empty() {
            "none".into()
        } else {
            kids.join(", ")
        }
    }

    fn entry(&mut self, kid: &str) -> Option<&mut KeyEntry> {
        self.keys.iter_mut().find(|e| e.kid == kid)
    }

    /// The next free "key-N".
    fn next_kid(&self) -> String {
        (self.keys.len() + 1..)
            .map(|n| format!("key-{n}"))
            .find(|kid| {
                !self.keys.iter().any(|e| &e.kid == kid)
                    && !self.raw_jwks.iter().any(|j| j["kid"] == kid.as_str())
            })
            .expect("an unbounded range has a free number")
    }

    /// Adds `key` under `kid`, replacing any key that had that kid.
    fn insert(&mut self, kid: String, key: TestKey, published: bool) {
        let entry = KeyEntry {
            kid,
            key: Arc::new(key),
            published,
        };
        match self.keys.iter_mut().find(|e| e.kid == entry.kid) {
            Some(old) => *old = entry,
            None => self.keys.push(entry),
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

    /// Generates a key, publishes it in the JWKS and returns its kid (`"key-2"`, `"key-3"`, ...).
    /// The signing key does not change; see [`Self::rotate`] and [`Self::set_signing_key`].
    pub fn add_key(&self, alg: KeyAlg) -> String {
        let key = TestKey::generate(alg);
        let mut state = self.shared().lock();
        let kid = state.next_kid();
        state.insert(kid.clone(), key, true);
        kid
    }

    /// Generates a key and publishes it under `kid`. A key that already had this kid is
    /// replaced (same kid, new key material: a rotation that reuses kids).
    pub fn add_key_with_kid(&self, alg: KeyAlg, kid: &str) {
        let key = TestKey::generate(alg);
        self.shared().lock().insert(kid.to_owned(), key, true);
    }

    /// Generates a key that tokens can be signed with (via [`TokenBuilder::sign_with`]) but that
    /// is not in the JWKS, and returns its kid.
    pub fn add_unpublished_key(&self, alg: KeyAlg) -> String {
        let key = TestKey::generate(alg);
        let mut state = self.shared().lock();
        let kid = state.next_kid();
        state.insert(kid.clone(), key, false);
        kid
    }

    /// Takes the key (and any raw JWK) with this kid out of the JWKS. Tokens can still be signed
    /// with a generated key; publish it again with [`Self::publish_key`].
    ///
    /// # Panics
    /// If no key or raw JWK has this kid.
    pub fn remove_key(&self, kid: &str) {
        let mut state = self.shared().lock();
        let raw_before = state.raw_jwks.len();
        state.raw_jwks.retain(|jwk| jwk["kid"] != kid);
        let removed_raw = state.raw_jwks.len() != raw_before;
        let found_key = match state.entry(kid) {
            Some(entry) => {
                entry.published = false;
                true
            }
            None => false,
        };
        if !found_key && !removed_raw {
            let known = state.known_kids();
            drop(state);
            panic!("oidc-bearer-testing: remove_key({kid:?}): no such key (keys: {known})");
        }
    }

    /// Publishes again a key taken out with [`Self::remove_key`] or made with
    /// [`Self::add_unpublished_key`].
    ///
    /// # Panics
    /// If no generated key has this kid.
    pub fn publish_key(&self, kid: &str) {
        let mut state = self.shared().lock();
        if let Some(entry) = state.entry(kid) {
            entry.published = true;
            return;
        }
        let known = state.known_kids();
        drop(state);
        panic!("oidc-bearer-testing: publish_key({kid:?}): no such key (keys: {known})");
    }

    /// Generates a key of the signing key's algorithm, publishes it and makes it the signing
    /// key; the old key stays published. Returns the new kid.
    pub fn rotate(&self) -> String {
        let alg = self.shared().key(&self.signing_kid()).alg();
        let kid = self.add_key(alg);
        self.set_signing_key(&kid);
        kid
    }

    /// Makes the key with this kid the default for [`Self::token`].
    ///
    /// # Panics
    /// If no generated key has this kid.
    pub fn set_signing_key(&self, kid: &str) {
        let mut state = self.shared().lock();
        if state.entry(kid).is_none() {
            let known = state.known_kids();
            drop(state);
            panic!("oidc-bearer-testing: set_signing_key({kid:?}): no such key (keys: {known})");
        }
        state.signing_kid = kid.to_owned();
    }

    /// The kid of the key [`Self::token`] signs with.
    pub fn signing_kid(&self) -> String {
        self.shared().signing_kid()
    }

    /// The algorithm of the key with this kid.
    ///
    /// # Panics
    /// If no generated key has this kid.
    pub fn key_alg(&self, kid: &str) -> KeyAlg {
        self.shared().key(kid).alg()
    }

    /// The public JWK of a generated key, with `kid`, `kty`, `alg` and `use: "sig"`, whether or
    /// not it is published.
    ///
    /// # Panics
    /// If no generated key has this kid.
    pub fn public_jwk(&self, kid: &str) -> Value {
        self.shared().key(kid).public_jwk(kid)
    }

    /// The public key of a generated key as PEM (`-----BEGIN PUBLIC KEY-----`, an X.509
    /// SubjectPublicKeyInfo).
    ///
    /// # Panics
    /// If no generated key has this kid.
    pub fn public_key_pem(&self, kid: &str) -> String {
        self.shared().key(kid).public_key_pem()
    }

    /// The JWKS the jwks path serves right now: `{"keys": [...]}`.
    pub fn jwks_json(&self) -> Value {
        self.shared().jwks_document(None).0
    }

    /// The discovery document served right now.
    pub fn discovery_json(&self) -> Value {
        self.shared().discovery_document()
    }

    /// Publishes `jwk` verbatim after the generated keys, for keys the verifier should skip or
    /// reject (unknown `kty`, `use: "enc"`, missing members...). [`Self::remove_key`] with its
    /// `kid` takes it out again.
    pub fn add_raw_jwk(&self, jwk: Value) {
        self.shared().lock().raw_jwks.push(jwk);
    }

    /// The `Cache-Control` header sent with JWKS responses; `None` (the default) sends none.
    ///
    /// # Panics
    /// If `value` is not a valid header value.
    pub fn set_cache_control(&self, value: Option<&str>) {
        if let Some(v) = value {
            assert!(
                hyper::header::HeaderValue::from_str(v).is_ok(),
                "oidc-bearer-testing: set_cache_control({v:?}) is not a valid header value"
            );
        }
        self.shared().lock().cache_control = value.map(str::to_owned);
    }

    /// Advertises `issuer` in the discovery document instead of [`Self::issuer`] (tokens keep
    /// the real one), to test that a mismatch is refused (OpenID Connect Discovery §4.3).
    pub fn set_discovery_issuer(&self, issuer: &str) {
        self.shared().lock().discovery_issuer = Some(issuer.to_owned());
    }

    /// Advertises `uri` as `jwks_uri` in discovery. The JWKS is still served at
    /// [`Self::jwks_path`]; serve other paths with [`Self::serve_jwks_at`].
    pub fn set_jwks_uri(&self, uri: &str) {
        self.shared().lock().jwks_uri = Some(uri.to_owned());
    }

    /// Serves the full discovery document of a general OpenID provider (`true`) or the minimal
    /// Kubernetes one (`false`, the default).
    pub fn set_full_discovery(&self, full: bool) {
        self.shared().lock().full_discovery = full;
    }

    /// While down, every request is answered `503 Service Unavailable` (still counted as a
    /// fetch).
    pub fn set_down(&self, down: bool) {
        self.shared().down.store(down, Ordering::SeqCst);
    }

    /// Also serves, at `path`, a JWKS with just the keys with these kids, published or not
    /// (Google serves one such document per service account). Requests to it count in
    /// [`Self::jwks_fetches`] and wait on [`Self::hold_jwks`] like the main JWKS.
    ///
    /// # Panics
    /// If `path` does not start with `/` or is the discovery or main JWKS path, or a kid is
    /// unknown.
    pub fn serve_jwks_at(&self, path: &str, kids: &[&str]) {
        check_path("serve_jwks_at", path);
        assert!(
            path != self.shared().jwks_path,
            "oidc-bearer-testing: serve_jwks_at({path:?}): that is the main JWKS path"
        );
        let mut state = self.shared().lock();
        for kid in kids {
            let known = state.keys.iter().any(|e| e.kid == *kid)
                || state.raw_jwks.iter().any(|j| j["kid"] == *kid);
            if !known {
                let known = state.known_kids();
                drop(state);
                panic!(
                    "oidc-bearer-testing: serve_jwks_at: no key with kid {kid:?} (keys: {known})"
                );
            }
        }
        let kids = kids.iter().map(|k| (*k).to_owned()).collect();
        state.extra_jwks.insert(path.to_owned(), kids);
    }

    /// Closes the listener and every open connection: new requests get "connection refused".
    /// Keys, settings and counters are kept. Does nothing if already stopped.
    pub async fn stop_listening(&self) {
        let server = self
            .inner
            .server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(server) = server {
            server.stop().await;
        }
    }

    /// Listens again on the same port after [`Self::stop_listening`]. Does nothing if already
    /// listening.
    ///
    /// # Panics
    /// If the port cannot be bound again within a few seconds (another process took it).
    pub async fn resume_listening(&self) {
        if self.is_listening() {
            return;
        }
        let port = self.addr().port();
        let mut attempt = 0;
        let listener = loop {
            match server::bind(port).await {
                Ok(listener) => break listener,
                // The port was just released; give the kernel a moment.
                Err(_) if attempt < 50 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    panic!("oidc-bearer-testing: resume_listening: cannot bind port {port}: {e}")
                }
            }
        };
        let new = Server::spawn(
            &self.inner.runtime,
            listener,
            Arc::clone(&self.inner.shared),
        );
        let mut server = self
            .inner
            .server
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Two racing resume calls: the first one wins; dropping `new` stops the second.
        if server.is_none() {
            *server = Some(new);
        }
    }

    /// Whether the issuer is accepting connections (false between [`Self::stop_listening`] and
    /// [`Self::resume_listening`]).
    pub fn is_listening(&self) -> bool {
        self.inner
            .server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Makes JWKS requests wait until the returned guard is dropped (or
    /// [`JwksHold::release`]d). Requests are counted in [`Self::jwks_fetches`] on arrival, so
    /// `wait_for_jwks_fetches(n)` tells when they are parked; they are answered with the state at
    /// release time. Holds nest: requests wait until every hold is gone.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # use oidc_bearer_testing::TestIssuer;
    /// let issuer = TestIssuer::start().await;
    /// let hold = issuer.hold_jwks();
    /// let addr = issuer.addr();
    /// let fetch = tokio::spawn(async move {
    ///     // Any HTTP client will do; raw HTTP/1.1 keeps the example free of dependencies.
    ///     use tokio::io::{AsyncReadExt, AsyncWriteExt};
    ///     let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    ///     stream.write_all(b"GET /keys HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.unwrap();
    ///     let mut response = String::new();
    ///     stream.read_to_string(&mut response).await.unwrap();
    ///     response
    /// });
    /// issuer.wait_for_jwks_fetches(1).await; // the request is parked
    /// assert!(!fetch.is_finished());
    /// drop(hold);
    /// assert!(fetch.await.unwrap().starts_with("HTTP/1.1 200"));
    /// # }
    /// ```
    pub fn hold_jwks(&self) -> JwksHold {
        self.shared().holds.send_modify(|n| *n += 1);
        JwksHold {
            shared: Arc::clone(&self.inner.shared),
        }
    }

    /// Requests that reached the discovery path, answered or not (503s count).
    pub fn discovery_fetches(&self) -> usize {
        *self.shared().discovery_fetches.borrow()
    }

    /// Requests that reached a JWKS path (the main one and those of [`Self::serve_jwks_at`]),
    /// counted on arrival, answered or not (503s and held requests count).
    pub fn jwks_fetches(&self) -> usize {
        *self.shared().jwks_fetches.borrow()
    }

    /// Requests for `path` of any kind, including 404s.
    pub fn requests_to(&self, path: &str) -> usize {
        self.shared()
            .lock()
            .requests
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Resolves once [`Self::jwks_fetches`] is at least `n`.
    ///
    /// # Panics
    /// After 30 seconds (of real time, so a paused tokio clock does not cut it short), with
    /// the count reached so far, rather than hang a broken test.
    pub async fn wait_for_jwks_fetches(&self, n: usize) {
        wait_for_count(
            &self.shared().jwks_fetches,
            n,
            "wait_for_jwks_fetches",
            "JWKS",
        )
        .await;
    }

    /// Resolves once [`Self::discovery_fetches`] is at least `n`.
    ///
    /// # Panics
    /// After 30 seconds of real time, like [`Self::wait_for_jwks_fetches`].
    pub async fn wait_for_discovery_fetches(&self, n: usize) {
        let counter = &self.shared().discovery_fetches;
        wait_for_count(counter, n, "wait_for_discovery_fetches", "discovery").await;
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

/// Waits until `counter` reaches `n`, or panics after [`WAIT_LIMIT`] of real time.
pub(crate) async fn wait_for_count(
    counter: &watch::Sender<usize>,
    n: usize,
    method: &str,
    what: &str,
) {
    let mut rx = counter.subscribe();
    if *rx.borrow() >= n {
        return;
    }
    // A std thread keeps the time: tokio's clock may be paused in the caller's test, and would
    // then jump straight to a tokio deadline while the requests are still on their way.
    let (expired_tx, expired) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        std::thread::sleep(WAIT_LIMIT);
        let _ = expired_tx.send(());
    });
    tokio::select! {
        // The sender lives in `Shared`, which the caller's handle keeps alive.
        _ = rx.wait_for(|count| *count >= n) => {}
        _ = expired => {
            let reached = *counter.borrow();
            panic!(
                "oidc-bearer-testing: {method}({n}) timed out after {WAIT_LIMIT:?}: \
                 only {reached} {what} requests arrived"
            );
        }
    }
}

fn check_path(what: &str, path: &str) {
    assert!(
        path.starts_with('/'),
        "oidc-bearer-testing: {what}({path:?}): the path must start with '/'"
    );
    assert!(
        path != DISCOVERY_PATH,
        "oidc-bearer-testing: {what}({path:?}): that is the discovery path"
    );
}

/// While this guard lives, JWKS requests wait; see [`TestIssuer::hold_jwks`].
#[must_use = "dropping the hold releases the JWKS requests at once"]
pub struct JwksHold {
    shared: Arc<Shared>,
}

impl JwksHold {
    /// Releases the held requests (the same as dropping the guard).
    pub fn release(self) {}
}

impl Drop for JwksHold {
    fn drop(&mut self) {
        self.shared.holds.send_modify(|n| *n -= 1);
    }
}

impl fmt::Debug for JwksHold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksHold").finish_non_exhaustive()
    }
}

/// Configures a [`TestIssuer`]; from [`TestIssuer::builder`].
#[derive(Clone, Debug)]
#[must_use]
pub struct TestIssuerBuilder {
    alg: KeyAlg,
    kid: String,
    issuer: Option<String>,
    port: u16,
    full_discovery: bool,
    jwks_path: String,
}

impl Default for TestIssuerBuilder {
    fn default() -> Self {
        TestIssuerBuilder {
            alg: KeyAlg::RS256,
            kid: "key-1".into(),
            issuer: None,
            port: 0,
            full_discovery: false,
            jwks_path: "/keys".into(),
        }
    }
}

impl TestIssuerBuilder {
    /// The algorithm of the first signing key (default RS256).
    pub fn key(mut self, alg: KeyAlg) -> Self {
        self.alg = alg;
        self
    }

    /// The kid of the first signing key (default `"key-1"`).
    pub fn kid(mut self, kid: &str) -> Self {
        self.kid = kid.to_owned();
        self
    }

    /// The issuer string for tokens and discovery, e.g.
    /// `"https://container.googleapis.com/v1/projects/p/locations/l/clusters/c"`; the issuer
    /// still listens on 127.0.0.1, so point the verifier at [`TestIssuer::discovery_url`].
    pub fn issuer(mut self, iss: &str) -> Self {
        self.issuer = Some(iss.to_owned());
        self
    }

    /// Listen on this port of 127.0.0.1 (default 0: any free port).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Serve the full discovery document of a general OpenID provider instead of the minimal
    /// Kubernetes one.
    pub fn full_discovery(mut self, full: bool) -> Self {
        self.full_discovery = full;
        self
    }

    /// Serve the JWKS at this path (default `"/keys"`).
    ///
    /// # Panics
    /// If `path` does not start with `/` or is the discovery path.
    pub fn jwks_path(mut self, path: &str) -> Self {
        check_path("jwks_path", path);
        self.jwks_path = path.to_owned();
        self
    }

    /// Binds 127.0.0.1 and starts serving on the current tokio runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime, or if the port cannot be bound.
    pub async fn start(self) -> TestIssuer {
        let runtime = tokio::runtime::Handle::try_current().unwrap_or_else(|_| {
            panic!(
                "oidc-bearer-testing: TestIssuer::start needs a tokio runtime; \
                 use start_blocking outside one"
            )
        });
        let listener = server::bind(self.port).await.unwrap_or_else(|e| {
            panic!(
                "oidc-bearer-testing: cannot bind 127.0.0.1:{}: {e}",
                self.port
            )
        });
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("oidc-bearer-testing: listener has no address: {e}"));
        let key = TestKey::generate(self.alg);
        let shared = Arc::new(Shared {
            addr,
            issuer: self.issuer.unwrap_or_else(|| format!("http://{addr}")),
            jwks_path: self.jwks_path,
            state: Mutex::new(State {
                keys: vec![KeyEntry {
                    kid: self.kid.clone(),
                    key: Arc::new(key),
                    published: true,
                }],
                raw_jwks: Vec::new(),
                signing_kid: self.kid,
                cache_control: None,
                discovery_issuer: None,
                jwks_uri: None,
                full_discovery: self.full_discovery,
                extra_jwks: HashMap::new(),
                requests: HashMap::new(),
            }),
            down: AtomicBool::new(false),
            discovery_fetches: watch::Sender::new(0),
            jwks_fetches: watch::Sender::new(0),
            holds: watch::Sender::new(0),
            reviews: Default::default(),
        });
        let server = Server::spawn(&runtime, listener, Arc::clone(&shared));
        TestIssuer {
            inner: Arc::new(Inner {
                shared,
                runtime,
                server: Mutex::new(Some(server)),
                alive: watch::Sender::new(()),
            }),
        }
    }

    /// Starts the issuer on a runtime of its own, in a background thread, for callers without
    /// a runtime (a synchronous `main`, a `#[test]` that builds its runtime later). The thread
    /// ends when the last handle is dropped.
    ///
    /// ```
    /// let issuer = oidc_bearer_testing::TestIssuer::builder().start_blocking();
    /// assert!(issuer.base_url().starts_with("http://127.0.0.1:"));
    /// ```
    ///
    /// # Panics
    /// If the issuer cannot start (see [`Self::start`]).
    pub fn start_blocking(self) -> TestIssuer {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("oidc-test-issuer".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap_or_else(|e| panic!("oidc-bearer-testing: cannot build a runtime: {e}"));
                let issuer = runtime.block_on(self.start());
                let mut alive = issuer.inner.alive.subscribe();
                if tx.send(issuer).is_err() {
                    return;
                }
                // Serve until the last handle is gone (the watch sender closes).
                runtime.block_on(async move { while alive.changed().await.is_ok() {} });
            })
            .unwrap_or_else(|e| panic!("oidc-bearer-testing: cannot spawn the issuer thread: {e}"));
        rx.recv()
            .expect("oidc-bearer-testing: the issuer thread panicked while starting (see above)")
    }
}
