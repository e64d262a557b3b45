//! The HTTP layer's fast path through a registry: an index from recent tokens' signature digests to
//! the verifier that accepted them, so that a token seen before is found in its issuer's token cache
//! without being parsed.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{IssuerRegistry, Live, Selected, millis};
use crate::crypto::Sha256;
use crate::verify::WeakVerifier;

/// How many recent tokens the registry remembers the verifier of (about 100 bytes each).
pub(super) const RECENT_TOKENS: usize = 65_536;

/// The issuer that accepted a recent token, held weakly.
#[derive(Clone)]
pub(super) enum Recent {
    /// An exact issuer: never evicted or negatively cached once built.
    Exact(WeakVerifier),
    /// A pattern issuer: answered for only while it is proven and not negatively cached.
    Pattern(std::sync::Weak<Live>),
}

impl IssuerRegistry {
    /// Remembers which verifier accepted the token with this signature digest.
    pub(super) fn remember_recent(&self, digest: &Sha256, selected: &Selected) {
        let recent = match selected {
            Selected::Exact(verifier) => Recent::Exact(verifier.downgrade()),
            Selected::Proven(live) => Recent::Pattern(Arc::downgrade(live)),
            Selected::Pending(trial) => Recent::Pattern(Arc::downgrade(&trial.live)),
        };
        self.inner.recent.insert(digest, recent);
    }

    /// The shared claims of a token accepted before, from its issuer's token cache (see
    /// [`VerifyToken::verify_token_cached`](crate::VerifyToken::verify_token_cached)): a SHA-256 of its signature and two lookups, no
    /// parsing.
    ///
    /// A token is found only through the verifier that accepted it, with that verifier's checks
    /// (times, key still published), and only while the full path would choose that verifier: a
    /// pattern issuer the registry has evicted or failed is refused here (the index holds it
    /// weakly, and it is marked), and so is one negatively cached. A hit counts as a use of the
    /// issuer for eviction. Entries that no longer answer are left to be replaced or to age out.
    pub(super) fn cached_shared<T>(&self, token: &[u8]) -> Option<Arc<T>>
    where
        T: Send + Sync + 'static,
    {
        if token.len() > self.inner.max_token_bytes {
            return None;
        }
        let key = crate::cache::TokenKey::new(token)?;
        match self.inner.recent.get(&key.digest)? {
            Recent::Exact(verifier) => verifier.upgrade()?.cached_key(&key),
            Recent::Pattern(live) => {
                let live = live.upgrade()?;
                let now = millis(self.inner.clock.now());
                if now < live.refuse_until.load(Ordering::Acquire) {
                    return None;
                }
                let claims = live.verifier.cached_key(&key)?;
                live.last_used.store(now, Ordering::Relaxed);
                Some(claims)
            }
        }
    }
}
