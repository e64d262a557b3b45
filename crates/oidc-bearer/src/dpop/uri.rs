//! The request's URI as a proof's `htu` must name it (RFC 9449 §4.3 check 9): this server's
//! external base URL (configured, never read from the request's `Host` or `X-Forwarded-*`
//! headers, which the client writes) and the request's path, both normalised as RFC 3986 §6.2.2
//! and §6.2.3 say, without query and fragment.

use url::Url;

/// The configured external base URL: origin and path prefix, normalised.
#[derive(Debug, Clone)]
pub(super) struct BaseUrl {
    /// `scheme://host[:port]`, lowercase, without the scheme's default port.
    origin: String,
    /// The path the server is mounted under behind its proxy, without a trailing `/` (empty for
    /// the root).
    prefix: String,
}

impl BaseUrl {
    /// Parses the base URL: `http` or `https`, a host, no user info, query or fragment.
    pub(super) fn parse(base: &str) -> Result<Self, String> {
        let url = Url::parse(base).map_err(|e| format!("{base:?} is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(format!("{base:?} is not an http(s) URL with a host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!("{base:?} has user info"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!("{base:?} has a query or fragment"));
        }
        let normal = normalise(&url);
        let origin = origin(&url);
        let prefix = normal[origin.len()..].trim_end_matches('/').to_owned();
        Ok(Self { origin, prefix })
    }

    /// The normalised URI of a request for `path` (the request target's path, as received).
    /// `None` for a path the URL parser would rewrite rather than normalise: dot segments (also
    /// percent-encoded) and backslashes. The server routes such a path as it is, so removing its
    /// dot segments would make it the URI of another resource (`/public/../admin` is not what
    /// the router serves as `/admin`): RFC 9449 §4.3 check 9 compares `htu` with the URI of the
    /// request received, and clients resolve dot segments before sending (RFC 3986 §5.2.4).
    pub(super) fn request_uri(&self, path: &str) -> Option<String> {
        if !path.starts_with('/') {
            // `*` (OPTIONS) or an authority: no URI a proof can name.
            return None;
        }
        if path.contains('\\') || path.split('/').any(is_dot_segment) {
            return None;
        }
        normalise_htu(&format!("{}{}{path}", self.origin, self.prefix))
    }
}

/// A proof's `htu`, normalised; `None` unless it is an absolute `http(s)` URL with a host.
/// Query and fragment are dropped (§4.3 check 9: "ignoring any query and fragment parts").
pub(super) fn normalise_htu(htu: &str) -> Option<String> {
    let url = Url::parse(htu).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return None;
    }
    Some(normalise(&url))
}

/// `scheme://host[:port]` as the URL parser leaves them: scheme and host lowercase, the
/// scheme's default port left out (RFC 3986 §6.2.2.1, §6.2.3), IDNs in ASCII.
fn origin(url: &Url) -> String {
    match url.port() {
        Some(port) => format!("{}://{}:{port}", url.scheme(), url.host_str().unwrap_or("")),
        None => format!("{}://{}", url.scheme(), url.host_str().unwrap_or("")),
    }
}

/// Origin and path, the path with dot segments removed and an empty path as `/` (by the URL
/// parser, RFC 3986 §6.2.2.3, §6.2.3), percent-encodings of unreserved characters decoded and
/// the others' hex digits in upper case (§6.2.2.1, §6.2.2.2). User info is dropped.
fn normalise(url: &Url) -> String {
    let mut out = origin(url);
    let path = url.path().as_bytes();
    let mut i = 0;
    while i < path.len() {
        let byte = path[i];
        if byte == b'%'
            && let (Some(hi), Some(lo)) = (hex(path.get(i + 1)), hex(path.get(i + 2)))
        {
            let decoded = hi << 4 | lo;
            if decoded.is_ascii_alphanumeric() || b"-._~".contains(&decoded) {
                out.push(char::from(decoded));
            } else {
                out.push('%');
                out.push(char::from(path[i + 1].to_ascii_uppercase()));
                out.push(char::from(path[i + 2].to_ascii_uppercase()));
            }
            i += 3;
        } else {
            // The parser leaves only ASCII in a path (it percent-encodes the rest).
            out.push(char::from(byte));
            i += 1;
        }
    }
    out
}

/// `.` or `..`, each dot possibly percent-encoded (as the URL parser reads them).
fn is_dot_segment(segment: &str) -> bool {
    let lower = segment.to_ascii_lowercase();
    matches!(
        lower.as_str(),
        "." | ".." | "%2e" | ".%2e" | "%2e." | "%2e%2e"
    )
}

fn hex(byte: Option<&u8>) -> Option<u8> {
    char::from(*byte?).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equivalent_uris_normalise_alike() {
        let base = BaseUrl::parse("HTTPS://API.Example.COM:443/").unwrap();
        let expected = base.request_uri("/orders/%7e1").unwrap();
        assert_eq!(expected, "https://api.example.com/orders/~1");
        for htu in [
            "https://api.example.com/orders/~1",
            "https://API.example.com:443/orders/%7E1",
            "https://api.example.com/x/../orders/./~1?query#fragment",
        ] {
            assert_eq!(
                normalise_htu(htu).as_deref(),
                Some(expected.as_str()),
                "{htu}"
            );
        }
        for other in [
            "http://api.example.com/orders/~1",
            "https://api.example.com:8443/orders/~1",
            "https://api.example.com/orders/~2",
            "https://api.example.com/orders/%2F1",
        ] {
            assert_ne!(
                normalise_htu(other).as_deref(),
                Some(expected.as_str()),
                "{other}"
            );
        }
        // Reserved characters keep their encoding, with upper-case hex.
        assert_eq!(
            normalise_htu("https://a.example/a%2fb").as_deref(),
            Some("https://a.example/a%2Fb")
        );
        for refused in ["/orders", "ftp://a.example/x", "urn:x:y", "not a url"] {
            assert_eq!(normalise_htu(refused), None, "{refused}");
        }
    }

    #[test]
    fn a_base_path_prefixes_the_request_path() {
        let base = BaseUrl::parse("https://gateway.example/billing/").unwrap();
        assert_eq!(
            base.request_uri("/invoices").as_deref(),
            Some("https://gateway.example/billing/invoices")
        );
        assert_eq!(base.request_uri("*"), None);
        // Paths the server routes as they are, which the URL parser would turn into others.
        for rewritten in [
            "/../admin",
            "/x/./y",
            "/x/%2E%2e/y",
            "/x/.%2e",
            "/x/%2e",
            "/x\\..\\y",
            "/x\\y",
        ] {
            assert_eq!(base.request_uri(rewritten), None, "{rewritten}");
        }
        // Dots within a segment are no dot segment.
        assert_eq!(
            base.request_uri("/a.b/..c/...").as_deref(),
            Some("https://gateway.example/billing/a.b/..c/...")
        );
        for bad in [
            "https://u:p@a.example",
            "https://a.example/?q",
            "ftp://a.example",
            "/x",
        ] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
