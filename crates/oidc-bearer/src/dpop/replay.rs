//! The proofs seen (RFC 9449 §11.1): each accepted proof's `jti`, in the context of its key and
//! target URI, remembered until its `iat` leaves the accepted window (after which the proof is
//! refused for its age anyway), in the crate's one bounded digest map.

use std::collections::hash_map::RandomState;
use std::time::Duration;

use oidc_bearer_shared::clock::numeric_date;
use oidc_bearer_shared::map::{DigestMap, MIN_ENTRIES_PER_SHARD, Value};

use crate::crypto::{Sha256, sha256};
use crate::error::DpopError;

/// What the map counts per entry against its byte bound: the slot, its index entry and slack.
const ENTRY_BYTES: usize = 96;

/// One proof seen, until `expires` (since the epoch).
struct Seen {
    expires: Duration,
}

impl Value for Seen {
    fn size(&self) -> usize {
        ENTRY_BYTES
    }

    fn expires(&self) -> Duration {
        self.expires
    }
}

/// The proofs seen by one layer and its clones.
pub(super) struct Replay {
    /// Keyed with a random hasher: an attacker chooses what is inserted (with a key of its own).
    map: DigestMap<Seen, RandomState>,
}

impl Replay {
    pub(super) fn new(max_entries: usize) -> Self {
        Self {
            map: DigestMap::new(
                max_entries,
                max_entries.saturating_mul(ENTRY_BYTES),
                MIN_ENTRIES_PER_SHARD,
            ),
        }
    }

    /// The key of a proof: its `jti` in the context of its key's thumbprint and its normalised
    /// `htu` (§11.1: "in the context of the target URI"), length-prefixed so that no two contexts
    /// run into each other.
    pub(super) fn key(thumbprint: &str, htu: &str, jti: &str) -> Sha256 {
        let mut bytes = Vec::with_capacity(thumbprint.len() + htu.len() + jti.len() + 24);
        for part in [thumbprint, htu, jti] {
            bytes.extend_from_slice(&(part.len() as u64).to_be_bytes());
            bytes.extend_from_slice(part.as_bytes());
        }
        sha256(&bytes)
    }

    /// Records the proof `key` until `expires`: refused as [`DpopError::Replayed`] if it was seen
    /// before. Checked and recorded under one shard lock, so of two requests racing with one proof
    /// only one passes.
    ///
    /// A proof still in its window is never forgotten (§11.1: a forgotten proof could be replayed
    /// until then, and a client with a token of its own could flood the memory to that end): when
    /// the memory is full, the proofs out of their window make room, and if none is, the proof is
    /// refused ([`DpopError::ReplayMemoryFull`]) until one is (see
    /// `Dpop::with_max_replay_entries`).
    pub(super) fn first_use(
        &self,
        key: &Sha256,
        expires: f64,
        now: Duration,
    ) -> Result<(), DpopError> {
        let mut shard = self.map.lock(key);
        if shard.contains(key) {
            return Err(DpopError::Replayed);
        }
        if !shard.has_room(ENTRY_BYTES) && {
            shard.remove_expired(now);
            !shard.has_room(ENTRY_BYTES)
        } {
            return Err(DpopError::ReplayMemoryFull);
        }
        let expires = numeric_date(expires);
        shard.insert(key, Seen { expires }, now);
        Ok(())
    }
}
