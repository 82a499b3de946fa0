//! Sign-out is final, and so is a cycled session id: a request that loaded the session before
//! and saves it after writes nothing back (memory and SQLite here; Redis in `redis.rs`).

use crate::helpers::{TestApp, location, wait_for};
use fake_webex::{Counter, Endpoint, FakeConfig, Fault};
use reqwest::header::COOKIE;
use reqwest::{Client, StatusCode};
use std::sync::Arc;
use std::time::Duration;
use webex_oauth_axum::{Config, StoreConfig};

/// A browser whose cookies the test can read.
pub fn browser_with_jar() -> (Client, Arc<reqwest::cookie::Jar>) {
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let client = Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    (client, jar)
}

/// A client without a cookie jar that follows no redirect: the cookie is sent by hand.
fn no_redirects() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The `Cookie` header the jar sends to the app now.
pub fn cookie_of(app: &TestApp, jar: &reqwest::cookie::Jar) -> String {
    use reqwest::cookie::CookieStore;
    let url = reqwest::Url::parse(&app.base).unwrap();
    jar.cookies(&url)
        .expect("the browser holds a session cookie")
        .to_str()
        .unwrap()
        .to_owned()
}

/// `POST /sign-in` sent with a stolen cookie, slowed down at Webex so it is still in flight
/// (having loaded the session) when the victim signs out.
async fn slow_sign_in_with(app: &TestApp, cookie: String) -> tokio::task::JoinHandle<StatusCode> {
    app.fake.inject(
        Endpoint::DeviceAuthorize,
        Fault::Delay(Duration::from_millis(1500)),
    );
    let before = app.fake.count(Counter::DeviceAuthorizations);
    let (url, origin) = (app.url("/sign-in"), app.base.clone());
    let thief = tokio::spawn(async move {
        no_redirects()
            .post(url)
            .header(COOKIE, cookie)
            .header("Origin", origin)
            .form(&[("", "")])
            .send()
            .await
            .unwrap()
            .status()
    });
    wait_for(
        "the slow sign-in to reach Webex",
        Duration::from_secs(10),
        || async { app.fake.count(Counter::DeviceAuthorizations) > before },
    )
    .await;
    thief
}

/// Runs both stories against the store `use_store` configures.
pub async fn sign_out_and_cycled_ids_stay_dead(use_store: impl Fn(&mut Config) + Clone) {
    let app = TestApp::spawn_with(FakeConfig::default(), use_store.clone()).await;

    // A thief holding the cookie keeps a session-writing request in flight across sign-out.
    let (victim, jar) = browser_with_jar();
    app.login_as(&victim).await;
    let stolen = cookie_of(&app, &jar);
    let thief = slow_sign_in_with(&app, stolen.clone()).await;
    let out = app.post_as(&victim, "/logout").await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        thief.await.unwrap(),
        StatusCode::SEE_OTHER,
        "the slow request completed"
    );
    let after = no_redirects()
        .get(app.url("/spaces"))
        .header(COOKIE, &stolen)
        .send()
        .await
        .unwrap();
    assert_eq!(
        after.status(),
        StatusCode::SEE_OTHER,
        "the old cookie gets no Webex data"
    );
    assert_eq!(location(&after), "/");

    // The id cycled at sign-in stays dead too, even if a request of the old id saves late.
    let (user, jar) = browser_with_jar();
    let callback = app.authorize(&user, "accept").await;
    let anonymous = cookie_of(&app, &jar);
    let late = slow_sign_in_with(&app, anonymous.clone()).await;
    assert_eq!(
        user.get(&callback).send().await.unwrap().status(),
        StatusCode::SEE_OTHER
    );
    assert_ne!(
        cookie_of(&app, &jar),
        anonymous,
        "the id was cycled at sign-in"
    );
    assert_eq!(late.await.unwrap(), StatusCode::SEE_OTHER);
    let status: serde_json::Value = no_redirects()
        .get(app.url("/device/status"))
        .header(COOKIE, &anonymous)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Written back, the old id would show the late request's pending flow; dead, it holds
    // nothing (a stale cookie reads as "another tab signed in").
    assert_ne!(
        status["status"], "pending",
        "the old id was not written back with the late request's device flow"
    );
    assert_eq!(
        user.get(app.url("/spaces")).send().await.unwrap().status(),
        StatusCode::OK
    );
    app.stop().await;
}

#[crate::support::test]
async fn sign_out_is_final_with_the_memory_store() {
    sign_out_and_cycled_ids_stay_dead(|_| {}).await;
}

#[crate::support::test]
async fn sign_out_is_final_with_the_sqlite_store() {
    let dir = crate::at_rest::temp_dir("sign-out");
    let path = dir.join("sessions.db");
    sign_out_and_cycled_ids_stay_dead(move |c: &mut Config| {
        c.session_store = StoreConfig::Sqlite(path.clone())
    })
    .await;
    let _ = std::fs::remove_dir_all(dir);
}
