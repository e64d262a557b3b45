//! [`MetadataTokenSource`]: Google ID tokens for an audience, from the Compute Engine metadata server.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use oidc_bearer_shared::{
    clock::Clock,
    fetch::{self, ClientSettings, FetchError},
};
use url::Url;

use crate::{
    BearerToken, InvalidToken, MAX_TOKEN_LEN, MetadataConfigError, TokenError, TokenSource,
    refresh::{Load, Refresher, Schedule},
};

/// The metadata server's address on Compute Engine, GKE (with Workload Identity), Cloud Run and
/// Cloud Functions.
pub const DEFAULT_METADATA_BASE_URL: &str = "http://metadata.google.internal";

/// Relative to the base URL: the ID token of the instance's default service account.
const IDENTITY_PATH: &str = "computeMetadata/v1/instance/service-accounts/default/identity";

/// The metadata server is link-local and answers in milliseconds; cloud.google.com/go/compute/metadata
/// dials it with a 2 s timeout too.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// After a failed fetch, callers get the last good token (or the error) for this long before the next
/// fetch, so a metadata server outage does not turn into a request per call.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// How long a token without a readable `exp` is reused. Google ID tokens are JWTs that live an hour, so
/// this only guards against a server that answers something else.
const NO_EXPIRY_TTL: Duration = Duration::from_secs(60);

/// The longest error response whose body goes into the error message; a longer one is left out.
const ERROR_BODY_LIMIT: usize = 512;

/// The longest token response read: a token of [`MAX_TOKEN_LEN`] and room for whitespace around it.
const BODY_LIMIT: usize = MAX_TOKEN_LEN + 1024;

/// The `User-Agent` of the requests to the metadata server.
const USER_AGENT: &str = concat!("oidc-bearer-client/", env!("CARGO_PKG_VERSION"));

/// The environment variable with which Google's client libraries point at another metadata server
/// (`host:port`, no scheme), e.g. an emulator.
pub const METADATA_HOST_ENV: &str = "GCE_METADATA_HOST";

/// Google-signed ID tokens from the metadata server, for one audience, cached until shortly before they
/// expire.
///
/// It speaks the protocol of Google's "Get an ID token from the metadata server" documentation:
///
/// ```text
/// GET /computeMetadata/v1/instance/service-accounts/default/identity?audience=AUDIENCE&format=full
/// Metadata-Flavor: Google
/// ```
///
/// and the answer's body is the token. `format=full` adds the project and instance claims. The source:
///
/// - caches the token until a fifth of its remaining life (at most a minute) before its `exp`;
/// - fetches once for all concurrent callers, in a task of its own that a cancelled caller does not
///   stop; while it does, callers that hold an unexpired token keep using it, the others wait for it;
/// - keeps the last good token while it has not expired (with a traced warning) if a refresh fails,
///   and retries at most once a second, counted from the start of the failed fetch;
/// - times out (2 s to connect, 5 s in all by default), ignores proxy settings (the server is
///   link-local), follows no redirects (so the `Metadata-Flavor` header goes nowhere else), and
///   reads at most a token's worth of body.
///
/// It needs a Tokio runtime to fetch; outside one it serves the token it holds and otherwise answers
/// [`TokenError::Flight`] ([`FlightError::NoRuntime`](crate::FlightError::NoRuntime)).
///
/// ```no_run
/// use oidc_bearer_client::{MetadataTokenSource, TokenSource};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let source = MetadataTokenSource::new("https://api.example.com")?;
/// let token = source.token().await?;
/// println!("token valid until {:?}", token.expires_at());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct MetadataTokenSource {
    refresher: Refresher<Endpoint>,
}

/// Where and how to ask: the source's [`Load`].
#[derive(Debug, Clone)]
struct Endpoint {
    audience: String,
    url: Url,
    connect_timeout: Duration,
    timeout: Duration,
    /// Built on first use, once the `with_*` settings are final.
    client: Arc<OnceLock<Result<fetch::Client, fetch::ClientError>>>,
}

/// Until shortly before `exp`; a failure is retried after [`RETRY_AFTER`].
const SCHEDULE: Schedule = Schedule {
    max_age: None,
    // A token that is already (nearly) expired, e.g. because this host's clock is ahead: reuse it
    // briefly rather than fetch on every call.
    min_age: RETRY_AFTER,
    retry_after: RETRY_AFTER,
    no_expiry_ttl: NO_EXPIRY_TTL,
};

impl MetadataTokenSource {
    /// A source of ID tokens whose `aud` is `audience`: the URL or name the receiving service checks.
    ///
    /// The audience is required: the metadata server refuses an empty one, and so does this, before any
    /// request.
    pub fn new(audience: impl Into<String>) -> Result<Self, MetadataConfigError> {
        let audience = audience.into();
        if audience.is_empty() {
            return Err(MetadataConfigError::EmptyAudience);
        }
        let base = Url::parse(DEFAULT_METADATA_BASE_URL).expect("the default base URL parses");
        let endpoint = Endpoint {
            url: identity_url(&base, &audience),
            audience,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
            client: Arc::default(),
        };
        Ok(Self {
            refresher: Refresher::new(endpoint, SCHEDULE),
        })
    }

    /// The same source with its endpoint changed by `change` (settings are final before first use).
    fn with_endpoint(self, change: impl FnOnce(&mut Endpoint)) -> Self {
        let mut endpoint = self.refresher.loader().clone();
        change(&mut endpoint);
        endpoint.client = Arc::default();
        Self {
            refresher: Refresher::with_clock(endpoint, SCHEDULE, self.refresher.clock()),
        }
    }

    /// Talks to another metadata server, e.g. `http://127.0.0.1:8080` in tests or an emulator.
    ///
    /// Google's client libraries read such an address from `GCE_METADATA_HOST` (a `host:port`, no
    /// scheme); [`from_env`](Self::from_env) does that for you. The identity path is appended to the
    /// URL's path.
    pub fn with_base_url(self, base_url: &str) -> Result<Self, MetadataConfigError> {
        let invalid = |reason: String| MetadataConfigError::InvalidBaseUrl {
            url: base_url.to_owned(),
            reason,
        };
        let base = Url::parse(base_url).map_err(|e| invalid(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(invalid("the scheme must be http or https".to_owned()));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(invalid("a base URL has no query or fragment".to_owned()));
        }
        Ok(self.with_endpoint(|endpoint| {
            endpoint.url = identity_url(&base, &endpoint.audience);
        }))
    }

    /// A source for `audience` at the metadata server that Google's client libraries would use: the
    /// `host:port` in the `GCE_METADATA_HOST` environment variable when it is set (an emulator, a
    /// test server), [`DEFAULT_METADATA_BASE_URL`] otherwise.
    ///
    /// ```
    /// use oidc_bearer_client::MetadataTokenSource;
    ///
    /// let source = MetadataTokenSource::from_env("https://api.example.com")?;
    /// # if std::env::var_os("GCE_METADATA_HOST").is_none() {
    /// assert!(source.url().starts_with("http://metadata.google.internal/computeMetadata/v1/"));
    /// # }
    /// # Ok::<(), oidc_bearer_client::MetadataConfigError>(())
    /// ```
    pub fn from_env(audience: impl Into<String>) -> Result<Self, MetadataConfigError> {
        let source = Self::new(audience)?;
        match std::env::var(METADATA_HOST_ENV)
            .ok()
            .filter(|v| !v.is_empty())
        {
            // cloud.google.com/go/compute/metadata: `"http://" + host + "/computeMetadata/v1/"`.
            Some(host) => source.with_base_url(&format!("http://{host}")),
            None => Ok(source),
        }
    }

    /// The whole request's time limit, connecting included (5 s by default).
    #[must_use]
    pub fn with_timeout(self, timeout: Duration) -> Self {
        self.with_endpoint(|endpoint| endpoint.timeout = timeout)
    }

    /// The time limit for connecting (2 s by default).
    #[must_use]
    pub fn with_connect_timeout(self, timeout: Duration) -> Self {
        self.with_endpoint(|endpoint| endpoint.connect_timeout = timeout)
    }

    /// Replaces the wall clock used to compare with `exp`, so tests can move time (e.g.
    /// [`ManualClock`](crate::clock::ManualClock)).
    #[must_use]
    pub fn with_clock(self, clock: impl Clock) -> Self {
        let endpoint = self.refresher.loader().clone();
        Self {
            refresher: Refresher::with_clock(endpoint, SCHEDULE, Arc::new(clock)),
        }
    }

    /// The audience the tokens are for.
    pub fn audience(&self) -> &str {
        &self.refresher.loader().audience
    }

    /// The URL requested, audience included.
    pub fn url(&self) -> &str {
        self.refresher.loader().url.as_str()
    }
}

impl TokenSource for MetadataTokenSource {
    fn token(&self) -> impl std::future::Future<Output = Result<BearerToken, TokenError>> + Send {
        self.refresher.token()
    }
}

impl Endpoint {
    fn client(&self) -> Result<&fetch::Client, TokenError> {
        self.client
            .get_or_init(|| {
                // The one client builder: no redirects (one would carry the request, and its
                // Metadata-Flavor header, the server's SSRF guard, somewhere else), a connect
                // timeout; and no proxy: the server is link-local, and an HTTP(S)_PROXY meant for
                // the internet must not see it.
                let mut settings = ClientSettings::new(self.connect_timeout, USER_AGENT);
                settings.proxy = false;
                fetch::client(&settings)
            })
            .as_ref()
            .map_err(|error| TokenError::MetadataUnavailable {
                url: self.url.to_string(),
                source: FetchError::Transport {
                    message: error.to_string(),
                },
            })
    }
}

impl Load for Endpoint {
    /// One request to the metadata server.
    async fn load(&self) -> Result<BearerToken, TokenError> {
        let url = self.url.to_string();
        let unavailable = |source| TokenError::MetadataUnavailable {
            url: url.clone(),
            source,
        };
        let request = self
            .client()?
            .get(self.url.clone())
            // Required on every request; the server refuses requests without it (403), which keeps a
            // request smuggled through some other service (SSRF) from reading tokens.
            .header("Metadata-Flavor", "Google");
        let response = request.send(self.timeout).await.map_err(unavailable)?;

        let status = response.status();
        if !status.is_success() {
            // The body says why ("non-empty audience parameter required"); one too long to be that is
            // left out.
            let body = match response.body(ERROR_BODY_LIMIT).await {
                Ok(body) => String::from_utf8_lossy(&body).into_owned(),
                Err(_) => String::new(),
            };
            return Err(TokenError::MetadataStatus {
                url,
                status,
                body: body.trim().chars().filter(|c| !c.is_control()).collect(),
            });
        }

        let body = match response.body(BODY_LIMIT).await {
            Ok(body) => body,
            Err(FetchError::TooLarge { .. }) => {
                return Err(TokenError::InvalidMetadataResponse {
                    url,
                    reason: InvalidToken::TooLong {
                        limit: MAX_TOKEN_LEN,
                    },
                });
            }
            Err(error) => return Err(unavailable(error)),
        };
        let invalid = |reason| TokenError::InvalidMetadataResponse {
            url: url.clone(),
            reason,
        };
        let text = std::str::from_utf8(&body).map_err(|e| {
            invalid(InvalidToken::InvalidCharacter {
                position: e.valid_up_to(),
            })
        })?;
        BearerToken::new(text.trim()).map_err(invalid)
    }
}

/// `{base}/computeMetadata/v1/instance/service-accounts/default/identity?audience=…&format=full`.
fn identity_url(base: &Url, audience: &str) -> Url {
    let mut url = base.clone();
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    let mut url = url.join(IDENTITY_PATH).expect("a relative path joins");
    // Form-encoded, so an audience URL's `?`, `&` and `=` arrive intact.
    url.query_pairs_mut()
        .append_pair("audience", audience)
        .append_pair("format", "full");
    url
}

#[cfg(test)]
mod tests {
    use std::{
        collections::HashMap,
        net::SocketAddr,
        sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        },
    };

    use axum::{
        Router,
        extract::{Query, State as AxumState},
        http::{HeaderMap, StatusCode},
        response::IntoResponse,
        routing::get,
    };

    use super::*;
    use crate::clock::ManualClock;

    use crate::token::tests::jwt;

    const PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/identity";

    /// A metadata server that speaks the documented protocol and mints hour-long (unsigned) tokens
    /// against the test's clock.
    #[derive(Clone)]
    struct FakeMetadata {
        clock: ManualClock,
        fetches: Arc<AtomicUsize>,
        /// When set, requests wait for a permit: lets a test hold the first fetch open.
        gate: Option<Arc<tokio::sync::Semaphore>>,
        /// Told of each request that reaches the handler (before the gate).
        arrived: Arc<tokio::sync::Notify>,
        /// Requests that reached the handler, answered or not.
        requests: Arc<AtomicUsize>,
        /// When set, answer with this status instead of a token.
        fail_with: Arc<std::sync::Mutex<Option<StatusCode>>>,
    }

    impl FakeMetadata {
        fn new(clock: &ManualClock) -> Self {
            Self {
                clock: clock.clone(),
                fetches: Arc::default(),
                gate: None,
                arrived: Arc::default(),
                requests: Arc::default(),
                fail_with: Arc::default(),
            }
        }

        async fn serve(self) -> SocketAddr {
            let app = Router::new().route(PATH, get(identity)).with_state(self);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            addr
        }

        fn fetches(&self) -> usize {
            self.fetches.load(Ordering::SeqCst)
        }
    }

    async fn identity(
        AxumState(server): AxumState<FakeMetadata>,
        headers: HeaderMap,
        Query(query): Query<HashMap<String, String>>,
    ) -> impl IntoResponse {
        server.requests.fetch_add(1, Ordering::SeqCst);
        server.arrived.notify_one();
        if let Some(gate) = &server.gate {
            gate.acquire().await.unwrap().forget();
        }
        // The documented answers: 403 without the header, 400 without an audience.
        if headers.get("metadata-flavor").and_then(|v| v.to_str().ok()) != Some("Google") {
            return (
                StatusCode::FORBIDDEN,
                "Missing required header: Metadata-Flavor\n",
            )
                .into_response();
        }
        let Some(audience) = query.get("audience").filter(|a| !a.is_empty()) else {
            return (
                StatusCode::BAD_REQUEST,
                "non-empty audience parameter required\n",
            )
                .into_response();
        };
        if let Some(status) = *server.fail_with.lock().unwrap() {
            return (status, "metadata server unhappy\n").into_response();
        }
        let n = server.fetches.fetch_add(1, Ordering::SeqCst) + 1;
        let now = server.clock.now().as_secs();
        let mut claims = serde_json::json!({
            "iss": "https://accounts.google.com",
            "aud": audience,
            "sub": "1234567890",
            "iat": now,
            "exp": now + 3600,
            "n": n,
        });
        if query.get("format").map(String::as_str) == Some("full") {
            claims["google"] = serde_json::json!({"compute_engine": {"project_id": "demo"}});
        }
        ([("Metadata-Flavor", "Google")], jwt(&claims)).into_response()
    }

    fn claims(token: &BearerToken) -> serde_json::Value {
        use base64::Engine as _;
        let payload = token.secret().split('.').nth(1).unwrap();
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        serde_json::from_slice(&payload).unwrap()
    }

    fn source(addr: SocketAddr, audience: &str, clock: &ManualClock) -> MetadataTokenSource {
        MetadataTokenSource::new(audience)
            .unwrap()
            .with_base_url(&format!("http://{addr}"))
            .unwrap()
            .with_clock(clock.clone())
    }

    #[tokio::test]
    async fn the_fake_server_enforces_the_protocol() {
        // Checks the test double itself, so the tests below show the source follows the protocol.
        let clock = ManualClock::new();
        let addr = FakeMetadata::new(&clock).serve().await;
        let client = reqwest::Client::new();
        let url = format!("http://{addr}{PATH}");
        let no_header = client
            .get(format!("{url}?audience=a"))
            .send()
            .await
            .unwrap();
        assert_eq!(no_header.status(), StatusCode::FORBIDDEN);
        let no_audience = client
            .get(&url)
            .header("Metadata-Flavor", "Google")
            .send()
            .await
            .unwrap();
        assert_eq!(no_audience.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn token_is_fetched_with_the_header_audience_and_full_format() {
        let clock = ManualClock::new();
        let addr = FakeMetadata::new(&clock).serve().await;
        // An audience with characters that need encoding arrives intact.
        let audience = "https://api.example.com/v1?x=1&y=a b";
        let source = source(addr, audience, &clock);

        let token = source.token().await.unwrap();
        let claims = claims(&token);
        assert_eq!(claims["aud"], audience);
        assert_eq!(claims["google"]["compute_engine"]["project_id"], "demo");
        assert_eq!(
            token.expires_at(),
            Some(std::time::UNIX_EPOCH + Duration::from_secs(clock.now().as_secs() + 3600))
        );
        assert!(source.url().contains("format=full"), "{}", source.url());
    }

    #[tokio::test]
    async fn token_is_cached_until_shortly_before_exp() {
        let clock = ManualClock::new();
        let server = FakeMetadata::new(&clock);
        let addr = server.clone().serve().await;
        let source = source(addr, "https://api.example.com", &clock);

        let first = source.token().await.unwrap();
        assert_eq!(server.fetches(), 1);
        // An hour-long token is refreshed a minute before exp, not sooner.
        clock.advance(Duration::from_secs(3600 - 60 - 1));
        assert_eq!(source.token().await.unwrap(), first);
        assert_eq!(server.fetches(), 1);

        clock.advance(Duration::from_secs(1));
        let second = source.token().await.unwrap();
        assert_eq!(server.fetches(), 2);
        assert_ne!(second, first);
        assert_eq!(claims(&second)["n"], 2);
        assert_eq!(source.token().await.unwrap(), second);
        assert_eq!(server.fetches(), 2);
    }

    /// A gated server and 50 callers waiting for its first, held, fetch. On a current-thread runtime
    /// every caller has run up to its wait by the time the fetch reaches the server.
    async fn callers_behind_a_held_fetch(
        clock: &ManualClock,
    ) -> (
        FakeMetadata,
        Arc<tokio::sync::Semaphore>,
        Arc<MetadataTokenSource>,
        tokio::task::JoinSet<Result<BearerToken, TokenError>>,
    ) {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let server = FakeMetadata {
            gate: Some(Arc::clone(&gate)),
            ..FakeMetadata::new(clock)
        };
        let addr = server.clone().serve().await;
        let source = Arc::new(source(addr, "https://api.example.com", clock));
        let arrived = server.arrived.notified();
        let mut callers = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let source = Arc::clone(&source);
            callers.spawn(async move { source.token().await });
        }
        arrived.await;
        (server, gate, source, callers)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn concurrent_callers_cause_a_single_fetch() {
        let clock = ManualClock::new();
        let (server, gate, _source, mut callers) = callers_behind_a_held_fetch(&clock).await;
        // Let every request through, in case a second one were made.
        gate.add_permits(50);
        let mut tokens = Vec::new();
        while let Some(result) = callers.join_next().await {
            tokens.push(result.unwrap().unwrap());
        }
        assert_eq!(server.fetches(), 1);
        assert_eq!(server.requests.load(Ordering::SeqCst), 1);
        assert!(tokens.iter().all(|t| *t == tokens[0]));
    }

    /// Cancel safety: callers that are dropped while the shared fetch is held (a request
    /// timeout in front of the client, a task aborted) neither cancel it nor cause another, and the
    /// clock does not move, so nothing else could have allowed one.
    #[tokio::test(flavor = "current_thread")]
    async fn callers_aborted_during_a_held_fetch_cause_one_fetch() {
        let clock = ManualClock::new();
        let (server, gate, source, mut callers) = callers_behind_a_held_fetch(&clock).await;
        callers.abort_all();
        while let Some(joined) = callers.join_next().await {
            assert!(joined.is_err_and(|e| e.is_cancelled()));
        }
        // Each new caller that gives up (here: after one poll) leaves the fetch alone too.
        for _ in 0..20 {
            let mut token = std::pin::pin!(source.token());
            assert!(futures_poll_once(token.as_mut()).is_pending());
        }
        assert_eq!(server.requests.load(Ordering::SeqCst), 1);

        gate.add_permits(50);
        let token = source.token().await.unwrap();
        assert_eq!(claims(&token)["n"], 1);
        assert_eq!(source.token().await.unwrap(), token);
        assert_eq!(server.requests.load(Ordering::SeqCst), 1);
        assert_eq!(server.fetches(), 1);
    }

    /// Polls a future once, with a waker that does nothing.
    fn futures_poll_once<F: std::future::Future>(
        future: std::pin::Pin<&mut F>,
    ) -> std::task::Poll<F::Output> {
        future.poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    }

    #[tokio::test]
    async fn failed_refresh_keeps_the_current_token_and_retries_later() {
        let clock = ManualClock::new();
        let server = FakeMetadata::new(&clock);
        let addr = server.clone().serve().await;
        let source = source(addr, "https://api.example.com", &clock);
        let first = source.token().await.unwrap();

        *server.fail_with.lock().unwrap() = Some(StatusCode::SERVICE_UNAVAILABLE);
        clock.advance(Duration::from_secs(3590));
        assert_eq!(source.token().await.unwrap(), first);

        *server.fail_with.lock().unwrap() = None;
        // Within the retry pause the failure is not retried...
        assert_eq!(source.token().await.unwrap(), first);
        assert_eq!(server.fetches(), 1);
        // ...after it, the refresh succeeds.
        clock.advance(RETRY_AFTER);
        assert_ne!(source.token().await.unwrap(), first);
        assert_eq!(server.fetches(), 2);
    }

    #[tokio::test]
    async fn error_status_is_reported_with_the_servers_reason() {
        let clock = ManualClock::new();
        let server = FakeMetadata::new(&clock);
        *server.fail_with.lock().unwrap() = Some(StatusCode::NOT_FOUND);
        let addr = server.clone().serve().await;
        let source = source(addr, "https://api.example.com", &clock);
        match source.token().await {
            Err(TokenError::MetadataStatus { status, body, url }) => {
                assert_eq!(status, StatusCode::NOT_FOUND);
                assert_eq!(body, "metadata server unhappy");
                assert!(
                    url.contains("audience=https%3A%2F%2Fapi.example.com"),
                    "{url}"
                );
            }
            other => panic!("expected MetadataStatus, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn unreachable_and_slow_servers_are_errors() {
        // A port that was just free: connection refused.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = listener.local_addr().unwrap();
        drop(listener);
        let clock = ManualClock::new();
        let refused = source(closed, "aud", &clock).token().await;
        assert!(
            matches!(
                refused,
                Err(TokenError::MetadataUnavailable {
                    source: FetchError::Transport { .. },
                    ..
                })
            ),
            "{refused:?}"
        );

        // A server that accepts but never answers: the total timeout fires.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let slow = source(addr, "aud", &clock)
            .with_timeout(Duration::from_millis(200))
            .token()
            .await;
        assert!(
            matches!(
                slow,
                Err(TokenError::MetadataUnavailable {
                    source: FetchError::Timeout { .. },
                    ..
                })
            ),
            "{slow:?}"
        );
        drop(silent);
    }

    #[tokio::test]
    async fn oversized_body_is_refused() {
        let app = Router::new().route(PATH, get(|| async { "a".repeat(MAX_TOKEN_LEN + 2048) }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let result = source(addr, "aud", &ManualClock::new()).token().await;
        assert!(
            matches!(
                result,
                Err(TokenError::InvalidMetadataResponse {
                    reason: InvalidToken::TooLong { .. },
                    ..
                })
            ),
            "{result:?}"
        );
    }

    #[test]
    fn configuration_is_checked_up_front() {
        assert_eq!(
            MetadataTokenSource::new("").unwrap_err(),
            MetadataConfigError::EmptyAudience
        );
        for bad in ["not a url", "ftp://host", "http://host/?q=1", "mailto:x@y"] {
            assert!(
                matches!(
                    MetadataTokenSource::new("aud").unwrap().with_base_url(bad),
                    Err(MetadataConfigError::InvalidBaseUrl { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn identity_url_keeps_the_base_path() {
        let cases = [
            (
                DEFAULT_METADATA_BASE_URL,
                "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/identity?audience=a&format=full",
            ),
            (
                "http://127.0.0.1:8080/",
                "http://127.0.0.1:8080/computeMetadata/v1/instance/service-accounts/default/identity?audience=a&format=full",
            ),
            (
                "http://emulator/prefix",
                "http://emulator/prefix/computeMetadata/v1/instance/service-accounts/default/identity?audience=a&format=full",
            ),
        ];
        for (base, expected) in cases {
            let source = MetadataTokenSource::new("a")
                .unwrap()
                .with_base_url(base)
                .unwrap();
            assert_eq!(source.url(), expected);
        }
    }
}
