//! Errors of DPoP: [`InvalidDpopKey`] when a key cannot be used, [`DpopError`] when a request
//! cannot get a proof.

use std::{error::Error, fmt};

/// Why a [`DpopKey`](super::DpopKey) could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidDpopKey {
    /// The key is not an unencrypted PKCS#8 P-256 or P-384 EC private key.
    Rejected {
        /// What the crypto library said about it.
        reason: &'static str,
    },
    /// No key could be generated (the operating system's random source failed).
    Generate,
}

impl fmt::Display for InvalidDpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rejected { reason } => write!(
                f,
                "the DPoP key is not an unencrypted PKCS#8 P-256 or P-384 private key: {reason}"
            ),
            Self::Generate => f.write_str("could not generate a DPoP key"),
        }
    }
}

impl Error for InvalidDpopKey {}

/// Why a request got no DPoP proof; the request is not sent.
///
/// The layer's error is a [`BoxError`](crate::BoxError): recover this with `downcast_ref`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DpopError {
    /// The request's URI has no scheme and authority, so the proof has no `htu` (RFC 9449 §4.2
    /// needs the full target URI). hyper-util's client takes absolute URIs; put the layer where
    /// the URI is absolute.
    NotAbsoluteUri {
        /// The request's URI.
        uri: String,
    },
    /// The crypto library could not sign the proof or draw its random `jti`.
    Crypto,
}

impl fmt::Display for DpopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAbsoluteUri { uri } => write!(
                f,
                "cannot make a DPoP proof for {uri:?}: the request URI must be absolute (scheme and host), as `htu` is"
            ),
            Self::Crypto => f.write_str("could not sign a DPoP proof"),
        }
    }
}

impl Error for DpopError {}
