//! The authorization-code flow: happy path, and every way the callback can be wrong.

use crate::helpers::{TestApp, browser, html_escape, location, text};
use fake_webex::{Counter, FakeConfig};
use reqwest::StatusCode;

#[crate::support::test]
async fn grant_then_spaces_lists_every_room_of_every_page_escaped() {
    let app = TestApp::spawn().await;
    app.login().await;

    let response = app.get("/spaces").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = text(response).await;
    let titles = app.fake.room_titles();
    assert!(titles.len() > 100, "the demo data spans two pages");
    for title in &titles {
        assert!(body.contains(&html_escape(title)), "missing room {title:?}");
    }
    assert!(
        !body.contains("<script>alert"),
        "a room title was not escaped"
    );
    assert!(body.contains("&#60;script&#62;alert"));
    assert!(
        app.fake.count(Counter::RoomsCalls) >= 2,
        "the second page was fetched"
    );
    assert_eq!(app.fake.count(Counter::CodeExchanges), 1);
}

#[crate::support::test]
async fn login_sends_state_and_an_s256_pkce_challenge_and_keeps_the_verifier_out_of_the_url() {
    let app = TestApp::spawn().await;
    let response = app.get("/login").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let url = url::Url::parse(&location(&response)).unwrap();
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["redirect_uri"], app.url("/oauth"));
    assert_eq!(query["scope"], "openid email profile spark:all");
    assert_eq!(query["nonce"].len(), 43);
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["state"].len(), 43);
    assert_eq!(query["code_challenge"].len(), 43);
    assert!(!query.contains_key("code_verifier"));
    // A second login gets a different state.
    let again = url::Url::parse(&location(&app.get("/login").await)).unwrap();
    let state2 = again
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    assert_ne!(state2, query["state"]);
}

#[crate::support::test]
async fn login_on_another_host_name_moves_to_the_redirect_uris_origin_first() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/login"))
        .header("Host", format!("localhost:{}", app.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), app.url("/login"));
}

#[crate::support::test]
async fn two_tabs_can_each_finish_a_login() {
    let app = TestApp::spawn().await;
    let first = app.authorize(&app.client, "accept").await;
    let second = app.authorize(&app.client, "accept").await;
    assert_eq!(
        app.client.get(&first).send().await.unwrap().status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        app.client.get(&second).send().await.unwrap().status(),
        StatusCode::SEE_OTHER
    );
}

#[crate::support::test]
async fn a_wrong_state_is_refused_without_a_token_exchange() {
    let app = TestApp::spawn().await;
    let callback = app.authorize(&app.client, "accept").await;
    let forged = callback.replace("state=", "state=x");
    let response = app.client.get(&forged).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(app.fake.count(Counter::CodeExchanges), 0);
    // The real state still works afterwards: a forged callback cannot cancel a login.
    assert_eq!(
        app.client.get(&callback).send().await.unwrap().status(),
        StatusCode::SEE_OTHER
    );
}

#[crate::support::test]
async fn a_missing_state_or_code_is_a_400_page() {
    let app = TestApp::spawn().await;
    app.authorize(&app.client, "accept").await;
    for query in ["", "?code=abc", "?state=", "?error=access_denied"] {
        let response = app.get(&format!("/oauth{query}")).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        assert!(text(response).await.contains("<html"), "{query}");
    }
    assert_eq!(app.fake.count(Counter::CodeExchanges), 0);
}

#[crate::support::test]
async fn a_replayed_callback_is_refused() {
    let app = TestApp::spawn().await;
    let callback = app.authorize(&app.client, "accept").await;
    assert_eq!(
        app.client.get(&callback).send().await.unwrap().status(),
        StatusCode::SEE_OTHER
    );
    let replay = app.client.get(&callback).send().await.unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.fake.count(Counter::CodeExchanges), 1);
}

#[crate::support::test]
async fn a_callback_from_another_session_is_refused() {
    let app = TestApp::spawn().await;
    let victim_callback = app.authorize(&app.client, "accept").await;
    let attacker = browser();
    attacker.get(app.url("/login")).send().await.unwrap(); // has a session, with its own state
    let response = attacker.get(&victim_callback).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.fake.count(Counter::CodeExchanges), 0);
    assert_eq!(
        attacker
            .get(app.url("/spaces"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::SEE_OTHER
    );
}

#[crate::support::test]
async fn declining_at_webex_gives_a_403_page() {
    let app = TestApp::spawn().await;
    let callback = app.authorize(&app.client, "decline").await;
    assert!(callback.contains("error=access_denied"));
    let response = app.client.get(&callback).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(text(response).await.contains("declined"));
    assert_eq!(app.fake.count(Counter::CodeExchanges), 0);
    assert_eq!(app.get("/granted").await.status(), StatusCode::SEE_OTHER);
}

#[crate::support::test]
async fn the_session_id_changes_at_login_and_logout_forgets_it() {
    let app = TestApp::spawn().await;
    let cookie_of = |r: &reqwest::Response| {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|c| c.starts_with("webex_oauth_session="))
    };
    let login = app.get("/login").await;
    let before = cookie_of(&login).expect("a session cookie at /login");
    assert!(
        before.contains("HttpOnly") && before.contains("SameSite=Lax"),
        "{before}"
    );
    assert!(!before.contains("Secure"), "no Secure flag over plain http");
    let callback = {
        let authorize = location(&login);
        let mut form: Vec<(String, String)> = url::Url::parse(&authorize)
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect();
        form.push(("decision".into(), "accept".into()));
        let answer = app
            .client
            .post(format!("{}/authorize", app.fake.base_url()))
            .form(&form)
            .send()
            .await
            .unwrap();
        location(&answer)
    };
    let done = app.client.get(&callback).send().await.unwrap();
    let after = cookie_of(&done).expect("a new session cookie after login");
    assert_ne!(
        before.split(';').next(),
        after.split(';').next(),
        "session id cycled"
    );

    let out = app.post("/logout").await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&out), "/");
    assert_eq!(app.get("/spaces").await.status(), StatusCode::SEE_OTHER);
}

#[crate::support::test]
async fn https_redirect_uris_make_the_cookie_secure() {
    let app = TestApp::spawn_with(FakeConfig::default(), |config| {
        config.redirect_uri = url::Url::parse("https://app.example.com/oauth").unwrap();
    })
    .await;
    let response = app
        .client
        .get(app.url("/login"))
        .header("Host", "app.example.com")
        .send()
        .await
        .unwrap();
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.contains("Secure"), "{cookie}");
}
