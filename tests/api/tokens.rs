//! Refresh: on 401, ahead of expiry, once for N concurrent requests, and what happens when Webex
//! refuses the refresh token.

use crate::helpers::{TestApp, location, text};
use fake_webex::{Counter, Endpoint, FakeConfig, Fault};
use reqwest::StatusCode;
use std::time::Duration;

#[crate::support::test]
async fn a_401_refreshes_once_and_retries() {
    let app = TestApp::spawn().await;
    app.login().await;
    app.fake.expire_access_tokens();
    let response = app.get("/whoami").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.fake.count(Counter::Refreshes), 1);
    // The new token is kept: the next page needs no refresh.
    assert_eq!(app.get("/spaces").await.status(), StatusCode::OK);
    assert_eq!(app.fake.count(Counter::Refreshes), 1);
}

/// An app whose user signed in with a token that expires within the 60 s margin (so it is
/// refreshed before use); the refreshed tokens live an hour.
async fn signed_in_with_a_token_due_for_refresh() -> TestApp {
    let fake = FakeConfig {
        access_token_ttl: Duration::from_secs(30),
        ..FakeConfig::default()
    };
    let app = TestApp::spawn_with(fake, |_| {}).await;
    app.login().await;
    app.fake.set_access_token_ttl(Duration::from_secs(3600));
    app
}

#[crate::support::test]
async fn n_concurrent_requests_with_an_expired_token_make_one_refresh() {
    let app = signed_in_with_a_token_due_for_refresh().await;
    // Clones of the client share its cookie jar: 20 parallel requests of one browser.
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (client, url) = (app.client.clone(), app.url("/whoami"));
        requests.spawn(async move { client.get(url).send().await.unwrap().status() });
    }
    while let Some(status) = requests.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::OK);
    }
    assert_eq!(app.fake.count(Counter::Refreshes), 1);
    assert_eq!(app.fake.count(Counter::PeopleCalls), 20);
    assert!(
        (app.probe.refreshes_in_progress() == 0),
        "no lock entry is left behind"
    );
}

#[crate::support::test]
async fn a_refused_refresh_token_clears_the_session_and_asks_to_sign_in_again() {
    let app = TestApp::spawn().await;
    app.login().await;
    app.fake.expire_access_tokens();
    app.fake.revoke_refresh_tokens();
    let response = app.get("/spaces").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/?notice=reauth");
    assert!(
        text(app.get("/?notice=reauth").await)
            .await
            .contains("sign in again")
    );
    assert_eq!(
        location(&app.get("/spaces").await),
        "/",
        "the tokens are gone"
    );
}

#[crate::support::test]
async fn a_second_401_after_refresh_means_sign_in_again() {
    let app = TestApp::spawn().await;
    app.login().await;
    app.fake.inject(Endpoint::PeopleMe, Fault::Unauthorized);
    app.fake.inject(Endpoint::PeopleMe, Fault::Unauthorized);
    let response = app.get("/whoami").await;
    assert_eq!(location(&response), "/?notice=reauth");
    assert_eq!(app.fake.count(Counter::Refreshes), 1);
    assert_eq!(app.fake.count(Counter::PeopleCalls), 2);
}

#[crate::support::test]
async fn rotated_refresh_tokens_are_kept() {
    let fake = FakeConfig {
        rotate_refresh_tokens: true,
        ..FakeConfig::default()
    };
    let app = TestApp::spawn_with(fake, |_| {}).await;
    app.login().await;
    for round in 1..=2 {
        app.fake.expire_access_tokens();
        assert_eq!(
            app.get("/whoami").await.status(),
            StatusCode::OK,
            "round {round}"
        );
        assert_eq!(app.fake.count(Counter::Refreshes), round);
    }
}

#[crate::support::test]
async fn a_short_429_is_waited_out_once_and_a_long_one_is_a_503_page() {
    let app = TestApp::spawn().await;
    app.login().await;
    app.fake
        .inject(Endpoint::PeopleMe, Fault::RateLimited { retry_after: 1 });
    assert_eq!(app.get("/whoami").await.status(), StatusCode::OK);

    app.fake
        .inject(Endpoint::PeopleMe, Fault::RateLimited { retry_after: 60 });
    let response = app.get("/whoami").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(text(response).await.contains("60 seconds"));

    app.fake
        .inject(Endpoint::Rooms, Fault::RateLimited { retry_after: 1 });
    app.fake
        .inject(Endpoint::Rooms, Fault::RateLimited { retry_after: 1 });
    assert_eq!(
        app.get("/spaces").await.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "only one wait"
    );
}

#[crate::support::test]
async fn a_401_whose_message_is_one_word_still_refreshes_once_and_retries() {
    let app = TestApp::spawn().await;
    app.login().await;
    // An API reply carries no OAuth code: whatever one word a 401 says, refresh and retry.
    for word in [
        "Unauthorized",
        "unauthorized",
        "invalid_token",
        "invalid_client",
    ] {
        let before = app.fake.count(Counter::Refreshes);
        app.fake
            .inject(Endpoint::PeopleMe, Fault::Message(401, word));
        let response = app.get("/whoami").await;
        assert_eq!(response.status(), StatusCode::OK, "{word}");
        assert_eq!(app.fake.count(Counter::Refreshes), before + 1, "{word}");
    }
    app.fake
        .inject(Endpoint::Rooms, Fault::Message(401, "unauthorized"));
    let before = app.fake.count(Counter::Refreshes);
    assert_eq!(app.get("/spaces").await.status(), StatusCode::OK);
    assert_eq!(app.fake.count(Counter::Refreshes), before + 1);
}

#[crate::support::test]
async fn expires_in_0_makes_one_refresh_for_the_whole_listing() {
    let app = signed_in_with_a_token_due_for_refresh().await;
    // The refresh says the new token expires at once (it works for an hour at the fake).
    app.fake.inject(Endpoint::AccessToken, Fault::ExpiresIn(0));
    let rooms = app.fake.count(Counter::RoomsCalls);
    let response = app.get("/spaces").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        app.fake.count(Counter::RoomsCalls) - rooms,
        2,
        "both pages of the 130 rooms"
    );
    assert_eq!(
        app.fake.count(Counter::Refreshes),
        1,
        "one refresh for the request, not one a page"
    );
    // The next request finds the token due again: one refresh for it too, and no more.
    app.fake.inject(Endpoint::AccessToken, Fault::ExpiresIn(0));
    assert_eq!(app.get("/spaces").await.status(), StatusCode::OK);
    assert_eq!(app.fake.count(Counter::Refreshes), 2);
}
