//! Per-client caps on device sign-ins (issue 27, item 5): one address has at most
//! `MAX_PENDING_FLOWS_PER_CLIENT` pending, and an IPv6 client counts by its /64.

use crate::helpers::{TestApp, location, quick_device_fake, text};
use fake_webex::{Counter, FakeConfig};
use reqwest::{Client, StatusCode};
use std::time::Duration;

/// A browser (its own cookie jar, no redirects followed) on the loopback address `ip`.
fn browser_from(ip: &str) -> Client {
    Client::builder()
        .local_address(ip.parse::<std::net::IpAddr>().unwrap())
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

#[crate::support::test]
async fn a_sixth_pending_sign_in_from_one_address_gets_429_and_never_reaches_webex() {
    let app = TestApp::spawn_with(quick_device_fake(), |_| {}).await;
    assert_eq!(app.probe.config().max_pending_flows_per_client, 5);
    let browsers: Vec<Client> = (0..6).map(|_| browser_from("127.0.0.2")).collect();
    let mut codes = Vec::new();
    for browser in &browsers[..5] {
        codes.push(app.start_device_flow_as(browser).await);
    }
    assert_eq!(app.fake.count(Counter::DeviceAuthorizations), 5);

    let refused = app.post_as(&browsers[5], "/sign-in").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        refused.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = text(refused).await;
    assert!(page.contains("Too many sign-ins in progress"), "{page}");
    assert_eq!(
        app.fake.count(Counter::DeviceAuthorizations),
        5,
        "nothing was started at Webex"
    );
    assert_eq!(app.probe.active_pollers(), 5);

    // Another address is not affected.
    app.start_device_flow_as(&browser_from("127.0.0.3")).await;

    // A flow that ends frees its place: a cancelled one, then a granted one.
    let cancel = app.post_as(&browsers[0], "/sign-in/cancel").await;
    assert_eq!(location(&cancel), "/");
    app.start_device_flow_as(&browsers[5]).await;
    assert_eq!(
        app.post_as(&browser_from("127.0.0.2"), "/sign-in")
            .await
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert!(app.fake.approve_device(&codes[1]));
    app.wait_for_device_status_as(&browsers[1], "granted", Duration::from_secs(10))
        .await;
    app.start_device_flow_as(&browser_from("127.0.0.2")).await;
    // Signing in again from a browser with a pending flow replaces it: still five.
    app.start_device_flow_as(&browsers[2]).await;
    assert_eq!(
        app.post_as(&browser_from("127.0.0.2"), "/sign-in")
            .await
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(app.fake.count(Counter::DeviceAuthorizations), 9);
    app.stop().await;
}

#[crate::support::test]
async fn an_ipv6_client_is_limited_by_its_slash_64_and_another_64_is_not() {
    let app = TestApp::spawn_with(FakeConfig::default(), |c| {
        c.rate_limit_per_minute = 2;
        c.client_ip_header = Some(reqwest::header::HeaderName::from_static("x-forwarded-for"));
    })
    .await;
    // Every request comes from the proxy (127.0.0.1); the clients differ in the header.
    let via = |client: &'static str| {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(app.url("/login"))
            .header("x-forwarded-for", client)
            .send()
    };
    for client in ["2001:db8:1:2::1", "2001:db8:1:2:aaaa:bbbb:cccc:dddd"] {
        assert_eq!(via(client).await.unwrap().status(), StatusCode::SEE_OTHER);
    }
    assert_eq!(
        via("2001:db8:1:2::99").await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the same /64 shares one quota"
    );
    assert_eq!(
        via("2001:db8:1:3::1").await.unwrap().status(),
        StatusCode::SEE_OTHER,
        "another /64 has its own"
    );
    app.stop().await;
}
