//! The mechanisms that both [`oidc-bearer`](https://docs.rs/oidc-bearer) (which verifies tokens) and
//! [`oidc-bearer-client`](https://docs.rs/oidc-bearer-client) (which sends them) are built on, written
//! once, so that a workload that only sends tokens compiles neither the verifier nor a signature
//! crypto backend.
//!
//! - [`clock`]: the injectable clock (`oidc_bearer::clock`, `oidc_bearer_client::clock`), and a time
//!   held in an atomic.
//! - [`flight`]: the one detached single-flight task (key fetches, TokenReviews, token loads).
//! - [`fetch`]: the one transport-level error, [`FetchError`](fetch::FetchError); with feature `fetch`, the one HTTP
//!   client builder and bounded body read.
//! - [`file`](mod@file): the one safe read of a token file (regular files only, opened without waiting on a
//!   FIFO, capped) and the bound on its time.
//! - [`map`]: the one sharded, bounded map keyed by a SHA-256 digest (token cache, TokenReview
//!   answers, a registry's recent tokens, DPoP replay).
//! - [`log_limit`]: rate-limited log lines, one per period with a count of the rest.
//! - [`error_chain`]: an error and its causes as one line, for logs.
//!
//! Use these items through `oidc-bearer` and `oidc-bearer-client`, which re-export what their users
//! need.

#![cfg_attr(docsrs, feature(doc_cfg))]

use std::error::Error;

pub mod clock;
pub mod fetch;
pub mod file;
pub mod flight;
pub mod log_limit;
pub mod map;

/// An error and its causes as one line ("a: b: c"), for a log line or a message, since the messages
/// of HTTP clients (reqwest, hyper) often leave the cause out ("error sending request").
///
/// ```
/// let io = std::io::Error::other("connection refused");
/// assert_eq!(oidc_bearer_shared::error_chain(&io), "connection refused");
/// ```
pub fn error_chain(error: &dyn Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use std::fmt;

    use super::*;
    use crate::flight::FlightError;

    #[test]
    fn an_error_chain_names_every_cause() {
        #[derive(Debug)]
        struct Wrapped(FlightError);
        impl fmt::Display for Wrapped {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("error sending request")
            }
        }
        impl Error for Wrapped {
            fn source(&self) -> Option<&(dyn Error + 'static)> {
                Some(&self.0)
            }
        }
        let cause = FlightError::NoRuntime;
        assert_eq!(
            error_chain(&Wrapped(cause)),
            format!("error sending request: {cause}")
        );
        assert_eq!(error_chain(&cause), cause.to_string());
    }
}
