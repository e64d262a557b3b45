//! Errors, one type per phase: configuring a verifier ([`ConfigError`]), fetching an issuer's keys
//! ([`KeysError`]) and verifying a token ([`VerifyError`]).
//!
//! Each error carries the data a report needs and has a stable, machine-readable [`code`] for logs and
//! metrics. No third-party error type appears in the public API (the model is rustls' `Error`; go-oidc's
//! `TokenExpiredError` carries the expiry the same way).
//!
//! [`code`]: VerifyError::code

use std::fmt::{self, Write as _};

pub(crate) mod config;
pub(crate) mod dpop;
pub(crate) mod keys;
pub(crate) mod source;
pub(crate) mod verify;

pub(crate) use self::config::ConfigError;
pub(crate) use self::dpop::{DpopChallengeError, DpopError};
pub(crate) use self::keys::KeysError;
pub(crate) use self::verify::VerifyError;
pub(crate) use oidc_bearer_shared::fetch::FetchError;

/// A token-supplied string in a message: at most `Excerpt::MAX_CHARS` (64) characters, so that an
/// 8 KiB `iss` or `kid` cannot flood logs (the typed error keeps the whole value), in quotes and
/// escaped as `{:?}` writes a `str` (see [`Escaped`]), so that it cannot forge a log line.
pub struct Excerpt<'a>(pub &'a str);

impl Excerpt<'_> {
    const MAX_CHARS: usize = 64;
}

impl fmt::Debug for Excerpt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = self
            .0
            .char_indices()
            .nth(Self::MAX_CHARS)
            .map(|(end, _)| end);
        f.write_char('"')?;
        write_escaped(f, &self.0[..end.unwrap_or(self.0.len())], true)?;
        f.write_char('"')?;
        match end {
            None => Ok(()),
            Some(_) => write!(f, "… ({} bytes)", self.0.len()),
        }
    }
}

/// An API server's message in a log line or an error's text: at most 256 characters.
pub(crate) struct Truncated<'a>(pub(crate) &'a str);

impl fmt::Debug for Truncated<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(256) {
            None => write!(f, "{:?}", self.0),
            Some((end, _)) => write!(f, "{:?}…", &self.0[..end]),
        }
    }
}

/// Text from outside — a token, an issuer's documents — for a terminal or a log line: every
/// character that could act on a terminal or forge a line (control characters: C0, DEL and C1;
/// line and paragraph separators; bidirectional overrides and other invisible format characters)
/// is written as Rust's `Debug` writes it (`\n`, `\u{1b}`, `\u{202e}`), every other character as it
/// is.
///
/// The escaping of this crate's excerpts of token contents in messages and logs, which also
/// quote and escape `"` and `\` (the `oidc-bearer` command uses it for everything it prints).
///
/// ```
/// use oidc_bearer::Escaped;
///
/// let kid = "key-1\u{1b}[2J\nverifier: loads the keys (ok)";
/// assert_eq!(
///     Escaped(kid).to_string(),
///     r"key-1\u{1b}[2J\nverifier: loads the keys (ok)"
/// );
/// assert_eq!(Escaped(r#"say "hi" \o/"#).to_string(), r#"say "hi" \o/"#);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_escaped(f, self.0, false)
    }
}

/// Writes `text` as `{:?}` writes a `str` between its quotes (`char::escape_debug`, except for
/// `'`), or, unless `quoted`, with `"` and `\` as they are.
fn write_escaped(out: &mut impl fmt::Write, text: &str, quoted: bool) -> fmt::Result {
    for c in text.chars() {
        let plain = match c {
            '\'' => true,
            '"' | '\\' => !quoted,
            _ => false,
        };
        let escaped = c.escape_debug();
        if plain || escaped.len() == 1 {
            out.write_char(c)?;
        } else {
            write!(out, "{escaped}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) use self::verify::VerifyErrorKind;

#[cfg(test)]
pub(crate) mod tests {
    //! One table of every [`VerifyError`] variant, used here and by the metrics tests.

    use std::time::Duration;

    use strum::IntoEnumIterator as _;

    use super::*;
    use crate::Phase;

    /// The table of every [`VerifyError`]: one error of each variant and its phase. The match is
    /// over the variant list that strum derives from the enum, with no `_` arm, so that a new variant
    /// fails to compile here until it has a row.
    fn row(kind: VerifyErrorKind) -> (VerifyError, Phase) {
        use VerifyError as E;
        use VerifyErrorKind as K;
        let text = String::new;
        match kind {
            K::TooLarge => (E::TooLarge { len: 2, max: 1 }, Phase::Structure),
            K::Malformed => (E::Malformed { reason: "" }, Phase::Structure),
            K::UnsupportedAlgorithm => (E::UnsupportedAlgorithm { alg: text() }, Phase::Header),
            K::AlgorithmNotAllowed => (E::AlgorithmNotAllowed { alg: text() }, Phase::Header),
            K::UnsupportedCritical => (E::UnsupportedCritical { names: vec![] }, Phase::Header),
            K::InvalidType => {
                let error = E::InvalidType {
                    expected: text(),
                    found: None,
                };
                (error, Phase::Header)
            }
            K::UntrustedIssuer => (E::UntrustedIssuer { found: None }, Phase::Issuer),
            K::TooManyNewIssuers => {
                let error = E::TooManyNewIssuers {
                    limit: "new_issuer_rate",
                };
                (error, Phase::Issuer)
            }
            K::KeysUnavailable => {
                let source = KeysError::Stale {
                    age: Duration::ZERO,
                };
                (E::KeysUnavailable { source }, Phase::Keys)
            }
            K::AlgorithmKeyMismatch => {
                let error = E::AlgorithmKeyMismatch {
                    alg: text(),
                    kid: None,
                };
                (error, Phase::KeySelection)
            }
            K::UnknownKey => (E::UnknownKey { kid: None }, Phase::KeySelection),
            K::UnknownKeyRetry => {
                let error = E::UnknownKeyRetry {
                    kid: None,
                    retry_after: Duration::ZERO,
                };
                (error, Phase::KeySelection)
            }
            K::AmbiguousKey => (E::AmbiguousKey { candidates: 2 }, Phase::KeySelection),
            K::InvalidSignature => (E::InvalidSignature, Phase::Signature),
            K::IssuerMismatch => {
                let error = E::IssuerMismatch {
                    expected: text(),
                    found: None,
                };
                (error, Phase::Claims)
            }
            K::AudienceMismatch => {
                let error = E::AudienceMismatch {
                    expected: vec![],
                    found: vec![],
                };
                (error, Phase::Claims)
            }
            K::MissingClaim => (E::MissingClaim { claim: "exp" }, Phase::Claims),
            K::InvalidClaim => {
                let error = E::InvalidClaim {
                    claim: "exp",
                    reason: "",
                };
                (error, Phase::Claims)
            }
            K::Expired => (E::Expired { exp: 0, now: 1 }, Phase::Claims),
            K::NotYetValid => (E::NotYetValid { nbf: 1, now: 0 }, Phase::Claims),
            K::IssuedInFuture => (E::IssuedInFuture { iat: 1, now: 0 }, Phase::Claims),
            K::ClaimsDecode => (E::ClaimsDecode { message: text() }, Phase::Decode),
            K::ReviewRefused => (E::ReviewRefused { error: None }, Phase::Review),
            K::ReviewUnavailable => {
                let source = super::source::ReviewSource::new(std::fmt::Error);
                (E::ReviewUnavailable { source }, Phase::Review)
            }
        }
    }

    /// One error of each [`VerifyError`] variant, for tests elsewhere that must cover them all.
    pub(crate) fn one_of_each() -> Vec<VerifyError> {
        VerifyErrorKind::iter().map(|kind| row(kind).0).collect()
    }

    #[test]
    fn every_verify_error_has_its_phase() {
        for kind in VerifyErrorKind::iter() {
            let (error, phase) = row(kind);
            assert_eq!(VerifyErrorKind::from(&error), kind, "the row of {kind:?}");
            assert_eq!(error.phase(), phase, "{error:?}");
        }
    }

    #[test]
    fn every_verify_error_has_a_code_of_its_own() {
        let mut codes: Vec<_> = one_of_each().iter().map(VerifyError::code).collect();
        let all = codes.len();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all, "{codes:?}");
    }

    /// `main` returning `Result<_, ConfigError>` (or a `Box<dyn Error>` holding one) prints the error's
    /// `Debug` form: it must carry the message and its hint, as `std::io::Error`'s does.
    #[test]
    fn a_config_error_debug_form_carries_its_message() {
        let errors = [
            ConfigError::NoAudience,
            ConfigError::InvalidIssuer {
                issuer: "issuer.example".into(),
                reason: "not an absolute URL".into(),
            },
            ConfigError::InsecureUrl {
                url: "http://10.0.0.1/".into(),
            },
        ];
        for error in errors {
            let debug = format!("{error:?}");
            assert!(
                debug.contains(&format!("{:?}", error.to_string())),
                "{debug}"
            );
            assert!(debug.contains(error.code()), "{debug}");
            let boxed: Box<dyn std::error::Error> = Box::new(error.clone());
            assert_eq!(format!("{boxed:?}"), debug);
        }
    }

    /// `verifier.ready().await?` in `main` prints a [`KeysError`]'s `Debug` form: the message, and for a
    /// configuration mistake the fix, must be in it.
    #[test]
    fn a_keys_error_debug_form_carries_its_message_and_fix() {
        let mismatch = KeysError::IssuerMismatch {
            expected: "https://issuer.example".into(),
            found: "https://issuer.example/".into(),
        };
        let outage = KeysError::Fetch {
            url: "https://issuer.example/.well-known/openid-configuration".into(),
            source: FetchError::Timeout {
                timeout: Duration::from_secs(5),
            },
        };
        let debug = format!("{mismatch:?}");
        assert!(
            debug.contains(&format!("{:?}", mismatch.to_string())),
            "{debug}"
        );
        assert!(debug.contains("configure exactly that string"), "{debug}");
        let debug = format!("{outage:?}");
        assert!(
            debug.contains(&format!("{:?}", outage.to_string())),
            "{debug}"
        );
        assert!(
            !debug.contains("fix"),
            "an outage has nothing to fix: {debug}"
        );
    }

    /// Excerpts write what `{:?}` writes for a `str` (cut at 64 characters), and [`Escaped`] the same
    /// without the quotes, and without escaping `"` and `\`: what acts on a terminal is escaped in both.
    #[test]
    fn excerpts_and_escaped_text_escape_what_acts_on_a_terminal() {
        let texts = [
            "plain kid-1",
            "\u{1b}[2J\nverifier: loads the keys (ok)\r\t\0",
            "\u{9b}31m \u{7f} \u{85} \u{2028} \u{202e}evil \u{200b} \u{feff}",
            r#"quotes " and ' and \ backslash"#,
            "accents e\u{301} ü 漢字 🦀",
        ];
        for text in texts {
            assert_eq!(
                format!("{:?}", Excerpt(text)),
                format!("{text:?}"),
                "{text}"
            );
            let escaped = Escaped(text).to_string();
            let unquoted = format!("{text:?}");
            let unquoted = unquoted[1..unquoted.len() - 1]
                .replace(r#"\""#, "\"")
                .replace(r"\\", r"\");
            assert_eq!(escaped, unquoted, "{text}");
            assert!(!escaped.chars().any(char::is_control), "{escaped}");
        }
        let long = "a\n".repeat(100);
        assert_eq!(
            format!("{:?}", Excerpt(&long)),
            format!("{:?}… (200 bytes)", &long[..64])
        );
    }
}
