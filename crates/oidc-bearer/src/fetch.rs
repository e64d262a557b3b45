//! The HTTP fetches behind discovery and key sets: timeouts, a size cap, no redirects, and the rule
//! that only `https` (or plain http on loopback) is fetched.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use url::Url;

use crate::error::{ConfigError, KeysError};

/// How discovery documents and key sets are fetched: what `VerifierBuilder`'s HTTP settings set.
#[derive(Clone)]
pub(crate) struct HttpSettings {
    pub(crate) connect_timeout: Duration,
    pub(crate) timeout: Duration,
    pub(crate) max_response_bytes: usize,
    pub(crate) allow_insecure_http: bool,
    pub(crate) root_certificates: Vec<Vec<u8>>,
    pub(crate) authorization: Option<Arc<dyn Fn() -> Option<String> + Send + Sync>>,
    /// Where `authorization` may be sent: the origins of the URLs the user configured.
    pub(crate) authorization_origins: Vec<url::Origin>,
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
            authorization: None,
            authorization_origins: Vec::new(),
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
            .field("authorization", &self.authorization.is_some())
            .finish()
    }
}

/// A fetched body and what its Cache-Control said.
pub(crate) struct Fetched {
    pub(crate) body: Bytes,
    pub(crate) max_age: Option<Duration>,
}

/// An HTTP client with our policy built in.
#[derive(Clone)]
pub(crate) struct Fetcher {
    client: Arc<reqwest::Client>,
    settings: HttpSettings,
}

/// What a `reqwest::Client` is built from: fetchers that agree on it share one client.
#[derive(PartialEq)]
struct ClientKey {
    connect_timeout: Duration,
    timeout: Duration,
    root_certificates: Vec<Vec<u8>>,
}

/// Clients shared by fetchers with the same settings. A client (its TLS configuration and root
/// store) weighs about 100 KiB, and a registry may build thousands of verifiers: with one client per
/// setting they cost a few KiB each. Bounded: past [`MAX_SHARED_CLIENTS`] distinct settings, a
/// fetcher gets a client of its own.
static SHARED_CLIENTS: std::sync::Mutex<Vec<(ClientKey, Arc<reqwest::Client>)>> =
    std::sync::Mutex::new(Vec::new());
const MAX_SHARED_CLIENTS: usize = 16;

impl Fetcher {
    pub(crate) fn new(settings: HttpSettings) -> Result<Self, ConfigError> {
        let key = ClientKey {
            connect_timeout: settings.connect_timeout,
            timeout: settings.timeout,
            root_certificates: settings.root_certificates.clone(),
        };
        let mut shared = SHARED_CLIENTS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, client)) = shared.iter().find(|(k, _)| *k == key) {
            let client = client.clone();
            return Ok(Self { client, settings });
        }
        // Built under the lock, so that concurrent first builds with one setting make one client.
        let client = Arc::new(Self::client(&settings)?);
        if shared.len() < MAX_SHARED_CLIENTS {
            shared.push((key, client.clone()));
        }
        Ok(Self { client, settings })
    }

    /// A client with the settings that apply to the connection; per-request settings (the bearer
    /// token, the size cap, the insecure-http switch) stay in the fetcher.
    fn client(settings: &HttpSettings) -> Result<reqwest::Client, ConfigError> {
        let mut builder = reqwest::Client::builder()
            // A redirect could move the fetch to a host (or scheme) we never vetted.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.timeout)
            .user_agent(concat!("oidc-bearer/", env!("CARGO_PKG_VERSION")));
        builder = with_root_certificates(builder, &settings.root_certificates)?;
        builder.build().map_err(|e| ConfigError::HttpClient {
            message: e.to_string(),
        })
    }

    pub(crate) fn settings(&self) -> &HttpSettings {
        &self.settings
    }

    /// GETs `url`, refusing non-success statuses (redirects included) and bodies over the cap.
    pub(crate) async fn get(&self, url: &Url) -> Result<Fetched, KeysError> {
        check_url(url, self.settings.allow_insecure_http).map_err(|_| KeysError::InsecureUrl {
            url: url.to_string(),
        })?;
        let url_string = || url.to_string();
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
        if let Some(token) = authorization.and_then(|auth| auth()) {
            let mut value =
                http::HeaderValue::try_from(format!("Bearer {token}")).map_err(|_| {
                    KeysError::Transport {
                        url: url_string(),
                        message: "the configured bearer token is not a valid header value".into(),
                    }
                })?;
            value.set_sensitive(true);
            request = request.header(http::header::AUTHORIZATION, value);
        }
        let map_err = |e: reqwest::Error| {
            if e.is_timeout() {
                KeysError::Timeout {
                    url: url_string(),
                    timeout: self.settings.timeout,
                }
            } else {
                KeysError::Transport {
                    url: url_string(),
                    message: error_chain(&e),
                }
            }
        };
        let mut response = request.send().await.map_err(map_err)?;
        let status = response.status();
        if !status.is_success() {
            return Err(KeysError::Status {
                url: url_string(),
                status: status.as_u16(),
            });
        }
        let max = self.settings.max_response_bytes;
        let too_large = || KeysError::TooLarge {
            url: url_string(),
            max_bytes: max,
        };
        if response
            .content_length()
            .is_some_and(|len| len > max as u64)
        {
            return Err(too_large());
        }
        let max_age = response
            .headers()
            .get_all(http::header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(parse_max_age);
        let mut body = BytesMut::new();
        while let Some(chunk) = response.chunk().await.map_err(map_err)? {
            if body.len() + chunk.len() > max {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched {
            body: body.freeze(),
            max_age,
        })
    }
}

/// Adds PEM root certificates (each a bundle of one or more) to `builder`; a PEM without any
/// certificate is refused. Shared by every HTTP client this crate builds.
pub(crate) fn with_root_certificates(
    mut builder: reqwest::ClientBuilder,
    pems: &[Vec<u8>],
) -> Result<reqwest::ClientBuilder, ConfigError> {
    let mut certs = Vec::new();
    for pem in pems {
        let parsed = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
            ConfigError::InvalidCertificate {
                reason: e.to_string(),
            }
        })?;
        if parsed.is_empty() {
            return Err(ConfigError::InvalidCertificate {
                reason: "no certificate found in PEM".into(),
            });
        }
        certs.extend(parsed);
    }
    if !certs.is_empty() {
        builder = builder.tls_certs_merge(certs);
    }
    Ok(builder)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
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

pub(crate) fn parse_url(value: &str, allow_insecure_http: bool) -> Result<Url, ConfigError> {
    let url = Url::parse(value).map_err(|e| ConfigError::InvalidUrl {
        url: value.to_owned(),
        reason: e.to_string(),
    })?;
    check_url(&url, allow_insecure_http)?;
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetchers_with_the_same_connection_settings_share_a_client() {
        let a = Fetcher::new(HttpSettings::default()).unwrap();
        let with_token = HttpSettings {
            authorization: Some(Arc::new(|| Some("t".into()))),
            ..HttpSettings::default()
        };
        let b = Fetcher::new(with_token).unwrap();
        assert!(
            Arc::ptr_eq(&a.client, &b.client),
            "per-request settings differ only"
        );
        let slower = HttpSettings {
            connect_timeout: Duration::from_secs(7),
            ..HttpSettings::default()
        };
        let c = Fetcher::new(slower).unwrap();
        assert!(!Arc::ptr_eq(&a.client, &c.client));
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
