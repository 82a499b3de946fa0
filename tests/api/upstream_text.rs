//! What Webex's error text can put on a page or in a log line: of a token endpoint's error, only
//! its OAuth code and tracking id (the body may echo the form we sent, secret and all); of any
//! other reply, one line without control characters.

use crate::helpers::{
    TestApp, captured_logs, location, problem_after_post, quick_device_fake, text, wait_for,
};
use fake_webex::{Endpoint, Fault};
use reqwest::StatusCode;
use std::collections::HashMap;
use std::time::Duration;

/// Asserts that no value of `form` (a secret, a code, a verifier, a refresh or device code)
/// is on `page` or in any log line so far. The short values (`grant_type`, the redirect URI)
/// are no secret, and are skipped.
fn nothing_of(form: &HashMap<String, String>, page: &str, what: &str) {
    let logs = captured_logs();
    for (name, value) in form {
        if matches!(
            name.as_str(),
            "grant_type" | "redirect_uri" | "client_id" | "scope"
        ) {
            continue;
        }
        assert!(
            !page.contains(value.as_str()),
            "{what}: the page shows {name}: {page}"
        );
        assert!(
            !logs.contains(value.as_str()),
            "{what}: a log line holds {name}"
        );
    }
}

/// The one form the fake echoed since `before` forms, and the tracking id of that answer.
fn echoed(app: &TestApp, before: usize, want: &[&str]) -> (String, HashMap<String, String>) {
    let mut forms = app.fake.echoed_forms();
    assert_eq!(forms.len(), before + 1, "one echoed form");
    let (tracking, form) = forms.pop().unwrap();
    for name in want {
        assert!(
            form.get(*name).is_some_and(|v| !v.is_empty()),
            "the echo holds {name}"
        );
    }
    (tracking, form)
}

#[crate::support::test]
async fn a_token_endpoint_echoing_our_form_shows_and_logs_only_its_code_and_tracking_id() {
    let app = TestApp::spawn_with(quick_device_fake(), |_| {}).await;

    // The authorization-code exchange: the client secret, the code and the PKCE verifier.
    app.fake.inject(Endpoint::AccessToken, Fault::EchoForm(400));
    let callback = app.authorize(&app.client, "accept").await;
    let response = app.client.get(&callback).send().await.unwrap();
    let status = response.status();
    let page = text(response).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{page}");
    let (tracking, form) = echoed(&app, 0, &["client_secret", "code", "code_verifier"]);
    assert!(page.contains("invalid_request"), "the OAuth code: {page}");
    assert!(
        page.contains(&format!("<code class=\"break\">{tracking}</code>")),
        "the tracking id of the answer: {page}"
    );
    nothing_of(&form, &page, "code exchange");
    assert!(
        captured_logs()
            .lines()
            .any(|l| l.contains(&tracking) && l.contains("invalid_request")),
        "the log line has the code and the tracking id"
    );

    // A refresh: the client secret and the refresh token.
    app.login().await;
    app.fake.expire_access_tokens();
    app.fake.inject(Endpoint::AccessToken, Fault::EchoForm(400));
    let response = app.get("/spaces").await;
    let status = response.status();
    let page = text(response).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{page}");
    let (tracking, form) = echoed(&app, 1, &["client_secret", "refresh_token"]);
    assert!(page.contains("invalid_request"), "{page}");
    assert!(page.contains(&tracking), "{page}");
    nothing_of(&form, &page, "refresh");

    // The device authorization, then a device token poll (the device code).
    app.fake
        .inject(Endpoint::DeviceAuthorize, Fault::EchoForm(400));
    let response = app.post("/sign-in").await;
    let to = location(&response);
    let (kind, _, page) = problem_after_post(&app, &app.client, response).await;
    assert_eq!(kind, "webex-error");
    let (tracking, form) = echoed(&app, 2, &["client_id", "scope"]);
    assert!(to.ends_with(&format!("tracking={tracking}")), "{to}");
    assert!(page.contains(&tracking), "{page}");
    nothing_of(&form, &page, "device authorize");

    app.fake.inject(Endpoint::DeviceToken, Fault::EchoForm(400));
    app.start_device_flow_as(&app.client).await;
    wait_for("the poll's echo", Duration::from_secs(10), || async {
        app.fake.echoed_forms().len() == 4
    })
    .await;
    app.wait_for_device_status_as(&app.client, "error", Duration::from_secs(10))
        .await;
    let (tracking, form) = echoed(&app, 3, &["device_code"]);
    let page = text(app.get("/sign-in").await).await;
    nothing_of(&form, &page, "device poll");
    assert!(
        captured_logs()
            .lines()
            .any(|l| l.contains(&tracking) && l.contains("invalid_request")),
        "the poller's log line has the code and the tracking id"
    );
}

#[crate::support::test]
async fn other_webex_text_reaches_the_page_and_the_log_as_one_plain_line() {
    let app = TestApp::spawn().await;
    app.login().await;
    // A 403 from the API (its text is shown: it says which scope is missing), with a terminal
    // escape, a forged log line and a bidi override in it.
    let text_403 = "missing\u{1b}[31m scope\n2026-01-01T00:00:00Z  INFO forged line\u{202e}txet";
    app.fake
        .inject(Endpoint::Rooms, Fault::Message(403, text_403));
    let response = app.get("/spaces").await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let page = text(response).await;
    assert!(
        page.contains("missing[31m scope 2026-01-01T00:00:00Z INFO forged linetxet"),
        "{page}"
    );
    for bad in ['\u{1b}', '\u{202e}'] {
        assert!(!page.contains(bad), "{bad:?} on the page");
    }
    let logs = captured_logs();
    assert!(logs.contains("missing[31m scope 2026-01-01T00:00:00Z INFO forged linetxet"));
    assert!(
        !logs.contains("\u{1b}[31m") && !logs.contains("\u{202e}"),
        "no control character reaches the log"
    );
    assert!(
        !logs
            .lines()
            .any(|l| l.starts_with("2026-01-01T00:00:00Z  INFO forged")),
        "no forged log line"
    );
}
