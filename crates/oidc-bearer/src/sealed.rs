//! The seal of the performance hooks inside public traits ([`VerifyToken`]'s synchronous cache
//! lookup, [`TokenExtractor`]'s unchecked read): each takes an [`Internal`] as its last argument, a
//! value only this crate can make, so that outside the crate they can be neither called nor
//! overridden (a sealed method). The traits stay implementable; implementations elsewhere keep the
//! hooks' defaults, which are always correct (the HTTP layer then takes its ordinary path).
//!
//! [`VerifyToken`]: crate::VerifyToken
//! [`TokenExtractor`]: crate::bearer::TokenExtractor

/// Proof that the caller is this crate. Public in a private module: nameable in a public trait's
/// signature, but neither nameable nor constructible outside the crate.
#[derive(Debug, Clone, Copy)]
pub struct Internal(());

/// The only value of [`Internal`].
pub(crate) const INTERNAL: Internal = Internal(());
