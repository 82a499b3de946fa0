//! Property tests: hostile callbacks and random requests never get a 5xx, and no callback
//! without this session's state ever reaches Webex's token endpoint.

use crate::helpers::{TestApp, browser, location};
use fake_webex::Counter;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use reqwest::{Method, StatusCode};

/// Starts a login in `browser` and returns its state.
async fn pending_state(app: &TestApp, browser: &reqwest::Client) -> String {
    let login = browser.get(app.url("/login")).send().await.unwrap();
    let url = url::Url::parse(&location(&login)).unwrap();
    url.query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned()
}

fn value(other_state: String) -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        Just(other_state),
        "[A-Za-z0-9_-]{43}",
        "(%[0-9A-Fa-f]{2}){1,20}",
        "[ -~]{1000,3000}",
        Just(String::new()),
    ]
}

fn query(other_state: String) -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("code".to_owned()),
        Just("state".to_owned()),
        Just("error".to_owned()),
        Just("error_description".to_owned()),
        "[a-z_]{1,12}",
    ];
    let encoded = prop::collection::vec((key, value(other_state)), 0..6).prop_map(|pairs| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            query.append_pair(&k, &v);
        }
        query.finish()
    });
    prop_oneof![encoded, "[ -~]{0,300}"]
}

#[crate::support::test]
fn hostile_callbacks_never_get_a_5xx_or_a_token_exchange() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(TestApp::spawn());
    let other = browser();
    let other_state = rt.block_on(pending_state(&app, &other));
    let mut runner = TestRunner::new(Config {
        cases: 300,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&query(other_state), |query| {
            rt.block_on(async {
                // This browser has a login pending, whose state the query never holds.
                let ours = pending_state(&app, &app.client).await;
                prop_assume!(!query.contains(&ours));
                let response = app
                    .client
                    .get(format!("{}/oauth?{query}", app.base))
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                prop_assert!(!status.is_server_error(), "{status} for ?{query}");
                prop_assert!(status.is_client_error(), "{status} for ?{query}");
                prop_assert_eq!(app.fake.count(Counter::CodeExchanges), 0);
                Ok(())
            })
        })
        .unwrap();
}

#[crate::support::test]
fn random_paths_and_methods_never_get_a_5xx() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(TestApp::spawn());
    let methods = prop_oneof![
        Just(Method::GET),
        Just(Method::POST),
        Just(Method::PUT),
        Just(Method::DELETE),
        Just(Method::PATCH),
        Just(Method::HEAD),
        Just(Method::OPTIONS),
    ];
    let paths = prop_oneof![
        prop::sample::select(vec![
            "/",
            "/login",
            "/oauth",
            "/granted",
            "/spaces",
            "/whoami",
            "/sign-in",
            "/sign-in/cancel",
            "/device/status",
            "/logout",
            "/healthz",
            "/static/style.css",
            "/static/../Cargo.toml",
        ])
        .prop_map(str::to_owned),
        "/[A-Za-z0-9/%._~-]{0,120}",
    ];
    let mut runner = TestRunner::new(Config {
        cases: 300,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(
            &(methods, paths, any::<bool>()),
            |(method, path, same_origin)| {
                rt.block_on(async {
                    let mut request = app
                        .client
                        .request(method.clone(), format!("{}{path}", app.base));
                    if same_origin {
                        request = request.header("Sec-Fetch-Site", "same-origin");
                    }
                    let status = request.send().await.unwrap().status();
                    prop_assert!(!status.is_server_error(), "{status} for {method} {path}");
                    prop_assert!(
                        status != StatusCode::OK || method == Method::GET || method == Method::HEAD
                    );
                    Ok(())
                })
            },
        )
        .unwrap();
}
