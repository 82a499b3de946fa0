//! The demo on a LAN address: the QR code leads a second device to the fake's approval page.
//! 127.0.0.2 stands in for the LAN address (tests stay on loopback).

use crate::browser::*;

#[crate::support::test]
async fn on_a_lan_address_the_qr_code_points_there_and_a_second_device_approves_through_it() {
    let app = demo_on("127.0.0.2").await;
    assert!(app.base.starts_with("http://127.0.0.2:"), "{}", app.base);
    assert!(
        app.fake.origin().starts_with("http://127.0.0.2:"),
        "the fake builds its links on the app's address: {}",
        app.fake.origin()
    );
    let mut driver = start_driver().await;
    let laptop = browser(&mut driver, "lan-laptop").await;
    let phone = browser(&mut driver, "lan-phone").await;

    laptop.goto(&app.base).await.unwrap();
    click(&laptop, "#sign-in").await;
    wait_for_path(&laptop, "/sign-in").await;
    let qr_text = decode_qr(&laptop).await;
    let qr = url::Url::parse(&qr_text).unwrap();
    assert_eq!(qr.host_str(), Some("127.0.0.2"), "the QR code: {qr_text}");
    assert_eq!(qr.path(), "/verify");

    // The "phone" only ever opens what the QR code says.
    phone.goto(&qr_text).await.unwrap();
    wait_for(&phone, "#approve").await;
    let on_phone = phone.current_url().await.unwrap();
    assert_eq!(on_phone.host_str(), Some("127.0.0.2"), "{on_phone}");
    click(&phone, "#approve").await;

    wait_for_path(&laptop, "/granted").await;
    laptop.close().await.unwrap();
    phone.close().await.unwrap();
}
