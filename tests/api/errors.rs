//! Upstream faults on each endpoint give the right page, and never a raw body.

use crate::helpers::{
    TestApp, browser, captured_logs, html_escape, location, problem_after_post, quick_device_fake,
    text, wait_for,
};
use fake_webex::{Counter, Endpoint, FakeConfig, Fault};
use reqwest::StatusCode;
use std::time::Duration;
use tokio::net::TcpListener;
use webex_oauth_axum::test_support::{Problem, problems};

/// The page for `fault` injected on `endpoint`, reached by `visit`.
async fn page_for(
    app: &TestApp,
    endpoint: Endpoint,
    fault: Fault,
    path: &str,
) -> (StatusCode, String) {
    app.fake.inject(endpoint, fault);
    let response = app.get(path).await;
    let status = response.status();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/html"),
        "{path}: {content_type}"
    );
    (status, text(response).await)
}

#[crate::support::test]
async fn token_endpoint_faults_give_the_right_page() {
    let cases = [
        (Fault::Status(500), StatusCode::BAD_GATEWAY),
        (Fault::HtmlStatus(502), StatusCode::BAD_GATEWAY),
        (Fault::InvalidJson, StatusCode::BAD_GATEWAY),
        (Fault::MissingFields, StatusCode::BAD_GATEWAY),
        (
            Fault::Delay(Duration::from_secs(3)),
            StatusCode::GATEWAY_TIMEOUT,
        ),
        (
            Fault::RateLimited { retry_after: 5 },
            StatusCode::SERVICE_UNAVAILABLE,
        ),
    ];
    let app = TestApp::spawn().await;
    for (fault, want) in cases {
        let callback = app.authorize(&app.client, "accept").await;
        app.fake.inject(Endpoint::AccessToken, fault.clone());
        let response = app.client.get(&callback).send().await.unwrap();
        assert_eq!(response.status(), want, "{fault:?}");
        let body = text(response).await;
        assert!(
            body.contains("<html") && !body.contains("<html>502"),
            "{fault:?}: no raw body"
        );
        assert_eq!(
            app.get("/granted").await.status(),
            StatusCode::SEE_OTHER,
            "{fault:?}: no tokens"
        );
    }
}

#[crate::support::test]
async fn webex_errors_show_the_tracking_id() {
    let app = TestApp::spawn().await;
    app.login().await;
    let (status, body) = page_for(&app, Endpoint::Rooms, Fault::Status(500), "/spaces").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(body.contains("ROUTER_"), "the trackingId is on the page");
}

#[crate::support::test]
async fn rooms_and_people_faults_give_the_right_page() {
    let app = TestApp::spawn().await;
    app.login().await;
    for path in ["/spaces", "/whoami"] {
        let endpoint = if path == "/spaces" {
            Endpoint::Rooms
        } else {
            Endpoint::PeopleMe
        };
        for (fault, want) in [
            (Fault::Status(500), StatusCode::BAD_GATEWAY),
            (Fault::HtmlStatus(503), StatusCode::BAD_GATEWAY),
            (Fault::InvalidJson, StatusCode::BAD_GATEWAY),
            (Fault::MissingFields, StatusCode::BAD_GATEWAY),
            (
                Fault::Delay(Duration::from_secs(3)),
                StatusCode::GATEWAY_TIMEOUT,
            ),
            (Fault::Forbidden, StatusCode::FORBIDDEN),
        ] {
            let (status, body) = page_for(&app, endpoint, fault.clone(), path).await;
            assert_eq!(status, want, "{path} {fault:?}");
            if want == StatusCode::FORBIDDEN {
                assert!(
                    body.contains("scope"),
                    "the 403 page names the scope problem"
                );
            }
        }
        // Still fine afterwards.
        assert_eq!(app.get(path).await.status(), StatusCode::OK);
    }
}

#[crate::support::test]
async fn pagination_failures_and_tricks() {
    let app = TestApp::spawn().await;
    app.login().await;
    // A failing second page is an error, not half a list.
    app.fake.inject(Endpoint::Rooms, Fault::Pass);
    let (status, _) = page_for(&app, Endpoint::Rooms, Fault::Status(500), "/spaces").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);

    // An empty page that still links on is followed.
    let before = app.fake.count(Counter::RoomsCalls);
    let (status, body) = page_for(&app, Endpoint::Rooms, Fault::EmptyPageWithNext, "/spaces").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Design review"));
    assert_eq!(app.fake.count(Counter::RoomsCalls) - before, 3);

    // A next link to another host is not followed (it would get the token).
    let before = app.fake.count(Counter::RoomsCalls);
    let (status, _) = page_for(&app, Endpoint::Rooms, Fault::ForeignNextLink, "/spaces").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(app.fake.count(Counter::RoomsCalls) - before, 1);
}

#[crate::support::test]
async fn an_empty_room_list_shows_the_empty_state() {
    let fake = FakeConfig {
        room_count: 0,
        ..FakeConfig::default()
    };
    let app = TestApp::spawn_with(fake, |_| {}).await;
    app.login().await;
    let response = app.get("/spaces").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(text(response).await.contains("not in any spaces"));
}

#[crate::support::test]
async fn device_authorize_faults_give_the_right_page() {
    let app = TestApp::spawn_with(quick_device_fake(), |_| {}).await;
    for (fault, want) in [
        (Fault::Status(500), "webex-error"),
        (Fault::Status(400), "webex-error"),
        (Fault::InvalidJson, "webex-unexpected"),
        (Fault::MissingFields, "webex-unexpected"),
        (Fault::Delay(Duration::from_secs(3)), "webex-timeout"),
        (Fault::RateLimited { retry_after: 5 }, "webex-rate-limited"),
    ] {
        app.fake.inject(Endpoint::DeviceAuthorize, fault.clone());
        let response = app.post("/sign-in").await;
        let (kind, status, body) = problem_after_post(&app, &app.client, response).await;
        assert_eq!((kind.as_str(), status), (want, StatusCode::OK), "{fault:?}");
        assert!(body.contains("<html"));
        assert!(
            (app.probe.flow_count().await == 0),
            "{fault:?}: no flow recorded"
        );
    }
}

/// An app whose Webex is a port that was just free: nothing listens there.
async fn app_with_unreachable_webex() -> TestApp {
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    TestApp::spawn_with(FakeConfig::default(), |config| {
        config.api_base = url::Url::parse(&format!("http://{closed}/v1")).unwrap();
    })
    .await
}

#[crate::support::test]
async fn an_unreachable_webex_is_a_503_page() {
    let app = app_with_unreachable_webex().await;
    let response = app.post("/sign-in").await;
    let (kind, status, body) = problem_after_post(&app, &app.client, response).await;
    assert_eq!(
        (kind.as_str(), status),
        ("webex-unreachable", StatusCode::OK)
    );
    assert!(body.contains("<p class=\"error-code\">503</p>"), "{body}");
    assert!(body.contains("Webex is unreachable"), "{body}");
    assert!(
        !body.contains("WEBEX_API_BASE"),
        "the page speaks to the person"
    );
    // The operator's hint is in the log line instead.
    assert!(captured_logs().contains("check WEBEX_API_BASE"));
}

#[crate::support::test]
async fn a_slow_webex_for_one_user_does_not_slow_the_others() {
    let app = TestApp::spawn_with(FakeConfig::default(), |config| {
        config.request_timeout = Duration::from_secs(10)
    })
    .await;
    app.login().await;
    app.fake
        .inject(Endpoint::Rooms, Fault::Delay(Duration::from_secs(5)));
    let slow = {
        let (client, url) = (app.client.clone(), app.url("/spaces"));
        tokio::spawn(async move { client.get(url).send().await.unwrap().status() })
    };
    wait_for(
        "the slow request to reach the fake",
        Duration::from_secs(5),
        || async { app.fake.count(Counter::RoomsCalls) >= 1 },
    )
    .await;
    let other = browser();
    for path in ["/healthz", "/", "/login", "/static/style.css"] {
        let response =
            tokio::time::timeout(Duration::from_secs(1), other.get(app.url(path)).send())
                .await
                .unwrap_or_else(|_| {
                    panic!("{path} took over a second while /rooms was slow for another user")
                })
                .unwrap();
        assert!(
            response.status().is_success() || response.status().is_redirection(),
            "{path}"
        );
    }
    assert!(
        !slow.is_finished(),
        "the slow request is still waiting on Webex"
    );
    assert_eq!(slow.await.unwrap(), StatusCode::OK);
}

/// The settings an operator sets; no page tells the person reading it to check one.
const SETTINGS: [&str; 7] = [
    "WEBEX_API_BASE",
    "WEBEX_CLIENT_ID",
    "WEBEX_CLIENT_SECRET",
    "WEBEX_SCOPES",
    "WEBEX_DEVICE_SCOPES",
    "SESSION_STORE",
    "MAX_PENDING_DEVICE_FLOWS",
];

fn names_no_setting(body: &str, what: &str) {
    for setting in SETTINGS {
        assert!(!body.contains(setting), "{what}: the page names {setting}");
    }
}

#[crate::support::test]
async fn a_failed_sign_in_post_redirects_to_its_page_which_reloads_without_posting_again() {
    let app = TestApp::spawn_with(quick_device_fake(), |_| {}).await;
    app.fake
        .inject(Endpoint::DeviceAuthorize, Fault::Status(500));
    let response = app.post("/sign-in").await;
    let to = location(&response);
    assert!(
        to.starts_with("/problem?kind=webex-error&tracking=ROUTER_"),
        "{to}"
    );
    let (kind, status, body) = problem_after_post(&app, &app.client, response).await;
    assert_eq!((kind.as_str(), status), ("webex-error", StatusCode::OK));
    assert!(body.contains("Webex returned an error"), "{body}");
    let tracking = to.split("tracking=").nth(1).unwrap();
    assert!(body.contains(tracking), "the page keeps the tracking id");
    names_no_setting(&body, "POST /sign-in");
    // A reload is a GET of the same page: the same answer, and Webex is not asked again.
    let asked = app.fake.count(Counter::DeviceAuthorizations);
    let again = app.get(&to).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(text(again).await, body);
    assert_eq!(app.fake.count(Counter::DeviceAuthorizations), asked);
    assert_eq!(app.probe.flow_count().await, 0, "no flow recorded");
}

/// The sum of `webex_oauth_http_requests_total{route="/problem"}` over the statuses `status`
/// starts with (`"5"`: every 5xx).
fn problem_requests(scrape: &str, status: &str) -> f64 {
    let status = format!("status=\"{status}");
    scrape
        .lines()
        .filter(|l| l.starts_with("webex_oauth_http_requests_total{"))
        .filter(|l| l.contains("route=\"/problem\"") && l.contains(&status))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[crate::support::test]
async fn no_problem_page_answers_a_5xx_nor_counts_one() {
    let app = TestApp::spawn_with(FakeConfig::default(), |config| {
        config.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    // The recorder is the process's: other tests' requests count in it too, but no test makes
    // /problem answer a 5xx unless a page does.
    let scrape_url = format!("http://{}/metrics", app.metrics.unwrap());
    let scrape = || async { text(browser().get(&scrape_url).send().await.unwrap()).await };
    let before = scrape().await;
    let kinds = problems();
    assert!(kinds.len() >= 20, "{kinds:?}");
    for page in &kinds {
        let kind = page.kind;
        let response = app
            .get(&format!("/problem?kind={kind}&tracking=ROUTER_1"))
            .await;
        let status = response.status();
        let body = text(response).await;
        assert_eq!(status, StatusCode::OK, "{kind}: {body}");
        // The same page as the failure's own: its title, and the failure's status as text.
        assert!(body.contains(&html_escape(page.title)), "{kind}: {body}");
        assert!(
            body.contains(&format!("<p class=\"error-code\">{}</p>", page.status)),
            "{kind}: {body}"
        );
        assert!(body.contains("ROUTER_1"), "{kind}: {body}");
    }
    let after = scrape().await;
    assert_eq!(
        problem_requests(&after, "5"),
        problem_requests(&before, "5"),
        "no 5xx counted for /problem"
    );
    assert!(
        problem_requests(&after, "200") - problem_requests(&before, "200") >= kinds.len() as f64,
        "the pages are counted as 200s\n{after}"
    );
}

#[crate::support::test]
async fn problem_pages_know_their_kinds_and_show_only_tracking_ids() {
    let app = TestApp::spawn().await;
    for path in [
        "/problem",
        "/problem?kind=nope",
        "/problem?kind=",
        "/problem?kind=BUSY",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(text(response).await.contains("Page not found"));
    }
    for Problem { kind, .. } in problems() {
        let response = app.get(&format!("/problem?kind={kind}")).await;
        assert_eq!(response.status(), StatusCode::OK, "{kind}");
        let body = text(response).await;
        assert!(
            !body.contains("Webex tracking id:"),
            "{kind}: no tracking id given"
        );
        names_no_setting(&body, kind);
    }
    // Only what looks like a Webex tracking id is shown; markup never is.
    let body = text(
        app.get("/problem?kind=webex-error&tracking=%3Cb%3Ex%3C%2Fb%3E")
            .await,
    )
    .await;
    assert!(
        !body.contains("Webex tracking id:") && !body.contains("<b>x"),
        "{body}"
    );
    let body = text(
        app.get("/problem?kind=webex-error&tracking=ROUTER_65F3A1B2-0C")
            .await,
    )
    .await;
    assert!(
        body.contains("<code class=\"break\">ROUTER_65F3A1B2-0C</code>"),
        "{body}"
    );
}

#[crate::support::test]
async fn no_error_page_tells_the_person_to_check_a_setting() {
    let app = TestApp::spawn_with(quick_device_fake(), |_| {}).await;
    app.login().await;
    let faults = [
        Fault::Status(500),
        Fault::Status(400),
        Fault::InvalidJson,
        Fault::MissingFields,
        Fault::Forbidden,
        Fault::Unauthorized,
        Fault::Delay(Duration::from_secs(3)),
        Fault::RateLimited { retry_after: 60 },
        Fault::HugeBody {
            status: 200,
            bytes: 4 * 1024 * 1024,
            declare_length: true,
        },
    ];
    for fault in &faults {
        for (endpoint, path) in [
            (Endpoint::Rooms, "/spaces"),
            (Endpoint::PeopleMe, "/whoami"),
        ] {
            app.fake.inject(endpoint, fault.clone());
            let response = app.get(path).await;
            // (An Unauthorized is refreshed and retried: that page is a 200.)
            let body = text(response).await;
            names_no_setting(&body, &format!("{path} {fault:?}"));
        }
        app.fake.inject(Endpoint::DeviceAuthorize, fault.clone());
        let response = app.post("/sign-in").await;
        let (kind, _, body) = problem_after_post(&app, &app.client, response).await;
        names_no_setting(&body, &format!("POST /sign-in {fault:?} ({kind})"));
    }
    // An unreachable Webex (the 503 that used to name WEBEX_API_BASE), on a page and a post.
    let app = app_with_unreachable_webex().await;
    let response = app.post("/sign-in").await;
    let (kind, _, body) = problem_after_post(&app, &app.client, response).await;
    assert_eq!(kind, "webex-unreachable");
    names_no_setting(&body, "unreachable");
}
