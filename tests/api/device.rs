//! The device flow: pending then granted, polling cadence, slow_down, denial, expiry, isolation.

use crate::helpers::{
    TestApp, app_with_an_expired_device_flow, browser, location, quick_device_fake, text, wait_for,
};
use fake_webex::{Counter, Endpoint, Fault};
use reqwest::StatusCode;
use std::time::{Duration, Instant};

/// Waits until the flow's poller task has ended (so no poll can follow).
async fn wait_for_pollers_to_end(app: &TestApp) {
    wait_for("the poller to end", Duration::from_secs(10), || async {
        app.probe.active_pollers() == 0
    })
    .await;
}

fn gaps(polls: &[Instant]) -> Vec<Duration> {
    polls.windows(2).map(|w| w[1] - w[0]).collect()
}

#[crate::support::test]
async fn sign_in_shows_the_qr_code_and_user_code_then_approval_signs_in() {
    let app = TestApp::spawn_with(quick_device_fake(), |_| {}).await;
    let user_code = app.start_device_flow_as(&app.client).await;

    let page = app.get("/sign-in").await;
    assert_eq!(page.status(), StatusCode::OK);
    let body = text(page).await;
    assert!(body.contains(&user_code));
    assert!(body.contains("data:image/png;base64,"));
    let complete = app.fake.verification_uri_complete(&user_code).unwrap();
    assert!(
        body.contains(&crate::helpers::html_escape(&complete)),
        "the page links the complete URI"
    );

    let (status, json) = app.device_status_as(&app.client).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["status"], "pending");
    assert!(json["expires_in"].as_u64().unwrap() > 200);

    // Wait for at least one pending poll, then approve.
    wait_for("a first poll", Duration::from_secs(5), || async {
        !app.fake.device_polls(&user_code).is_empty()
    })
    .await;
    assert!(app.fake.approve_device(&user_code));
    app.wait_for_device_status_as(&app.client, "granted", Duration::from_secs(10))
        .await;

    let sign_in = app.get("/sign-in").await;
    assert_eq!(location(&sign_in), "/granted");
    let profile = app.get("/whoami").await;
    assert_eq!(profile.status(), StatusCode::OK);
    assert!(text(profile).await.contains("Ada Lovelace"));
    assert!(
        (app.probe.flow_count().await == 0),
        "the tokens left the flow record for the session"
    );
}

#[crate::support::test]
async fn polls_never_come_sooner_than_the_interval_and_stop_after_a_final_state() {
    let app = TestApp::spawn_with(quick_device_fake(), |_| {}).await;
    let started = Instant::now();
    let user_code = app.start_device_flow_as(&app.client).await;
    wait_for("three polls", Duration::from_secs(10), || async {
        app.fake.device_polls(&user_code).len() >= 3
    })
    .await;
    app.fake.approve_device(&user_code);
    app.wait_for_device_status_as(&app.client, "granted", Duration::from_secs(10))
        .await;
    wait_for_pollers_to_end(&app).await;

    let polls = app.fake.device_polls(&user_code);
    assert!(
        polls[0] - started >= Duration::from_secs(1),
        "first poll only after the interval"
    );
    for gap in gaps(&polls) {
        assert!(
            gap >= Duration::from_secs(1),
            "a poll came {gap:?} after the previous one"
        );
    }
    let count = app.fake.device_polls(&user_code).len();
    assert_eq!(
        app.fake.count(Counter::DevicePolls),
        count,
        "one flow, one poller"
    );
}

#[crate::support::test]
async fn slow_down_adds_five_seconds_to_this_and_later_polls() {
    let app = TestApp::spawn_with(quick_device_fake(), |_| {}).await;
    app.fake.inject(Endpoint::DeviceToken, Fault::SlowDown);
    let user_code = app.start_device_flow_as(&app.client).await;
    wait_for("three polls", Duration::from_secs(20), || async {
        app.fake.device_polls(&user_code).len() >= 3
    })
    .await;
    let (_, json) = app.device_status_as(&app.client).await;
    assert_eq!(json["slowed_down"], true);
    let polls = app.fake.device_polls(&user_code);
    for gap in gaps(&polls[..3]) {
        assert!(
            gap >= Duration::from_secs(6),
            "after slow_down a poll came {gap:?} after the previous one"
        );
    }
    app.post("/sign-in/cancel").await;
}

#[crate::support::test]
async fn denial_ends_the_flow_and_start_again_works() {
    let app = TestApp::spawn_with(quick_device_fake(), |_| {}).await;
    let user_code = app.start_device_flow_as(&app.client).await;
    assert!(app.fake.deny_device(&user_code));
    app.wait_for_device_status_as(&app.client, "denied", Duration::from_secs(10))
        .await;
    wait_for_pollers_to_end(&app).await;
    let page = text(app.get("/sign-in").await).await;
    assert!(page.contains("denied"));
    assert!(page.contains("/sign-in"), "offers to start again");

    let second = app.start_device_flow_as(&app.client).await;
    assert_ne!(second, user_code);
    let (_, json) = app.device_status_as(&app.client).await;
    assert_eq!(json["status"], "pending");
    assert_eq!(
        app.get("/granted").await.status(),
        StatusCode::SEE_OTHER,
        "denied means no tokens"
    );
}

#[crate::support::test]
async fn an_unapproved_code_expires_at_its_deadline() {
    let app = app_with_an_expired_device_flow().await;
    wait_for_pollers_to_end(&app).await;
    assert!(text(app.get("/sign-in").await).await.contains("expired"));
}

#[crate::support::test]
async fn a_new_sign_in_cancels_the_old_poller_and_cancel_stops_it() {
    let app = TestApp::spawn_with(quick_device_fake(), |_| {}).await;
    let first = app.start_device_flow_as(&app.client).await;
    let second = app.start_device_flow_as(&app.client).await;
    assert_eq!(app.probe.active_pollers(), 1);
    assert_eq!(app.probe.flow_count().await, 1);
    let cancel = app.post("/sign-in/cancel").await;
    assert_eq!(cancel.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.probe.active_pollers(), 0);
    let (status, _) = app.device_status_as(&app.client).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(app.fake.device_polls(&first).len() <= 1);
    assert!(app.fake.device_polls(&second).len() <= 1);
}

#[crate::support::test]
async fn one_session_cannot_see_or_claim_another_sessions_flow() {
    let app = TestApp::spawn_with(quick_device_fake(), |_| {}).await;
    let user_code = app.start_device_flow_as(&app.client).await;
    let other = browser();
    let (status, _) = app.device_status_as(&other).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        location(&other.get(app.url("/sign-in")).send().await.unwrap()),
        "/"
    );

    app.fake.approve_device(&user_code);
    app.wait_for_device_status_as(&app.client, "granted", Duration::from_secs(10))
        .await;
    assert_eq!(
        other.get(app.url("/whoami")).send().await.unwrap().status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(app.get("/whoami").await.status(), StatusCode::OK);
}

#[crate::support::test]
async fn logout_cancels_a_pending_flow() {
    let app = TestApp::spawn_with(quick_device_fake(), |_| {}).await;
    app.start_device_flow_as(&app.client).await;
    assert_eq!(app.probe.active_pollers(), 1);
    app.post("/logout").await;
    assert_eq!(app.probe.active_pollers(), 0);
    assert!((app.probe.flow_count().await == 0));
}

#[crate::support::test]
async fn transient_poll_failures_are_retried_and_three_in_a_row_end_in_error() {
    let app = TestApp::spawn_with(quick_device_fake(), |_| {}).await;
    // One 503 then pending: the flow goes on.
    app.fake.inject(Endpoint::DeviceToken, Fault::Status(503));
    let user_code = app.start_device_flow_as(&app.client).await;
    wait_for("two polls", Duration::from_secs(10), || async {
        app.fake.device_polls(&user_code).len() >= 2
    })
    .await;
    assert_eq!(
        app.device_status_as(&app.client).await.1["status"],
        "pending"
    );
    app.fake.approve_device(&user_code);
    app.wait_for_device_status_as(&app.client, "granted", Duration::from_secs(15))
        .await;

    let other = browser();
    for fault in [
        Fault::Status(500),
        Fault::HtmlStatus(502),
        Fault::InvalidJson,
    ] {
        app.fake.inject(Endpoint::DeviceToken, fault);
    }
    app.start_device_flow_as(&other).await;
    app.wait_for_device_status_as(&other, "error", Duration::from_secs(20))
        .await;
}

#[crate::support::test]
async fn a_429_while_polling_waits_retry_after_and_goes_on() {
    let app = TestApp::spawn_with(quick_device_fake(), |_| {}).await;
    app.fake
        .inject(Endpoint::DeviceToken, Fault::RateLimited { retry_after: 2 });
    let user_code = app.start_device_flow_as(&app.client).await;
    wait_for("two polls", Duration::from_secs(10), || async {
        app.fake.device_polls(&user_code).len() >= 2
    })
    .await;
    let polls = app.fake.device_polls(&user_code);
    assert!(polls[1] - polls[0] >= Duration::from_secs(2));
    assert_eq!(
        app.device_status_as(&app.client).await.1["status"],
        "pending"
    );
}
