//! The fake's Login with Webex (contract §10): discovery with the global issuer, the JWKS, RS256
//! id_tokens with the regional `iss` and the nonce echoed, key rotation, userinfo, the device
//! grant's id_token, and each forgery doing what it says.

use super::*;
use fake_webex::{DISCOVERY_ISSUER, Forgery, REGIONAL_ISSUER};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};

const OIDC_SCOPE: &str = "openid email profile spark:all";

/// Consent with `scope` and `nonce`, then the code exchange: the token JSON.
async fn oidc_tokens(fake: &FakeWebex, scope: &str, nonce: Option<&str>) -> Value {
    let mut form = vec![
        ("response_type", "code"),
        ("client_id", DEMO_CLIENT_ID),
        ("redirect_uri", REDIRECT),
        ("scope", scope),
        ("state", "s"),
        ("decision", "accept"),
    ];
    if let Some(nonce) = nonce {
        form.push(("nonce", nonce));
    }
    let url = format!("{}/authorize", fake.base_url());
    let response = client().post(url).form(&form).send().await.expect("POST");
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    let code = param(&location, "code").expect("code");
    let response = exchange(fake, &code, REDIRECT, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    json(response).await
}

async fn jwks(fake: &FakeWebex) -> JwkSet {
    let response = get(fake, "/verification", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("a JWKS")
}

/// The claims of `token`, verified against the fake's JWKS (any issuer, our audience).
async fn verified(fake: &FakeWebex, token: &str) -> Result<Value, jsonwebtoken::errors::Error> {
    let header = decode_header(token)?;
    let keys = jwks(fake).await;
    let jwk = keys
        .find(header.kid.as_deref().unwrap_or_default())
        .ok_or(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat)?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[DEMO_CLIENT_ID]);
    decode::<Value>(token, &DecodingKey::from_jwk(jwk)?, &validation).map(|data| data.claims)
}

fn id_token(tokens: &Value) -> &str {
    tokens["id_token"].as_str().expect("an id_token")
}

#[crate::support::test]
async fn discovery_names_the_global_issuer_and_the_jwks() {
    let fake = spawn().await;
    let response = get(&fake, "/.well-known/openid-configuration", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let doc = json(response).await;
    assert_eq!(doc["issuer"], DISCOVERY_ISSUER);
    assert_eq!(doc["jwks_uri"], format!("{}/verification", fake.base_url()));
    assert_eq!(
        doc["userinfo_endpoint"],
        format!("{}/userinfo", fake.base_url())
    );
    assert_eq!(doc["id_token_signing_alg_values_supported"][0], "RS256");
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"][0],
        "client_secret_basic"
    );
    let keys = jwks(&fake).await;
    assert_eq!(keys.keys.len(), 1);
    let key = serde_json::to_value(&keys.keys[0]).unwrap();
    assert_eq!(
        (&key["kty"], &key["e"], &key["use"]),
        (&"RSA".into(), &"AQAB".into(), &"sig".into())
    );
    assert_eq!(key["kid"], fake.signing_kid());
    assert_eq!(fake.count(Counter::Discoveries), 1);
    assert_eq!(fake.count(Counter::JwksFetches), 1);
}

#[crate::support::test]
async fn an_openid_grant_carries_an_rs256_id_token_with_the_regional_issuer_and_the_nonce() {
    let fake = spawn().await;
    let tokens = oidc_tokens(&fake, OIDC_SCOPE, Some("n-0123456789")).await;
    let token = id_token(&tokens);
    let header = decode_header(token).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    assert_eq!(header.kid.as_deref(), Some(fake.signing_kid().as_str()));
    let claims = verified(&fake, token).await.expect("it verifies");
    assert_eq!(claims["iss"], REGIONAL_ISSUER);
    assert_ne!(
        claims["iss"], DISCOVERY_ISSUER,
        "the quirk is on by default"
    );
    assert_eq!(claims["aud"], DEMO_CLIENT_ID);
    assert_eq!(claims["nonce"], "n-0123456789");
    assert_eq!(claims["name"], "Ada Lovelace");
    assert_eq!(claims["email"], "ada@example.com");
    assert_eq!(claims["email_verified"], "true");
    assert!(claims["sub"].as_str().is_some_and(|s| s.len() == 36));
    assert!(fake.issued_secrets().iter().any(|s| s == token));

    // Without openid, no id_token; a refresh answer carries none either.
    let plain = oidc_tokens(&fake, "spark:all", None).await;
    assert!(plain.get("id_token").is_none(), "{plain}");
    let refreshed = refresh(&fake, tokens["refresh_token"].as_str().unwrap()).await;
    assert!(json(refreshed).await.get("id_token").is_none());
    // Only openid: no profile claims.
    let bare = oidc_tokens(&fake, "openid spark:all", None).await;
    let claims = verified(&fake, id_token(&bare)).await.unwrap();
    assert!(claims.get("email").is_none() && claims.get("nonce").is_none());
}

#[crate::support::test]
async fn rotation_signs_with_a_new_key_and_keeps_the_old_one_published() {
    let fake = spawn().await;
    let old = fake.signing_kid();
    let new = fake.rotate_signing_key();
    assert_ne!(old, new);
    let kids: Vec<_> = jwks(&fake)
        .await
        .keys
        .into_iter()
        .filter_map(|k| k.common.key_id)
        .collect();
    assert_eq!(kids, [new.clone(), old]);
    let tokens = oidc_tokens(&fake, OIDC_SCOPE, None).await;
    let header = decode_header(id_token(&tokens)).unwrap();
    assert_eq!(header.kid, Some(new));
    verified(&fake, id_token(&tokens))
        .await
        .expect("it verifies");
}

#[crate::support::test]
async fn userinfo_answers_the_tokens_claims_and_needs_openid() {
    let fake = spawn().await;
    let tokens = oidc_tokens(&fake, OIDC_SCOPE, None).await;
    let access = tokens["access_token"].as_str().unwrap();
    let response = get(&fake, "/userinfo", Some(access)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let info = json(response).await;
    let claims = verified(&fake, id_token(&tokens)).await.unwrap();
    assert_eq!(info["sub"], claims["sub"]);
    assert_eq!(
        (&info["name"], &info["email"]),
        (&claims["name"], &claims["email"])
    );
    envelope(
        get(&fake, "/userinfo", None).await,
        StatusCode::UNAUTHORIZED,
        INVALID_TOKEN,
    )
    .await;
    let plain = tokens_of(&fake, "spark:all").await;
    let forbidden = get(&fake, "/userinfo", Some(&plain)).await;
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    assert_eq!(fake.count(Counter::UserInfoCalls), 3);
}

async fn tokens_of(fake: &FakeWebex, scope: &str) -> String {
    tokens(fake, scope).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[crate::support::test]
async fn the_device_grant_carries_an_id_token_without_a_nonce_unless_told_not_to() {
    for issue in [true, false] {
        let fake = FakeWebex::spawn(FakeConfig {
            device_interval: 0,
            device_id_tokens: issue,
            ..FakeConfig::default()
        })
        .await
        .unwrap();
        let response =
            device_authorize(&fake, DEMO_CLIENT_ID, "openid email profile spark:all").await;
        let body = json(response).await;
        let device_code = body["device_code"].as_str().unwrap();
        // A forgery waits for the poll that grants.
        fake.inject(
            Endpoint::DeviceToken,
            Fault::IdToken(Forgery::Issuer("x".into())),
        );
        assert_eq!(
            poll(&fake, device_code).await.status(),
            StatusCode::PRECONDITION_REQUIRED
        );
        assert!(fake.approve_device(body["user_code"].as_str().unwrap()));
        let granted = json(poll(&fake, device_code).await).await;
        match granted.get("id_token").and_then(Value::as_str) {
            Some(token) => {
                assert!(issue);
                let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(token)
                    .unwrap()
                    .claims;
                assert_eq!(claims["iss"], "x");
                assert!(claims.get("nonce").is_none());
            }
            None => assert!(!issue, "{granted}"),
        }
    }
}

#[crate::support::test]
async fn each_forgery_is_what_it_says_and_none_verifies() {
    let fake = spawn().await;
    let kid = fake.signing_kid();
    let forged = |forgery: Forgery| {
        let fake = fake.clone();
        async move {
            fake.inject(Endpoint::AccessToken, Fault::IdToken(forgery));
            let tokens = oidc_tokens(&fake, OIDC_SCOPE, Some("ours")).await;
            tokens
                .get("id_token")
                .and_then(Value::as_str)
                .map(str::to_owned)
        }
    };
    let none = forged(Forgery::AlgNone).await.unwrap();
    assert!(
        decode_header(&none).is_err(),
        "alg none is not an algorithm"
    );
    assert!(none.ends_with('.'));
    let header_json = URL_SAFE_NO_PAD
        .decode(none.split('.').next().unwrap())
        .unwrap();
    assert!(String::from_utf8(header_json).unwrap().contains("\"none\""));

    let same_kid = forged(Forgery::OtherKeySameKid).await.unwrap();
    assert_eq!(decode_header(&same_kid).unwrap().kid, Some(kid.clone()));
    let unknown = forged(Forgery::UnknownKid).await.unwrap();
    assert_ne!(decode_header(&unknown).unwrap().kid, Some(kid.clone()));
    let hs256 = forged(Forgery::Hs256WithPublicKey).await.unwrap();
    assert_eq!(decode_header(&hs256).unwrap().alg, Algorithm::HS256);
    let flipped = forged(Forgery::FlippedSignatureBit).await.unwrap();
    for token in [&same_kid, &unknown, &hs256, &flipped] {
        assert!(verified(&fake, token).await.is_err(), "{token}");
    }

    let claims_of = |token: &str| {
        jsonwebtoken::dangerous::insecure_decode::<Value>(token)
            .unwrap()
            .claims
    };
    let aud = claims_of(&forged(Forgery::Audience("Cother".into())).await.unwrap());
    assert_eq!(aud["aud"], "Cother");
    let expired = claims_of(&forged(Forgery::Expired).await.unwrap());
    assert!(expired["exp"].as_u64().unwrap() + 300 < jsonwebtoken::get_current_timestamp());
    let nonce = claims_of(&forged(Forgery::Nonce("theirs".into())).await.unwrap());
    assert_eq!(nonce["nonce"], "theirs");
    let iss = claims_of(
        &forged(Forgery::Issuer("https://evil.example/idb".into()))
            .await
            .unwrap(),
    );
    assert_eq!(iss["iss"], "https://evil.example/idb");
    let bare = claims_of(&forged(Forgery::WithoutProfile).await.unwrap());
    assert!(bare.get("name").is_none() && bare.get("email").is_none());
    assert!(forged(Forgery::Omitted).await.is_none());
}
