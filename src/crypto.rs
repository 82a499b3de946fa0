//! What keeps the store useless to whoever copies it: [`Cipher`] seals records with
//! XChaCha20-Poly1305 under `ENCRYPTION_KEYS` (the first seals, all open), and [`store_key`]
//! ([`SessionKey`]) turns a session id (the cookie value) into the SHA-256 the store is keyed by.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
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
/// The first byte of a record sealed with its associated data ([`Kind`] and key). Records
/// from before (`nonce || ciphertext || tag`, no associated data) have no such byte.
const BOUND: u8 = 2;

/// What a sealed record is: with the key it is stored under, the associated data it is sealed
/// with, so a record copied onto another key, or into another kind's place, opens for nobody.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A session record, under its [`store_key`].
    Session,
    /// A device flow's record, under its flow id.
    Flow,
    /// A granted device flow's tokens, under its flow id.
    FlowTokens,
}

impl Kind {
    fn associated_data(self, key: &str) -> Vec<u8> {
        let kind = match self {
            Self::Session => "session",
            Self::Flow => "flow",
            Self::FlowTokens => "flow-tokens",
        };
        format!("webex-oauth/{kind}/{key}").into_bytes()
    }
}

/// An opened record; `legacy`: sealed the old way, bound to nothing (the caller rewrites it).
#[derive(Debug, PartialEq, Eq)]
pub struct Opened {
    pub plaintext: Vec<u8>,
    pub legacy: bool,
}

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
        let keys = keys.iter().map(|k| XChaCha20Poly1305::new(k.into()));
        Some(Self(Arc::new(keys.collect())))
    }

    /// `2 || nonce || ciphertext || tag`, sealed with `kind` and `key` as associated data.
    pub fn seal(&self, kind: Kind, key: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let aad = kind.associated_data(key);
        let payload = Payload {
            msg: plaintext,
            aad: &aad,
        };
        // Encryption fails only for inputs of about 256 GiB; a session record is tiny.
        let sealed = self.0[0].encrypt(XNonce::from_slice(&nonce), payload);
        [&[BOUND][..], &nonce, &sealed.unwrap_or_default()].concat()
    }

    /// The plaintext, or `None` when no key opens it as a `kind` under `key` (wrong or retired
    /// key, tampering, a record copied from another key). A record of the old format (no
    /// associated data) still opens, as `legacy`; a bound record never opens that way (its tag
    /// covers the associated data), nor with its first byte cut off.
    pub fn open(&self, kind: Kind, key: &str, sealed: &[u8]) -> Option<Opened> {
        if let Some(bound) = sealed.strip_prefix(&[BOUND])
            && let Some(plaintext) = self.open_with(bound, &kind.associated_data(key))
        {
            return Some(Opened {
                plaintext,
                legacy: false,
            });
        }
        // The old format's first byte is its nonce's: it may be 2 as well.
        self.open_with(sealed, b"").map(|plaintext| Opened {
            plaintext,
            legacy: true,
        })
    }

    fn open_with(&self, sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN + 16 {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = XNonce::from_slice(nonce);
        self.0
            .iter()
            .find_map(|key| key.decrypt(nonce, Payload { msg: body, aad }).ok())
    }

    /// [`seal`](Self::seal) as base64 text, for text columns and Redis strings.
    pub fn seal_text(&self, kind: Kind, key: &str, plaintext: &str) -> String {
        STANDARD.encode(self.seal(kind, key, plaintext.as_bytes()))
    }

    /// [`open`](Self::open) of base64 text; the old format opens too (device flows live 40
    /// minutes at most, so theirs are not rewritten: they are gone soon after an upgrade).
    pub fn open_text(&self, kind: Kind, key: &str, sealed: &str) -> Option<String> {
        let bytes = STANDARD.decode(sealed).ok()?;
        String::from_utf8(self.open(kind, key, &bytes)?.plaintext).ok()
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

    const S: Kind = Kind::Session;

    fn opened(plaintext: &[u8], legacy: bool) -> Option<Opened> {
        let plaintext = plaintext.to_vec();
        Some(Opened { plaintext, legacy })
    }

    #[test]
    fn a_record_opens_with_its_keys_only_as_its_kind_under_its_key() {
        let (old, new) = ([1u8; 32], [2u8; 32]);
        let (flow, tokens) = (Kind::Flow, Kind::FlowTokens);
        let before = Cipher::new(&[old]).unwrap();
        let sealed = before.seal(flow, "f1", b"refresh-token");
        assert!(!sealed.windows(13).any(|w| w == b"refresh-token"));
        let rotated = Cipher::new(&[new, old]).unwrap();
        let got = rotated.open(flow, "f1", &sealed);
        assert_eq!(got, opened(b"refresh-token", false));
        let resealed = rotated.seal(flow, "f1", b"x");
        let only_new = Cipher::new(&[new]).unwrap();
        for (cipher, kind, key, record, what) in [
            (&before, flow, "f1", &resealed[..], "old key, new record"),
            (&only_new, flow, "f1", &sealed[..], "new key, old record"),
            (&rotated, flow, "f1", &b"short"[..], "too short"),
            (&rotated, flow, "f2", &sealed[..], "another key"),
            (&rotated, tokens, "f1", &sealed[..], "another kind"),
            (&rotated, flow, "f1", &sealed[1..], "the version cut off"),
        ] {
            assert!(cipher.open(kind, key, record).is_none(), "{what}");
        }
        let text = rotated.seal_text(S, "k", "hello");
        assert_eq!(rotated.open_text(S, "k", &text).as_deref(), Some("hello"));
        assert!(rotated.open_text(S, "k", "not base64!").is_none());
    }

    #[test]
    fn a_record_of_the_old_format_opens_as_legacy() {
        // The old format: nonce || ciphertext || tag, no associated data.
        let key = [6u8; 32];
        let old_format = |nonce: [u8; NONCE_LEN]| {
            let aead = XChaCha20Poly1305::new((&key).into());
            let sealed = aead.encrypt(XNonce::from_slice(&nonce), &b"old"[..]);
            [nonce.to_vec(), sealed.unwrap()].concat()
        };
        let cipher = Cipher::new(&[key]).unwrap();
        let got = cipher.open(S, "any", &old_format([9; NONCE_LEN]));
        assert_eq!(got, opened(b"old", true));
        // Even one whose nonce starts with the version byte.
        let got = cipher.open(S, "any", &old_format([BOUND; NONCE_LEN]));
        assert_eq!(got, opened(b"old", true));
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
