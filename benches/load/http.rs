//! reqwest, for everything but the load itself: a loopback client, a logged-in session, an
//! access token straight from the fake.

use crate::server::Backend;
use crate::{REQUEST_TIMEOUT, support};
use fake_webex::FakeConfig;
use reqwest::header::LOCATION;
use reqwest::{Client, StatusCode};
use std::sync::Arc;

/// Loopback only, no proxy from the environment, no redirect followed.
pub fn client_builder() -> reqwest::ClientBuilder {
    Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(REQUEST_TIMEOUT)
}

pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .expect("a Location header")
        .to_owned()
}

/// Walks the authorization-code flow as a browser would (`/login` → the fake's consent answered
/// Accept → `/oauth` → `/granted`) and returns the session's `Cookie` header value.
pub async fn log_in(backend: &Backend) -> String {
    use reqwest::cookie::CookieStore;
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let browser = client_builder()
        .cookie_provider(jar.clone())
        .build()
        .unwrap();
    support::login::log_in(&browser, backend.base(), &backend.fake.base_url())
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    let cookie = jar
        .cookies(&url::Url::parse(backend.base()).unwrap())
        .expect("a session cookie");
    cookie.to_str().unwrap().to_owned()
}

/// An access token straight from the fake (code grant without PKCE), for calling `/rooms`.
pub async fn fake_access_token(backend: &Backend) -> String {
    let defaults = FakeConfig::default();
    let redirect_uri = backend.url("/oauth");
    let client = client_builder().build().unwrap();
    let answer = client
        .post(format!("{}/authorize", backend.fake.base_url()))
        .form(&[
            ("client_id", defaults.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", &redirect_uri),
            ("scope", "spark:all"),
            ("decision", "accept"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::FOUND);
    let callback = url::Url::parse(&location(&answer)).unwrap();
    let code = callback
        .query_pairs()
        .find(|(k, _)| k == "code")
        .expect("a code")
        .1
        .into_owned();
    let tokens: serde_json::Value = client
        .post(format!("{}/access_token", backend.fake.base_url()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", defaults.client_id.as_str()),
            ("client_secret", defaults.client_secret.as_str()),
            ("code", &code),
            ("redirect_uri", &redirect_uri),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    tokens["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned()
}
