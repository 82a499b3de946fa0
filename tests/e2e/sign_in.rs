//! The sign-in page in a browser: its status polling pauses while the tab is hidden and polls
//! at once when it is shown again, with the countdown still right; the Copy button is there
//! with a script, and the wording fits a phone-sized screen.
//!
//! Hidden is emulated in the page (`document.visibilityState` and a `visibilitychange` event,
//! exactly what a browser does when a tab goes to the background): headless Chromium has no
//! background tab whose timers keep running to be watched. The page's requests are counted by
//! wrapping `window.fetch`, which app.js looks up at each poll.

use crate::browser::*;
use fantoccini::Client;
use serde_json::{Value, json};
use std::time::Duration;

/// app.js's pause between two status requests, in milliseconds.
const POLL_MS: u64 = 2000;

/// Counts the page's `/device/status` requests in `window.statusPolls`.
const COUNT_POLLS: &str = r#"
    window.statusPolls = 0;
    const fetch = window.fetch;
    window.fetch = function (resource, options) {
        if (String(resource).includes("/device/status")) {
            window.statusPolls += 1;
        }
        return fetch.call(this, resource, options);
    };
"#;

/// Sets what `document.visibilityState` says, then fires `visibilitychange`; returns the
/// number of status requests right after the event's handlers ran.
const SET_VISIBILITY: &str = r#"
    const state = arguments[0];
    Object.defineProperty(document, "visibilityState", { configurable: true, get: () => state });
    Object.defineProperty(document, "hidden", { configurable: true, get: () => state === "hidden" });
    document.dispatchEvent(new Event("visibilitychange"));
    return window.statusPolls;
"#;

async fn polls(b: &Client) -> u64 {
    let value = b
        .execute("return window.statusPolls", vec![])
        .await
        .unwrap();
    value.as_u64().expect("the counter is installed")
}

/// Waits until the page has sent more than `n` status requests; returns how many.
async fn wait_for_more_polls_than(b: &Client, n: u64, within: Duration) -> u64 {
    let until = tokio::time::Instant::now() + within;
    loop {
        let now = polls(b).await;
        if now > n {
            return now;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "still {now} status requests after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn seconds_left(b: &Client) -> u64 {
    let text = wait_for(b, "#time-left").await.text().await.unwrap();
    let (minutes, rest) = text.split_once(':').expect("mm:ss left");
    let seconds: u64 = rest[..2].parse().unwrap();
    minutes.parse::<u64>().unwrap() * 60 + seconds
}

#[crate::support::test]
async fn polling_pauses_while_the_tab_is_hidden_and_resumes_at_once_when_shown() {
    let app = demo().await;
    let mut driver = start_driver().await;
    let b = browser(&mut driver, "hidden-tab").await;
    b.goto(&app.base).await.unwrap();
    click(&b, "#sign-in").await;
    wait_for_path(&b, "/sign-in").await;
    wait_for(&b, "#qr").await;
    b.execute(COUNT_POLLS, vec![]).await.unwrap();
    // The script reveals the Copy button it wires.
    let copy = wait_for(&b, "#copy-code").await;
    assert!(copy.is_displayed().await.unwrap());

    // Visible: it polls.
    let before = wait_for_more_polls_than(&b, 0, DEADLINE).await;

    // Hidden: for three poll intervals, not one request (checked all along, not just at the end).
    let hidden_at = b
        .execute(SET_VISIBILITY, vec![json!("hidden")])
        .await
        .unwrap();
    let hidden_at = hidden_at.as_u64().unwrap();
    assert!(hidden_at >= before);
    let left_when_hidden = seconds_left(&b).await;
    let window = Duration::from_millis(3 * POLL_MS + 500);
    let until = tokio::time::Instant::now() + window;
    while tokio::time::Instant::now() < until {
        assert_eq!(polls(&b).await, hidden_at, "a status request while hidden");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Shown: a request at once (inside the event's handler), then the usual rhythm.
    let shown_at = b
        .execute(SET_VISIBILITY, vec![json!("visible")])
        .await
        .unwrap();
    assert_eq!(shown_at, Value::from(hidden_at + 1), "an immediate poll");
    wait_for_more_polls_than(&b, hidden_at + 1, Duration::from_millis(3 * POLL_MS)).await;
    // The countdown went on while hidden: it is deadline-based.
    let left_now = seconds_left(&b).await;
    assert!(
        left_now + 3 * POLL_MS / 1000 <= left_when_hidden,
        "{left_now} s left now, {left_when_hidden} s when hidden"
    );
    b.close().await.unwrap();
}

#[crate::support::test]
async fn on_a_phone_screen_the_approval_page_comes_first() {
    let app = demo().await;
    let mut driver = start_driver().await;
    let b = browser(&mut driver, "phone-sign-in").await;
    b.set_window_size(390, 844).await.unwrap();
    b.goto(&app.base).await.unwrap();
    click(&b, "#sign-in").await;
    wait_for_path(&b, "/sign-in").await;
    let link = wait_for(&b, "#verification-link").await;
    let qr = wait_for(&b, "#qr").await;
    let (_, link_y, _, _) = link.rectangle().await.unwrap();
    let (_, qr_y, _, _) = qr.rectangle().await.unwrap();
    assert!(
        link_y < qr_y,
        "the approval link ({link_y}) above the QR code ({qr_y})"
    );
    let steps = wait_for(&b, ".step-intro").await.text().await.unwrap();
    assert!(steps.starts_with("On this device:"), "{steps}");
    // Demo mode on loopback: the page says a phone cannot open the code.
    let note = wait_for(&b, "#loopback-note").await.text().await.unwrap();
    assert!(note.contains("a phone cannot open it"), "{note}");
    shot(&b, "13-sign-in-phone").await;
    b.close().await.unwrap();
}

#[crate::support::test]
async fn without_javascript_a_note_says_the_page_refreshes_and_there_is_no_copy_button() {
    let app = demo().await;
    let mut driver = start_driver().await;
    let b = browser_without_js(&mut driver, "sign-in-no-js").await;
    b.goto(&app.base).await.unwrap();
    click(&b, "#sign-in").await;
    wait_for_path(&b, "/sign-in").await;
    let note = wait_for(&b, "#noscript-note").await;
    assert!(note.is_displayed().await.unwrap());
    let said = note.text().await.unwrap();
    assert!(said.contains("refreshes itself every 5 seconds"), "{said}");
    let copy = wait_for(&b, "#copy-code").await;
    assert!(
        !copy.is_displayed().await.unwrap(),
        "no Copy button that cannot copy"
    );
    // The head's refresh reloads the page by itself: the phone approves, and the page moves on.
    let user_code = app.fake.last_user_code().unwrap();
    assert!(app.fake.approve_device(&user_code));
    wait_for_path(&b, "/granted").await;
    b.close().await.unwrap();
}
