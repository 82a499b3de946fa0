//! `Secret`: a string (token, code, client secret) whose `Debug` and `Display` print `[redacted]`,
//! [`random_token`], the unguessable values (state, PKCE verifier, ids) are made of, and
//! [`fingerprint`], a short name for one of them in logs.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::fmt;

/// 32 random bytes, base64url without padding (43 characters): used for `state`, the PKCE
/// verifier (whose alphabet, [A-Za-z0-9-_], fits RFC 7636's) and flow ids.
pub fn random_token() -> Secret {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    Secret::new(URL_SAFE_NO_PAD.encode(bytes))
}

/// Eight hex digits of the SHA-256 of `value`: tells one device flow's log lines from another's
/// without writing the flow id, a bearer secret (2^32 values are far too few to find it from).
pub fn fingerprint(value: &str) -> String {
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(value.as_bytes());
    hash.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// A value that must never reach a log line, a URL or a page: printed, it shows `[redacted]`.
/// It serializes as the plain string (the store seals it); read it with [`Secret::expose`],
/// only where it goes on the wire.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the request that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"hunter2\"");
    }

    #[test]
    fn fingerprints_are_short_stable_and_not_the_value() {
        let id = random_token();
        let short = fingerprint(id.expose());
        assert_eq!(short.len(), 8);
        assert_eq!(short, fingerprint(id.expose()));
        assert!(!id.expose().contains(&short));
        assert_ne!(short, fingerprint(random_token().expose()));
    }

    #[test]
    fn random_tokens_are_43_url_safe_chars_and_differ() {
        let (a, b) = (random_token(), random_token());
        let url_safe = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
        assert_eq!(a.expose().len(), 43);
        assert!(a.expose().bytes().all(url_safe));
        assert_ne!(a, b);
    }
}
