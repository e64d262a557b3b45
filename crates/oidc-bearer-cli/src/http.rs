//! The fetches of `discover`: the policy of the library's own fetches (no redirects, timeouts, a size
//! cap, https or loopback http), so that what is shown is what a verifier would get.

use std::time::Duration;

use oidc_bearer_client::error_chain;

use crate::{HttpArgs, UsageError};

/// The library's default response cap.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// A fetched document.
pub(crate) struct Fetched {
    pub(crate) status: u16,
    pub(crate) cache_control: Option<String>,
    pub(crate) body: Vec<u8>,
}

/// An HTTP client for the fetches, trusting the extra roots of `--ca`.
pub(crate) fn client(args: &HttpArgs) -> Result<reqwest::Client, UsageError> {
    let mut builder = reqwest::Client::builder()
        // As the library: a redirect could move the fetch to a host nobody vetted.
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .user_agent(concat!("oidc-bearer-cli/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = &args.ca {
        builder = builder.tls_certs_merge(certificates(&read_ca(ca)?)?);
    }
    Ok(builder.build()?)
}

/// The PEM file of `--ca`.
pub(crate) fn read_ca(path: &std::path::Path) -> Result<Vec<u8>, UsageError> {
    std::fs::read(path).map_err(|e| UsageError(format!("--ca {}: {e}", path.display())))
}

fn certificates(pem: &[u8]) -> Result<Vec<reqwest::Certificate>, UsageError> {
    let certs =
        reqwest::Certificate::from_pem_bundle(pem).map_err(|e| UsageError(format!("--ca: {e}")))?;
    if certs.is_empty() {
        return Err(UsageError(
            "--ca: no certificate found in the PEM file".into(),
        ));
    }
    Ok(certs)
}

/// Whether `url` may be fetched: https, or plain http on loopback (the library's rule), or anything
/// with the insecure switch.
pub(crate) fn check_url(url: &str, args: &HttpArgs) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("invalid URL {url:?}: {e}"))?;
    let loopback = match parsed.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback || args.dangerous_allow_insecure_http => Ok(()),
        "http" => Err(format!(
            "refusing plain-http URL {url:?} off loopback (--dangerous-allow-insecure-http)"
        )),
        other => Err(format!("scheme {other:?} of {url:?} is not http(s)")),
    }
}

/// GETs `url`; a transport error, a non-success status or an oversized body is an error message.
pub(crate) async fn get(
    client: &reqwest::Client,
    url: &str,
    args: &HttpArgs,
) -> Result<Fetched, String> {
    check_url(url, args)?;
    let mut response = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| format!("GET {url} failed: {}", error_chain(&e)))?;
    let status = response.status().as_u16();
    let cache_control = response
        .headers()
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if !response.status().is_success() {
        return Err(format!(
            "GET {url} answered HTTP {status}{}",
            if (300..400).contains(&status) {
                " (redirects are not followed)"
            } else {
                ""
            }
        ));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("GET {url} failed: {}", error_chain(&e)))?
    {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(format!(
                "GET {url}: response larger than {MAX_RESPONSE_BYTES} bytes"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched {
        status,
        cache_control,
        body,
    })
}
