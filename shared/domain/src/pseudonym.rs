//! Keyed pseudonymization of personal identifiers.
//!
//! Raw user ids, e-mail addresses and IP addresses never reach storage: ingest replaces them with
//! `HMAC-SHA256(key, kind ‖ 0x00 ‖ value)`, truncated to 128 bits and hex-encoded behind a prefix that
//! names the kind (`u_`, `e_`, `ip_`). The scorer pseudonymizes request user ids with the same function,
//! so both sides meet on the same key. The kind is part of the MAC input, so the same string used as a user
//! id and as an e-mail does not link. E-mail addresses are trimmed and lower-cased first, so one mailbox
//! has one pseudonym. Without the key, a pseudonym cannot be reversed or recomputed by brute force over a
//! small id space; rotating the key re-keys every identity (a deliberate, documented break).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The minimum key length: a full SHA-256 block of entropy is not required, but 32 bytes is.
pub const MIN_KEY_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the pseudonymization key is {0} bytes; at least {MIN_KEY_BYTES} are required")]
    TooShort(usize),
}

/// What kind of identifier is being pseudonymized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    UserId,
    Email,
    Ip,
    /// The storefront's device id (schema v5).
    Device,
    /// The payment service's card fingerprint (schema v5).
    Card,
}

impl IdKind {
    fn domain(self) -> &'static [u8] {
        match self {
            IdKind::UserId => b"user_id\0",
            IdKind::Email => b"email\0",
            IdKind::Ip => b"ip\0",
            IdKind::Device => b"device\0",
            IdKind::Card => b"card\0",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            IdKind::UserId => "u_",
            IdKind::Email => "e_",
            IdKind::Ip => "ip_",
            IdKind::Device => "d_",
            IdKind::Card => "c_",
        }
    }
}

/// HMAC-SHA256 pseudonymizer. Cheap to clone: the keyed state is precomputed once.
#[derive(Clone)]
pub struct Pseudonymizer {
    keyed: Hmac<Sha256>,
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymizer(<key redacted>)")
    }
}

impl Pseudonymizer {
    pub fn new(key: &[u8]) -> Result<Self, KeyError> {
        if key.len() < MIN_KEY_BYTES {
            return Err(KeyError::TooShort(key.len()));
        }
        let keyed = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
            .map_err(|_| KeyError::TooShort(key.len()))?;
        Ok(Self { keyed })
    }

    /// The pseudonym of `value`, e.g. `u_3f1c…` (prefix plus 32 hex digits).
    pub fn pseudonymize(&self, kind: IdKind, value: &str) -> String {
        let mut mac = self.keyed.clone();
        mac.update(kind.domain());
        if kind == IdKind::Email {
            mac.update(value.trim().to_lowercase().as_bytes());
        } else {
            mac.update(value.as_bytes());
        }
        let digest = mac.finalize().into_bytes();
        let prefix = kind.prefix();
        let mut out = String::with_capacity(prefix.len() + 32);
        out.push_str(prefix);
        out.push_str(&hex::encode(&digest[..16]));
        out
    }

    pub fn user_id(&self, raw: &str) -> String {
        self.pseudonymize(IdKind::UserId, raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(key: &[u8]) -> Pseudonymizer {
        Pseudonymizer::new(key).expect("valid key")
    }

    #[test]
    fn is_deterministic_and_keyed() {
        let a = p(&[7u8; 32]);
        let b = p(&[8u8; 32]);
        assert_eq!(a.user_id("541312140"), a.user_id("541312140"));
        assert_ne!(a.user_id("541312140"), b.user_id("541312140"));
        assert_ne!(a.user_id("541312140"), a.user_id("541312141"));
        let id = a.user_id("541312140");
        assert!(id.starts_with("u_") && id.len() == 34, "{id}");
        assert!(!id.contains("541312140"));
    }

    #[test]
    fn matches_an_independent_hmac_sha256() {
        // Cross-checked with an independent implementation:
        // Python `hmac.new(b"k" * 32, b"user_id\x00abc", hashlib.sha256).hexdigest()[:32]`.
        let ps = p(&[b'k'; 32]);
        assert_eq!(ps.user_id("abc"), "u_422de3709152ebc522035e462c08b49f");
    }

    #[test]
    fn kinds_do_not_link_and_emails_normalize() {
        let ps = p(&[1u8; 40]);
        assert_ne!(
            ps.pseudonymize(IdKind::UserId, "a@b.c")[2..],
            ps.pseudonymize(IdKind::Email, "a@b.c")[2..]
        );
        assert_eq!(
            ps.pseudonymize(IdKind::Email, " Ann@Example.COM "),
            ps.pseudonymize(IdKind::Email, "ann@example.com")
        );
    }

    #[test]
    fn rejects_short_keys() {
        assert!(matches!(
            Pseudonymizer::new(b"short"),
            Err(KeyError::TooShort(5))
        ));
    }
}
