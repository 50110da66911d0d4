//! Tokens at rest in the database are sealed with XChaCha20-Poly1305 (docs/cluster.md "What
//! is stored where"): a random 24-byte nonce per write, the account id as associated data so
//! a sealed blob copied onto another account's row does not open, and a key of 32 bytes read
//! from `CODEX_ROTOR_STORE_KEY` or `store.key_file` (base64 or 64 hex characters). A missing,
//! malformed or wrong key is an error that names where the key comes from, never the key.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::config::Secret;
use crate::config::store::decode_key;

/// Length of a nonce, stored in front of each ciphertext.
const NONCE_LEN: usize = 24;

/// Why a key or a sealed value could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// The key is not 32 bytes in base64 or hex (the message names where it came from).
    #[error("{0}")]
    Malformed(String),
    /// The value does not open with this key: another key wrote it, or it was altered.
    #[error(
        "{what} does not decrypt with the store key: it was written with another key, or altered"
    )]
    WrongKey {
        /// What was being opened (e.g. "the tokens of account 0123abcd").
        what: String,
    },
}

/// The key that seals tokens; prints as `***` like every secret.
#[derive(Clone)]
pub struct StoreKey(Secret<[u8; 32]>);

impl std::fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(crate::config::secret::REDACTED)
    }
}

impl StoreKey {
    /// Reads a key in the one format [`decode_key`] takes; `source` names where it came
    /// from, for the error.
    pub fn parse(text: &str, source: &str) -> Result<StoreKey, SealError> {
        decode_key(text, source)
            .map(StoreKey)
            .map_err(SealError::Malformed)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(self.0.expose()))
    }

    /// Seals `plain`, bound to `aad` (the row's account id): nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, plain: &[u8], aad: &str) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let payload = Payload {
            msg: plain,
            aad: aad.as_bytes(),
        };
        let sealed = (self.cipher())
            .encrypt(XNonce::from_slice(&nonce), payload)
            .unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens what [`seal`](Self::seal) made with the same `aad`; `what` names it in the error.
    pub fn open(&self, sealed: &[u8], aad: &str, what: &str) -> Result<Vec<u8>, SealError> {
        let wrong = || SealError::WrongKey {
            what: what.to_owned(),
        };
        if sealed.len() < NONCE_LEN {
            return Err(wrong());
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let payload = Payload {
            msg: body,
            aad: aad.as_bytes(),
        };
        (self.cipher())
            .decrypt(XNonce::from_slice(nonce), payload)
            .map_err(|_| wrong())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_its_account() {
        let key = StoreKey::parse(HEX, "test").expect("hex key");
        let sealed = key.seal(b"rt_secret", "acct1");
        assert!(
            !sealed.windows(9).any(|w| w == b"rt_secret"),
            "not in clear"
        );
        assert_eq!(
            key.open(&sealed, "acct1", "t").expect("opens"),
            b"rt_secret"
        );
        assert!(matches!(
            key.open(&sealed, "acct2", "t"),
            Err(SealError::WrongKey { .. })
        ));
        let other = StoreKey::parse(&"ab".repeat(32), "test").expect("hex key");
        let err = other
            .open(&sealed, "acct1", "the tokens")
            .expect_err("wrong key");
        assert!(err.to_string().contains("another key"), "{err}");
        assert_ne!(
            key.seal(b"x", "a"),
            key.seal(b"x", "a"),
            "a fresh nonce each time"
        );
    }

    #[test]
    fn base64_and_hex_keys_parse_and_anything_else_is_refused_without_echoing_it() {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert!(StoreKey::parse(&b64, "env").is_ok());
        let err = StoreKey::parse("hunter2-short", "CODEX_ROTOR_STORE_KEY").expect_err("short");
        let msg = err.to_string();
        assert!(
            msg.contains("CODEX_ROTOR_STORE_KEY") && !msg.contains("hunter2"),
            "{msg}"
        );
        assert_eq!(
            format!("{:?}", StoreKey::parse(HEX, "t").expect("key")),
            "***"
        );
    }
}
