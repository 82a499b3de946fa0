//! The fake's identifiers: opaque tokens, tracking ids, UUIDs, Webex ids and timestamps.

use base64::{
    Engine,
    engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD},
};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The org every fake user, room and token belongs to.
const ORG_UUID: &str = "1eb65fdf-9643-417f-9974-ad72cae0e10f";

pub(super) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// An opaque code or token shaped like Webex's: `<base64url>_<cluster>_<org uuid>`.
pub(super) fn random_token() -> String {
    let body = URL_SAFE_NO_PAD.encode(random_bytes::<48>());
    format!("{body}_PF84_{ORG_UUID}")
}

pub(super) fn tracking_id() -> String {
    format!("ROUTER_{}", uuid_from_bytes(random_bytes()).to_uppercase())
}

pub(super) fn sha256_hex(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Formats 16 bytes as a version-4 UUID.
pub(super) fn uuid_from_bytes(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let h = hex(&bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// A UUID derived from `seed`, so rooms and people keep their ids across runs.
pub(super) fn uuid_from_seed(seed: &str) -> String {
    let digest = Sha256::digest(seed.as_bytes());
    let mut bytes = [0; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid_from_bytes(bytes)
}

/// Webex ids are unpadded base64 of `ciscospark://us/<KIND>/<uuid>`.
pub(super) fn webex_id(kind: &str, uuid: &str) -> String {
    STANDARD_NO_PAD.encode(format!("ciscospark://us/{kind}/{uuid}"))
}

pub(super) fn person_id(seed: &str) -> String {
    webex_id("PEOPLE", &uuid_from_seed(seed))
}

pub(super) fn org_id() -> String {
    webex_id("ORGANIZATION", ORG_UUID)
}

/// `2026-03-02T09:15:12.481Z` from Unix milliseconds (by hand: `time` needs no extra features).
pub(super) fn iso_millis(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        ms.rem_euclid(1000)
    )
}
