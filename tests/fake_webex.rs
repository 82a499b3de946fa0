//! The fake Webex over real HTTP: code + PKCE, refresh, device grant, rooms, people, every fault.

use std::time::{Duration, Instant};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use fake_webex::{
    Counter, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Endpoint, FakeConfig, FakeWebex, Fault,
};
use reqwest::{Client, Response, StatusCode, redirect::Policy};
use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;

/// `#[support::test]`: every test here under a deadline.
mod support;

#[path = "fake_webex/oidc.rs"]
mod oidc;

const REDIRECT: &str = "http://localhost:10060/oauth";
const VERIFIER: &str = "dBjftJeZ4CVP-mJ92K9qGUZ0wKvG.1Z_~x3yTnLs8qQ0mV";
const INVALID_TOKEN: &str =
    "The request requires a valid access token set in the Authorization request header.";
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Redirects are inspected, never followed.
fn client() -> Client {
    Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
}

async fn spawn() -> FakeWebex {
    FakeWebex::spawn(FakeConfig::default())
        .await
        .expect("fake Webex starts")
}

fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

async fn json(response: Response) -> Value {
    response.json().await.expect("JSON body")
}

/// Accepts on the consent form and returns the redirect's query parameters.
async fn consent(fake: &FakeWebex, scope: &str, state: &str, challenge: Option<&str>) -> Url {
    let mut form = vec![
        ("response_type", "code"),
        ("client_id", DEMO_CLIENT_ID),
        ("redirect_uri", REDIRECT),
        ("scope", scope),
        ("state", state),
        ("decision", "accept"),
    ];
    if let Some(challenge) = challenge {
        form.extend([
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ]);
    }
    let url = format!("{}/authorize", fake.base_url());
    let response = client().post(url).form(&form).send().await.expect("POST");
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response.headers()["location"].to_str().expect("ASCII");
    Url::parse(location).expect("absolute Location")
}

fn param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn exchange(
    fake: &FakeWebex,
    code: &str,
    redirect: &str,
    verifier: Option<&str>,
) -> Response {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("client_id", DEMO_CLIENT_ID),
        ("client_secret", DEMO_CLIENT_SECRET),
        ("code", code),
        ("redirect_uri", redirect),
    ];
    if let Some(verifier) = verifier {
        form.push(("code_verifier", verifier));
    }
    let url = format!("{}/access_token", fake.base_url());
    client().post(url).form(&form).send().await.expect("POST")
}

/// A fresh token set with `scope`, through consent and code exchange without PKCE.
async fn tokens(fake: &FakeWebex, scope: &str) -> Value {
    let code = param(&consent(fake, scope, "s", None).await, "code").expect("code");
    let response = exchange(fake, &code, REDIRECT, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    json(response).await
}

async fn refresh(fake: &FakeWebex, token: &str) -> Response {
    let form = [("grant_type", "refresh_token"), ("refresh_token", token)];
    client()
        .post(format!("{}/access_token", fake.base_url()))
        .basic_auth(DEMO_CLIENT_ID, Some(DEMO_CLIENT_SECRET))
        .form(&form)
        .send()
        .await
        .expect("POST")
}

async fn get(fake: &FakeWebex, path: &str, token: Option<&str>) -> Response {
    let mut request = client().get(format!("{}{path}", fake.base_url()));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("GET")
}

/// Asserts a Webex error envelope with that status and message; returns the body.
async fn envelope(response: Response, status: StatusCode, message: &str) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response.headers()["content-type"].to_str().expect("ASCII");
    assert_eq!(content_type, "application/json;charset=UTF-8");
    let tracking = response.headers()["trackingid"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    assert!(tracking.starts_with("ROUTER_"), "{tracking}");
    let body = json(response).await;
    assert_eq!(body["message"], message, "{body}");
    assert_eq!(body["trackingId"], tracking);
    assert!(body["errors"][0]["description"].is_string(), "{body}");
    body
}

#[crate::support::test]
async fn consent_page_then_code_exchange_with_pkce() {
    let fake = spawn().await;
    let challenge = s256(VERIFIER);
    let query = [
        ("response_type", "code"),
        ("client_id", DEMO_CLIENT_ID),
        ("redirect_uri", REDIRECT),
        ("scope", "spark:people_read spark:rooms_read"),
        ("state", "<st&te>"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let url = format!("{}/authorize", fake.base_url());
    let page = client().get(url).query(&query).send().await.expect("GET");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("body");
    for needle in [
        "Fake Webex (demo)",
        "id=\"accept\"",
        "id=\"decline\"",
        "spark:rooms_read",
    ] {
        assert!(html.contains(needle), "consent page lacks {needle}");
    }
    assert!(
        html.contains("value=\"&#60;st&#38;te&#62;\""),
        "state is escaped"
    );

    // The state comes back byte-for-byte; a wrong verifier fails and still burns the code.
    let state = "a b&c=d/é?%";
    let redirect = consent(&fake, "spark:rooms_read", state, Some(&challenge)).await;
    assert!(redirect.as_str().starts_with(&format!("{REDIRECT}?code=")));
    assert_eq!(param(&redirect, "state").as_deref(), Some(state));
    let code = param(&redirect, "code").expect("code");
    assert!(code.contains("_PF84_"));
    let wrong = "x".repeat(43);
    envelope(
        exchange(&fake, &code, REDIRECT, Some(&wrong)).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    let again = exchange(&fake, &code, REDIRECT, Some(VERIFIER)).await;
    envelope(again, StatusCode::BAD_REQUEST, "invalid_grant").await;

    // Missing or malformed verifiers fail.
    for verifier in [None, Some("short")] {
        let code = param(
            &consent(&fake, "spark:rooms_read", "s", Some(&challenge)).await,
            "code",
        );
        let response = exchange(&fake, &code.expect("code"), REDIRECT, verifier).await;
        envelope(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
    }

    // The right verifier succeeds once; a replay fails.
    let code = param(
        &consent(&fake, "spark:rooms_read", "s", Some(&challenge)).await,
        "code",
    );
    let code = code.expect("code");
    let response = exchange(&fake, &code, REDIRECT, Some(VERIFIER)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = json(response).await;
    assert_eq!(body["expires_in"], 1_209_599);
    assert_eq!(body["refresh_token_expires_in"], 7_775_999);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "spark:rooms_read");
    assert!(body["refresh_token"].is_string());
    let replay = exchange(&fake, &code, REDIRECT, Some(VERIFIER)).await;
    envelope(replay, StatusCode::BAD_REQUEST, "invalid_grant").await;

    // A different redirect_uri than at /authorize fails; so does a verifier without a challenge.
    let code = param(&consent(&fake, "spark:all", "s", None).await, "code").expect("code");
    let other = exchange(&fake, &code, "http://localhost:10060/other", None).await;
    envelope(other, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let code = param(&consent(&fake, "spark:all", "s", None).await, "code").expect("code");
    let extra = exchange(&fake, &code, REDIRECT, Some(VERIFIER)).await;
    envelope(extra, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_eq!(fake.count(Counter::CodeExchanges), 8);
}

#[crate::support::test]
async fn authorize_errors_show_a_page_and_decline_redirects() {
    let fake = spawn().await;
    let good = [
        ("response_type", "code"),
        ("client_id", DEMO_CLIENT_ID),
        ("redirect_uri", REDIRECT),
        ("scope", "spark:all"),
    ];
    let breakages = [
        ("client_id", "Cnope"),
        ("redirect_uri", "http://evil.example/oauth"),
        ("scope", "spark:all spark:admin"),
        ("scope", " "),
        ("response_type", "token"),
        ("code_challenge_method", "S512"),
    ];
    for (name, value) in breakages {
        let mut query: Vec<_> = good.iter().filter(|(k, _)| *k != name).copied().collect();
        query.extend([(name, value), ("code_challenge", "abc")]);
        let url = format!("{}/authorize", fake.base_url());
        let response = client().get(url).query(&query).send().await.expect("GET");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{name}={value}");
        assert!(response.headers().get("location").is_none());
        assert!(
            response
                .text()
                .await
                .expect("body")
                .contains("Fake Webex (demo)")
        );
    }

    let mut form = good.to_vec();
    form.extend([("state", "xyz"), ("decision", "decline")]);
    let url = format!("{}/authorize", fake.base_url());
    let response = client().post(url).form(&form).send().await.expect("POST");
    assert_eq!(response.status(), StatusCode::FOUND);
    let expected =
        format!("{REDIRECT}?error=access_denied&error_description=The+user+declined&state=xyz");
    assert_eq!(response.headers()["location"], expected.as_str());
}

#[crate::support::test]
async fn token_endpoint_client_auth_and_content_type() {
    let fake = spawn().await;
    // Shaped like real credentials: `C` + 64 hex, and 64 hex.
    let hex = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    assert!(
        DEMO_CLIENT_ID.starts_with('C') && hex(&DEMO_CLIENT_ID[1..]) && hex(DEMO_CLIENT_SECRET)
    );
    let url = format!("{}/access_token", fake.base_url());
    let code = param(&consent(&fake, "spark:all", "s", None).await, "code").expect("code");

    // Basic auth works in place of body credentials.
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
    ];
    let basic = client()
        .post(&url)
        .basic_auth(DEMO_CLIENT_ID, Some(DEMO_CLIENT_SECRET))
        .form(&form);
    assert_eq!(basic.send().await.expect("POST").status(), StatusCode::OK);

    let wrong = client()
        .post(&url)
        .basic_auth(DEMO_CLIENT_ID, Some("nope"))
        .form(&form);
    envelope(
        wrong.send().await.expect("POST"),
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
    let anonymous = client().post(&url).form(&form).send().await.expect("POST");
    envelope(anonymous, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let body = serde_json::json!({ "grant_type": "authorization_code", "code": code });
    let as_json = client().post(&url).json(&body).send().await.expect("POST");
    envelope(
        as_json,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "Unsupported Media Type",
    )
    .await;
    let password = [
        ("grant_type", "password"),
        ("client_id", DEMO_CLIENT_ID),
        ("client_secret", DEMO_CLIENT_SECRET),
    ];
    let unsupported = client()
        .post(&url)
        .form(&password)
        .send()
        .await
        .expect("POST");
    envelope(
        unsupported,
        StatusCode::BAD_REQUEST,
        "unsupported_grant_type",
    )
    .await;
}

#[crate::support::test]
async fn refresh_keeps_the_token_and_revocation_ends_it() {
    let fake = spawn().await;
    let first = tokens(&fake, "spark:all").await;
    let refresh_token = first["refresh_token"].as_str().expect("refresh token");
    let response = refresh(&fake, refresh_token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let second = json(response).await;
    assert_eq!(second["refresh_token"], refresh_token);
    assert_ne!(second["access_token"], first["access_token"]);
    assert_eq!(second["scope"], "spark:all");

    // Both access tokens work until the knob expires them.
    for body in [&first, &second] {
        let me = get(&fake, "/people/me", body["access_token"].as_str()).await;
        assert_eq!(me.status(), StatusCode::OK);
    }
    fake.expire_access_tokens();
    let expired = get(&fake, "/people/me", second["access_token"].as_str()).await;
    envelope(expired, StatusCode::UNAUTHORIZED, INVALID_TOKEN).await;

    fake.revoke_refresh_tokens();
    let revoked = envelope(
        refresh(&fake, refresh_token).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_eq!(
        revoked["errors"][0]["description"],
        "The refresh token provided is expired, revoked, malformed, or invalid."
    );
    assert_eq!(fake.count(Counter::Refreshes), 2);
}

#[crate::support::test]
async fn refresh_rotation_retires_the_old_token() {
    let config = FakeConfig {
        rotate_refresh_tokens: true,
        ..FakeConfig::default()
    };
    let fake = FakeWebex::spawn(config).await.expect("fake Webex starts");
    let first = tokens(&fake, "spark:all").await;
    let old = first["refresh_token"].as_str().expect("refresh token");
    let rotated = json(refresh(&fake, old).await).await;
    let new = rotated["refresh_token"].as_str().expect("refresh token");
    assert_ne!(new, old);
    envelope(
        refresh(&fake, old).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_eq!(refresh(&fake, new).await.status(), StatusCode::OK);
}

async fn device_authorize(fake: &FakeWebex, client_id: &str, scope: &str) -> Response {
    let form = [("client_id", client_id), ("scope", scope)];
    let url = format!("{}/device/authorize", fake.base_url());
    client().post(url).form(&form).send().await.expect("POST")
}

async fn poll(fake: &FakeWebex, device_code: &str) -> Response {
    let form = [
        ("grant_type", DEVICE_GRANT),
        ("device_code", device_code),
        ("client_id", DEMO_CLIENT_ID),
    ];
    client()
        .post(format!("{}/device/token", fake.base_url()))
        .basic_auth(DEMO_CLIENT_ID, Some(DEMO_CLIENT_SECRET))
        .form(&form)
        .send()
        .await
        .expect("POST")
}

/// Starts a device flow; returns (device_code, user_code, full body).
async fn start_device(fake: &FakeWebex) -> (String, String, Value) {
    let response = device_authorize(fake, DEMO_CLIENT_ID, "spark:people_read spark:kms").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = json(response).await;
    let device_code = body["device_code"]
        .as_str()
        .expect("device_code")
        .to_owned();
    let user_code = body["user_code"].as_str().expect("user_code").to_owned();
    (device_code, user_code, body)
}

#[crate::support::test]
async fn device_flow_pending_slow_down_then_approved_once() {
    let fake = spawn().await;
    let (device_code, user_code, body) = start_device(&fake).await;
    assert_eq!(device_code.len(), 36);
    assert_eq!(&device_code[14..15], "4", "UUID v4: {device_code}");
    assert!(user_code.len() == 6 && user_code.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(fake.last_user_code().as_deref(), Some(user_code.as_str()));
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["interval"], 2);
    let hash = format!("{:x}", Sha256::digest(user_code.as_bytes()));
    let complete = format!("{}/verify?userCode={hash}", fake.origin());
    assert_eq!(
        body["verification_uri"],
        format!("{}/verify", fake.origin())
    );
    assert_eq!(body["verification_uri_complete"], complete.as_str());
    assert_eq!(
        fake.verification_uri_complete(&user_code),
        Some(complete.clone())
    );

    let pending = envelope(
        poll(&fake, &device_code).await,
        StatusCode::PRECONDITION_REQUIRED,
        "authorization_pending",
    )
    .await;
    assert_eq!(
        pending["errors"][0]["description"],
        "The authorization request is still pending."
    );
    envelope(
        poll(&fake, &device_code).await,
        StatusCode::BAD_REQUEST,
        "slow_down",
    )
    .await;

    // The user approves on the verification page.
    let page = client()
        .get(&complete)
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    assert!(
        page.contains(&user_code)
            && page.contains("id=\"approve\"")
            && page.contains("id=\"deny\"")
    );
    let form = [("user_code", user_code.as_str()), ("decision", "approve")];
    let url = format!("{}/verify", fake.origin());
    let done = client().post(url).form(&form).send().await.expect("POST");
    assert_eq!(done.status(), StatusCode::OK);
    assert!(
        done.text()
            .await
            .expect("body")
            .contains("Approved: return to your device")
    );

    let granted = poll(&fake, &device_code).await;
    assert_eq!(granted.status(), StatusCode::OK);
    let tokens = json(granted).await;
    assert_eq!(tokens["scope"], "spark:people_read spark:kms");
    let me = get(&fake, "/people/me", tokens["access_token"].as_str()).await;
    assert_eq!(me.status(), StatusCode::OK);
    envelope(
        poll(&fake, &device_code).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;

    let polls = fake.device_polls(&user_code);
    assert_eq!(polls.len(), 4);
    assert!(polls.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(fake.count(Counter::DevicePolls), 4);
    assert_eq!(fake.count(Counter::DeviceAuthorizations), 1);
    let secrets = fake.issued_secrets();
    assert!(secrets.contains(&DEMO_CLIENT_SECRET.to_owned()) && secrets.contains(&device_code));
    assert!(secrets.iter().any(|s| tokens["access_token"] == s.as_str()));
}

#[crate::support::test]
async fn device_flow_denial_and_request_checks() {
    let fake = spawn().await;
    let bad_client = device_authorize(&fake, "Cnope", "spark:all").await;
    let body = envelope(
        bad_client,
        StatusCode::BAD_REQUEST,
        "The request could not be understood by the server due to malformed syntax.",
    )
    .await;
    assert_eq!(body["errors"][0]["description"], "Client Id is invalid");
    let bad_scope = device_authorize(&fake, DEMO_CLIENT_ID, "spark:admin").await;
    envelope(bad_scope, StatusCode::BAD_REQUEST, "invalid_scope").await;

    let (device_code, user_code, _) = start_device(&fake).await;
    let url = format!("{}/device/token", fake.base_url());
    let form = [
        ("grant_type", DEVICE_GRANT),
        ("device_code", device_code.as_str()),
        ("client_id", DEMO_CLIENT_ID),
    ];
    let no_basic = client().post(&url).form(&form).send().await.expect("POST");
    envelope(no_basic, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let other_client = [
        ("grant_type", DEVICE_GRANT),
        ("device_code", device_code.as_str()),
        ("client_id", "Cother"),
    ];
    let request = client()
        .post(&url)
        .basic_auth(DEMO_CLIENT_ID, Some(DEMO_CLIENT_SECRET));
    let mismatch = request.form(&other_client).send().await.expect("POST");
    envelope(mismatch, StatusCode::BAD_REQUEST, "invalid_grant").await;
    envelope(
        poll(&fake, "00000000-0000-4000-8000-000000000000").await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;

    assert!(fake.deny_device(&user_code));
    assert!(
        !fake.approve_device(&user_code),
        "a denied flow cannot be approved"
    );
    assert!(!fake.approve_device("000000x"));
    envelope(
        poll(&fake, &device_code).await,
        StatusCode::BAD_REQUEST,
        "access_denied",
    )
    .await;

    // The manual-entry page, and a verification link for a flow that is no longer pending.
    let manual = client()
        .get(format!("{}/verify", fake.origin()))
        .send()
        .await
        .expect("GET");
    assert!(
        manual
            .text()
            .await
            .expect("body")
            .contains("id=\"user_code\"")
    );
    let stale = fake
        .verification_uri_complete(&user_code)
        .expect("known code");
    assert_eq!(
        client().get(stale).send().await.expect("GET").status(),
        StatusCode::NOT_FOUND
    );
}

#[crate::support::test]
async fn device_flow_expires() {
    for expiry_error in ["expired_token", "invalid_grant"] {
        let config = FakeConfig {
            device_expiry_error: expiry_error.into(),
            ..FakeConfig::default()
        };
        let fake = FakeWebex::spawn(config).await.expect("fake Webex starts");
        fake.set_device_expires_in(1);
        fake.set_device_interval(0);
        let (device_code, user_code, body) = start_device(&fake).await;
        assert_eq!(
            (body["expires_in"].as_u64(), body["interval"].as_u64()),
            (Some(1), Some(0))
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        let last = loop {
            let response = poll(&fake, &device_code).await;
            if response.status() != StatusCode::PRECONDITION_REQUIRED {
                break response;
            }
            assert!(Instant::now() < deadline, "the flow never expired");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        envelope(last, StatusCode::BAD_REQUEST, expiry_error).await;
        assert!(
            !fake.approve_device(&user_code),
            "an expired flow cannot be approved"
        );
    }
}

#[crate::support::test]
async fn rooms_paginate_with_absolute_next_links() {
    let fake = spawn().await;
    let tokens = tokens(&fake, "spark:rooms_read").await;
    let token = tokens["access_token"].as_str();
    let mut url = format!("{}/rooms?max=50", fake.base_url());
    let mut titles = Vec::new();
    let mut pages = 0;
    loop {
        let response = client()
            .get(&url)
            .bearer_auth(token.expect("token"))
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().contains_key("trackingid"));
        let link = response
            .headers()
            .get("link")
            .map(|l| l.to_str().expect("ASCII").to_owned());
        let body = json(response).await;
        let items = body["items"].as_array().expect("items");
        pages += 1;
        for item in items {
            for field in [
                "id",
                "title",
                "type",
                "isLocked",
                "lastActivity",
                "creatorId",
                "created",
                "ownerId",
                "isAnnouncementOnly",
                "isReadOnly",
                "isPublic",
            ] {
                assert!(item.get(field).is_some(), "room lacks {field}");
            }
            assert!(item.get("description").is_none() && item.get("teamId").is_none());
            titles.push(item["title"].as_str().expect("title").to_owned());
        }
        let Some(link) = link else { break };
        let next = link
            .strip_prefix('<')
            .and_then(|l| l.strip_suffix(">; rel=\"next\""))
            .expect("next link");
        assert!(
            next.starts_with(&format!("{}/v1/rooms?max=50&cursor=", fake.origin())),
            "{next}"
        );
        url = next.to_owned();
    }
    assert_eq!(pages, 3);
    assert_eq!(titles.len(), 130);
    assert_eq!(titles, fake.room_titles());
    for special in [
        "<script>alert(\"x\")</script> & friends",
        "Tom & Jerry's \"Q&A\"",
        "Café ☕ Zürich",
        "東京オフィス",
    ] {
        assert!(titles.iter().any(|t| t == special), "missing {special}");
    }
    assert_eq!(fake.count(Counter::RoomsCalls), 3);

    // Above the cap is clamped; zero, garbage and bad cursors are rejected.
    let all = get(&fake, "/rooms?max=5000", token).await;
    assert!(all.headers().get("link").is_none());
    assert_eq!(json(all).await["items"].as_array().map(Vec::len), Some(130));
    for query in ["max=0", "max=abc", "cursor=%%%", "cursor=b2Zmc2V0Ojk5OQ"] {
        let response = get(&fake, &format!("/rooms?{query}"), token).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
    }
}

#[crate::support::test]
async fn resource_apis_check_token_and_scope() {
    let fake = spawn().await;
    for path in ["/rooms", "/people/me"] {
        let body = envelope(
            get(&fake, path, None).await,
            StatusCode::UNAUTHORIZED,
            INVALID_TOKEN,
        )
        .await;
        assert_eq!(body["errors"][0]["description"], INVALID_TOKEN);
        envelope(
            get(&fake, path, Some("bogus")).await,
            StatusCode::UNAUTHORIZED,
            INVALID_TOKEN,
        )
        .await;
    }
    let people = tokens(&fake, "spark:people_read").await;
    let people = people["access_token"].as_str();
    assert_eq!(
        get(&fake, "/rooms", people).await.status(),
        StatusCode::FORBIDDEN
    );
    let me = json(get(&fake, "/people/me", people).await).await;
    assert_eq!(me["displayName"], "Ada Lovelace");
    assert_eq!(me["emails"][0], "ada@example.com");
    assert_eq!(me["type"], "person");
    let avatar_url = me["avatar"].as_str().expect("avatar");
    assert_eq!(avatar_url, format!("{}/avatar.svg", fake.origin()));
    let avatar = client().get(avatar_url).send().await.expect("GET");
    assert_eq!(avatar.headers()["content-type"], "image/svg+xml");
    assert!(avatar.text().await.expect("svg").contains(">AL<"));

    let rooms = tokens(&fake, "spark:rooms_read").await;
    assert_eq!(
        get(&fake, "/people/me", rooms["access_token"].as_str())
            .await
            .status(),
        StatusCode::FORBIDDEN
    );

    // A token issued with a zero lifetime is already expired.
    fake.set_access_token_ttl(Duration::ZERO);
    let short = tokens(&fake, "spark:all").await;
    assert_eq!(short["expires_in"], 0);
    envelope(
        get(&fake, "/rooms", short["access_token"].as_str()).await,
        StatusCode::UNAUTHORIZED,
        INVALID_TOKEN,
    )
    .await;
}

#[crate::support::test]
async fn every_fault_fires_once_in_order() {
    let fake = spawn().await;
    let tokens = tokens(&fake, "spark:all").await;
    let token = tokens["access_token"].as_str();
    let queue = [
        Fault::Pass,
        Fault::Status(503),
        Fault::HtmlStatus(502),
        Fault::InvalidJson,
        Fault::MissingFields,
        Fault::Delay(Duration::from_millis(300)),
        Fault::RateLimited { retry_after: 7 },
        Fault::Unauthorized,
        Fault::Forbidden,
    ];
    for fault in queue {
        fake.inject(Endpoint::PeopleMe, fault);
    }
    assert_eq!(
        get(&fake, "/people/me", token).await.status(),
        StatusCode::OK
    );
    envelope(
        get(&fake, "/people/me", token).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "Service Unavailable",
    )
    .await;
    let html = get(&fake, "/people/me", token).await;
    assert_eq!(html.status(), StatusCode::BAD_GATEWAY);
    assert!(
        html.headers()["content-type"]
            .to_str()
            .expect("ASCII")
            .starts_with("text/html")
    );
    let invalid = get(&fake, "/people/me", token).await;
    assert_eq!(invalid.status(), StatusCode::OK);
    assert!(invalid.json::<Value>().await.is_err());
    let missing = json(get(&fake, "/people/me", token).await).await;
    assert_eq!(missing, serde_json::json!({ "unexpected": true }));
    let started = Instant::now();
    assert_eq!(
        get(&fake, "/people/me", token).await.status(),
        StatusCode::OK
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    let limited = get(&fake, "/people/me", token).await;
    assert_eq!(limited.headers()["retry-after"], "7");
    envelope(
        limited,
        StatusCode::TOO_MANY_REQUESTS,
        "Too many requests have been sent in a given amount of time.",
    )
    .await;
    envelope(
        get(&fake, "/people/me", token).await,
        StatusCode::UNAUTHORIZED,
        INVALID_TOKEN,
    )
    .await;
    assert_eq!(
        get(&fake, "/people/me", token).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get(&fake, "/people/me", token).await.status(),
        StatusCode::OK,
        "queue drained"
    );
    assert_eq!(fake.count(Counter::PeopleCalls), 10);

    // Rooms: an empty page pointing at the page it skipped, then a foreign next link.
    fake.inject(Endpoint::Rooms, Fault::EmptyPageWithNext);
    fake.inject(Endpoint::Rooms, Fault::ForeignNextLink);
    let empty = get(&fake, "/rooms?max=50", token).await;
    let link = empty.headers()["link"].to_str().expect("ASCII").to_owned();
    assert_eq!(json(empty).await["items"].as_array().map(Vec::len), Some(0));
    let first_page = format!("{}/v1/rooms?max=50&cursor=", fake.origin());
    assert!(link.starts_with(&format!("<{first_page}")), "{link}");
    let foreign = get(&fake, "/rooms?max=50", token).await;
    let link = foreign.headers()["link"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    assert!(
        link.starts_with("<https://attacker.example/v1/rooms?max=50&cursor="),
        "{link}"
    );
    assert_eq!(
        json(foreign).await["items"].as_array().map(Vec::len),
        Some(50)
    );

    // Device token: SlowDown still records the poll; faults on the token endpoints.
    let (device_code, user_code, _) = start_device(&fake).await;
    fake.inject(Endpoint::DeviceToken, Fault::SlowDown);
    envelope(
        poll(&fake, &device_code).await,
        StatusCode::BAD_REQUEST,
        "slow_down",
    )
    .await;
    assert_eq!(fake.device_polls(&user_code).len(), 1);
    fake.inject(
        Endpoint::DeviceAuthorize,
        Fault::RateLimited { retry_after: 3 },
    );
    let limited = device_authorize(&fake, DEMO_CLIENT_ID, "spark:all").await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    fake.inject(Endpoint::AccessToken, Fault::Status(500));
    let failed = refresh(
        &fake,
        tokens["refresh_token"].as_str().expect("refresh token"),
    )
    .await;
    envelope(
        failed,
        StatusCode::INTERNAL_SERVER_ERROR,
        "Internal Server Error",
    )
    .await;
    assert_eq!(fake.count(Counter::Refreshes), 1);
}

/// Reads `response` to its end chunk by chunk; returns how many bytes came (none are kept).
async fn drain(mut response: Response) -> u64 {
    let mut total = 0u64;
    while let Some(chunk) = response.chunk().await.expect("the body streams") {
        total += chunk.len() as u64;
    }
    total
}

#[crate::support::test]
async fn huge_body_streams_that_many_bytes_with_or_without_a_length() {
    let fake = spawn().await;
    let token = tokens(&fake, "spark:all").await["access_token"]
        .as_str()
        .expect("access token")
        .to_owned();
    let bytes = 5 * 1024 * 1024 + 7;
    for (status, declare_length) in [(200, true), (200, false), (500, false)] {
        fake.inject(
            Endpoint::Rooms,
            Fault::HugeBody {
                status,
                bytes,
                declare_length,
            },
        );
        let response = get(&fake, "/rooms", Some(&token)).await;
        assert_eq!(response.status().as_u16(), status);
        assert_eq!(
            response.headers()["content-type"],
            "application/json;charset=UTF-8"
        );
        let length = response.headers().get("content-length").cloned();
        assert_eq!(
            length.map(|v| v.to_str().expect("ASCII").to_owned()),
            declare_length.then(|| bytes.to_string()),
            "Content-Length only when declared"
        );
        assert_eq!(drain(response).await, bytes);
    }
    // The first bytes look like the start of a room list.
    fake.inject(
        Endpoint::PeopleMe,
        Fault::HugeBody {
            status: 200,
            bytes: 100_000,
            declare_length: true,
        },
    );
    let body = get(&fake, "/people/me", Some(&token)).await.bytes().await;
    let body = body.expect("body");
    assert_eq!(body.len(), 100_000);
    assert!(body.starts_with(br#"{"items":["#));
    assert!(body[10..].iter().all(|&b| b == b' '));
    // A body shorter than the prefix is cut, not padded.
    fake.inject(
        Endpoint::AccessToken,
        Fault::HugeBody {
            status: 200,
            bytes: 3,
            declare_length: false,
        },
    );
    let short = refresh(&fake, "whatever")
        .await
        .bytes()
        .await
        .expect("body");
    assert_eq!(&short[..], b"{\"i");
}

#[crate::support::test]
async fn json_fault_answers_exactly_that_json_on_any_endpoint() {
    let fake = spawn().await;
    let hostile = serde_json::json!({
        "device_code": "d",
        "user_code": "418205",
        "verification_uri": "javascript:alert(1)",
        "expires_in": u64::MAX,
        "interval": u64::MAX,
    });
    fake.inject(Endpoint::DeviceAuthorize, Fault::Json(hostile.clone()));
    let response = device_authorize(&fake, DEMO_CLIENT_ID, "spark:all").await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("body");
    assert!(text.contains("18446744073709551615"), "{text}");
    assert_eq!(serde_json::from_str::<Value>(&text).expect("JSON"), hostile);
    assert_eq!(
        fake.last_user_code(),
        None,
        "a faulted authorize starts no flow"
    );
    // Any endpoint, even without a valid token: the fault answers before any check.
    fake.inject(Endpoint::PeopleMe, Fault::Json(serde_json::json!([1, 2])));
    let people = get(&fake, "/people/me", None).await;
    assert_eq!(people.status(), StatusCode::OK);
    assert_eq!(json(people).await, serde_json::json!([1, 2]));
    assert_eq!(
        get(&fake, "/people/me", None).await.status(),
        StatusCode::UNAUTHORIZED,
        "one request per fault"
    );
}

#[crate::support::test]
async fn pages_link_the_apps_stylesheet_and_a_favicon_under_a_strict_policy() {
    let fake = spawn().await;
    let page = client()
        .get(format!("{}/verify", fake.origin()))
        .send()
        .await
        .expect("GET /verify");
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    assert!(csp.contains("default-src 'none'") && csp.contains("style-src 'self'"));
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let html = page.text().await.expect("body");
    assert!(html.contains(r#"<link rel="stylesheet" href="/static/style.css">"#));
    assert!(html.contains("stands in for webexapis.com"));
    assert!(!html.contains("<style") && !html.contains(" style="));

    let css = client()
        .get(format!("{}/static/style.css", fake.origin()))
        .send()
        .await
        .expect("GET the stylesheet");
    assert_eq!(css.status(), StatusCode::OK);
    assert!(
        css.headers()["content-type"]
            .to_str()
            .expect("ASCII")
            .starts_with("text/css")
    );
    let etag = css.headers()["etag"].clone();
    assert_eq!(
        css.text().await.expect("body"),
        include_str!("../static/style.css"),
        "the app's own stylesheet"
    );
    let again = client()
        .get(format!("{}/static/style.css", fake.origin()))
        .header("if-none-match", etag)
        .send()
        .await
        .expect("GET the stylesheet again");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    for path in ["/favicon.ico", "/favicon.svg"] {
        let icon = client()
            .get(format!("{}{path}", fake.origin()))
            .send()
            .await
            .expect("GET the favicon");
        assert_eq!(icon.status(), StatusCode::OK, "{path}");
        assert_eq!(icon.headers()["content-type"], "image/svg+xml", "{path}");
    }
}
