//! Reading the bearer token from a request: `Authorization: Bearer <b64token>` (RFC 6750 §2.1), or a
//! [`TokenExtractor`] of your own.
//!
//! Tokens are never read from query strings or cookies by default: RFC 6750 §2.3 says the URI query
//! parameter SHOULD NOT be used, since URLs end up in logs and browser history.

use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::sealed::Internal;

/// Why the credentials in a request could not be read: the request is malformed (400
/// `invalid_request`, RFC 6750 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BearerError {
    /// More than one `Authorization` header.
    MultipleAuthorizationHeaders,
    /// The header value is not visible ASCII.
    NotAscii,
    /// The `Bearer` scheme without a token.
    EmptyToken,
    /// The token is not one `b64token` (RFC 6750 §2.1): spaces or characters outside the syntax.
    InvalidToken,
}

impl BearerError {
    /// A short description for the `error_description` of a 400 response.
    pub(crate) fn description(self) -> &'static str {
        match self {
            Self::MultipleAuthorizationHeaders => "more than one Authorization header",
            Self::NotAscii => "the Authorization header is not visible ASCII",
            Self::EmptyToken => "the Bearer scheme has no token",
            Self::InvalidToken => "the bearer token is not a single b64token",
        }
    }
}

impl std::fmt::Display for BearerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.description())
    }
}

impl std::error::Error for BearerError {}

/// Reads a request's token from its headers (the HTTP layer's first step; golang-jwt's
/// `request.Extractor` plays the same part). Not to be confused with `oidc-bearer-client`'s
/// `TokenSource`, which obtains the token a client sends.
///
/// `Ok(None)` means the request carries no credentials for this scheme (answered with a bare
/// challenge, or passed through in optional mode); `Err` means it carries malformed ones.
/// Closures `Fn(&HeaderMap) -> Result<Option<&str>, BearerError>` implement it too.
pub trait TokenExtractor: Clone + Send + Sync + 'static {
    /// Finds the token in `headers`.
    fn token<'a>(&self, headers: &'a HeaderMap) -> Result<Option<&'a str>, BearerError>;

    /// Finds the token's bytes in `headers` without checking their syntax (nor that they are
    /// text), or `None` (the default).
    ///
    /// The layer looks these up among the tokens its verifier has already accepted before calling
    /// [`token`](Self::token): a hit is a token that passed verification (the same bytes), so its
    /// syntax is known to be good and the check costs nothing on the hot path. Return `Some` only
    /// where `token` would return the same string, or would refuse those bytes for their syntax or
    /// encoding; `None` wherever `token` finds no token or refuses the request for another reason
    /// (several headers, say).
    ///
    /// Sealed (its last argument is a value only this crate can make) and hidden: only this crate's
    /// extractors implement it; others keep the default, which is always correct (the layer then
    /// looks the token up after `token`'s check).
    #[doc(hidden)]
    fn token_unchecked<'a>(&self, headers: &'a HeaderMap, _: Internal) -> Option<&'a [u8]> {
        let _ = headers;
        None
    }
}

impl<F> TokenExtractor for F
where
    F: for<'a> Fn(&'a HeaderMap) -> Result<Option<&'a str>, BearerError>
        + Clone
        + Send
        + Sync
        + 'static,
{
    fn token<'a>(&self, headers: &'a HeaderMap) -> Result<Option<&'a str>, BearerError> {
        self(headers)
    }
}

/// The standard extractor: `Authorization: Bearer <token>`.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuthorizationHeader;

impl TokenExtractor for AuthorizationHeader {
    fn token<'a>(&self, headers: &'a HeaderMap) -> Result<Option<&'a str>, BearerError> {
        let Some(value) = single(headers, &AUTHORIZATION)? else {
            return Ok(None);
        };
        let value = value.to_str().map_err(|_| BearerError::NotAscii)?;
        parse_authorization(value)
    }

    fn token_unchecked<'a>(&self, headers: &'a HeaderMap, _: Internal) -> Option<&'a [u8]> {
        // Bytes: a token found in the cache is base64url and dots, so the visible-ASCII test of
        // `to_str` (a loop over the 1 KiB header) is left to the miss path.
        let value = single(headers, &AUTHORIZATION).ok()??.as_bytes();
        let (start, end) = bearer_credentials(value)?;
        Some(&value[start..end])
    }
}

/// The only value of the header `name`, or `None` without one; several are malformed.
fn single<'a>(
    headers: &'a HeaderMap,
    name: &http::HeaderName,
) -> Result<Option<&'a http::HeaderValue>, BearerError> {
    let mut values = headers.get_all(name).iter();
    let value = values.next();
    match values.next() {
        Some(_) => Err(BearerError::MultipleAuthorizationHeaders),
        None => Ok(value),
    }
}

/// A raw token in a header of your choice (e.g. a proxy's `X-Forwarded-Access-Token`): the whole
/// value is the token, and the same syntax rules apply.
#[derive(Debug, Clone)]
pub struct HeaderToken {
    name: http::HeaderName,
}

impl HeaderToken {
    /// Reads the token from the header `name`.
    pub fn new(name: http::HeaderName) -> Self {
        Self { name }
    }
}

impl TokenExtractor for HeaderToken {
    fn token<'a>(&self, headers: &'a HeaderMap) -> Result<Option<&'a str>, BearerError> {
        let Some(value) = single(headers, &self.name)? else {
            return Ok(None);
        };
        let token = value.to_str().map_err(|_| BearerError::NotAscii)?.trim();
        check_b64token(token).map(Some)
    }

    fn token_unchecked<'a>(&self, headers: &'a HeaderMap, _: Internal) -> Option<&'a [u8]> {
        // `trim_ascii` equals `str::trim` on the visible ASCII that `token` accepts.
        Some(single(headers, &self.name).ok()??.as_bytes().trim_ascii())
    }
}

/// Parses an `Authorization` value. The scheme is case-insensitive (RFC 7235 §2.1); another scheme
/// (e.g. `Basic`) is "no bearer credentials", not an error.
pub(crate) fn parse_authorization(value: &str) -> Result<Option<&str>, BearerError> {
    parse_scheme(value, b"bearer")
}

/// The token of the only `Authorization` header if its scheme is `scheme` (lowercase; compared
/// case-insensitively), with the syntax of a bearer token (`token68`): the `DPoP` scheme's
/// credentials (RFC 9449 §7.1) are read like `Bearer`'s.
pub(crate) fn scheme_credentials<'a>(
    headers: &'a HeaderMap,
    scheme: &[u8],
) -> Result<Option<&'a str>, BearerError> {
    let Some(value) = single(headers, &AUTHORIZATION)? else {
        return Ok(None);
    };
    parse_scheme(value.to_str().map_err(|_| BearerError::NotAscii)?, scheme)
}

fn parse_scheme<'a>(value: &'a str, scheme: &[u8]) -> Result<Option<&'a str>, BearerError> {
    match scheme_range(value.as_bytes(), scheme) {
        // The range's ends are next to ASCII bytes (or the value's ends): char boundaries.
        Some((start, end)) => check_b64token(&value[start..end]).map(Some),
        None => Ok(None),
    }
}

/// Where the credentials after the `Bearer` scheme lie in `value` (possibly empty), or `None` for
/// another scheme. Bytes are split at spaces and tabs only.
fn bearer_credentials(value: &[u8]) -> Option<(usize, usize)> {
    scheme_range(value, b"bearer")
}

/// [`bearer_credentials`] for any scheme (one without blanks). Inlined, so that each caller's
/// constant scheme is compared as such.
#[inline]
fn scheme_range(value: &[u8], scheme: &[u8]) -> Option<(usize, usize)> {
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    // The form every client sends, `<scheme> <token>` with one space and no blank at either end:
    // the range the general rule below finds, without its scans.
    let n = scheme.len();
    if let (Some(&b' '), Some(first), Some(last)) = (value.get(n), value.get(n + 1), value.last())
        && !blank(first)
        && !blank(last)
        && eq_scheme(&value[..n], scheme)
    {
        return Some((n + 1, value.len()));
    }
    let start = value.iter().position(|b| !blank(b))?;
    let end = value.iter().rposition(|b| !blank(b))? + 1;
    let scheme_end = value[start..end]
        .iter()
        .position(blank)
        .map_or(end, |i| start + i);
    if !eq_scheme(&value[start..scheme_end], scheme) {
        return None;
    }
    let token_start = value[scheme_end..end]
        .iter()
        .position(|b| !blank(b))
        .map_or(end, |i| scheme_end + i);
    Some((token_start, end))
}

/// Whether `name` is `scheme` (ASCII letters, lowercase) in any case (RFC 7235 §2.1). Setting
/// 0x20 turns an uppercase letter into its lowercase and makes no other byte a letter that was not
/// one of these two, so for a scheme of letters this is `eq_ignore_ascii_case`, in fewer
/// instructions (it runs on every request).
#[inline]
fn eq_scheme(name: &[u8], scheme: &[u8]) -> bool {
    debug_assert!(scheme.iter().all(u8::is_ascii_lowercase), "{scheme:?}");
    name.len() == scheme.len() && name.iter().zip(scheme).all(|(&b, &s)| b | 0x20 == s)
}

/// RFC 6750 §2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn check_b64token(token: &str) -> Result<&str, BearerError> {
    if token.is_empty() {
        return Err(BearerError::EmptyToken);
    }
    let body = token.trim_end_matches('=');
    // Branch-free within fixed-size chunks so the compiler vectorizes it: this runs on every request
    // (a ~1 KiB token).
    let bytes = body.as_bytes();
    let mut chunks = bytes.chunks_exact(32);
    let valid = !bytes.is_empty()
        && chunks
            .by_ref()
            .all(|chunk| chunk.iter().fold(true, |ok, &b| ok & is_b64token_char(b)))
        && chunks.remainder().iter().all(|&b| is_b64token_char(b));
    if valid {
        Ok(token)
    } else {
        Err(BearerError::InvalidToken)
    }
}

#[inline]
fn is_b64token_char(b: u8) -> bool {
    // ASCII letters of either case (setting 0x20 folds A–Z onto a–z and moves nothing else into
    // that range); `-` `.` `/` and the digits are the contiguous 0x2D..=0x39.
    ((b | 0x20).wrapping_sub(b'a') < 26)
        | (b.wrapping_sub(b'-') <= b'9' - b'-')
        | (b == b'+')
        | (b == b'_')
        | (b == b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_values_table() {
        let rows: &[(&str, Result<Option<&str>, BearerError>)] = &[
            ("Bearer abc.def.ghi", Ok(Some("abc.def.ghi"))),
            ("bearer abc", Ok(Some("abc"))),
            ("BEARER   abc", Ok(Some("abc"))),
            ("Bearer a-b_c~d+e/f==", Ok(Some("a-b_c~d+e/f=="))),
            ("Basic dXNlcjpwYXNz", Ok(None)),
            ("Bearerabc", Ok(None)),
            ("Bearer", Err(BearerError::EmptyToken)),
            ("Bearer ", Err(BearerError::EmptyToken)),
            ("Bearer abc def", Err(BearerError::InvalidToken)),
            ("Bearer abc,def", Err(BearerError::InvalidToken)),
            ("Bearer ===", Err(BearerError::InvalidToken)),
            ("Bearer \"abc\"", Err(BearerError::InvalidToken)),
        ];
        for (value, expected) in rows {
            assert_eq!(&parse_authorization(value), expected, "{value:?}");
        }
    }

    /// Every concatenation of up to `n` of `pieces` (the empty value too), sorted, without repeats.
    fn concatenations(pieces: &[&[u8]], n: usize) -> Vec<Vec<u8>> {
        let mut values: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..n {
            let longer: Vec<Vec<u8>> = values
                .iter()
                .flat_map(|v| pieces.iter().map(move |p| [v.as_slice(), p].concat()))
                .collect();
            values.extend(longer);
        }
        values.sort();
        values.dedup();
        values
    }

    /// The short cut for `<scheme> <token>` finds what the scan alone finds (the rule as it was
    /// written before the short cut, kept here as the reference), for every value made of up to four
    /// pieces: blanks, schemes in several cases, near-schemes and tokens.
    #[test]
    fn scheme_range_short_cut_agrees_with_the_scan() {
        fn scan(value: &[u8], scheme: &[u8]) -> Option<(usize, usize)> {
            let blank = |b: &u8| *b == b' ' || *b == b'\t';
            let start = value.iter().position(|b| !blank(b))?;
            let end = value.iter().rposition(|b| !blank(b))? + 1;
            let scheme_end = value[start..end]
                .iter()
                .position(blank)
                .map_or(end, |i| start + i);
            if !value[start..scheme_end].eq_ignore_ascii_case(scheme) {
                return None;
            }
            let token_start = value[scheme_end..end]
                .iter()
                .position(|b| !blank(b))
                .map_or(end, |i| scheme_end + i);
            Some((token_start, end))
        }
        let pieces: &[&[u8]] = &[
            b" ",
            b"\t",
            b"  ",
            b"Bearer",
            b"bEARER",
            b"Bearer ",
            b"Bearerx",
            b"Beare",
            b"DPoP",
            b"dpop ",
            b"a.b.c",
            b"x",
            b"=",
            b"\xc3\xa9",
            b"\0",
        ];
        let values = concatenations(pieces, 4);
        for value in &values {
            for scheme in [&b"bearer"[..], b"dpop"] {
                assert_eq!(
                    scheme_range(value, scheme),
                    scan(value, scheme),
                    "{:?} {:?}",
                    String::from_utf8_lossy(value),
                    String::from_utf8_lossy(scheme)
                );
            }
        }
    }

    /// `eq_scheme` is `eq_ignore_ascii_case` for the schemes the crate reads, whatever the bytes
    /// compared with them (every byte value in every position).
    #[test]
    fn scheme_comparison_is_case_insensitive_equality() {
        for scheme in [&b"bearer"[..], b"dpop"] {
            for i in 0..scheme.len() {
                for b in 0..=u8::MAX {
                    let mut name = scheme.to_vec();
                    name[i] = b;
                    assert_eq!(
                        eq_scheme(&name, scheme),
                        name.eq_ignore_ascii_case(scheme),
                        "{name:?}"
                    );
                }
            }
            assert!(!eq_scheme(&scheme[1..], scheme));
        }
    }

    /// `token_unchecked` may skip the syntax check and nothing else: wherever `token` accepts a
    /// header, it finds the same token; wherever `token` finds none or refuses the request for
    /// another reason (no or several headers, another scheme, not UTF-8), it finds none.
    #[test]
    fn token_unchecked_agrees_with_token() {
        use http::HeaderValue;
        let name = http::HeaderName::from_static("x-token");
        let values: &[&[u8]] = &[
            b"Bearer abc.def.ghi",
            b"bearer   abc",
            b"  Bearer\tabc  ",
            b"Bearer a-b_c~d+e/f==",
            b"Basic dXNlcjpwYXNz",
            b"Bearerabc",
            b"Bearer",
            b"Bearer abc def",
            b"Bearer abc,def",
            b"Bearer \xc3\xa9",
            b"Bearer \xff",
            b"abc.def",
            b" abc.def ",
            b"\tabc\t",
            b"Bearer abc\xff",
            b"\x80Bearer abc",
            b"Bearer\xc2\xa0abc",
            b"\xc2\xa0Bearer abc",
            b"Bearer abc\xc2\xa0",
        ];
        let cases = values.iter().flat_map(|value| {
            let value = HeaderValue::from_bytes(value).unwrap();
            [vec![], vec![value.clone()], vec![value.clone(), value]]
        });
        for values in cases {
            for header in [AUTHORIZATION, name.clone()] {
                let mut headers = HeaderMap::new();
                for value in &values {
                    headers.append(header.clone(), value.clone());
                }
                let (checked, unchecked) = if header == AUTHORIZATION {
                    let source = AuthorizationHeader;
                    (
                        source.token(&headers),
                        source.token_unchecked(&headers, crate::sealed::INTERNAL),
                    )
                } else {
                    let source = HeaderToken::new(name.clone());
                    (
                        source.token(&headers),
                        source.token_unchecked(&headers, crate::sealed::INTERNAL),
                    )
                };
                match checked {
                    Ok(Some(token)) => {
                        assert_eq!(unchecked, Some(token.as_bytes()), "{values:?}")
                    }
                    Ok(None) | Err(BearerError::MultipleAuthorizationHeaders) => {
                        assert_eq!(unchecked, None, "{header} {values:?}")
                    }
                    // Refused for its syntax: what is found is no b64token, so never in the cache.
                    Err(
                        BearerError::EmptyToken | BearerError::InvalidToken | BearerError::NotAscii,
                    ) => {
                        let b64token =
                            |t| std::str::from_utf8(t).is_ok_and(|t| check_b64token(t).is_ok());
                        assert!(!unchecked.is_some_and(b64token), "{header} {values:?}")
                    }
                }
            }
        }
    }

    /// Review of the Authorization short cut (67b9a93), every value of up to four pieces that a
    /// `HeaderValue` can hold (blanks, obs-text, both schemes in several cases, near-schemes,
    /// tokens, `,` and `=`), alone and next to a second header: `token_unchecked` keeps
    /// `token`'s contract (the same token where `token` accepts; nothing where `token` finds no
    /// credentials or refuses the request for a reason other than the token's bytes; never a
    /// b64token where `token` refuses the bytes), the token found is what an independent
    /// split-and-trim reading of RFC 7235's `credentials = auth-scheme [ 1*SP token68 ]` finds,
    /// and a value in the `DPoP` scheme is never read as `Bearer` credentials, nor the reverse
    /// (RFC 9449 §7.2: the layer's two paths must not take each other's requests).
    #[test]
    fn authorization_short_cut_keeps_the_unchecked_contract_for_generated_values() {
        use http::HeaderValue;
        /// Blanks as the crate splits at them (RFC 7230 OWS: SP and HTAB).
        fn strip(mut v: &[u8]) -> &[u8] {
            while let [b' ' | b'\t', rest @ ..] = v {
                v = rest;
            }
            while let [rest @ .., b' ' | b'\t'] = v {
                v = rest;
            }
            v
        }
        /// The credentials after `scheme`, written without `scheme_range`'s indices.
        fn reference<'a>(value: &'a [u8], scheme: &[u8]) -> Option<&'a [u8]> {
            let value = strip(value);
            let split = value
                .iter()
                .position(|b| *b == b' ' || *b == b'\t')
                .unwrap_or(value.len());
            let (name, rest) = value.split_at(split);
            (!name.is_empty() && name.eq_ignore_ascii_case(scheme)).then(|| strip(rest))
        }
        let pieces: &[&[u8]] = &[
            b" ",
            b"\t",
            b"Bearer",
            b"bEARER",
            b"DPoP",
            b"dPOP",
            b"Bearerx",
            b"a.b.c",
            b"=",
            b",",
            b"\xff",
            b"\xc2\xa0",
            b"B",
        ];
        let values = concatenations(pieces, 4);
        let second = HeaderValue::from_static("Bearer a.b.c");
        let b64token = |t: &[u8]| std::str::from_utf8(t).is_ok_and(|t| check_b64token(t).is_ok());
        for bytes in &values {
            let value = HeaderValue::from_bytes(bytes).unwrap();
            let shown = String::from_utf8_lossy(bytes);
            for two in [false, true] {
                let mut headers = HeaderMap::new();
                headers.append(AUTHORIZATION, value.clone());
                if two {
                    headers.append(AUTHORIZATION, second.clone());
                }
                let checked = AuthorizationHeader.token(&headers);
                let unchecked =
                    AuthorizationHeader.token_unchecked(&headers, crate::sealed::INTERNAL);
                match checked {
                    Ok(Some(token)) => {
                        assert_eq!(unchecked, Some(token.as_bytes()), "{shown:?} two={two}")
                    }
                    Ok(None) | Err(BearerError::MultipleAuthorizationHeaders) => {
                        assert_eq!(unchecked, None, "{shown:?} two={two}")
                    }
                    Err(_) => assert!(!unchecked.is_some_and(b64token), "{shown:?} two={two}"),
                }
                if two {
                    assert_eq!(unchecked, None, "{shown:?}");
                    assert_eq!(
                        scheme_credentials(&headers, b"dpop"),
                        Err(BearerError::MultipleAuthorizationHeaders),
                        "{shown:?}"
                    );
                    continue;
                }
                let bearer = reference(bytes, b"bearer");
                let dpop = reference(bytes, b"dpop");
                assert_eq!(unchecked, bearer, "{shown:?}");
                assert_eq!(
                    scheme_range(bytes, b"dpop").map(|(s, e)| &bytes[s..e]),
                    dpop,
                    "{shown:?}"
                );
                // One scheme or the other, never both.
                assert!(bearer.is_none() || dpop.is_none(), "{shown:?}");
                let dpop_checked = scheme_credentials(&headers, b"dpop");
                if dpop.is_some() {
                    assert!(
                        matches!(checked, Ok(None) | Err(BearerError::NotAscii)),
                        "{shown:?}"
                    );
                }
                if bearer.is_some() {
                    assert!(
                        matches!(dpop_checked, Ok(None) | Err(BearerError::NotAscii)),
                        "{shown:?}"
                    );
                }
            }
        }
    }

    /// Real tokens are checked 32 bytes at a time: a bad byte anywhere, in a chunk or in the
    /// remainder, is refused.
    #[test]
    fn a_bad_byte_is_found_in_every_chunk_position() {
        let good = "a".repeat(70);
        assert_eq!(check_b64token(&good), Ok(good.as_str()));
        for at in [0, 1, 31, 32, 33, 63, 64, 69] {
            for bad in [b' ', b',', b'"', b'=', 0x7f, b'@', b'['] {
                let mut token = good.clone().into_bytes();
                token[at] = bad;
                let token = String::from_utf8(token).unwrap();
                let expected = if bad == b'=' && at == 69 {
                    Ok(token.as_str()) // trailing padding
                } else {
                    Err(BearerError::InvalidToken)
                };
                assert_eq!(check_b64token(&token), expected, "{bad:#x} at {at}");
            }
        }
    }

    #[test]
    fn b64token_alphabet_is_exact() {
        for b in 0..=255u8 {
            let expected = b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
            assert_eq!(is_b64token_char(b), expected, "byte {b}");
        }
    }

    #[test]
    fn two_authorization_headers_are_malformed() {
        let mut headers = HeaderMap::new();
        headers.append(AUTHORIZATION, "Bearer a".parse().unwrap());
        headers.append(AUTHORIZATION, "Bearer b".parse().unwrap());
        assert_eq!(
            AuthorizationHeader.token(&headers),
            Err(BearerError::MultipleAuthorizationHeaders)
        );
        assert_eq!(AuthorizationHeader.token(&HeaderMap::new()), Ok(None));
    }

    #[test]
    fn non_ascii_header_is_malformed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            http::HeaderValue::from_bytes(b"Bearer \xff").unwrap(),
        );
        assert_eq!(
            AuthorizationHeader.token(&headers),
            Err(BearerError::NotAscii)
        );
    }
}
