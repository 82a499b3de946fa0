//! The device sign-in page's markup: one approval action, the sentence when the QR code points
//! at this computer, a `<noscript>` note and no Copy button until the script reveals it, and
//! an expired page that says "expired" once.

use crate::helpers::{TestApp, app_with_an_expired_device_flow, quick_device_fake, text};
use fake_webex::{Endpoint, Fault};
use reqwest::StatusCode;
use serde_json::json;

/// The page's `<main>`, where the copy is.
fn main_of(page: &str) -> &str {
    let start = page.find("<main").expect("a main element");
    let end = page.find("</main>").expect("the end of main");
    &page[start..end]
}

/// The text of `html` without its tags (attributes such as `data-status` are not read).
fn visible_text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

#[crate::support::test]
async fn one_approval_action_and_a_loopback_code_is_said_so() {
    let app = TestApp::spawn_with(quick_device_fake(), |_| {}).await;
    let user_code = app.start_device_flow_as(&app.client).await;
    let link = app.fake.verification_uri_complete(&user_code).unwrap();
    assert!(link.starts_with("http://127.0.0.1:"), "{link}");
    let page = text(app.get("/sign-in").await).await;
    let main = main_of(&page);
    // One link to the approval page, the action with the id the tests and scripts use.
    let href = format!("href=\"{}\"", link.replace('&', "&#38;"));
    assert_eq!(main.matches(&href).count(), 1, "{main}");
    assert!(main.contains(&format!(
        "id=\"verification-link\" {href} target=\"_blank\" rel=\"noopener\">Open the approval page</a>"
    )));
    for id in [
        "qr",
        "user-code",
        "status",
        "cancel",
        "time-left",
        "countdown",
    ] {
        assert!(main.contains(&format!("id=\"{id}\"")), "{id}");
    }
    // The QR code points at this computer: one sentence says so and offers the link instead.
    assert!(
        main.contains(
            "This code points at this computer (127.0.0.1), so a phone cannot open it: use the \
             approval link here instead, or see README to scan from a phone."
        ),
        "{main}"
    );
    assert!(main.contains("device-grid device-grid-local"));
    assert!(
        !main.contains("Scan with your phone"),
        "no promise a phone cannot keep"
    );
    // Without a script: a note (and the head's refresh), and no Copy button that does nothing.
    assert!(page.contains("<noscript><meta http-equiv=\"refresh\" content=\"5\"></noscript>"));
    assert!(main.contains(
        "<noscript><p class=\"noscript-note\" id=\"noscript-note\">JavaScript is off: this page \
         refreshes itself every 5 seconds"
    ));
    assert!(
        main.contains("id=\"copy-code\" type=\"button\" hidden>Copy</button>"),
        "{main}"
    );
    // The narrow-screen copy puts the approval page first, before the QR code.
    let steps = main
        .find("On this device:")
        .expect("the narrow-screen wording");
    assert!(steps < main.find("id=\"qr\"").unwrap());
}

#[crate::support::test]
async fn a_code_for_another_host_has_no_loopback_sentence() {
    let app = TestApp::spawn_with(quick_device_fake(), |_| {}).await;
    let link = "https://oauth-helper-r.wbx2.com/verify?userCode=418205";
    app.fake.inject(
        Endpoint::DeviceAuthorize,
        Fault::Json(json!({
            "device_code": "not-one-the-fake-knows",
            "user_code": "418205",
            "verification_uri": "https://oauth-helper-r.wbx2.com/verify",
            "verification_uri_complete": link,
            "expires_in": 300,
            // The first poll (which the fake would refuse) is long after this test.
            "interval": 60,
        })),
    );
    assert_eq!(app.post("/sign-in").await.status(), StatusCode::SEE_OTHER);
    let page = text(app.get("/sign-in").await).await;
    let main = main_of(&page);
    assert!(main.contains("id=\"verification-link\""), "{main}");
    assert!(!main.contains("loopback-note"), "{main}");
    assert!(!main.contains("points at this computer"));
    assert!(main.contains("Scan with your phone's camera"), "{main}");
    assert!(main.contains("class=\"device-grid\""));
}

#[crate::support::test]
async fn the_expired_page_says_expired_once() {
    let app = app_with_an_expired_device_flow().await;
    let page = text(app.get("/sign-in").await).await;
    let main = main_of(&page);
    assert!(main.contains("The code expired"), "{main}");
    let words = visible_text(main).to_lowercase();
    assert_eq!(words.matches("expired").count(), 1, "{words}");
    assert!(main.contains("id=\"start-again\""));
}
