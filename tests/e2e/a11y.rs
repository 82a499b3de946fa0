//! Every page of the app and of the fake Webex, in desktop 1280×800 and phone 390×844, light and
//! dark: zero axe-core violations of any impact, no console error, no sideways scrolling. Each
//! variant's screenshot goes to `target/e2e-screenshots/<page>-<size>-<scheme>.png`
//! (`tests/e2e/refresh-screenshots.sh` copies a chosen set into `static/screenshots/`).

use std::time::Duration;

use fake_webex::{Endpoint, Fault};

use crate::axe::Sweep;
use crate::browser::*;

/// Waits until the browser is back on the app (after a page of the fake).
async fn wait_for_origin(browser: &fantoccini::Client, base: &str) {
    crate::support::wait_until(
        &format!("a page of {base}"),
        DEADLINE,
        Duration::from_millis(100),
        || async {
            browser
                .current_url()
                .await
                .is_ok_and(|url| url.as_str().starts_with(base))
        },
    )
    .await;
}

#[crate::support::test(timeout = Duration::from_secs(150))]
async fn authorization_code_pages_pass_axe_in_every_variant() {
    let app = demo().await;
    let mut driver = start_driver().await;
    let b = browser(&mut driver, "a11y-grant").await;
    let mut sweep = Sweep::new(&driver, &b).await;

    b.goto(&app.base).await.unwrap();
    wait_for(&b, "#grant").await;
    sweep.check("landing", 200).await;

    click(&b, "#grant").await;
    wait_for(&b, "#accept").await;
    sweep.check("fake-consent", 200).await;

    click(&b, "#accept").await;
    wait_for_path(&b, "/granted").await;
    wait_for(&b, "#spaces").await;
    sweep.check("granted", 200).await;

    b.goto(&format!("{}/spaces", app.base)).await.unwrap();
    wait_for_text(&b, "main", "東京オフィス").await;
    sweep.check("spaces", 200).await;

    b.goto(&format!("{}/whoami", app.base)).await.unwrap();
    wait_for_text(&b, "main", "Ada Lovelace").await;
    sweep.check("profile", 200).await;

    b.goto(&format!("{}/no/such/page", app.base)).await.unwrap();
    wait_for_text(&b, "main", "Page not found").await;
    sweep.check("error-404", 404).await;

    sweep.finish(6);
    b.close().await.unwrap();
}

#[crate::support::test(timeout = Duration::from_secs(150))]
async fn device_pages_pass_axe_in_every_variant() {
    let app = demo().await;
    let mut driver = start_driver().await;
    let b = browser(&mut driver, "a11y-device").await;
    let mut sweep = Sweep::new(&driver, &b).await;

    b.goto(&app.base).await.unwrap();
    click(&b, "#sign-in").await;
    wait_for_path(&b, "/sign-in").await;
    wait_for(&b, "#qr").await;
    sweep.check("sign-in", 200).await;

    // The fake's approval page, as the QR code opens it, then its answer.
    let user_code = app.fake.last_user_code().unwrap();
    let complete = app.fake.verification_uri_complete(&user_code).unwrap();
    b.goto(&complete).await.unwrap();
    wait_for(&b, "#approve").await;
    sweep.check("fake-verify-code", 200).await;
    click(&b, "#approve").await;
    wait_for_text(&b, "main", "Approved").await;
    sweep.check("fake-approved", 200).await;

    // The approval page as `verification_uri` opens it (type the code), and an unknown code.
    b.goto(&format!("{}/verify", app.fake.origin()))
        .await
        .unwrap();
    wait_for(&b, "#user_code").await;
    sweep.check("fake-verify", 200).await;
    b.goto(&format!("{}/verify?userCode=0000", app.fake.origin()))
        .await
        .unwrap();
    wait_for_text(&b, "main", "Unknown code").await;
    sweep.check("fake-unknown-code", 404).await;

    // Denied on the other device, then a code that expires.
    b.goto(&app.base).await.unwrap();
    click(&b, "#sign-in").await;
    wait_for(&b, "#qr").await;
    assert!(app.fake.deny_device(&app.fake.last_user_code().unwrap()));
    wait_for_text(&b, "#status", "denied").await;
    sweep.check("denied", 200).await;

    app.fake.set_device_expires_in(2);
    click(&b, "#start-again").await;
    wait_for_text(&b, "#page-title", "expired").await;
    sweep.check("expired", 200).await;

    sweep.finish(7);
    b.close().await.unwrap();
}

#[crate::support::test(timeout = Duration::from_secs(150))]
async fn error_pages_pass_axe_in_every_variant() {
    // Three logins a minute: the fourth GET /login of this test gets the 429 page.
    let app = demo_with("127.0.0.1", &[("RATE_LIMIT_PER_MINUTE", "3")]).await;
    let mut driver = start_driver().await;
    let b = browser(&mut driver, "a11y-errors").await;
    let mut sweep = Sweep::new(&driver, &b).await;

    // 400: a callback this session did not start.
    b.goto(&format!("{}/oauth?code=x&state=y", app.base))
        .await
        .unwrap();
    wait_for(&b, "main h1").await;
    sweep.check("error-400-callback", 400).await;

    // 405: a GET where only a form posts.
    b.goto(&format!("{}/logout", app.base)).await.unwrap();
    wait_for_text(&b, "main", "Method not allowed").await;
    sweep.check("error-405", 405).await;

    // The fake's own error page: an /authorize request it refuses.
    b.goto(&format!(
        "{}/authorize?response_type=token",
        app.fake.base_url()
    ))
    .await
    .unwrap();
    wait_for_text(&b, "main", "Authorization error").await;
    sweep.check("fake-authorize-error", 400).await;

    // 403: declined on the consent page (login 1 of 3).
    b.goto(&format!("{}/login", app.base)).await.unwrap();
    click(&b, "#decline").await;
    wait_for_origin(&b, &app.base).await;
    wait_for(&b, "main h1").await;
    sweep.check("error-403-declined", 403).await;

    // 502 and 503: Webex fails on /rooms (login 2 of 3).
    b.goto(&format!("{}/login", app.base)).await.unwrap();
    click(&b, "#accept").await;
    wait_for_path(&b, "/granted").await;
    app.fake.inject(Endpoint::Rooms, Fault::Status(500));
    b.goto(&format!("{}/spaces", app.base)).await.unwrap();
    wait_for(&b, "main h1").await;
    sweep.check("error-502", 502).await;
    app.fake
        .inject(Endpoint::Rooms, Fault::RateLimited { retry_after: 60 });
    b.goto(&format!("{}/spaces", app.base)).await.unwrap();
    wait_for(&b, "main h1").await;
    sweep.check("error-503", 503).await;

    // A failed form post: 303 to the /problem page (sign-in 3 of 3).
    app.fake
        .inject(Endpoint::DeviceAuthorize, Fault::Status(500));
    b.goto(&app.base).await.unwrap();
    click(&b, "#sign-in").await;
    wait_for_path(&b, "/problem").await;
    wait_for(&b, "main h1").await;
    // The /problem page answers 200 (it only reports the failure), and says 502 as text.
    sweep.check("error-after-post", 200).await;

    // 504 (as a failed post's /problem page shows it, with a 200: a 30 s Webex stall is too
    // slow for a test) and 414 (a query string over the limit).
    b.goto(&format!("{}/problem?kind=webex-timeout", app.base))
        .await
        .unwrap();
    wait_for_text(&b, "main", "did not answer in time").await;
    sweep.check("error-504", 200).await;
    b.goto(&format!("{}/?{}", app.base, "a".repeat(9000)))
        .await
        .unwrap();
    wait_for(&b, "main h1").await;
    sweep.check("error-414", 414).await;

    // 429: logins until the limit answers.
    let mut limited = false;
    for _ in 0..6 {
        b.goto(&format!("{}/login", app.base)).await.unwrap();
        if b.current_url().await.unwrap().path() == "/login" {
            limited = true;
            break;
        }
    }
    assert!(limited, "GET /login was never rate limited");
    wait_for(&b, "main h1").await;
    sweep.check("error-429", 429).await;

    sweep.finish(10);
    b.close().await.unwrap();
}
