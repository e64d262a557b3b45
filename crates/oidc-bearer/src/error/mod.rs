//! Errors, one type per phase: configuring a verifier ([`ConfigError`]), fetching an issuer's keys
//! ([`KeysError`]) and verifying a token ([`VerifyError`]).
//!
//! Each error carries the data a report needs and has a stable, machine-readable [`code`] for logs and
//! metrics. No third-party error type appears in the public API (the model is rustls' `Error`; go-oidc's
//! `TokenExpiredError` carries the expiry the same way).
//!
//! [`code`]: VerifyError::code

use std::fmt;

pub(crate) mod config;
pub(crate) mod keys;
#[cfg(test)]
pub(crate) mod tests;
pub(crate) mod verify;

pub(crate) use self::config::ConfigError;
pub(crate) use self::keys::KeysError;
#[cfg(test)]
pub(crate) use self::verify::VerifyErrorKind;
pub(crate) use self::verify::{Phase, VerifyError};

/// A token-supplied string in a message: at most [`Excerpt::MAX_CHARS`] characters, so that an
/// 8 KiB `iss` or `kid` cannot flood logs (the typed error keeps the whole value).
pub(crate) struct Excerpt<'a>(pub(crate) &'a str);

impl Excerpt<'_> {
    const MAX_CHARS: usize = 64;
}

impl fmt::Debug for Excerpt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(Self::MAX_CHARS) {
            None => write!(f, "{:?}", self.0),
            Some((end, _)) => write!(f, "{:?}… ({} bytes)", &self.0[..end], self.0.len()),
        }
    }
}

/// An error and its sources, joined by `: ` ("a: b: c"): for a log line or a message, since the
/// messages of reqwest and hyper leave out the cause ("error sending request").
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
