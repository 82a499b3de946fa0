//! The stories of the README: both flows end to end, and the denied and expired ends.

use crate::browser::*;
use serde_json::json;

#[crate::support::test]
async fn authorization_code_story() {
    let app = demo().await;
    let mut driver = start_driver().await;
    let b = browser(&mut driver, "grant").await;

    b.goto(&app.base).await.unwrap();
    wait_for(&b, "#grant").await;
    shot(&b, "01-landing").await;
    click(&b, "#grant").await;

    wait_for(&b, "#accept").await;
    shot(&b, "02-consent").await;
    click(&b, "#accept").await;

    wait_for_path(&b, "/granted").await;
    wait_for(&b, "#spaces").await;
    shot(&b, "03-granted").await;
    click(&b, "#spaces").await;

    wait_for_path(&b, "/spaces").await;
    let body = wait_for(&b, "main").await.text().await.unwrap();
    assert!(
        body.contains("<script>alert(\"x\")</script> & friends"),
        "the hostile title shows as text"
    );
    assert!(body.contains("東京オフィス"));
    let alert = b
        .execute(
            "return document.querySelectorAll('main script').length",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(alert, json!(0), "no script element came from a room title");
    shot(&b, "04-spaces").await;

    b.goto(&format!("{}/no/such/page", app.base)).await.unwrap();
    wait_for_text(&b, "main", "Page not found").await;
    shot(&b, "08-error").await;
    b.close().await.unwrap();
}

#[crate::support::test]
async fn device_story_with_a_phone_approving_the_qr_code() {
    let app = demo().await;
    let mut driver = start_driver().await;
    let laptop = browser(&mut driver, "laptop").await;
    let phone = browser(&mut driver, "phone").await;

    laptop.goto(&app.base).await.unwrap();
    click(&laptop, "#sign-in").await;
    wait_for_path(&laptop, "/sign-in").await;
    let qr_text = decode_qr(&laptop).await;
    let user_code = app.fake.last_user_code().unwrap();
    assert_eq!(
        Some(qr_text.clone()),
        app.fake.verification_uri_complete(&user_code)
    );
    let shown = wait_for(&laptop, "#user-code").await.text().await.unwrap();
    assert_eq!(shown.trim(), user_code);
    shot(&laptop, "05-sign-in").await;

    phone.goto(&qr_text).await.unwrap();
    wait_for(&phone, "#approve").await;
    shot(&phone, "06-phone-approve").await;
    click(&phone, "#approve").await;

    // The laptop's page moves on by itself (app.js polls /device/status).
    wait_for_path(&laptop, "/granted").await;
    click(&laptop, "#profile").await;
    wait_for_path(&laptop, "/whoami").await;
    wait_for_text(&laptop, "main", "Ada Lovelace").await;
    shot(&laptop, "07-profile").await;
    laptop.close().await.unwrap();
    phone.close().await.unwrap();
}

#[crate::support::test]
async fn denied_and_expired_device_stories_offer_start_again() {
    let app = demo().await;
    let mut driver = start_driver().await;
    let laptop = browser(&mut driver, "laptop2").await;
    let phone = browser(&mut driver, "phone2").await;

    // Denied on the phone: the laptop says so, and "Start again" gives a fresh code.
    laptop.goto(&app.base).await.unwrap();
    click(&laptop, "#sign-in").await;
    let qr_text = decode_qr(&laptop).await;
    phone.goto(&qr_text).await.unwrap();
    click(&phone, "#deny").await;
    wait_for_text(&laptop, "#status", "denied").await;
    shot(&laptop, "09-denied").await;
    let first = app.fake.last_user_code().unwrap();
    click(&laptop, "#start-again").await;
    wait_for(&laptop, "#qr").await;
    assert_ne!(app.fake.last_user_code().unwrap(), first);

    // Expired: a code that lives 3 seconds.
    app.fake.set_device_expires_in(3);
    click(&laptop, "#cancel").await;
    wait_for_path(&laptop, "/").await;
    click(&laptop, "#sign-in").await;
    // The heading says it (once); the status line says what to do.
    wait_for_text(&laptop, "#page-title", "expired").await;
    wait_for_text(&laptop, "#status", "Start again").await;
    shot(&laptop, "10-expired").await;
    wait_for(&laptop, "#start-again").await;
    laptop.close().await.unwrap();
    phone.close().await.unwrap();
}
