//! The fetches of `discover`, made by the library's own fetch
//! ([`VerifierBuilder::fetch_document`]): the TLS roots (`--ca`), timeouts, size cap, no redirects
//! and https-or-loopback rule of the verifier whose verdict is shown beside them, so that what is
//! shown is what a verifier gets.

use oidc_bearer::keys::FetchedDocument;
use oidc_bearer::{FetchError, KeysError, VerifierBuilder};

use crate::{HttpArgs, UsageError};

/// The PEM file of `--ca`.
pub(crate) fn read_ca(path: &std::path::Path) -> Result<Vec<u8>, UsageError> {
    std::fs::read(path).map_err(|e| UsageError(format!("--ca {}: {e}", path.display())))
}

/// `builder` with the HTTP settings of `args` (`--ca`, `--dangerous-allow-insecure-http`).
pub(crate) fn with_http_args(
    mut builder: VerifierBuilder,
    args: &HttpArgs,
) -> Result<VerifierBuilder, UsageError> {
    if let Some(ca) = &args.ca {
        builder = builder.with_root_certificates_pem(read_ca(ca)?);
    }
    if args.dangerous_allow_insecure_http {
        builder = builder.dangerous_allow_insecure_http();
    }
    Ok(builder)
}

/// GETs `url` as `builder`'s verifier would; a refused URL, a transport error, a non-success status
/// or an oversized body is an error message.
pub(crate) async fn get(builder: &VerifierBuilder, url: &str) -> Result<FetchedDocument, String> {
    builder.fetch_document(url).await.map_err(|e| match &e {
        KeysError::InsecureUrl { url } => format!(
            "refusing {url:?}: https is required off loopback, and the URL must parse \
             (--dangerous-allow-insecure-http)"
        ),
        KeysError::Fetch {
            source: FetchError::Status { status },
            ..
        } if (300..400).contains(status) => format!("{e} (redirects are not followed)"),
        _ => e.to_string(),
    })
}
