//! Server-provided nonces (RFC 9449 §9) that need no shared store: a nonce is the number of a
//! time window and an HMAC-SHA-256 of it under a configured secret, so every replica holding the
//! secret makes and accepts the same nonces. Nonces rotate with the window; the current and the
//! previous window's are accepted, so that a nonce handed out just before a rotation still works.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::crypto::{constant_time_eq, hmac_sha256};

/// The shortest secret accepted: as long as the MAC's hash (RFC 2104 §3, RFC 7518 §3.2).
pub(super) const MIN_SECRET_BYTES: usize = 32;
/// How much of the MAC a nonce carries: 128 bits.
const MAC_BYTES: usize = 16;
/// Separates this use of the secret from any other.
const CONTEXT: &[u8] = b"oidc-bearer DPoP nonce v1\0";

/// The nonce maker and checker.
#[derive(Clone)]
pub(super) struct Nonces {
    secret: Vec<u8>,
    /// Seconds, at least 1.
    window: u64,
}

impl Nonces {
    pub(super) fn new(secret: &[u8], window: Duration) -> Result<Self, String> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "the DPoP nonce secret is {} bytes; at least {MIN_SECRET_BYTES} are required",
                secret.len()
            ));
        }
        if window.as_secs() == 0 {
            return Err("the DPoP nonce lifetime must be at least 1 s".into());
        }
        Ok(Self {
            secret: secret.to_vec(),
            window: window.as_secs(),
        })
    }

    fn window_at(&self, now: Duration) -> u64 {
        now.as_secs() / self.window
    }

    fn mac(&self, window: u64) -> [u8; MAC_BYTES] {
        let mut message = CONTEXT.to_vec();
        message.extend_from_slice(&window.to_be_bytes());
        let mut mac = [0; MAC_BYTES];
        mac.copy_from_slice(&hmac_sha256(&self.secret, &message)[..MAC_BYTES]);
        mac
    }

    /// The nonce of the window `now` falls in: base64url(window number, 8 bytes big-endian ‖ MAC),
    /// 32 characters of the `NQCHAR` syntax (§8.1).
    pub(super) fn current(&self, now: Duration) -> String {
        let window = self.window_at(now);
        let mut bytes = [0; 8 + MAC_BYTES];
        bytes[..8].copy_from_slice(&window.to_be_bytes());
        bytes[8..].copy_from_slice(&self.mac(window));
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Whether `nonce` was made with this secret for the current or the previous window.
    pub(super) fn accepts(&self, nonce: &str, now: Duration) -> bool {
        let mut bytes = [0; 8 + MAC_BYTES];
        if nonce.len() != 32 || URL_SAFE_NO_PAD.decode_slice(nonce, &mut bytes) != Ok(bytes.len()) {
            return false;
        }
        let mut number = [0; 8];
        number.copy_from_slice(&bytes[..8]);
        let window = u64::from_be_bytes(number);
        let current = self.window_at(now);
        (window == current || window.checked_add(1) == Some(current))
            && constant_time_eq(&bytes[8..], &self.mac(window))
    }
}

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("Nonces")
            .field("window_secs", &self.window)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_rotate_by_window_and_need_the_secret() {
        let at = |secs| Duration::from_secs(secs);
        let nonces = Nonces::new(&[7; 32], at(60)).unwrap();
        let other = Nonces::new(&[8; 32], at(60)).unwrap();
        let nonce = nonces.current(at(6_000));
        assert_eq!(nonce.len(), 32);
        assert_eq!(nonces.current(at(6_059)), nonce, "one window");
        assert!(nonces.accepts(&nonce, at(6_000)));
        assert!(nonces.accepts(&nonce, at(6_119)), "the previous window's");
        assert!(!nonces.accepts(&nonce, at(6_120)), "two windows later");
        assert!(!nonces.accepts(&nonce, at(5_999)), "a future window's");
        assert!(!other.accepts(&nonce, at(6_000)), "another secret");
        // A changed window number breaks the MAC.
        let mut bytes = URL_SAFE_NO_PAD.decode(&nonce).unwrap();
        bytes[7] ^= 1;
        assert!(!nonces.accepts(&URL_SAFE_NO_PAD.encode(&bytes), at(6_000)));
        for garbage in ["", "x", &"A".repeat(32), &format!("{nonce}A")] {
            assert!(!nonces.accepts(garbage, at(6_000)), "{garbage}");
        }
        assert!(Nonces::new(&[7; 31], at(60)).is_err());
        assert!(Nonces::new(&[7; 32], Duration::from_millis(999)).is_err());
    }
}
