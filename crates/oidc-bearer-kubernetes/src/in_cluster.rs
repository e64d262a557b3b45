//! Kubernetes: verifying the service-account tokens of the cluster a service runs in
//! ([`InCluster`]), and — only when there is no way around it — legacy secret-based tokens
//! ([`dangerous_legacy_service_account_verifier`]).
//!
//! Decode the claims into [`KubernetesClaims`](oidc_bearer::claims::kubernetes::KubernetesClaims).
//! For GKE clusters verified from outside, see [`gke`](super::gke); any other cluster whose issuer
//! publishes discovery (EKS, AKS, a public issuer URL) is a plain [`Verifier`] of its issuer.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use oidc_bearer_shared::file::{READ_TIMEOUT, Reads, bounded, read_regular};
use oidc_bearer_shared::log_limit::{LogLimiter, PERIOD};

use oidc_bearer::__private::{BuilderAccess as _, Credential, bearer_authorization};
use oidc_bearer::ConfigError;
use oidc_bearer::keys::{Jwks, StaticKeySet};
use oidc_bearer::{Verifier, VerifierBuilder};

/// The `iss` of legacy secret-based service-account tokens (and the default issuer of clusters
/// before Kubernetes 1.20). Not a URL: there is no discovery for it.
const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";
/// The claim that marks a legacy token, required by the legacy policy.
const LEGACY_NAMESPACE_CLAIM: &str = "kubernetes.io/serviceaccount/namespace";
/// The API server's address inside a cluster, by its service's DNS name: used when the kubelet's
/// `KUBERNETES_SERVICE_HOST` and `KUBERNETES_SERVICE_PORT` are not both set.
const DEFAULT_API_SERVER: &str = "https://kubernetes.default.svc";
/// The variables the kubelet sets in every container: the API server's service address and port.
const SERVICE_HOST_ENV: &str = "KUBERNETES_SERVICE_HOST";
const SERVICE_PORT_ENV: &str = "KUBERNETES_SERVICE_PORT";
/// Where the kubelet mounts the pod's own service-account token (and rotates it).
const DEFAULT_TOKEN_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
/// Where the kubelet mounts the cluster's CA certificate.
const DEFAULT_CA_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
/// Where the API server serves the service-account issuer's keys.
const API_SERVER_JWKS_PATH: &str = "/openid/v1/jwks";

/// The cluster this pod runs in, as an issuer: discovery and keys are fetched from the API server,
/// authenticated with the pod's own service-account token, trusting exactly the cluster's CA.
///
/// The cluster's issuer is a required argument of [`verifier_builder`](Self::verifier_builder): it
/// is what tokens carry in `iss`, and differs from the API server's address on most clusters
/// (GKE: `https://container.googleapis.com/v1/projects/…`, EKS: `https://oidc.eks.…`, kubeadm:
/// `https://kubernetes.default.svc.cluster.local`). Find it with
/// `kubectl get --raw /.well-known/openid-configuration` (the `issuer` field); if it is wrong, the
/// first fetch fails with [`KeysError::IssuerMismatch`](oidc_bearer::KeysError::IssuerMismatch) naming the
/// right one.
///
/// Reading the mounted files needs nothing in RBAC; fetching discovery and keys needs the
/// `system:service-account-issuer-discovery` cluster role, which Kubernetes grants to all service
/// accounts by default. The keys are always fetched from the API server's `/openid/v1/jwks`, even when
/// the discovery document advertises a public URL, so that the pod's token is never sent anywhere
/// else.
///
/// ```no_run
/// # fn run() -> Result<(), oidc_bearer::ConfigError> {
/// use oidc_bearer_kubernetes::InCluster;
///
/// let verifier = InCluster::new()
///     .verifier_builder("https://kubernetes.default.svc.cluster.local", "my-service")?
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct InCluster {
    api_server: ApiServerAddress,
    token_path: PathBuf,
    ca_path: Option<PathBuf>,
}

/// Where the API server is reached.
#[derive(Debug, Clone)]
enum ApiServerAddress {
    /// Set with [`InCluster::with_api_server`].
    Configured(String),
    /// The kubelet's `KUBERNETES_SERVICE_HOST` and `KUBERNETES_SERVICE_PORT` as read at
    /// construction, or the service's DNS name when they are not both set.
    Service {
        host: Option<String>,
        port: Option<String>,
    },
}

impl ApiServerAddress {
    /// The API server's URL, and where it came from (for the start-up log line).
    ///
    /// Like client-go's `rest.InClusterConfig`: `https://` + `net.JoinHostPort(host, port)` from
    /// the service variables (an IPv6 address bracketed), which the API server's certificate
    /// covers (it names the `kubernetes` service's cluster IP); unlike it, the service's DNS name
    /// when they are unset rather than an error, as before. The variables reach pods whose DNS
    /// cannot resolve `kubernetes.default.svc` (host-network pods, custom DNS policies).
    fn resolve(&self) -> Result<(String, &'static str), ConfigError> {
        let (host, port) = match self {
            Self::Configured(url) => return Ok((url.clone(), "with_api_server")),
            Self::Service { host, port } => (host.as_deref(), port.as_deref()),
        };
        let (Some(host), Some(port)) = (
            host.filter(|h| !h.is_empty()),
            port.filter(|p| !p.is_empty()),
        ) else {
            return Ok((
                DEFAULT_API_SERVER.to_owned(),
                "the service DNS name (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not both set)",
            ));
        };
        if port.parse::<u16>().is_err() {
            return Err(ConfigError::invalid(
                SERVICE_PORT_ENV,
                format!(
                    "{port:?} is not a port number; unset it to use {DEFAULT_API_SERVER}, or set \
                     the API server's port"
                ),
            ));
        }
        let url = if host.contains(':') && !host.starts_with('[') {
            format!("https://[{host}]:{port}")
        } else {
            format!("https://{host}:{port}")
        };
        Ok((url, "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT"))
    }
}

impl Default for InCluster {
    fn default() -> Self {
        Self::new()
    }
}

impl InCluster {
    /// The defaults of a pod: the API server at `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`
    /// (the variables the kubelet sets, read now, as client-go's `InClusterConfig` does), or at
    /// `https://kubernetes.default.svc` when they are not both set; the token and CA where the
    /// kubelet mounts them (`/var/run/secrets/kubernetes.io/serviceaccount/token` and `…/ca.crt`);
    /// keys are fetched from the API server's `/openid/v1/jwks`. Which address was used is logged at INFO when a verifier or a
    /// TokenReview endpoint is built from it.
    pub fn new() -> Self {
        let (host, port) = service_env();
        Self::with_service_env(host, port)
    }

    /// [`new`](Self::new) with the service variables given rather than read.
    fn with_service_env(host: Option<String>, port: Option<String>) -> Self {
        Self {
            api_server: ApiServerAddress::Service { host, port },
            token_path: PathBuf::from(DEFAULT_TOKEN_PATH),
            ca_path: Some(PathBuf::from(DEFAULT_CA_PATH)),
        }
    }

    /// Reaches the API server at this URL (`https://…`, or plain `http` on loopback for tests)
    /// rather than through the service variables.
    pub fn with_api_server(mut self, url: impl Into<String>) -> Self {
        self.api_server = ApiServerAddress::Configured(url.into());
        self
    }

    /// The API server's URL, logged with where it came from (once per verifier or endpoint built,
    /// at start).
    fn api_server_url(&self) -> Result<String, ConfigError> {
        let (url, from) = self.api_server.resolve()?;
        tracing::info!(api_server = %url, from, "in-cluster API server");
        Ok(url)
    }

    /// Reads the bearer token from this file (e.g. a projected token with its own audience).
    pub fn with_token_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.token_path = path.into();
        self
    }

    /// Trusts the CA certificate(s) in this PEM file, and no other, for the API server (default:
    /// the mounted `ca.crt`). The connections carry the pod's own token, so a certificate from any
    /// other CA — a system root included — is refused, as client-go's `rest.InClusterConfig`
    /// does.
    pub fn with_ca_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_path = Some(path.into());
        self
    }

    /// Uses no cluster CA: the API server must then have a certificate the system trusts (or be on
    /// loopback over plain http, as in tests).
    pub fn without_ca(mut self) -> Self {
        self.ca_path = None;
        self
    }

    /// A verifier builder for the tokens of `issuer` (this cluster's issuer) meant for `audience`.
    ///
    /// Reads the CA now, and the token now and whenever it changes on disk (the kubelet rotates it);
    /// fails if either cannot be read, so a service that is not in a pod finds out at start.
    pub fn verifier_builder(
        &self,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Result<VerifierBuilder, ConfigError> {
        let token = self.token_file()?;
        let api = self.api_server_url()?;
        let api = api.trim_end_matches('/');
        let mut builder = Verifier::builder(issuer, audience)
            .with_discovery_url(oidc_bearer::__private::discovery_url(api))
            .with_discovery_jwks_uri(format!("{api}{API_SERVER_JWKS_PATH}"))
            .with_fetch_credential(token);
        if let Some(pem) = self.cluster_ca()? {
            builder = builder.with_cluster_ca_pem(pem);
        }
        Ok(builder)
    }

    /// This cluster's API server as a TokenReview endpoint, authenticated with the pod's token
    /// (re-read when it rotates) and trusting exactly the cluster's CA: for
    /// [`TokenReview::builder`](crate::tokenreview::TokenReview::builder) and
    /// [`ObjectBindingCheck::with_api_server`](crate::tokenreview::ObjectBindingCheck::with_api_server).
    /// The service account needs `create` on `tokenreviews.authentication.k8s.io` (the
    /// `system:auth-delegator` cluster role).
    ///
    /// Reads the token and CA now; fails if either cannot be read.
    pub fn api_server(&self) -> Result<crate::tokenreview::ApiServer, ConfigError> {
        let token = self.token_file()?;
        let mut builder =
            crate::tokenreview::ApiServer::builder(self.api_server_url()?).with_credential(token);
        if let Some(pem) = self.cluster_ca()? {
            builder = builder.with_ca_pem(pem);
        }
        builder.build()
    }

    /// The pod's token file, read now (a service that is not in a pod finds out at start), as the
    /// credential sent to the API server: re-read when it changes.
    fn token_file(&self) -> Result<Credential, ConfigError> {
        let file = TokenFile::open(self.token_path.clone()).map_err(|e| {
            ConfigError::invalid(
                "token_path",
                format!("cannot read the service-account token: {e}"),
            )
        })?;
        let file = Arc::new(file);
        Ok(Arc::new(move || {
            let file = Arc::clone(&file);
            Box::pin(async move { Some(file.read().await) })
        }))
    }

    /// The cluster's CA, if one is configured: read with the token file's rules (a regular file,
    /// never waiting on a FIFO, at most [`CA_READ_LIMIT`] bytes), at start.
    fn cluster_ca(&self) -> Result<Option<Vec<u8>>, ConfigError> {
        let Some(path) = &self.ca_path else {
            return Ok(None);
        };
        read_regular(path, CA_READ_LIMIT)
            .map(|(_, pem)| Some(pem))
            .map_err(|e| ConfigError::InvalidCertificate {
                reason: format!("cannot read the cluster CA at {}: {e}", path.display()),
            })
    }
}

/// The kubelet's service variables, as this process sees them.
fn service_env() -> (Option<String>, Option<String>) {
    let var = |name| std::env::var(name).ok();
    (var(SERVICE_HOST_ENV), var(SERVICE_PORT_ENV))
}

/// The most of the pod's token file that is read: a service-account token is 1–2 KiB, so this is
/// more than any, and bounds what a wrong path (a log file, say) costs.
const READ_LIMIT: usize = 64 * 1024;
/// The most of the cluster CA file that is read: a CA bundle is a few KiB.
const CA_READ_LIMIT: usize = 1024 * 1024;

/// A token file, re-read only when it changed: the kubelet replaces it (through an atomic symlink
/// swap) well before it expires, and a fetch must send the current one. A `stat` per fetch is the
/// whole cost; client-go's `CachedFileTokenSource` re-reads on a timer instead.
///
/// Read with the client's rules ([`oidc_bearer_shared::file`]): only a regular file, opened
/// without waiting on a FIFO, at most [`READ_LIMIT`] bytes, and only content that can be sent as a
/// bearer credential. Per fetch, the `stat` (and the read, when the file changed) run on a blocking
/// thread, one at a time: a fetch that finds one running sends the last good token at once, one
/// whose check takes longer than [`READ_TIMEOUT`] (a stalled mount) sends it then — still valid,
/// as the kubelet rotates the token at 80 % of its lifetime. No lock is held across a read, no
/// task outlives the blocking read, and a read that fails leaves the last good token in use.
struct TokenFile {
    path: PathBuf,
    /// The last good token, and the stamp of the file it was read from.
    cached: Mutex<CachedToken>,
    /// Its checks on blocking threads (see `bounded`): whether one is asked for and not ended
    /// (perhaps running past [`READ_TIMEOUT`]), and those queued.
    checks: Arc<Reads>,
    /// How many reads have run: each read's number orders what it read (reads run one at a
    /// time), so that a token is stored only over one read before it.
    reads: Arc<AtomicU64>,
}

struct CachedToken {
    stamp: Stamp,
    token: String,
    /// The number of the read it came from (0: the one at start).
    read: u64,
}

/// What tells a changed file: a new inode (the kubelet's swap), a new mtime or a new length.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    #[cfg(unix)]
    inode: (u64, u64),
}

impl Stamp {
    fn of(meta: &fs::Metadata) -> Self {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt as _;
        Self {
            modified: meta.modified().ok(),
            len: meta.len(),
            #[cfg(unix)]
            inode: (meta.dev(), meta.ino()),
        }
    }
}

impl TokenFile {
    /// Reads the file now (blocking: at construction), failing if it holds no token.
    fn open(path: PathBuf) -> Result<Self, String> {
        let (stamp, token) =
            read_if_changed(&path, None)?.ok_or_else(|| format!("{}: not read", path.display()))?;
        Ok(Self {
            path,
            cached: Mutex::new(CachedToken {
                stamp,
                token,
                read: 0,
            }),
            checks: Arc::default(),
            reads: Arc::default(),
        })
    }

    fn last_good(&self) -> String {
        let cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        cached.token.clone()
    }

    /// The current token: re-read if the file changed, the last good one if it cannot be read now.
    async fn read(&self) -> String {
        let held = self
            .cached
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stamp
            .clone();
        let path = self.path.clone();
        let reads = Arc::clone(&self.reads);
        let checked = bounded(&self.checks, READ_TIMEOUT, move || {
            let found = read_if_changed(&path, Some(held));
            (reads.fetch_add(1, Ordering::SeqCst) + 1, found)
        });
        let error = match checked.await {
            Some((_, Ok(None))) => return self.last_good(),
            Some((read, Ok(Some((stamp, token))))) => {
                let mut cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
                // Stored only over a token read before it: a check whose task stores late (its
                // blocking read done, its task not yet polled) must not put an older token back
                // over a newer one, and a newer one stored after an older one is kept. What this
                // check read is still what it sends: it was current when read.
                if read > cached.read {
                    *cached = CachedToken {
                        stamp,
                        token: token.clone(),
                        read,
                    };
                }
                return token;
            }
            Some((_, Err(error))) => error,
            None => format!(
                "{}: a check is still running (more than {READ_TIMEOUT:?}: a stalled mount?)",
                self.path.display()
            ),
        };
        // A TokenReview reads the file per review, which a caller can trigger.
        static UNREADABLE: LogLimiter = LogLimiter::new();
        if let Some(suppressed) = UNREADABLE.allow(PERIOD) {
            tracing::warn!(path = %self.path.display(), %error, suppressed, "cannot read the service-account token; using the last one read");
        }
        self.last_good()
    }
}

/// The file's stamp and token when its stamp differs from `held` (blocking); `None` when it does
/// not. The stamp of a token read is the opened file's, so it belongs to the bytes read. Only a
/// regular file is opened (opening a device can act on it); the content must be a credential that
/// can be sent (the `Authorization` value it becomes), or the last good token stays in use.
fn read_if_changed(path: &Path, held: Option<Stamp>) -> Result<Option<(Stamp, String)>, String> {
    let described = |e: &dyn fmt::Display| format!("{}: {e}", path.display());
    let meta = fs::metadata(path).map_err(|e| described(&e))?;
    if held.as_ref() == Some(&Stamp::of(&meta)) {
        return Ok(None);
    }
    if !meta.is_file() {
        return Err(described(&"not a regular file"));
    }
    let (meta, bytes) = read_regular(path, READ_LIMIT).map_err(|e| described(&e))?;
    let token = std::str::from_utf8(&bytes).map_err(|_| described(&"not UTF-8"))?;
    let token = token.trim();
    if token.is_empty() {
        return Err(described(&"empty"));
    }
    if bearer_authorization(token).is_none() {
        return Err(described(
            &"holds no token (characters a header cannot carry)",
        ));
    }
    Ok(Some((Stamp::of(&meta), token.to_owned())))
}

impl fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// **Dangerous**: a verifier for legacy, secret-based service-account tokens (`iss`
/// `kubernetes/serviceaccount`), checked with the cluster's service-account public key(s).
///
/// These tokens **never expire** and **name no audience**: one that leaks (from a `Secret`, a log, a
/// CI variable) is valid for every service that accepts them until its `Secret` is deleted and the
/// key is rotated. The policy therefore skips the audience check and allows a missing `exp`, but
/// requires the legacy claim shape (the `kubernetes.io/serviceaccount/namespace` claim), so bound
/// tokens are never accepted under it. Kubernetes stopped creating these tokens in 1.24: prefer bound
/// tokens (projected volumes or the `TokenRequest` API) with [`InCluster`] or a plain [`Verifier`].
///
/// `keys` are the public key(s) the API server signs with (`--service-account-key-file`): from PEM
/// with [`Jwks::from_pem`] — give the key the `kid` the cluster puts in tokens, or only tokens without
/// a `kid` will match — or the JWKS from `kubectl get --raw /openid/v1/jwks` with
/// [`Jwks::from_json`]. There is no discovery: `kubernetes/serviceaccount` is not a URL.
///
/// Decode the claims into [`KubernetesClaims`](oidc_bearer::claims::kubernetes::KubernetesClaims) and read
/// the account with its `service_account()`.
pub fn dangerous_legacy_service_account_verifier(keys: Jwks) -> VerifierBuilder {
    // The audience check is skipped below, so the required audience argument is left empty.
    Verifier::builder(LEGACY_ISSUER, "")
        .with_key_set(StaticKeySet::new(keys))
        .dangerous_skip_audience_check()
        .dangerous_allow_missing_exp()
        .with_required_claim(LEGACY_NAMESPACE_CLAIM)
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Waker};
    use std::time::Duration;

    use super::*;

    /// A pod's token file in a directory of its own, rotated the kubelet's way.
    struct Rotated {
        dir: tempfile::TempDir,
    }

    impl Rotated {
        /// The file holding `token`, and a `TokenFile` opened on it.
        fn new(token: &str) -> (Self, TokenFile) {
            let rotated = Self {
                dir: tempfile::tempdir().unwrap(),
            };
            fs::write(rotated.path(), token).unwrap();
            let file = TokenFile::open(rotated.path()).unwrap();
            (rotated, file)
        }

        fn path(&self) -> PathBuf {
            self.dir.path().join("token")
        }

        /// Replaced the way the kubelet does it: a new file (a new inode) renamed over the old.
        fn rotate(&self, token: &str) {
            let next = self.dir.path().join("token.next");
            fs::write(&next, token).unwrap();
            fs::rename(&next, self.path()).unwrap();
        }
    }

    /// A runtime with one blocking thread, for [`read_not_stored`].
    fn one_blocking_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .max_blocking_threads(1)
            .enable_all()
            .build()
            .unwrap()
    }

    /// Starts `check` and returns once its blocking read has ended, its task not polled again
    /// (what a busy worker leaves): it has read, and not stored yet. Runs on
    /// [`one_blocking_thread`]: that thread is held while `check` is first polled, so its read is
    /// queued and cannot end before the poll returns (it could on a free thread: CI saw it).
    fn read_not_stored(file: &TokenFile, mut check: Pin<&mut impl Future<Output = String>>) {
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started, running) = std::sync::mpsc::channel::<()>();
        let blocker = tokio::task::spawn_blocking(move || {
            started.send(()).unwrap();
            let _ = held.recv();
        });
        running.recv().unwrap();
        let mut cx = Context::from_waker(Waker::noop());
        assert!(check.as_mut().poll(&mut cx).is_pending());
        drop((release, blocker));
        wait_until_checked(file);
    }

    /// Waits until no check of `file` is under way (the blocking thread runs on its own).
    fn wait_until_checked(file: &TokenFile) {
        while file.checks.is_reading() {
            std::thread::yield_now();
        }
    }

    /// Starts a check of `file` that stays stuck on its blocking thread past its bound, as on a
    /// stalled mount, until the returned sender is dropped; returns once it runs.
    async fn stuck_check(file: &TokenFile) -> std::sync::mpsc::Sender<()> {
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started, running) = tokio::sync::oneshot::channel::<()>();
        let given_up = bounded(&file.checks, Duration::from_millis(1), move || {
            let _ = started.send(());
            let _ = held.recv();
        });
        assert!(given_up.await.is_none());
        running.await.unwrap();
        release
    }

    #[tokio::test]
    async fn the_token_file_is_reread_only_when_it_changes() {
        let (rotated, file) = Rotated::new("first\n");
        assert_eq!(file.read().await, "first");
        rotated.rotate("second");
        assert_eq!(file.read().await, "second");
        // Gone: the last token read is still sent (the next rotation will bring a fresh one).
        fs::remove_file(rotated.path()).unwrap();
        assert_eq!(file.read().await, "second");
        assert!(TokenFile::open(rotated.dir.path().join("missing")).is_err());
    }

    /// While a read is stuck (a stalled mount: it holds the one blocking read), a fetch neither
    /// waits for it nor starts another: it gets the last good token at once; once the read ends,
    /// the next fetch reads the file again.
    #[tokio::test]
    async fn a_stuck_read_leaves_the_last_good_token_in_use() {
        let (rotated, file) = Rotated::new("first");
        rotated.rotate("second");

        let stuck = stuck_check(&file).await;
        assert_eq!(file.read().await, "first");
        drop(stuck); // it returned
        wait_until_checked(&file);
        assert_eq!(file.read().await, "second");
    }

    /// A check whose blocking read has returned but whose task has not yet stored its token (its
    /// task not polled yet: a busy worker) must not overwrite a newer token that a later check
    /// read and stored meanwhile: the token rotated out must never become "the last good token"
    /// again, sent to every fetch that finds a check running.
    ///
    /// Review finding (s3-review-file2): `TokenFile::read` stores its result unconditionally once
    /// its check returns; `reading` is cleared when the blocking read ends, before the awaiting
    /// task stores, so a second check can start, read the newer file and store it first.
    #[test]
    fn an_older_check_stored_late_never_replaces_a_newer_token() {
        one_blocking_thread().block_on(async {
            let (rotated, file) = Rotated::new("zeroth");
            rotated.rotate("first");

            // The first check starts; its blocking read returns (the flag clears at its end), but
            // its task is not polled again yet.
            let mut first = Box::pin(file.read());
            read_not_stored(&file, first.as_mut());

            // Rotated again, and a second check reads and stores the newer token.
            rotated.rotate("second");
            assert_eq!(file.read().await, "second");

            // Now the first task runs and finishes its check.
            let sent = first.await;
            assert_eq!(sent, "first", "what it read is what it sends");
            assert_eq!(
                file.last_good(),
                "second",
                "the rotated-out token replaced the newer one as the last good token"
            );
            // And a fetch that finds a check running gets the newer token.
            let stuck = stuck_check(&file).await;
            assert_eq!(file.read().await, "second");
            drop(stuck);
        });
    }

    /// Review (s3-review-grace): the compare-and-set keeps "stored only over the token this check
    /// started from", which also drops a newer token. Two checks start from the same stamp (the
    /// second once the first's blocking read has ended, before the first's task stored): the
    /// second reads the newer file. When the first stores first, the second — the newer token —
    /// finds the stamp changed and is dropped: the last good token is the older one, sent to
    /// every fetch that finds a check running or a check failing (until a later check re-reads).
    #[test]
    fn a_newer_check_stored_after_an_older_one_is_kept() {
        one_blocking_thread().block_on(async {
            let (rotated, file) = Rotated::new("zeroth");
            rotated.rotate("first");
            // The first check reads "first"; its task is not polled again yet.
            let mut first = Box::pin(file.read());
            read_not_stored(&file, first.as_mut());
            rotated.rotate("second");
            // The second check starts from the same stamp (nothing stored yet) and reads "second".
            let mut second = Box::pin(file.read());
            read_not_stored(&file, second.as_mut());
            // The older check's task runs first, then the newer one's.
            assert_eq!(first.await, "first");
            assert_eq!(second.await, "second");
            assert_eq!(
                file.last_good(),
                "second",
                "the newer token was dropped: the older one stays the last good token"
            );
        });
    }

    /// client-go's `InClusterConfig`: `https://` + `JoinHostPort(host, port)` from the kubelet's
    /// variables, an IPv6 address bracketed; the service's DNS name unless both are set; a port that
    /// is not one refused, naming the variable.
    #[test]
    fn the_api_server_comes_from_the_service_variables_when_both_are_set() {
        /// The host and port variables, and the URL or the name of the variable refused.
        type Row<'a> = (Option<&'a str>, Option<&'a str>, Result<&'a str, &'a str>);
        let rows: [Row<'_>; 8] = [
            (Some("10.96.0.1"), Some("443"), Ok("https://10.96.0.1:443")),
            (
                Some("fd00:10:96::1"),
                Some("6443"),
                Ok("https://[fd00:10:96::1]:6443"),
            ),
            (
                Some("api.internal"),
                Some("8443"),
                Ok("https://api.internal:8443"),
            ),
            (None, None, Ok(DEFAULT_API_SERVER)),
            (Some("10.96.0.1"), None, Ok(DEFAULT_API_SERVER)),
            (None, Some("443"), Ok(DEFAULT_API_SERVER)),
            (Some(""), Some(""), Ok(DEFAULT_API_SERVER)),
            (Some("10.96.0.1"), Some("https"), Err(SERVICE_PORT_ENV)),
        ];
        for (host, port, expected) in rows {
            let cluster = InCluster::with_service_env(host.map(Into::into), port.map(Into::into));
            let found = cluster.api_server.resolve();
            match (expected, found) {
                (Ok(url), Ok((found, _))) => assert_eq!(found, url, "{host:?} {port:?}"),
                (Err(name), Err(error @ ConfigError::InvalidSetting { name: found, .. })) => {
                    assert_eq!(found, name);
                    // The fix, in one sentence (no run of spaces from a broken line continuation).
                    let message = error.to_string();
                    assert!(
                        message.contains("or set the API server's port"),
                        "{message}"
                    );
                }
                (expected, found) => panic!("{host:?} {port:?}: {found:?}, expected {expected:?}"),
            }
        }
        // An explicit address wins over the variables.
        let cluster = InCluster::with_service_env(Some("10.96.0.1".into()), Some("443".into()))
            .with_api_server("http://127.0.0.1:8080");
        assert_eq!(
            cluster.api_server.resolve().unwrap().0,
            "http://127.0.0.1:8080"
        );
    }

    /// The address used, and where it came from, is logged at INFO when a verifier is built, and the
    /// verifier fetches discovery from it (here a closed port on 127.0.0.1: the fetch error names
    /// the URL).
    #[tokio::test]
    async fn the_api_server_used_is_logged_at_start_and_fetched_from() {
        use std::io::Write;

        #[derive(Clone, Default)]
        struct Capture(Arc<Mutex<Vec<u8>>>);
        impl Write for Capture {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("token"), "t").unwrap();
        let port = {
            let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            closed.local_addr().unwrap().port()
        };
        let logs = Capture::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let builder = tracing::subscriber::with_default(subscriber, || {
            InCluster::with_service_env(Some("127.0.0.1".into()), Some(port.to_string()))
                .with_token_path(dir.path().join("token"))
                .without_ca()
                .verifier_builder("https://k.example", "aud")
                .unwrap()
        });
        let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        let expected = format!(
            "in-cluster API server api_server=https://127.0.0.1:{port} \
             from=\"KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT\""
        );
        assert!(
            logs.contains(" INFO ") && logs.contains(&expected),
            "{logs}"
        );
        let error = builder.build().unwrap().ready().await.unwrap_err();
        let url = format!("https://127.0.0.1:{port}/.well-known/openid-configuration");
        assert!(error.to_string().contains(&url), "{error}");
    }

    #[test]
    fn missing_files_fail_at_construction() {
        let dir = tempfile::tempdir().unwrap();
        let cluster = InCluster::new().with_token_path(dir.path().join("token"));
        let err = cluster
            .verifier_builder("https://k.example", "aud")
            .unwrap_err();
        assert_eq!(err.code(), "invalid_setting");
        fs::write(dir.path().join("token"), "t").unwrap();
        let err = cluster
            .with_ca_path(dir.path().join("ca.crt"))
            .verifier_builder("https://k.example", "aud")
            .unwrap_err();
        assert_eq!(err.code(), "invalid_certificate");
        assert!(err.to_string().contains("ca.crt"), "{err}");
    }
}
