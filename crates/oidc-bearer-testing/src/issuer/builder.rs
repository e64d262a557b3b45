//! [`TestIssuerBuilder`]: how an issuer starts (key type, kid, issuer string, port, paths).

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::documents::check_path;
use super::keys::KeyEntry;
use super::{Inner, Shared, State, TestIssuer};
use crate::key::{KeyAlg, TestKey};
use crate::server::{self, Server};

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
                switching: tokio::sync::Mutex::new(()),
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
