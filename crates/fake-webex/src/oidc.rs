//! Login with Webex (contract §10): the discovery document, the JWKS (`/v1/verification`), RS256
//! id_tokens in token answers when `openid` was granted, `/v1/userinfo`, key rotation, and the
//! forgeries tests ask for ([`Forgery`], queued as `Fault::IdToken`).
//!
//! The signing keys are fixed test keys (`keys/key*.pem`, made once with `openssl genrsa
//! -traditional 2048`), not generated at start: a 2048-bit RSA key takes seconds to generate in
//! a debug build, and a fake has no secret to keep. Nothing trusts them but demo mode and the
//! tests, which fetch them from this fake's JWKS. Signing and the JWKS's `n`/`e` are
//! jsonwebtoken's; only the forgeries (`alg: none`, a flipped bit) are put together by hand.

use std::sync::{Arc, OnceLock};

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::{
    Counter, Endpoint,
    faults::take_fault,
    ids::uuid_from_seed,
    server::{Fake, World},
    wire::{Reply, authorization, json_response},
};

/// The `issuer` of the discovery document: Webex's global identity broker.
pub const DISCOVERY_ISSUER: &str = "https://idbroker.webex.com/idb";
/// The `iss` of the id_tokens by default: a regional broker, as real Webex's differ from its
/// discovery `issuer` (the quirk of contract §10).
pub const REGIONAL_ISSUER: &str = "https://idbroker-b-us.webex.com/idb";
/// The lifetime of an id_token (Webex does not document its own).
const ID_TOKEN_TTL_SECS: u64 = 3600;
/// The scopes of OpenID Connect: an integration needs none of them registered (contract §10).
pub(super) const OIDC_SCOPES: [&str; 5] = ["openid", "email", "profile", "phone", "address"];

/// The user every token belongs to.
const NAME: (&str, &str) = ("Ada", "Lovelace");
const EMAIL: &str = "ada@example.com";

/// The test keys: generation `g` signs with `ROTATION[g % 3]`; the last is the forger's, never
/// published.
const PEMS: [&str; 4] = [
    include_str!("../keys/key0.pem"),
    include_str!("../keys/key1.pem"),
    include_str!("../keys/key2.pem"),
    include_str!("../keys/key3.pem"),
];
const ROTATION: usize = 3;
const FORGER: usize = 3;

/// One way to forge the next id_token, for the tests of the client's verification.
#[derive(Clone, Debug)]
pub enum Forgery {
    /// `alg: none` and an empty signature.
    AlgNone,
    /// Signed by a key the JWKS does not publish, under the current key's `kid`.
    OtherKeySameKid,
    /// Signed by a key the JWKS does not publish, under a `kid` it does not list.
    UnknownKid,
    /// HS256 keyed with the current public key (its modulus as the JWKS gives it): the
    /// algorithm-confusion attack.
    Hs256WithPublicKey,
    /// Properly signed, then one bit of the signature flipped.
    FlippedSignatureBit,
    /// Issued to this client id instead of ours.
    Audience(String),
    /// Expired ten minutes ago (past any clock-skew leeway).
    Expired,
    /// With this nonce instead of the authorize request's.
    Nonce(String),
    /// With this `iss`.
    Issuer(String),
    /// With this `sub` (the user userinfo describes is then someone else).
    Subject(String),
    /// Without `name` and `email` (userinfo still has them).
    WithoutProfile,
    /// No id_token in the token answer at all.
    Omitted,
}

/// A parsed test key and its public half as a JWK (without a `kid`: each generation sets one).
struct TestKey {
    key: EncodingKey,
    jwk: Jwk,
}

fn test_keys() -> &'static [TestKey] {
    static KEYS: OnceLock<Vec<TestKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        PEMS.iter()
            .map(|pem| {
                let key = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("a valid test key");
                let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).expect("its JWK");
                jwk.common.public_key_use = Some(PublicKeyUse::Signature);
                jwk.common.key_algorithm = Some(KeyAlgorithm::RS256);
                TestKey { key, jwk }
            })
            .collect()
    })
}

/// The `kid` of a key generation: a UUID, like Webex's.
fn kid(generation: usize) -> String {
    uuid_from_seed(&format!("signing-key-{generation}"))
}

fn key_of(generation: usize) -> &'static TestKey {
    &test_keys()[generation % ROTATION]
}

/// The signing keys: the current generation signs; the JWKS lists it and the one before it
/// (Webex publishes several keys at once).
#[derive(Default)]
pub(super) struct SigningKeys {
    generation: usize,
}

impl SigningKeys {
    pub fn current_kid(&self) -> String {
        kid(self.generation)
    }

    /// A new key signs from now on; the old one stays published. Returns the new `kid`.
    pub fn rotate(&mut self) -> String {
        self.generation += 1;
        self.current_kid()
    }

    fn published(&self) -> JwkSet {
        let keys = (self.generation.saturating_sub(1)..=self.generation)
            .rev()
            .map(|g| {
                let mut jwk = key_of(g).jwk.clone();
                jwk.common.key_id = Some(kid(g));
                jwk
            })
            .collect();
        JwkSet { keys }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl World {
    /// The id_token of a token answer granting `scope`, or `None` without `openid` (or when
    /// `forgery` says to leave it out). `nonce`: the authorize request's, echoed.
    pub fn id_token(
        &mut self,
        client_id: &str,
        scope: &str,
        nonce: Option<&str>,
        forgery: Option<&Forgery>,
    ) -> Option<String> {
        let has = |wanted: &str| scope.split(' ').any(|s| s == wanted);
        if !has("openid") || matches!(forgery, Some(Forgery::Omitted)) {
            return None;
        }
        let now = unix_now();
        let mut claims = json!({
            "iss": self.config.id_token_issuer,
            "sub": uuid_from_seed("Ada Lovelace"),
            "aud": client_id,
            "iat": now,
            "exp": now + ID_TOKEN_TTL_SECS,
            "auth_time": now,
        });
        let profile = !matches!(forgery, Some(Forgery::WithoutProfile));
        if has("email") && profile {
            claims["email"] = json!(EMAIL);
            claims["email_verified"] = json!("true");
        }
        if has("profile") && profile {
            claims["name"] = json!(format!("{} {}", NAME.0, NAME.1));
            claims["given_name"] = json!(NAME.0);
            claims["family_name"] = json!(NAME.1);
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        match forgery {
            Some(Forgery::Audience(aud)) => claims["aud"] = json!(aud),
            Some(Forgery::Expired) => {
                claims["iat"] = json!(now - ID_TOKEN_TTL_SECS - 600);
                claims["exp"] = json!(now - 600);
            }
            Some(Forgery::Nonce(other)) => claims["nonce"] = json!(other),
            Some(Forgery::Issuer(iss)) => claims["iss"] = json!(iss),
            Some(Forgery::Subject(sub)) => claims["sub"] = json!(sub),
            _ => {}
        }
        let token = self.sign(&claims, forgery);
        self.issued.push(token.clone());
        Some(token)
    }

    /// `claims` as a JWS: RS256 with the current key, unless `forgery` signs it otherwise.
    fn sign(&self, claims: &Value, forgery: Option<&Forgery>) -> String {
        let current = self.signing.generation;
        let rs256 = |kid: String, key: &EncodingKey| {
            let mut header = Header::new(Algorithm::RS256);
            header.kid = Some(kid);
            jsonwebtoken::encode(&header, claims, key).unwrap_or_default()
        };
        match forgery {
            Some(Forgery::AlgNone) => {
                let header = json!({ "alg": "none", "typ": "JWT", "kid": kid(current) });
                format!(
                    "{}.{}.",
                    b64(header.to_string().as_bytes()),
                    b64(claims.to_string().as_bytes())
                )
            }
            Some(Forgery::OtherKeySameKid) => rs256(kid(current), &test_keys()[FORGER].key),
            Some(Forgery::UnknownKid) => rs256(
                uuid_from_seed("a key nobody published"),
                &test_keys()[FORGER].key,
            ),
            Some(Forgery::Hs256WithPublicKey) => {
                let modulus = match &key_of(current).jwk.algorithm {
                    jsonwebtoken::jwk::AlgorithmParameters::RSA(rsa) => rsa.n.clone(),
                    _ => String::new(),
                };
                let mut header = Header::new(Algorithm::HS256);
                header.kid = Some(kid(current));
                EncodingKey::from_secret(modulus.as_bytes())
                    .and_then(|key| jsonwebtoken::encode(&header, claims, &key))
                    .unwrap_or_default()
            }
            Some(Forgery::FlippedSignatureBit) => {
                let token = rs256(kid(current), &key_of(current).key);
                let (message, signature) = token.rsplit_once('.').unwrap_or_default();
                let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap_or_default();
                if let Some(last) = bytes.last_mut() {
                    *last ^= 1;
                }
                format!("{message}.{}", b64(&bytes))
            }
            _ => rs256(kid(current), &key_of(current).key),
        }
    }

    /// The userinfo claims of the bearer token's scopes; it must be a live access token that
    /// carries `openid`.
    fn userinfo_claims(&self, headers: &HeaderMap) -> Result<Value, super::wire::ApiError> {
        let scope = self.check_access(authorization(headers), &["openid"])?;
        let has = |wanted: &str| scope.split(' ').any(|s| s == wanted);
        let mut claims = json!({ "sub": uuid_from_seed("Ada Lovelace") });
        if has("email") {
            claims["email"] = json!(EMAIL);
            claims["email_verified"] = json!("true");
        }
        if has("profile") {
            claims["name"] = json!(format!("{} {}", NAME.0, NAME.1));
            claims["given_name"] = json!(NAME.0);
            claims["family_name"] = json!(NAME.1);
        }
        Ok(claims)
    }
}

/// `GET /v1/.well-known/openid-configuration`: where the keys are, and the global issuer.
pub(super) async fn discovery(State(fake): State<Arc<Fake>>) -> Reply {
    fake.lock().bump(Counter::Discoveries);
    take_fault(&fake, Endpoint::Discovery, &[]).await?;
    let base = format!("{}/v1", fake.origin);
    let body = json!({
        "issuer": DISCOVERY_ISSUER,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/access_token"),
        "userinfo_endpoint": format!("{base}/userinfo"),
        "jwks_uri": format!("{base}/verification"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": OIDC_SCOPES,
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "code_challenge_methods_supported": ["plain", "S256"],
        "grant_types_supported": ["authorization_code", "implicit", "refresh_token"],
    });
    Ok(json_response(StatusCode::OK, &body))
}

/// `GET /v1/verification`: the JWKS, no authentication.
pub(super) async fn verification(State(fake): State<Arc<Fake>>) -> Reply {
    fake.lock().bump(Counter::JwksFetches);
    take_fault(&fake, Endpoint::Jwks, &[]).await?;
    let keys = fake.lock().signing.published();
    Ok(json_response(StatusCode::OK, &keys))
}

/// `GET /v1/userinfo`: the claims of the bearer token's scopes.
pub(super) async fn userinfo(State(fake): State<Arc<Fake>>, headers: HeaderMap) -> Reply {
    fake.lock().bump(Counter::UserInfoCalls);
    take_fault(&fake, Endpoint::UserInfo, &[]).await?;
    let claims = fake.lock().userinfo_claims(&headers)?;
    Ok(json_response(StatusCode::OK, &claims))
}
