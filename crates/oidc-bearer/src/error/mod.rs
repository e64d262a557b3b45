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
pub(crate) mod review;
#[cfg(test)]
pub(crate) mod tests;
pub(crate) mod verify;

pub(crate) use self::config::ConfigError;
pub(crate) use self::dpop::{DpopChallengeError, DpopError};
pub(crate) use self::keys::KeysError;
pub(crate) use self::review::ReviewError;
pub(crate) use self::review::{ApiServerFailure, Truncated};
#[cfg(test)]
pub(crate) use self::verify::VerifyErrorKind;
pub(crate) use self::verify::{Phase, VerifyError};
pub(crate) use oidc_bearer_shared::{fetch::FetchError, flight::FlightError};

/// A token-supplied string in a message: at most [`Excerpt::MAX_CHARS`] characters, so that an
/// 8 KiB `iss` or `kid` cannot flood logs (the typed error keeps the whole value), in quotes and
/// escaped as `{:?}` writes a `str` (see [`Escaped`]), so that it cannot forge a log line.
pub(crate) struct Excerpt<'a>(pub(crate) &'a str);

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
