//! Pages without tokens, unknown paths, odd cookies, demo mode, and what reaches the logs.

use crate::helpers::{
    TestApp, browser, captured_logs, location, quick_device_fake, text, wait_for,
};
use fake_webex::Counter;
use reqwest::StatusCode;
use std::time::Duration;

#[crate::support::test]
async fn landing_and_health() {
    let app = TestApp::spawn().await;
    let response = app.get("/").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = text(response).await;
    assert!(body.contains("href=\"/login\""));
    assert!(body.contains("action=\"/sign-in\""));
    let health = app.get("/healthz").await;
    assert_eq!(
        (health.status(), text(health).await.as_str()),
        (StatusCode::OK, "ok")
    );
    for asset in ["/static/style.css", "/static/app.js", "/static/favicon.svg"] {
        assert_eq!(app.get(asset).await.status(), StatusCode::OK, "{asset}");
    }
}

#[crate::support::test]
async fn no_route_shows_data_without_tokens() {
    let app = TestApp::spawn().await;
    for path in ["/granted", "/spaces", "/whoami"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(location(&response), "/", "{path}");
    }
    assert_eq!(
        app.get("/device/status").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(location(&app.get("/sign-in").await), "/");
    assert_eq!(
        app.fake.count(Counter::RoomsCalls) + app.fake.count(Counter::PeopleCalls),
        0
    );
}

#[crate::support::test]
async fn unknown_paths_and_wrong_methods_get_html_pages() {
    let app = TestApp::spawn().await;
    let response = app.get("/no/such/page").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(text(response).await.contains("Page not found"));

    let response = app.client.delete(app.url("/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(text(response).await.contains("Method not allowed"));
    let response = app.get("/logout").await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);

    // A same-origin post (a cross-site one is refused before its body is read).
    let response = app
        .client
        .post(app.url("/sign-in"))
        .header("Sec-Fetch-Site", "same-origin")
        .body(vec![b'x'; 64 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(text(response).await.contains("<html"));
}

#[crate::support::test]
async fn a_garbage_or_unknown_session_cookie_is_no_session() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for cookie in [
        "webex_oauth_session=garbage",
        "webex_oauth_session=AAAAAAAAAAAAAAAAAAAAAA",
        "webex_oauth_session=%FF%00;;",
    ] {
        let response = client
            .get(app.url("/spaces"))
            .header("Cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{cookie}");
        let response = client
            .get(app.url("/"))
            .header("Cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{cookie}");
    }
}

#[crate::support::test]
async fn demo_mode_runs_both_flows_on_the_embedded_fake() {
    let app = TestApp::demo().await;
    assert!(app.probe.config().is_demo());
    assert!(
        text(app.get("/").await)
            .await
            .to_lowercase()
            .contains("demo")
    );

    app.login().await;
    let spaces = text(app.get("/spaces").await).await;
    assert!(spaces.contains("Design review"));

    // The device flow, approved on the fake's own page as a phone would.
    let phone = browser();
    let user_code = app.start_device_flow_as(&app.client).await;
    let approve_page = app.fake.verification_uri_complete(&user_code).unwrap();
    let page = phone.get(&approve_page).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(text(page).await.contains(&user_code));
    let approved = phone
        .post(format!("{}/verify", app.fake.origin()))
        .form(&[("user_code", user_code.as_str()), ("decision", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), StatusCode::OK);
    app.wait_for_device_status_as(&app.client, "granted", Duration::from_secs(15))
        .await;
    assert!(
        text(app.get("/whoami").await)
            .await
            .contains("Ada Lovelace")
    );
}

#[crate::support::test]
async fn no_token_code_or_secret_reaches_the_logs() {
    let app = TestApp::spawn_with(quick_device_fake(), |_| {}).await;
    app.login().await;
    assert_eq!(app.get("/spaces").await.status(), StatusCode::OK);
    app.fake.expire_access_tokens();
    assert_eq!(app.get("/whoami").await.status(), StatusCode::OK);

    let phone = browser();
    let user_code = app.start_device_flow_as(&phone).await;
    wait_for("a poll", Duration::from_secs(5), || async {
        !app.fake.device_polls(&user_code).is_empty()
    })
    .await;
    app.fake.approve_device(&user_code);
    app.wait_for_device_status_as(&phone, "granted", Duration::from_secs(10))
        .await;
    assert_eq!(
        phone.get(app.url("/whoami")).send().await.unwrap().status(),
        StatusCode::OK
    );

    let logs = captured_logs();
    assert!(
        logs.contains("device flow finished"),
        "the logs were captured"
    );
    let secrets = app.fake.issued_secrets();
    assert!(
        secrets.len() >= 6,
        "codes, tokens, device code and client secret: {}",
        secrets.len()
    );
    for secret in secrets {
        assert!(!logs.contains(&secret), "a secret reached the logs");
    }
}

#[crate::support::test]
async fn every_page_carries_the_security_headers_and_pages_are_not_cached() {
    let app = TestApp::spawn().await;
    for path in ["/", "/no/such/page", "/healthz"] {
        let response = app.get(path).await;
        let h = response.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{path}: {csp}"
        );
        assert!(csp.contains("img-src 'self' data:"), "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["cache-control"], "no-store", "{path}");
    }
    // Static files set their own caching (tests/api/assets.rs checks it).
    let css = app.get("/static/style.css").await;
    assert_eq!(css.headers()["cache-control"], "public, no-cache");
}

#[crate::support::test]
async fn cross_site_posts_are_refused() {
    let app = TestApp::spawn_with(quick_device_fake(), |_| {}).await;
    app.login().await;
    for (name, value) in [
        ("Origin", "http://evil.example"),
        ("Origin", "null"),
        ("Sec-Fetch-Site", "cross-site"),
    ] {
        for path in ["/sign-in", "/logout", "/sign-in/cancel"] {
            let response = app
                .client
                .post(app.url(path))
                .header(name, value)
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::FORBIDDEN,
                "{path} with {name}: {value}"
            );
            assert!(text(response).await.contains("another site"));
        }
    }
    // Neither header is not a browser (and Referer is not consulted): it passes, as
    // `abuse::a_post_without_browser_headers_passes_and_a_foreign_origin_does_not` shows.
    assert_eq!(app.fake.count(Counter::DeviceAuthorizations), 0);
    assert_eq!(
        app.get("/granted").await.status(),
        StatusCode::OK,
        "still signed in"
    );
    // What a current browser sends on a same-origin form post under Referrer-Policy: no-referrer.
    let response = app
        .client
        .post(app.url("/sign-in/cancel"))
        .header("Sec-Fetch-Site", "same-origin")
        .header("Origin", "null")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    // Same-origin Referer (no Origin) is accepted.
    let response = app
        .client
        .post(app.url("/logout"))
        .header("Referer", app.url("/granted"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

#[crate::support::test]
async fn an_overlong_query_is_a_414_page() {
    let app = TestApp::spawn().await;
    let response = app.get(&format!("/oauth?state={}", "a".repeat(5000))).await;
    assert_eq!(response.status(), StatusCode::URI_TOO_LONG);
    assert!(text(response).await.contains("Address too long"));
    assert_eq!(
        app.get("/oauth?state=short").await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[crate::support::test]
async fn past_the_pending_flow_cap_new_sign_ins_get_a_503_page() {
    let app = TestApp::spawn_with(quick_device_fake(), |config| config.max_pending_flows = 2).await;
    let (first, second, third) = (browser(), browser(), browser());
    app.start_device_flow_as(&first).await;
    app.start_device_flow_as(&second).await;
    let response = app.post_as(&third, "/sign-in").await;
    let (kind, status, body) = crate::helpers::problem_after_post(&app, &third, response).await;
    assert_eq!((kind.as_str(), status), ("busy", StatusCode::OK));
    assert!(body.contains("Too many sign-ins"));
    assert_eq!(
        app.fake.count(Counter::DeviceAuthorizations),
        2,
        "Webex was not asked for a third code"
    );
    // One session restarting its own flow is not blocked by the cap.
    assert_eq!(
        app.post_as(&first, "/sign-in").await.status(),
        StatusCode::SEE_OTHER
    );
    // When a flow ends, room frees up.
    app.post_as(&second, "/sign-in/cancel").await;
    assert_eq!(
        app.post_as(&third, "/sign-in").await.status(),
        StatusCode::SEE_OTHER
    );
}
