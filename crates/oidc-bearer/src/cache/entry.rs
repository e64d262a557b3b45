//! What the token cache keeps per token: the verified token's signing input, times, key and claims.

use std::any::{Any, TypeId};
use std::sync::Arc;
use std::time::Duration;

use super::ENTRY_OVERHEAD;
use super::key::{KeyRef, Times, TokenKey};
use oidc_bearer_shared::map::Value;

/// Decoded claims, shared with every request that presents the token.
pub(crate) type SharedClaims = Arc<dyn Any + Send + Sync>;

/// A verified token.
pub(crate) struct Entry {
    /// The token's signing input, compared on every hit (see [`TokenKey`]).
    signing_input: Box<[u8]>,
    pub(super) times: Times,
    /// `exp + leeway`, in seconds as the token's NumericDate (an `f64`, half a `Duration`'s
    /// size): past it the entry is useless and evicted first.
    stale_after: f64,
    pub(super) key: KeyRef,
    /// The claims decoded per type, so a hit hands out the same `Arc` without decoding.
    pub(super) claims: Vec<(TypeId, SharedClaims)>,
    /// The payload's length: what each further claims type adds to `size`.
    pub(super) payload_len: usize,
    pub(super) size: usize,
}

impl Entry {
    pub(crate) fn new(
        token: &TokenKey<'_>,
        times: Times,
        leeway: Duration,
        key: KeyRef,
        claims: Option<(TypeId, SharedClaims)>,
        payload_len: usize,
    ) -> Self {
        let typed = usize::from(claims.is_some());
        let signing_input: Box<[u8]> = token.signing_input.into();
        Self {
            size: ENTRY_OVERHEAD + signing_input.len() + typed * payload_len,
            signing_input,
            times,
            stale_after: times
                .exp
                .map_or(f64::INFINITY, |exp| exp + leeway.as_secs_f64()),
            key,
            claims: claims.into_iter().collect(),
            payload_len,
        }
    }

    pub(super) fn claims_of(&self, type_id: TypeId) -> Option<SharedClaims> {
        self.claims
            .iter()
            .find(|(t, _)| *t == type_id)
            .map(|(_, claims)| claims.clone())
    }
}

impl Value for Entry {
    fn size(&self) -> usize {
        self.size
    }

    fn expires(&self) -> Duration {
        oidc_bearer_shared::clock::numeric_date(self.stale_after)
    }

    /// Always kept: a hit is the same bytes as the token that verified.
    fn kept_input(&self) -> Option<&[u8]> {
        Some(&self.signing_input)
    }
}
