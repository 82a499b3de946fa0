//! Login with Webex (OpenID Connect) in both flows, over real HTTP against the fake: who signed
//! in is shown; every forged id_token is refused with nobody signed in; the key set is cached,
//! refetched once for a new key and never flooded; the key set down is a clear page; a nonce from
//! an earlier login is refused; userinfo fills in what the token lacks, for the same user only.

use crate::helpers::{
    TestApp, browser, captured_logs, location, quick_device_fake, text, wait_for,
};
use fake_webex::{Counter, Endpoint, FakeConfig, Fault, Forgery};
use reqwest::{Client, StatusCode};
use std::time::Duration;

const ADA: &str = "Signed in as Ada Lovelace (ada@example.com)";
const REFUSED: &str = "Your identity could not be verified";

/// `GET /login` by hand: the nonce the authorize URL carries, and the callback URL the fake's
/// consent (accepted) sends the browser to, not yet visited.
async fn login_by_hand(app: &TestApp, browser: &Client) -> (String, String) {
    let login = browser.get(app.url("/login")).send().await.unwrap();
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    let authorize = url::Url::parse(&location(&login)).unwrap();
    let mut form: Vec<(String, String)> = authorize.query_pairs().into_owned().collect();
    let nonce = form
        .iter()
        .find(|(k, _)| k == "nonce")
        .map(|(_, v)| v.clone())
        .expect("a nonce in the authorize URL");
    form.push(("decision".into(), "accept".into()));
    let answer = browser
        .post(format!("{}/authorize", app.fake.base_url()))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::FOUND);
    (nonce, location(&answer))
}

/// Visits `callback` with the request id `id` (to find its log lines); returns status and body.
async fn visit(browser: &Client, callback: &str, id: &str) -> (StatusCode, String) {
    let response = browser
        .get(callback)
        .header("x-request-id", id)
        .send()
        .await
        .unwrap();
    (response.status(), text(response).await)
}

/// The log lines of the request with that id.
fn lines_of(id: &str) -> Vec<String> {
    captured_logs()
        .lines()
        .filter(|line| line.contains(id))
        .map(str::to_owned)
        .collect()
}

async fn signed_in(app: &TestApp, browser: &Client) -> bool {
    let granted = browser.get(app.url("/granted")).send().await.unwrap();
    granted.status() == StatusCode::OK
}

#[crate::support::test]
async fn a_login_shows_who_signed_in_and_the_keys_are_fetched_once() {
    let app = TestApp::spawn().await;
    let (first, callback) = login_by_hand(&app, &app.client).await;
    assert_eq!(first.len(), 43, "256 random bits, base64url");
    let (status, _) = visit(&app.client, &callback, "oidc-good-login-1").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let granted = text(app.get("/granted").await).await;
    assert!(granted.contains(ADA), "{granted}");
    // Every signed-in page says who: the session page, the spaces, the profile.
    for page in ["/spaces", "/whoami"] {
        let body = text(app.get(page).await).await;
        assert!(body.contains(ADA), "{page}: {body}");
    }

    // A second login in another browser: a fresh nonce, and no fetch of the keys.
    let other = browser();
    let (second, callback) = login_by_hand(&app, &other).await;
    assert_ne!(first, second);
    visit(&other, &callback, "oidc-good-login-2").await;
    assert!(
        text(other.get(app.url("/granted")).send().await.unwrap())
            .await
            .contains(ADA)
    );
    assert_eq!(app.fake.count(Counter::Discoveries), 1);
    assert_eq!(app.fake.count(Counter::JwksFetches), 1);
    assert_eq!(
        app.fake.count(Counter::UserInfoCalls),
        0,
        "the token had it all"
    );
    assert!(
        lines_of("oidc-good-login-1")
            .iter()
            .any(|l| l.contains("verified_identity=true"))
    );
}

#[crate::support::test]
async fn demo_mode_shows_who_signed_in() {
    let app = TestApp::demo().await;
    app.login().await;
    assert!(text(app.get("/granted").await).await.contains(ADA));
}

#[crate::support::test]
async fn a_device_sign_in_shows_who_signed_in() {
    let app = TestApp::spawn_with(quick_device_fake(), |_| {}).await;
    let user_code = app.start_device_flow_as(&app.client).await;
    assert!(app.fake.approve_device(&user_code));
    app.wait_for_device_status_as(&app.client, "granted", Duration::from_secs(10))
        .await;
    let granted = text(app.get("/granted").await).await;
    assert!(granted.contains(ADA), "{granted}");
    assert!(granted.contains("device sign-in"));
    for page in ["/spaces", "/whoami"] {
        let body = text(app.get(page).await).await;
        assert!(body.contains(ADA), "{page}: {body}");
    }
}

#[crate::support::test]
async fn every_forged_id_token_is_refused_and_nobody_is_signed_in() {
    let app = TestApp::spawn().await;
    // Refused on their header alone: no key is fetched, let alone used.
    let header_only = [Forgery::AlgNone, Forgery::Hs256WithPublicKey];
    let others = [
        Forgery::OtherKeySameKid,
        Forgery::UnknownKid,
        Forgery::FlippedSignatureBit,
        Forgery::Audience("Cnot-us".into()),
        Forgery::Expired,
        Forgery::Nonce("another-login".into()),
        Forgery::Issuer("https://idbroker.webex.com.evil.example/idb".into()),
    ];
    for (i, forgery) in header_only.into_iter().chain(others).enumerate() {
        if i == 2 {
            assert_eq!(app.fake.count(Counter::JwksFetches), 0);
            assert_eq!(app.fake.count(Counter::Discoveries), 0);
        }
        let what = format!("{forgery:?}");
        let wrong_nonce = matches!(forgery, Forgery::Nonce(_));
        let browser = browser();
        app.fake
            .inject(Endpoint::AccessToken, Fault::IdToken(forgery));
        let (_, callback) = login_by_hand(&app, &browser).await;
        let id = format!("oidc-forgery-{i}-first");
        let (status, page) = visit(&browser, &callback, &id).await;
        let want = if wrong_nonce {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::BAD_GATEWAY
        };
        assert_eq!(status, want, "{what}: {page}");
        assert!(page.contains(REFUSED), "{what}: {page}");
        assert!(page.contains("ROUTER_"), "{what}: the tracking id");
        assert!(!signed_in(&app, &browser).await, "{what}: signed in");
        // The login is used up: the same callback again is a bad request, no second exchange.
        let exchanges = app.fake.count(Counter::CodeExchanges);
        let (again, _) = visit(&browser, &callback, &format!("oidc-forgery-{i}-again")).await;
        assert_eq!(again, StatusCode::BAD_REQUEST, "{what}");
        assert_eq!(app.fake.count(Counter::CodeExchanges), exchanges);
        // One warning with the reason, and never the token.
        let lines = lines_of(&id);
        let warned: Vec<_> = lines.iter().filter(|l| l.contains(" WARN ")).collect();
        assert_eq!(warned.len(), 1, "{what}: {lines:#?}");
        assert!(
            warned[0].contains("the id_token was refused: "),
            "{}",
            warned[0]
        );
        assert!(
            !lines.iter().any(|l| l.contains(" ERROR ")),
            "{what}: {lines:#?}"
        );
    }
    // One fetch for the set, one refetch for the unknown kid.
    assert_eq!(app.fake.count(Counter::JwksFetches), 2);
    let logs = captured_logs();
    for secret in app.fake.issued_secrets() {
        assert!(!logs.contains(&secret), "a token reached the logs");
    }
}

/// `n` logins in their own browsers, their callbacks visited at once (each token answer forged
/// as `forgery`); the callbacks' statuses.
async fn at_once(app: &TestApp, n: usize, forgery: Option<Forgery>) -> Vec<StatusCode> {
    let mut callbacks = Vec::new();
    for _ in 0..n {
        let browser = browser();
        if let Some(forgery) = &forgery {
            app.fake
                .inject(Endpoint::AccessToken, Fault::IdToken(forgery.clone()));
        }
        let (_, callback) = login_by_hand(app, &browser).await;
        callbacks.push((browser, callback));
    }
    let mut visits = tokio::task::JoinSet::new();
    for (browser, callback) in callbacks {
        visits.spawn(async move { browser.get(&callback).send().await.unwrap().status() });
    }
    visits.join_all().await
}

#[crate::support::test]
async fn a_new_key_is_fetched_once_then_cached_and_unknown_keys_cannot_flood_the_jwks() {
    let app = TestApp::spawn().await;
    app.login_as(&browser()).await;
    assert_eq!(app.fake.count(Counter::JwksFetches), 1);
    app.fake.rotate_signing_key();
    for _ in 0..2 {
        let browser = browser();
        app.login_as(&browser).await;
        assert!(
            text(browser.get(app.url("/granted")).send().await.unwrap())
                .await
                .contains(ADA)
        );
    }
    assert_eq!(
        app.fake.count(Counter::JwksFetches),
        2,
        "the new kid fetched once"
    );

    // Five first logins at once: one fetch between them (single flight).
    let other = TestApp::spawn().await;
    let statuses = at_once(&other, 5, None).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::SEE_OTHER),
        "{statuses:?}"
    );
    assert_eq!(other.fake.count(Counter::JwksFetches), 1);
    // Tokens signed by keys nobody published, at once and then one by one: all refused, and
    // one refetch between them (single flight, then the minute rule).
    let statuses = at_once(&other, 5, Some(Forgery::UnknownKid)).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::BAD_GATEWAY),
        "{statuses:?}"
    );
    for _ in 0..3 {
        let statuses = at_once(&other, 1, Some(Forgery::UnknownKid)).await;
        assert_eq!(statuses, [StatusCode::BAD_GATEWAY]);
    }
    assert_eq!(
        other.fake.count(Counter::JwksFetches),
        2,
        "one refetch a minute at most"
    );
    assert_eq!(other.fake.count(Counter::Discoveries), 1);
}

#[crate::support::test]
async fn the_keys_down_or_unreadable_is_a_clear_page_and_nobody_is_signed_in() {
    let app = TestApp::spawn().await;
    let unreachable = serde_json::json!({
        "issuer": "https://idbroker.webex.com/idb",
        "jwks_uri": "http://127.0.0.1:1/verification",
    });
    // JSON, but no key set: an RSA key without its modulus and exponent.
    let not_a_key_set = serde_json::json!({"keys": [{"kty": "RSA", "kid": "k", "use": "sig"}]});
    // Longer than the app's request timeout (2 s in tests): a 503, never the 504 of a timeout.
    let slow = || Fault::Delay(Duration::from_secs(3));
    let cases = [
        (Endpoint::Jwks, Fault::Status(503), StatusCode::BAD_GATEWAY),
        (Endpoint::Jwks, Fault::InvalidJson, StatusCode::BAD_GATEWAY),
        (
            Endpoint::Jwks,
            Fault::Json(not_a_key_set),
            StatusCode::BAD_GATEWAY,
        ),
        (Endpoint::Jwks, slow(), StatusCode::SERVICE_UNAVAILABLE),
        (
            Endpoint::Discovery,
            Fault::Status(500),
            StatusCode::BAD_GATEWAY,
        ),
        (
            Endpoint::Discovery,
            Fault::MissingFields,
            StatusCode::BAD_GATEWAY,
        ),
        (Endpoint::Discovery, slow(), StatusCode::SERVICE_UNAVAILABLE),
        (
            Endpoint::Discovery,
            Fault::Json(unreachable),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
    ];
    for (i, (endpoint, fault, want)) in cases.into_iter().enumerate() {
        let browser = browser();
        let what = format!("{endpoint:?} {fault:?}");
        app.fake.inject(endpoint, fault);
        let (_, callback) = login_by_hand(&app, &browser).await;
        let (status, page) = visit(&browser, &callback, &format!("oidc-keys-down-{i}")).await;
        assert_eq!(status, want, "{what}: {page}");
        assert!(page.contains(REFUSED), "{what}: {page}");
        assert!(page.contains("nobody was signed in"), "{what}");
        assert!(!signed_in(&app, &browser).await, "{what}");
        // The login is used up with its failure.
        let (again, _) = visit(&browser, &callback, &format!("oidc-keys-down-{i}-again")).await;
        assert_eq!(again, StatusCode::BAD_REQUEST, "{what}");
    }
    // Back up: the next login fetches and signs in (a failure is not cached).
    app.login().await;
    assert!(text(app.get("/granted").await).await.contains(ADA));
}

#[crate::support::test]
async fn a_nonce_from_an_earlier_login_is_refused() {
    let app = TestApp::spawn().await;
    let (earlier, callback) = login_by_hand(&app, &app.client).await;
    assert_eq!(
        visit(&app.client, &callback, "oidc-nonce-1").await.0,
        StatusCode::SEE_OTHER
    );
    // Webex answering the next login with the earlier one's id_token (its nonce).
    let browser = browser();
    app.fake.inject(
        Endpoint::AccessToken,
        Fault::IdToken(Forgery::Nonce(earlier)),
    );
    let (_, callback) = login_by_hand(&app, &browser).await;
    let (status, page) = visit(&browser, &callback, "oidc-nonce-2").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains(REFUSED));
    assert!(!signed_in(&app, &browser).await);
    assert!(
        lines_of("oidc-nonce-2")
            .iter()
            .any(|l| l.contains("nonce is not this login's"))
    );
}

#[crate::support::test]
async fn userinfo_fills_in_name_and_email_only_when_it_describes_the_same_user() {
    let app = TestApp::spawn().await;
    app.fake.inject(
        Endpoint::AccessToken,
        Fault::IdToken(Forgery::WithoutProfile),
    );
    app.login().await;
    assert!(text(app.get("/granted").await).await.contains(ADA));
    assert_eq!(app.fake.count(Counter::UserInfoCalls), 1);

    let mallory =
        serde_json::json!({"sub": "someone-else", "name": "Mallory", "email": "m@evil.example"});
    app.fake.inject(
        Endpoint::AccessToken,
        Fault::IdToken(Forgery::WithoutProfile),
    );
    app.fake.inject(Endpoint::UserInfo, Fault::Json(mallory));
    let other = browser();
    app.login_as(&other).await;
    let page = text(other.get(app.url("/granted")).send().await.unwrap()).await;
    assert!(!page.contains("Mallory"), "{page}");
    assert!(page.contains("Signed in as Webex user "), "{page}");
    assert_eq!(app.fake.count(Counter::UserInfoCalls), 2);
}

#[crate::support::test]
async fn an_answer_without_an_id_token_signs_in_as_before_and_says_so() {
    let app = TestApp::spawn().await;
    app.fake
        .inject(Endpoint::AccessToken, Fault::IdToken(Forgery::Omitted));
    let (_, callback) = login_by_hand(&app, &app.client).await;
    assert_eq!(
        visit(&app.client, &callback, "oidc-no-id-token").await.0,
        StatusCode::SEE_OTHER
    );
    let page = text(app.get("/granted").await).await;
    assert!(
        page.contains("You are signed in") && !page.contains("Signed in as"),
        "{page}"
    );
    assert!(
        lines_of("oidc-no-id-token")
            .iter()
            .any(|l| l.contains("no id_token"))
    );
}

#[crate::support::test]
async fn scopes_without_openid_send_no_nonce_and_fetch_no_keys() {
    let app = TestApp::spawn_with(FakeConfig::default(), |config| {
        config.scopes = "spark:all".into();
    })
    .await;
    let login = app.get("/login").await;
    let authorize = url::Url::parse(&location(&login)).unwrap();
    assert!(!authorize.query_pairs().any(|(k, _)| k == "nonce"));
    app.login().await;
    let page = text(app.get("/granted").await).await;
    assert!(!page.contains("Signed in as"));
    assert_eq!(app.fake.count(Counter::Discoveries), 0);
}

#[crate::support::test]
async fn a_device_flow_whose_id_token_fails_ends_as_failed_and_says_so() {
    let app = TestApp::spawn_with(quick_device_fake(), |_| {}).await;
    let user_code = app.start_device_flow_as(&app.client).await;
    let forged = Forgery::Issuer("https://evil.example/idb".into());
    app.fake
        .inject(Endpoint::DeviceToken, Fault::IdToken(forged));
    assert!(app.fake.approve_device(&user_code));
    app.wait_for_device_status_as(&app.client, "error", Duration::from_secs(10))
        .await;
    let page = app.get("/sign-in").await;
    assert_eq!(page.status(), StatusCode::OK);
    let page = text(page).await;
    assert!(
        page.contains("Sign-in failed") && page.contains(REFUSED),
        "{page}"
    );
    assert!(!signed_in(&app, &app.client).await);
    wait_for("the warning", Duration::from_secs(5), || async {
        captured_logs().contains("device sign-in refused: the identity could not be verified")
    })
    .await;
}

/// A device flow started by a new browser, its grant's id_token forged as `forgery` (or its
/// key set answered with `jwks`); the browser and the page once the flow has ended as failed.
async fn failed_device_flow(
    app: &TestApp,
    forgery: Option<Forgery>,
    jwks: Option<Fault>,
) -> (Client, String) {
    let browser = browser();
    let user_code = app.start_device_flow_as(&browser).await;
    if let Some(forgery) = forgery {
        app.fake
            .inject(Endpoint::DeviceToken, Fault::IdToken(forgery));
    }
    if let Some(fault) = jwks {
        app.fake.inject(Endpoint::Jwks, fault);
    }
    assert!(app.fake.approve_device(&user_code));
    app.wait_for_device_status_as(&browser, "error", Duration::from_secs(10))
        .await;
    let page = browser.get(app.url("/sign-in")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let page = text(page).await;
    (browser, page)
}

#[crate::support::test]
async fn every_forged_device_id_token_fails_the_flow_and_nobody_is_signed_in() {
    let app = TestApp::spawn_with(quick_device_fake(), |_| {}).await;
    for forgery in [
        Forgery::AlgNone,
        Forgery::Hs256WithPublicKey,
        Forgery::OtherKeySameKid,
        Forgery::UnknownKid,
        Forgery::FlippedSignatureBit,
        Forgery::Audience("Cnot-us".into()),
        Forgery::Expired,
    ] {
        let what = format!("{forgery:?}");
        let (browser, page) = failed_device_flow(&app, Some(forgery), None).await;
        assert!(page.contains(REFUSED), "{what}: {page}");
        assert!(page.contains("did not prove who signed in"), "{what}");
        assert!(!signed_in(&app, &browser).await, "{what}");
    }
    let logs = captured_logs();
    for secret in app.fake.issued_secrets() {
        assert!(!logs.contains(&secret), "a token reached the logs");
    }
}

#[crate::support::test]
async fn a_device_flow_whose_keys_cannot_be_fetched_ends_as_failed_and_says_so() {
    let app = TestApp::spawn_with(quick_device_fake(), |_| {}).await;
    let (browser, page) = failed_device_flow(&app, None, Some(Fault::Status(503))).await;
    assert!(
        page.contains(REFUSED) && page.contains("signing keys could not be fetched"),
        "{page}"
    );
    assert!(!signed_in(&app, &browser).await);
    // The keys back: the next device sign-in verifies and signs in.
    let user_code = app.start_device_flow_as(&app.client).await;
    assert!(app.fake.approve_device(&user_code));
    app.wait_for_device_status_as(&app.client, "granted", Duration::from_secs(10))
        .await;
    assert!(text(app.get("/granted").await).await.contains(ADA));
}

#[crate::support::test]
async fn a_device_grant_without_an_id_token_signs_in_as_before() {
    let fake = FakeConfig {
        device_id_tokens: false,
        ..quick_device_fake()
    };
    let app = TestApp::spawn_with(fake, |_| {}).await;
    let user_code = app.start_device_flow_as(&app.client).await;
    assert!(app.fake.approve_device(&user_code));
    app.wait_for_device_status_as(&app.client, "granted", Duration::from_secs(10))
        .await;
    let page = text(app.get("/granted").await).await;
    assert!(
        page.contains("You are signed in") && !page.contains("Signed in as"),
        "{page}"
    );
    wait_for("the log line", Duration::from_secs(5), || async {
        captured_logs().contains("the device grant carried no id_token")
    })
    .await;
}
