//! What keeps the store useless to whoever copies it: [`Cipher`] seals records with
//! XChaCha20-Poly1305 under `ENCRYPTION_KEYS` (the first seals, all open), and [`store_key`]
//! ([`SessionKey`]) turns a session id (the cookie value) into the SHA-256 the store, and every
//! lock of the session, is keyed by.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// A 32-byte key of `ENCRYPTION_KEYS`; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct EncryptionKey(pub [u8; 32]);

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EncryptionKey([redacted])")
    }
}

impl EncryptionKey {
    /// Parses one base64 key (standard or URL-safe alphabet, padding optional).
    pub fn from_base64(text: &str) -> Option<Self> {
        use base64::Engine;
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        let text = text.trim();
        let bytes = STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
            .ok()?;
        bytes.try_into().ok().map(Self)
    }
}

/// XChaCha20's nonce is 24 random bytes: random nonces never realistically repeat.
const NONCE_LEN: usize = 24;

/// Cloning is cheap; clones share the keys.
#[derive(Clone)]
pub struct Cipher(Arc<Vec<XChaCha20Poly1305>>);

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cipher({} keys, [redacted])", self.0.len())
    }
}

impl Cipher {
    /// `keys[0]` seals; every key opens. `keys` must not be empty.
    pub fn new(keys: &[[u8; 32]]) -> Option<Self> {
        if keys.is_empty() {
            return None;
        }
        let keys = keys
            .iter()
            .map(|k| XChaCha20Poly1305::new(k.into()))
            .collect();
        Some(Self(Arc::new(keys)))
    }

    /// `nonce || ciphertext || tag`.
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + 16);
        out.extend_from_slice(&nonce);
        // Encryption fails only for inputs of about 256 GiB; a session record is tiny.
        if let Ok(sealed) = self.0[0].encrypt(XNonce::from_slice(&nonce), plaintext) {
            out.extend_from_slice(&sealed);
        }
        out
    }

    /// The plaintext, or `None` when no key opens it (wrong or retired key, or tampering).
    pub fn open(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN + 16 {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = XNonce::from_slice(nonce);
        self.0.iter().find_map(|key| key.decrypt(nonce, body).ok())
    }

    /// [`seal`](Self::seal) as base64 text, for text columns and Redis strings.
    pub fn seal_text(&self, plaintext: &str) -> String {
        STANDARD.encode(self.seal(plaintext.as_bytes()))
    }

    pub fn open_text(&self, sealed: &str) -> Option<String> {
        let bytes = STANDARD.decode(sealed).ok()?;
        String::from_utf8(self.open(&bytes)?).ok()
    }
}

/// The store's key for a session id: SHA-256, base64url. A copy of the store then holds no
/// cookie value that would work in a browser.
pub fn store_key(session_id: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(session_id.as_bytes()))
}

/// What names a session to the store, its locks and its logs: [`store_key`] of its id. Only
/// made from an id, so a raw id (a working cookie) cannot be passed where this is wanted.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SessionKey(String);

impl SessionKey {
    pub fn of(session_id: &str) -> Self {
        Self(store_key(session_id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_with_rotation() {
        let (old, new) = ([1u8; 32], [2u8; 32]);
        let before = Cipher::new(&[old]).unwrap();
        let sealed = before.seal(b"refresh-token");
        assert!(!sealed.windows(13).any(|w| w == b"refresh-token"));
        let rotated = Cipher::new(&[new, old]).unwrap();
        assert_eq!(rotated.open(&sealed).unwrap(), b"refresh-token");
        let resealed = rotated.seal(b"x");
        assert!(
            before.open(&resealed).is_none(),
            "the old key alone cannot open new records"
        );
        assert!(Cipher::new(&[new]).unwrap().open(&sealed).is_none());
        assert!(rotated.open(b"short").is_none());
        let text = rotated.seal_text("hello");
        assert_eq!(rotated.open_text(&text).as_deref(), Some("hello"));
        assert!(rotated.open_text("not base64!").is_none());
    }

    #[test]
    fn store_keys_are_hashes() {
        let key = store_key("abc");
        assert_eq!(key.len(), 43);
        assert_ne!(key, "abc");
        assert_eq!(key, store_key("abc"));
        assert_eq!(SessionKey::of("abc").as_str(), key);
    }
}
