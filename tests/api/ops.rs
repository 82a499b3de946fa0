//! What an operator relies on: any port works with no setting, `/metrics` on its own listener
//! only, the request id, and log lines that name a device flow without its id.

use crate::helpers::{TestApp, browser, captured_logs, quick_device_fake, text, wait_for};
use fake_webex::FakeConfig;
use reqwest::StatusCode;
use std::time::Duration;
use tokio::net::TcpListener;
use webex_oauth_axum::App;
use webex_oauth_axum::config::Config;

#[crate::support::test]
async fn demo_grant_works_on_a_random_port_with_no_setting() {
    // Only the store is set, so the test writes no file into the project; nothing names a port.
    let config = Config::from_lookup(|key| (key == "SESSION_STORE").then(|| "memory".into()))
        .expect("the defaults are a configuration");
    assert!(config.redirect_uri_follows_port);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = App::with_listener(config, listener).await.unwrap();
    let want = format!("http://localhost:{port}/oauth");
    assert_eq!(app.config().redirect_uri.as_str(), want);
    assert_eq!(
        app.config().public_origin(),
        format!("http://localhost:{port}")
    );
    let fake = app.fake().expect("demo mode").clone();
    let mut app = TestApp::run(app, fake);
    // The browser opens the URL the log prints; the fake sends it back to that port.
    app.base = format!("http://localhost:{port}");
    app.login().await;
    let spaces = app.get("/spaces").await;
    assert_eq!(spaces.status(), StatusCode::OK);
    app.stop().await;
}

/// The value of the sample of `name` whose labels include every one of `labels`.
fn sample(scrape: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (labels_part, value) = match rest.strip_prefix('{') {
            Some(rest) => rest.split_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        labels
            .iter()
            .all(|(k, v)| labels_part.split(',').any(|l| l == format!("{k}=\"{v}\"")))
            .then(|| value.trim().parse().ok())?
    })
}

#[crate::support::test]
async fn metrics_are_scraped_on_their_own_listener_after_a_login() {
    let app = TestApp::spawn_with(quick_device_fake(), |config| {
        config.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let metrics = app.metrics.expect("METRICS_ADDR set: a listener");
    assert_ne!(metrics, app.addr);
    app.login().await;
    app.fake.expire_access_tokens();
    assert_eq!(app.get("/spaces").await.status(), StatusCode::OK);
    app.start_device_flow_as(&app.client).await;
    assert_eq!(
        app.get("/no/such/page").await.status(),
        StatusCode::NOT_FOUND
    );
    // Never on the public listener.
    assert_eq!(app.get("/metrics").await.status(), StatusCode::NOT_FOUND);
    // Repeats count on the same series (the handles are looked up once, then reused).
    for _ in 0..3 {
        assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
        assert_eq!(app.get("/spaces").await.status(), StatusCode::OK);
    }

    let scrape_url = format!("http://{metrics}/metrics");
    let response = browser().get(&scrape_url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let scrape = text(response).await;
    let at_least_one = |name: &str, labels: &[(&str, &str)]| {
        let value = sample(&scrape, name, labels);
        assert!(
            value.is_some_and(|v| v >= 1.0),
            "{name} {labels:?}: {value:?}\n{scrape}"
        );
    };
    let requests = "webex_oauth_http_requests_total";
    at_least_one(
        requests,
        &[("route", "/oauth"), ("method", "GET"), ("status", "303")],
    );
    at_least_one(
        requests,
        &[("route", "/spaces"), ("method", "GET"), ("status", "200")],
    );
    at_least_one(
        requests,
        &[("route", "/sign-in"), ("method", "POST"), ("status", "303")],
    );
    let healthz = sample(
        &scrape,
        requests,
        &[("route", "/healthz"), ("method", "GET"), ("status", "200")],
    );
    assert!(healthz.is_some_and(|v| v >= 3.0), "{healthz:?}");
    // A path no route matched is counted under one label, never by its raw path.
    at_least_one(requests, &[("route", "unmatched"), ("status", "404")]);
    assert!(!scrape.contains("/no/such/page"));
    at_least_one(
        "webex_oauth_http_request_duration_seconds_count",
        &[("route", "/granted"), ("method", "GET")],
    );
    at_least_one(
        "webex_oauth_webex_requests_total",
        &[("endpoint", "access_token"), ("status", "200")],
    );
    at_least_one(
        "webex_oauth_webex_requests_total",
        &[("endpoint", "rooms"), ("status", "401")],
    );
    let rooms = sample(
        &scrape,
        "webex_oauth_webex_requests_total",
        &[("endpoint", "rooms"), ("status", "200")],
    );
    assert!(rooms.is_some_and(|v| v >= 4.0), "{rooms:?}");
    at_least_one(
        "webex_oauth_webex_request_duration_seconds_bucket",
        &[("endpoint", "device/authorize"), ("le", "+Inf")],
    );
    at_least_one(
        "webex_oauth_token_refreshes_total",
        &[("outcome", "refreshed")],
    );
    at_least_one("webex_oauth_device_flows_started_total", &[]);
    at_least_one("webex_oauth_device_flows_pending", &[]);
    assert!(scrape.contains("# TYPE webex_oauth_http_request_duration_seconds histogram"));

    // A denied flow ends with its outcome counted.
    let user_code = app.fake.last_user_code().unwrap();
    assert!(app.fake.deny_device(&user_code));
    app.wait_for_device_status_as(&app.client, "denied", Duration::from_secs(10))
        .await;
    let scrape = text(browser().get(&scrape_url).send().await.unwrap()).await;
    let ended = sample(
        &scrape,
        "webex_oauth_device_flows_ended_total",
        &[("outcome", "denied")],
    );
    assert!(ended.is_some_and(|v| v >= 1.0), "{scrape}");
    app.stop().await;
}

#[crate::support::test]
async fn without_metrics_addr_nothing_listens() {
    let app = TestApp::spawn().await;
    assert!(app.metrics.is_none());
    assert_eq!(app.get("/metrics").await.status(), StatusCode::NOT_FOUND);
}

#[crate::support::test]
async fn the_request_id_is_kept_or_made_and_returned() {
    let app = TestApp::spawn().await;
    let id = format!("ops-test-{}", app.addr.port());
    let response = app
        .client
        .get(app.url("/"))
        .header("x-request-id", &id)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], id.as_str());
    let made = |r: &reqwest::Response| r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let (a, b) = (made(&app.get("/").await), made(&app.get("/").await));
    assert_eq!(a.len(), 36, "{a}");
    assert_ne!(a, b);
    // An id that could garble the log is replaced, not echoed.
    let odd = app
        .client
        .get(app.url("/"))
        .header("x-request-id", "two words")
        .send()
        .await
        .unwrap();
    assert_eq!(made(&odd).len(), 36);
    // The id is in the request's log lines, with a sub-millisecond latency.
    let wanted = format!("request_id={id}");
    wait_for("the response line", Duration::from_secs(5), || {
        let logs = captured_logs();
        let found = logs
            .lines()
            .any(|l| l.contains(&wanted) && l.contains("response") && l.contains("latency_ms="));
        async move { found }
    })
    .await;
}

#[crate::support::test]
async fn health_checks_log_at_debug_and_pages_at_info() {
    let app = TestApp::spawn().await;
    let (health, page) = (
        format!("hc-{}", app.addr.port()),
        format!("pg-{}", app.addr.port()),
    );
    for (path, id) in [("/healthz", &health), ("/", &page)] {
        let response = app
            .client
            .get(app.url(path))
            .header("x-request-id", id)
            .send();
        assert_eq!(response.await.unwrap().status(), StatusCode::OK);
    }
    let line = |id: &str| {
        let wanted = format!("request_id={id}}}");
        captured_logs()
            .lines()
            .find(|l| l.contains(&wanted) && l.contains(" response "))
            .map(str::to_owned)
    };
    wait_for("both response lines", Duration::from_secs(5), || {
        let both = line(&health).is_some() && line(&page).is_some();
        async move { both }
    })
    .await;
    assert!(
        line(&health).unwrap().contains("DEBUG"),
        "{:?}",
        line(&health)
    );
    assert!(line(&page).unwrap().contains(" INFO "), "{:?}", line(&page));
}

#[crate::support::test]
async fn device_flow_log_lines_carry_a_short_flow_id() {
    let app = TestApp::spawn_with(
        FakeConfig {
            device_interval: 1,
            ..FakeConfig::default()
        },
        |_| {},
    )
    .await;
    let id = format!("flow-{}", app.addr.port());
    let response = app
        .client
        .post(app.url("/sign-in"))
        .header("Origin", &app.base)
        .header("x-request-id", &id)
        .form(&[("", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let started = || {
        captured_logs()
            .lines()
            .find(|l| l.contains(&format!("request_id={id}")) && l.contains("device flow started"))
            .map(str::to_owned)
    };
    wait_for("the start line", Duration::from_secs(5), || {
        let found = started().is_some();
        async move { found }
    })
    .await;
    let line = started().unwrap();
    let short = line
        .split("flow=")
        .nth(1)
        .and_then(|rest| rest.get(..8))
        .expect("a flow field");
    assert!(short.bytes().all(|b| b.is_ascii_hexdigit()), "{line}");
    // The poller's lines carry the same short id in their span.
    let user_code = app.fake.last_user_code().unwrap();
    assert!(app.fake.approve_device(&user_code));
    app.wait_for_device_status_as(&app.client, "granted", Duration::from_secs(10))
        .await;
    let span = format!("device_flow{{flow={short}}}");
    wait_for("the poller's last line", Duration::from_secs(5), || {
        let found = captured_logs()
            .lines()
            .any(|l| l.contains(&span) && l.contains("device flow finished"));
        async move { found }
    })
    .await;
}
