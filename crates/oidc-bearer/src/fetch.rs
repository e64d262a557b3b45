//! The HTTP fetches behind discovery and key sets, on the one bounded fetch of
//! [`oidc_bearer_shared::fetch`] (client builder with the TLS roots, no redirects, timeouts, the
//! capped body read, [`FetchError`]), plus the verifier's rules: only `https` (or plain http on
//! loopback) is fetched, the fetch bearer token goes only to configured origins, and clients are
//! shared within a registry.

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use oidc_bearer_shared::fetch::{self as shared, Client, ClientError, ClientSettings, FetchError};
use url::Url;

use crate::error::{ConfigError, KeysError};

/// The `User-Agent` of every request this crate sends.
pub const USER_AGENT: &str = concat!("oidc-bearer/", env!("CARGO_PKG_VERSION"));

/// Our own bearer credential, asked for per request (so that a rotating token file is re-read): a
/// future, so that reading a file runs off the runtime's workers (`InCluster`'s token file) while a
/// closure the user gives is called in place ([`credential`]). `None`: there is none to send.
pub type Credential = Arc<dyn Fn() -> CredentialFuture + Send + Sync>;

/// What a [`Credential`] answers.
pub type CredentialFuture = Pin<Box<dyn Future<Output = Option<String>> + Send>>;

/// A [`Credential`] that calls `token` in place (`with_bearer_token`, `with_fetch_bearer_token`).
pub fn credential(token: impl Fn() -> Option<String> + Send + Sync + 'static) -> Credential {
    Arc::new(move || Box::pin(std::future::ready(token())))
}

/// How discovery documents and key sets are fetched: what `VerifierBuilder`'s HTTP settings set.
#[derive(Clone)]
pub(crate) struct HttpSettings {
    pub(crate) connect_timeout: Duration,
    pub(crate) timeout: Duration,
    pub(crate) max_response_bytes: usize,
    pub(crate) allow_insecure_http: bool,
    pub(crate) root_certificates: Vec<Vec<u8>>,
    /// Whether the system's roots are trusted besides `root_certificates` (false: exactly those,
    /// as for a cluster's own API server).
    pub(crate) system_roots: bool,
    pub(crate) authorization: Option<Credential>,
    /// Where `authorization` may be sent: the origins of the URLs the user configured.
    pub(crate) authorization_origins: Vec<url::Origin>,
    /// The clients to draw from (an issuer registry's); without, a fetcher builds its own.
    pub(crate) clients: Option<SharedClients>,
}

impl HttpSettings {
    pub(crate) fn with_authorization_origins(
        mut self,
        origins: impl IntoIterator<Item = url::Origin>,
    ) -> Self {
        self.authorization_origins = origins.into_iter().collect();
        self
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            max_response_bytes: 1024 * 1024,
            allow_insecure_http: false,
            root_certificates: Vec::new(),
            system_roots: true,
            authorization: None,
            authorization_origins: Vec::new(),
            clients: None,
        }
    }
}

impl fmt::Debug for HttpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSettings")
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("allow_insecure_http", &self.allow_insecure_http)
            .field("root_certificates", &self.root_certificates.len())
            .field("system_roots", &self.system_roots)
            .field("authorization", &self.authorization.is_some())
            .finish()
    }
}

/// A fetched body, its status and what its Cache-Control said.
pub(crate) struct Fetched {
    pub(crate) status: u16,
    pub(crate) body: Bytes,
    /// The first `Cache-Control` value, as sent.
    pub(crate) cache_control: Option<String>,
    pub(crate) max_age: Option<Duration>,
}

/// An HTTP client with our policy built in.
#[derive(Clone)]
pub(crate) struct Fetcher {
    client: Arc<Client>,
    settings: HttpSettings,
}

/// HTTP clients shared by the verifiers that one issuer registry builds, one per distinct
/// connection setting. A client (its TLS configuration and root store, its connection pool) costs
/// about 110 KiB, and a registry may build thousands of verifiers: sharing makes each cost about
/// 4 KiB instead (BENCHMARKS.md, "HTTP clients"), and lets them reuse connections to a common host.
/// Owned by the registry rather than the process, so that no state is shared between registries
/// (or tests) that never asked for it. Bounded: past `SharedClients::MAX` (16) distinct settings, a
/// fetcher gets a client of its own.
#[derive(Clone, Default)]
pub struct SharedClients(Arc<Mutex<Pool>>);

#[derive(Default)]
struct Pool {
    /// Each client with what it was built from: fetchers that agree on it share it.
    clients: Vec<(ClientSettings, Arc<Client>)>,
    /// How many fetchers were given a pooled client.
    lent: usize,
}

impl SharedClients {
    const MAX: usize = 16;

    /// A client for `settings`: the pooled one with the same connection settings, or a new one.
    fn client(&self, settings: &HttpSettings) -> Result<Arc<Client>, ConfigError> {
        let key = client_settings(settings);
        let mut pool = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = pool
            .clients
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, c)| c.clone())
        {
            pool.lent += 1;
            return Ok(client);
        }
        if pool.clients.len() >= Self::MAX {
            // Not pooled: built without holding up the fetchers that are.
            drop(pool);
            return client(&key).map(Arc::new);
        }
        // Built under the lock, so that concurrent first builds with one setting make one client.
        let client = Arc::new(client(&key)?);
        pool.clients.push((key, client.clone()));
        pool.lent += 1;
        Ok(client)
    }
}

/// What the connection of `settings` is built from; per-request settings (the total timeout, the
/// bearer token, the size cap, the insecure-http switch) stay in the fetcher.
fn client_settings(settings: &HttpSettings) -> ClientSettings {
    let mut client = ClientSettings::new(settings.connect_timeout, USER_AGENT);
    client.root_certificates = settings.root_certificates.clone();
    client.system_roots = settings.system_roots;
    client
}

/// An HTTP client with the connection settings of `settings`; a bad root certificate is a
/// configuration error.
pub fn client(settings: &ClientSettings) -> Result<Client, ConfigError> {
    shared::client(settings).map_err(|e| match e {
        ClientError::InvalidCertificate { reason } => ConfigError::InvalidCertificate { reason },
        other => ConfigError::HttpClient {
            message: other.to_string(),
        },
    })
}

impl Fetcher {
    pub(crate) fn new(settings: HttpSettings) -> Result<Self, ConfigError> {
        let client = match &settings.clients {
            Some(clients) => clients.client(&settings)?,
            None => Arc::new(client(&client_settings(&settings))?),
        };
        Ok(Self { client, settings })
    }

    pub(crate) fn settings(&self) -> &HttpSettings {
        &self.settings
    }

    /// GETs `url`, refusing non-success statuses (redirects included) and bodies over the cap.
    pub(crate) async fn get(&self, url: &Url) -> Result<Fetched, KeysError> {
        check_url(url, self.settings.allow_insecure_http).map_err(|_| KeysError::InsecureUrl {
            url: url.to_string(),
        })?;
        let failed = |source: FetchError| KeysError::Fetch {
            url: url.to_string(),
            source,
        };
        let mut request = self
            .client
            .get(url.clone())
            .header(http::header::ACCEPT, "application/json");
        // A credential for the configured hosts only (as HTTP clients drop `Authorization` on a
        // cross-origin redirect, RFC 9110 §15.4): a discovery document may advertise its `jwks_uri`
        // on another host, which must not receive the pod's service-account token.
        let authorization = self
            .settings
            .authorization
            .as_ref()
            .filter(|_| self.settings.authorization_origins.contains(&url.origin()));
        let token = match authorization {
            Some(credential) => credential().await,
            None => None,
        };
        if let Some(token) = token {
            let value = bearer_authorization(&token).ok_or_else(|| {
                failed(FetchError::Transport {
                    message: "the configured bearer token is not a valid header value".into(),
                })
            })?;
            request = request.header(http::header::AUTHORIZATION, value);
        }
        let response = request
            .send(self.settings.timeout)
            .await
            .and_then(shared::Response::success)
            .map_err(failed)?;
        let status = response.status().as_u16();
        let cache_controls = || {
            response
                .headers()
                .get_all(http::header::CACHE_CONTROL)
                .iter()
                .filter_map(|v| v.to_str().ok())
        };
        let max_age = cache_controls().find_map(parse_max_age);
        let cache_control = cache_controls().next().map(str::to_owned);
        let body = response
            .body(self.settings.max_response_bytes)
            .await
            .map_err(failed)?;
        Ok(Fetched {
            status,
            body,
            cache_control,
            max_age,
        })
    }
}

/// A document fetched as a verifier fetches its discovery document and key set, for tools that
/// show what a verifier sees (made by
/// [`VerifierBuilder::fetch_document`](crate::VerifierBuilder::fetch_document)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FetchedDocument {
    /// The HTTP status (a success: others are errors).
    pub status: u16,
    /// The response's `Cache-Control` header, as sent (what sets the key cache's lifetime).
    pub cache_control: Option<String>,
    /// The body, at most the verifier's response size cap.
    pub body: Vec<u8>,
}

impl From<Fetched> for FetchedDocument {
    fn from(fetched: Fetched) -> Self {
        Self {
            status: fetched.status,
            cache_control: fetched.cache_control,
            body: fetched.body.into(),
        }
    }
}

/// `Authorization: Bearer <token>` for a credential of ours (marked sensitive, so that it is never
/// logged), or `None` when it cannot be a header value. Surrounding whitespace is dropped: a token
/// file read whole may end in a newline (client-go's `CachedFileTokenSource` trims likewise).
pub fn bearer_authorization(token: &str) -> Option<http::HeaderValue> {
    let mut value = http::HeaderValue::try_from(format!("Bearer {}", token.trim())).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// `max-age` from a Cache-Control value (RFC 9111 §5.2.2.1); `no-store`/`no-cache` count as zero
/// (the caller clamps to its minimum lifetime).
pub(crate) fn parse_max_age(value: &str) -> Option<Duration> {
    value.split(',').map(str::trim).find_map(|directive| {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        let secs = lower.strip_prefix("max-age=")?.trim_matches('"');
        secs.parse::<u64>().ok().map(Duration::from_secs)
    })
}

/// Whether `url` may be fetched: `https`, or plain `http` on a loopback address (127.0.0.0/8, ::1,
/// `localhost`) for local development and tests; anything else only with the insecure switch.
pub(crate) fn check_url(url: &Url, allow_insecure_http: bool) -> Result<(), ConfigError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_insecure_http || is_loopback(url) => Ok(()),
        "http" => Err(ConfigError::InsecureUrl {
            url: url.to_string(),
        }),
        other => Err(ConfigError::InvalidUrl {
            url: url.to_string(),
            reason: format!("scheme {other:?} is not http(s)"),
        }),
    }
}

pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// `value` as a URL this crate fetches from: `https`, or plain `http` to loopback (or anywhere with
/// `allow_insecure_http`).
pub fn parse_url(value: &str, allow_insecure_http: bool) -> Result<Url, ConfigError> {
    let url = Url::parse(value).map_err(|e| ConfigError::InvalidUrl {
        url: value.to_owned(),
        reason: e.to_string(),
    })?;
    check_url(&url, allow_insecure_http)?;
    Ok(url)
}

impl SharedClients {
    /// How many clients the pool holds, and how many fetchers it gave one to.
    pub fn counts(&self) -> (usize, usize) {
        let pool = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        (pool.clients.len(), pool.lent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetchers_drawing_from_one_pool_share_a_client_per_connection_setting() {
        let clients = SharedClients::default();
        let pooled = |settings: HttpSettings| {
            Fetcher::new(HttpSettings {
                clients: Some(clients.clone()),
                ..settings
            })
            .unwrap()
        };
        let a = pooled(HttpSettings::default());
        let with_token = pooled(HttpSettings {
            authorization: Some(credential(|| Some("t".into()))),
            ..HttpSettings::default()
        });
        assert!(
            Arc::ptr_eq(&a.client, &with_token.client),
            "per-request settings differ only"
        );
        let slower = pooled(HttpSettings {
            connect_timeout: Duration::from_secs(7),
            ..HttpSettings::default()
        });
        assert!(!Arc::ptr_eq(&a.client, &slower.client));
        assert_eq!(clients.counts(), (2, 3));
    }

    /// A fetcher that trusts exactly a cluster's CA never shares the client of one that trusts
    /// the same CA besides the system's roots; and trusting nothing at all is refused.
    #[test]
    fn trusting_only_given_roots_is_a_connection_setting_of_its_own() {
        let clients = SharedClients::default();
        let ca = {
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params
                .self_signed(&rcgen::KeyPair::generate().unwrap())
                .unwrap()
                .pem()
        };
        let pooled = |system_roots: bool| {
            Fetcher::new(HttpSettings {
                clients: Some(clients.clone()),
                root_certificates: vec![ca.clone().into_bytes()],
                system_roots,
                ..HttpSettings::default()
            })
            .unwrap()
        };
        let (merged, only) = (pooled(true), pooled(false));
        assert!(!Arc::ptr_eq(&merged.client, &only.client));
        assert!(Arc::ptr_eq(&only.client, &pooled(false).client));
        let nothing = Fetcher::new(HttpSettings {
            system_roots: false,
            ..HttpSettings::default()
        });
        assert_eq!(nothing.err().unwrap().code(), "invalid_certificate");
    }

    #[test]
    fn a_fetcher_without_a_pool_builds_its_own_client() {
        let a = Fetcher::new(HttpSettings::default()).unwrap();
        let b = Fetcher::new(HttpSettings::default()).unwrap();
        assert!(!Arc::ptr_eq(&a.client, &b.client));
    }

    /// Serves each canned HTTP/1.1 response once, in order, on 127.0.0.1.
    async fn serve(responses: Vec<String>) -> Url {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        tokio::spawn(async move {
            for response in responses {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut request = Vec::new();
                while !request.ends_with(b"\r\n\r\n") {
                    let mut byte = [0];
                    if stream.read(&mut byte).await.unwrap() == 0 {
                        break;
                    }
                    request.push(byte[0]);
                }
                stream.write_all(response.as_bytes()).await.unwrap();
            }
        });
        url
    }

    /// The diagnostics fetch (`oidc-bearer discover`) is the verifier's: status, Cache-Control and
    /// body as served, no redirect followed, no plain http off loopback.
    #[tokio::test]
    async fn a_document_is_fetched_as_a_verifier_fetches_its_keys() {
        let url = serve(vec![
            "HTTP/1.1 200 OK\r\ncache-control: public, max-age=300\r\ncontent-length: 2\r\n\
             connection: close\r\n\r\n{}"
                .into(),
            "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:1/\r\ncontent-length: 0\r\n\
             connection: close\r\n\r\n"
                .into(),
        ])
        .await;
        let builder = crate::Verifier::builder("https://issuer.example", "aud");
        let document = builder.fetch_document(url.as_str()).await.unwrap();
        assert_eq!(document.status, 200);
        assert_eq!(
            document.cache_control.as_deref(),
            Some("public, max-age=300")
        );
        assert_eq!(document.body, b"{}");
        match builder.fetch_document(url.as_str()).await {
            Err(KeysError::Fetch {
                source: FetchError::Status { status: 302 },
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        match builder.fetch_document("http://issuer.example/keys").await {
            Err(KeysError::InsecureUrl { url }) => assert_eq!(url, "http://issuer.example/keys"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_body_over_the_cap_is_refused_whether_or_not_its_length_is_stated() {
        const MAX: usize = 16;
        let long = "x".repeat(MAX + 1);
        let exact = "y".repeat(MAX);
        let chunked = |body: &str| {
            format!(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n\
                 {:x}\r\n{body}\r\n0\r\n\r\n",
                body.len()
            )
        };
        let stated = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{long}",
            long.len()
        );
        let url = serve(vec![stated, chunked(&long), chunked(&exact)]).await;
        let fetcher = Fetcher::new(HttpSettings {
            max_response_bytes: MAX,
            ..HttpSettings::default()
        })
        .unwrap();
        for case in ["content-length", "chunked"] {
            match fetcher.get(&url).await {
                Err(KeysError::Fetch {
                    source: FetchError::TooLarge { max_bytes },
                    ..
                }) => assert_eq!(max_bytes, MAX, "{case}"),
                other => panic!("{case}: {:?}", other.map(|f| f.body)),
            }
        }
        let fetched = fetcher.get(&url).await.unwrap();
        assert_eq!(
            fetched.body,
            exact.as_bytes(),
            "a body of exactly the cap is read"
        );
    }

    #[tokio::test]
    async fn a_body_that_stalls_after_the_headers_times_out() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        // The server keeps the connection open, silent after 10 of 100 promised bytes, until the
        // test is done with it.
        let (done, until_done) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = [0; 1024];
            let _ = stream.read(&mut request).await.unwrap();
            let head = "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789";
            stream.write_all(head.as_bytes()).await.unwrap();
            let _ = until_done.await;
        });
        let timeout = Duration::from_millis(300);
        let fetcher = Fetcher::new(HttpSettings {
            timeout,
            ..HttpSettings::default()
        })
        .unwrap();
        match fetcher.get(&url).await {
            Err(KeysError::Fetch {
                source: FetchError::Timeout { timeout: t },
                ..
            }) => assert_eq!(t, timeout),
            other => panic!("{:?}", other.map(|f| f.body)),
        }
        drop(done);
    }

    #[test]
    fn max_age_is_read_from_cache_control() {
        let cases = [
            ("max-age=300", Some(300)),
            ("public, max-age=19702, must-revalidate", Some(19702)),
            ("MAX-AGE=5", Some(5)),
            ("no-store", Some(0)),
            ("public", None),
            ("max-age=abc", None),
        ];
        for (value, expected) in cases {
            assert_eq!(
                parse_max_age(value),
                expected.map(Duration::from_secs),
                "{value}"
            );
        }
    }

    #[test]
    fn only_https_or_loopback_http_is_allowed() {
        let cases = [
            ("https://issuer.example", true),
            ("http://127.0.0.1:8080", true),
            ("http://127.1.2.3", true),
            ("http://[::1]:9000", true),
            ("http://localhost:1", true),
            ("http://issuer.example", false),
            ("http://10.0.0.1", false),
            ("ftp://127.0.0.1", false),
        ];
        for (url, ok) in cases {
            assert_eq!(parse_url(url, false).is_ok(), ok, "{url}");
        }
        assert!(parse_url("http://issuer.example", true).is_ok());
    }
}
