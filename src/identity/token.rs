//! One id_token's checks, in order: its header (RS256 and a `kid`, before any key is looked
//! up), then jsonwebtoken's `decode` (the signature, `exp` and `nbf` with [`LEEWAY_SECS`], `aud`,
//! the claims required), then ours ([`check`]: the issuer rule, `azp`, `iat`, the nonce).

use super::{Identity, issuer};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use subtle::ConstantTimeEq;

/// The clock skew allowed on `exp`, `nbf` and `iat`: at most two minutes.
pub const LEEWAY_SECS: u64 = 120;
/// Webex's id_tokens are about 1 KB; anything far longer is not one.
const MAX_TOKEN_LEN: usize = 16 * 1024;
/// The longest `sub` we keep, and the longest name or email we show (in characters).
const MAX_SUB_LEN: usize = 256;
const MAX_SHOWN_CHARS: usize = 200;

/// Why a token was refused, in words for the log line (never the token, never its values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    /// The token is Webex's but for another login (its nonce is not ours).
    pub wrong_nonce: bool,
}

pub fn refuse(reason: &'static str) -> Refusal {
    Refusal {
        reason,
        wrong_nonce: false,
    }
}

/// The `kid` of an RS256 token; anything else (`none`, `HS256`, …, an unreadable header) is
/// refused here, before a key is fetched or used.
pub fn rs256_kid(token: &str) -> Result<String, Refusal> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(refuse("the token is far longer than an id_token"));
    }
    // `alg: none` is no algorithm jsonwebtoken knows, so it fails here too.
    let header = jsonwebtoken::decode_header(token).map_err(|_| {
        refuse("its header is not a JWS header with an algorithm we know (e.g. alg none)")
    })?;
    if header.alg != Algorithm::RS256 {
        return Err(refuse("it is not signed with RS256 (e.g. HS256)"));
    }
    header
        .kid
        .filter(|kid| !kid.is_empty())
        .ok_or_else(|| refuse("its header names no key (kid)"))
}

/// The audience: one client id, or several (OpenID Connect allows both).
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// The claims we read; jsonwebtoken has checked `exp`, `nbf` and `aud` by then.
#[derive(Deserialize)]
pub struct Claims {
    iss: String,
    sub: String,
    aud: Audience,
    iat: u64,
    azp: Option<String>,
    nonce: Option<String>,
    name: Option<String>,
    email: Option<String>,
}

/// The signature against `key`; `exp` (and `nbf`) within the leeway; `aud` naming `client_id`;
/// `iss`, `sub`, `aud` and `exp` present.
pub fn decode(token: &str, key: &DecodingKey, client_id: &str) -> Result<Claims, Refusal> {
    let mut validation = Validation::new(Algorithm::RS256);
    validation.leeway = LEEWAY_SECS;
    validation.validate_nbf = true;
    validation.set_audience(&[client_id]);
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    jsonwebtoken::decode::<Claims>(token, key, &validation)
        .map(|data| data.claims)
        .map_err(|err| refuse(reason(err.kind())))
}

fn reason(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidSignature => "its signature does not verify",
        ErrorKind::ExpiredSignature => "it has expired (exp)",
        ErrorKind::ImmatureSignature => "it is not valid yet (nbf)",
        ErrorKind::InvalidAudience => "it was issued to another client (aud)",
        ErrorKind::MissingRequiredClaim(_) => "it lacks iss, sub, aud or exp",
        ErrorKind::InvalidClaimFormat(_) | ErrorKind::Json(_) => {
            "its claims are not an id_token's (iat missing, or a claim of the wrong type)"
        }
        ErrorKind::InvalidAlgorithm => "it is not signed with RS256",
        ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidKeyFormat => {
            "Webex's key for it is not a usable RSA key"
        }
        _ => "it is not a well-formed JWS",
    }
}

/// What we expect beyond the signature.
pub struct Expected<'a> {
    pub client_id: &'a str,
    /// The discovery document's issuer.
    pub discovered_issuer: &'a str,
    /// `WEBEX_OIDC_ISSUERS`.
    pub listed_issuers: &'a [String],
    /// The authorization request's nonce (none on the device grant).
    pub nonce: Option<&'a str>,
    /// Unix seconds.
    pub now: u64,
}

/// Our checks of the decoded claims; the identity they prove.
pub fn check(claims: Claims, expected: &Expected) -> Result<Identity, Refusal> {
    let client_id = expected.client_id;
    let (discovered, listed) = (expected.discovered_issuer, expected.listed_issuers);
    if !issuer::accepts(&claims.iss, discovered, listed) {
        return Err(refuse("it was issued by an issuer we do not accept (iss)"));
    }
    // jsonwebtoken checked `aud` already; checked again, it also tells whether others share it.
    let audience = match &claims.aud {
        Audience::One(aud) => std::slice::from_ref(aud),
        Audience::Many(all) => all,
    };
    if !audience.iter().any(|aud| aud == client_id) {
        return Err(refuse("it was issued to another client (aud)"));
    }
    let others = audience.iter().any(|aud| aud != client_id);
    match claims.azp.as_deref() {
        Some(azp) if azp != client_id => {
            return Err(refuse("it was issued to another party (azp)"));
        }
        None if others => return Err(refuse("it has several audiences and no azp")),
        _ => {}
    }
    if claims.iat > expected.now.saturating_add(LEEWAY_SECS) {
        return Err(refuse("it was issued in the future (iat)"));
    }
    if let Some(ours) = expected.nonce {
        let theirs = claims.nonce.as_deref();
        let same = |theirs: &str| bool::from(theirs.as_bytes().ct_eq(ours.as_bytes()));
        if !theirs.is_some_and(same) {
            return Err(Refusal {
                reason: "its nonce is not this login's",
                wrong_nonce: true,
            });
        }
    }
    if claims.sub.is_empty() || claims.sub.len() > MAX_SUB_LEN {
        return Err(refuse("its subject (sub) is empty or oversized"));
    }
    Ok(Identity {
        sub: claims.sub,
        name: shown(claims.name),
        email: shown(claims.email),
    })
}

/// A name or email fit to show: trimmed, without control characters, at most 200 characters;
/// `None` when nothing is left.
pub fn shown(value: Option<String>) -> Option<String> {
    let text: String = value?
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_SHOWN_CHARS)
        .collect();
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    const NOW: u64 = 1_900_000_000;

    fn claims(json: serde_json::Value) -> Claims {
        let mut base = serde_json::json!({
            "iss": "https://idbroker-b-us.webex.com/idb", "sub": "u-1", "aud": "C1",
            "iat": NOW, "nonce": "n1", "name": "  Ada\u{7} Lovelace ", "email": "ada@example.com",
        });
        for (k, v) in json.as_object().unwrap() {
            base[k] = v.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    fn expected(nonce: Option<&str>) -> Expected<'_> {
        Expected {
            client_id: "C1",
            discovered_issuer: "https://idbroker.webex.com/idb",
            listed_issuers: &[],
            nonce,
            now: NOW,
        }
    }

    fn reason_of(json: serde_json::Value, nonce: Option<&str>) -> Option<&'static str> {
        check(claims(json), &expected(nonce))
            .err()
            .map(|r| r.reason)
    }

    #[test]
    fn good_claims_give_the_identity_cleaned() {
        let identity = check(claims(serde_json::json!({})), &expected(Some("n1"))).unwrap();
        assert_eq!(identity.sub, "u-1");
        assert_eq!(identity.name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(identity.email.as_deref(), Some("ada@example.com"));
        // Several audiences are fine with an azp naming us; skew within two minutes too.
        let many = serde_json::json!({"aud": ["C1", "C2"], "azp": "C1", "iat": NOW + 120});
        assert_eq!(reason_of(many, None), None);
    }

    #[test]
    fn each_claim_rule_refuses() {
        use serde_json::json;
        for (claims, named) in [
            (json!({"iss": "https://evil.example/idb"}), "iss"),
            (json!({"azp": "C2"}), "azp"),
            (json!({"aud": ["C1", "C2"]}), "azp"),
            (json!({"iat": NOW + 121}), "iat"),
            (json!({"sub": ""}), "sub"),
            (json!({"aud": ["C2"]}), "aud"),
        ] {
            let reason = reason_of(claims.clone(), None).unwrap_or_default();
            assert!(reason.contains(named), "{claims}: {reason}");
        }
        let wrong = check(claims(json!({})), &expected(Some("n2"))).unwrap_err();
        assert!(wrong.wrong_nonce);
        let missing = check(claims(json!({"nonce": null})), &expected(Some("n1"))).unwrap_err();
        assert!(missing.wrong_nonce);
        // The device grant sends no nonce: none is expected.
        assert_eq!(reason_of(json!({"nonce": null}), None), None);
    }

    #[test]
    fn only_an_rs256_header_with_a_kid_passes_before_any_key() {
        // A header, the claims `{}` and a signature, each base64url.
        let token = |header: &str| format!("{}.e30.c2ln", URL_SAFE_NO_PAD.encode(header));
        let good = token(r#"{"alg":"RS256","kid":"k1"}"#);
        assert_eq!(rs256_kid(&good).as_deref(), Ok("k1"));
        for bad in [
            r#"{"alg":"none","kid":"k1"}"#,
            r#"{"alg":"HS256","kid":"k1"}"#,
            r#"{"alg":"RS512","kid":"k1"}"#,
            r#"{"alg":"ES256","kid":"k1"}"#,
            r#"{"alg":"RS256"}"#,
            r#"{"alg":"RS256","kid":""}"#,
            "not json",
        ] {
            assert!(rs256_kid(&token(bad)).is_err(), "{bad}");
        }
        assert!(rs256_kid("a.b").is_err());
        assert!(rs256_kid(&"a".repeat(MAX_TOKEN_LEN + 1)).is_err());
    }
}
