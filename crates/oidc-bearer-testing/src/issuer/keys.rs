//! The issuer's keys: generated ones (published or not), the signing key, and raw JWKs.

use std::sync::Arc;

use serde_json::Value;

use super::{Shared, State, TestIssuer};
use crate::key::{KeyAlg, TestKey};

/// A generated key and whether the JWKS publishes it.
pub(super) struct KeyEntry {
    pub(super) kid: String,
    pub(super) key: Arc<TestKey>,
    pub(super) published: bool,
}

impl Shared {
    /// The signing key with this kid; panics with the known kids otherwise.
    pub(crate) fn key(&self, kid: &str) -> Arc<TestKey> {
        let state = self.lock();
        match state.keys.iter().find(|e| e.kid == kid) {
            Some(entry) => Arc::clone(&entry.key),
            None => {
                let known = state.known_kids();
                drop(state);
                panic!(
                    "oidc-bearer-testing: no signing key with kid {kid:?} (keys: {known}; \
                     keys added with add_raw_jwk have no private half)"
                )
            }
        }
    }

    pub(crate) fn signing_kid(&self) -> String {
        self.lock().signing_kid.clone()
    }
}

impl State {
    pub(super) fn known_kids(&self) -> String {
        let kids: Vec<String> = self.keys.iter().map(|e| format!("{:?}", e.kid)).collect();
        if kids.is_empty() {
            "none".into()
        } else {
            kids.join(", ")
        }
    }

    pub(super) fn entry(&mut self, kid: &str) -> Option<&mut KeyEntry> {
        self.keys.iter_mut().find(|e| e.kid == kid)
    }

    /// The next free "key-N".
    pub(super) fn next_kid(&self) -> String {
        (self.keys.len() + 1..)
            .map(|n| format!("key-{n}"))
            .find(|kid| {
                !self.keys.iter().any(|e| &e.kid == kid)
                    && !self.raw_jwks.iter().any(|j| j["kid"] == kid.as_str())
            })
            .expect("an unbounded range has a free number")
    }

    /// Adds `key` under `kid`, replacing any key that had that kid.
    pub(super) fn insert(&mut self, kid: String, key: TestKey, published: bool) {
        let entry = KeyEntry {
            kid,
            key: Arc::new(key),
            published,
        };
        match self.keys.iter_mut().find(|e| e.kid == entry.kid) {
            Some(old) => *old = entry,
            None => self.keys.push(entry),
        }
    }
}

impl TestIssuer {
    /// Generates a key, publishes it in the JWKS and returns its kid (`"key-2"`, `"key-3"`, ...).
    /// The signing key does not change; see [`Self::rotate`] and [`Self::set_signing_key`].
    pub fn add_key(&self, alg: KeyAlg) -> String {
        let key = TestKey::generate(alg);
        let mut state = self.shared().lock();
        let kid = state.next_kid();
        state.insert(kid.clone(), key, true);
        kid
    }

    /// Generates a key and publishes it under `kid`. A key that already had this kid is
    /// replaced (same kid, new key material: a rotation that reuses kids).
    pub fn add_key_with_kid(&self, alg: KeyAlg, kid: &str) {
        let key = TestKey::generate(alg);
        self.shared().lock().insert(kid.to_owned(), key, true);
    }

    /// Generates a key that tokens can be signed with (via [`TokenBuilder::sign_with`](crate::TokenBuilder::sign_with)) but that
    /// is not in the JWKS, and returns its kid.
    pub fn add_unpublished_key(&self, alg: KeyAlg) -> String {
        let key = TestKey::generate(alg);
        let mut state = self.shared().lock();
        let kid = state.next_kid();
        state.insert(kid.clone(), key, false);
        kid
    }

    /// Takes the key (and any raw JWK) with this kid out of the JWKS. Tokens can still be signed
    /// with a generated key; publish it again with [`Self::publish_key`].
    ///
    /// # Panics
    /// If no key or raw JWK has this kid.
    pub fn remove_key(&self, kid: &str) {
        let mut state = self.shared().lock();
        let raw_before = state.raw_jwks.len();
        state.raw_jwks.retain(|jwk| jwk["kid"] != kid);
        let removed_raw = state.raw_jwks.len() != raw_before;
        let found_key = match state.entry(kid) {
            Some(entry) => {
                entry.published = false;
                true
            }
            None => false,
        };
        if !found_key && !removed_raw {
            let known = state.known_kids();
            drop(state);
            panic!("oidc-bearer-testing: remove_key({kid:?}): no such key (keys: {known})");
        }
    }

    /// Publishes again a key taken out with [`Self::remove_key`] or made with
    /// [`Self::add_unpublished_key`].
    ///
    /// # Panics
    /// If no generated key has this kid.
    pub fn publish_key(&self, kid: &str) {
        let mut state = self.shared().lock();
        if let Some(entry) = state.entry(kid) {
            entry.published = true;
            return;
        }
        let known = state.known_kids();
        drop(state);
        panic!("oidc-bearer-testing: publish_key({kid:?}): no such key (keys: {known})");
    }

    /// Generates a key of the signing key's algorithm, publishes it and makes it the signing
    /// key; the old key stays published. Returns the new kid.
    pub fn rotate(&self) -> String {
        let alg = self.shared().key(&self.signing_kid()).alg();
        let kid = self.add_key(alg);
        self.set_signing_key(&kid);
        kid
    }

    /// Makes the key with this kid the default for [`Self::token`].
    ///
    /// # Panics
    /// If no generated key has this kid.
    pub fn set_signing_key(&self, kid: &str) {
        let mut state = self.shared().lock();
        if state.entry(kid).is_none() {
            let known = state.known_kids();
            drop(state);
            panic!("oidc-bearer-testing: set_signing_key({kid:?}): no such key (keys: {known})");
        }
        state.signing_kid = kid.to_owned();
    }

    /// The kid of the key [`Self::token`] signs with.
    pub fn signing_kid(&self) -> String {
        self.shared().signing_kid()
    }

    /// The algorithm of the key with this kid.
    ///
    /// # Panics
    /// If no generated key has this kid.
    pub fn key_alg(&self, kid: &str) -> KeyAlg {
        self.shared().key(kid).alg()
    }

    /// The public JWK of a generated key, with `kid`, `kty`, `alg` and `use: "sig"`, whether or
    /// not it is published.
    ///
    /// # Panics
    /// If no generated key has this kid.
    pub fn public_jwk(&self, kid: &str) -> Value {
        self.shared().key(kid).public_jwk(kid)
    }

    /// The public key of a generated key as PEM (`-----BEGIN PUBLIC KEY-----`, an X.509
    /// SubjectPublicKeyInfo).
    ///
    /// # Panics
    /// If no generated key has this kid.
    pub fn public_key_pem(&self, kid: &str) -> String {
        self.shared().key(kid).public_key_pem()
    }

    /// Publishes `jwk` verbatim after the generated keys, for keys the verifier should skip or
    /// reject (unknown `kty`, `use: "enc"`, missing members...). [`Self::remove_key`] with its
    /// `kid` takes it out again.
    pub fn add_raw_jwk(&self, jwk: Value) {
        self.shared().lock().raw_jwks.push(jwk);
    }
}
