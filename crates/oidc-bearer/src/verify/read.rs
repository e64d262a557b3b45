//! [`IssuerRead`]: a token taken apart once to read its unverified `iss`, for an issuer registry
//! (crate `oidc-bearer-registry`) to choose the verifier that then verifies the same parse.

use crate::error::VerifyError;
use crate::sealed::Presented;
use crate::token::{ClaimValue, Jws, Unverified, validate_payload};
use crate::verify::VerifierBuilder;

/// A token parsed as far as a signature check needs, its payload decoded and only its top-level
/// `iss` read (not trusted): what an issuer registry reads to choose a verifier, handed back whole
/// to that verifier's `verify_parsed`, so that the token is parsed once.
///
/// Contract (the registry relies on it, a reviewer checks it here): the bytes and their parse
/// come in one value, made only by [`parse`](Self::parse) and
/// [`parse_presented`](Self::parse_presented) from the token it borrows; its fields are private
/// and nothing in it can be changed from outside. A verifier given it therefore verifies, and
/// caches under their own key, exactly the bytes that were parsed (with the digest, if any, that
/// [`Presented`] carries for those bytes). Outside the crate it cannot be put together from
/// another token's parse:
///
/// ```compile_fail,E0451
/// use oidc_bearer::{Presented, __private::IssuerRead};
/// fn forge<'a>(read: IssuerRead<'a>, other: Presented<'a, str>) -> IssuerRead<'a> {
///     IssuerRead { token: other, ..read }
/// }
/// ```
#[doc(hidden)]
pub struct IssuerRead<'a> {
    pub(super) token: Presented<'a, str>,
    pub(super) parsed: Unverified<'a>,
}

impl<'a> IssuerRead<'a> {
    /// Takes `token` apart (refusing garbage, and tokens over `max_token_bytes`, before any
    /// crypto) and reads its `iss`.
    pub fn parse(token: &'a str, max_token_bytes: usize) -> Result<Self, VerifyError> {
        Self::parse_presented(Presented::new(token), max_token_bytes)
    }

    /// [`parse`](Self::parse) of the token the HTTP layer presented, keeping its digest.
    pub fn parse_presented(
        token: Presented<'a, str>,
        max_token_bytes: usize,
    ) -> Result<Self, VerifyError> {
        let parsed = Jws::new(token.get(), max_token_bytes)?.read_issuer()?;
        Ok(Self { token, parsed })
    }

    /// The unverified `iss`: a registry refuses a token without one as from an untrusted issuer,
    /// and any other JSON value as an invalid claim (RFC 7519 §4.1.1: a string).
    pub fn iss(&self) -> Result<&str, VerifyError> {
        match &self.parsed.iss {
            ClaimValue::Str(iss) => Ok(iss),
            ClaimValue::Absent => Err(VerifyError::UntrustedIssuer { found: None }),
            _ => Err(VerifyError::InvalidClaim {
                claim: "iss",
                reason: "must be a single string (RFC 7519 §4.1.1)",
            }),
        }
    }

    /// Refuses what the verifier `builder` builds would refuse without a key (size, algorithms,
    /// `typ`, audience, times, by `builder`'s clock): a registry asks before it admits a new issuer.
    /// Only ever refuses; passing it accepts nothing.
    pub fn check_unverified(&self, builder: &VerifierBuilder) -> Result<(), VerifyError> {
        let claims = validate_payload(&self.parsed.payload)?;
        builder.rules().check_unverified(
            &self.parsed.jws.header,
            &claims,
            self.token.get().len(),
            builder.now(),
        )
    }
}
