//! The sign-in page's QR code decodes as served: zbar (Debian's `zbar-tools`, as a phone's
//! scanner app would) reads the PNG at its own size and finds the approval link.

use crate::helpers::{TestApp, quick_device_fake, text};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::process::Command;

#[crate::support::test]
async fn zbarimg_reads_the_served_png_at_its_own_size() {
    let app = TestApp::spawn_with(quick_device_fake(), |_| {}).await;
    let user_code = app.start_device_flow_as(&app.client).await;
    let link = app.fake.verification_uri_complete(&user_code).unwrap();
    let page = text(app.get("/sign-in").await).await;
    let start = page
        .find("src=\"data:image/png;base64,")
        .expect("the QR code's data URI")
        + "src=\"data:image/png;base64,".len();
    let end = start + page[start..].find('"').expect("the end of the data URI");
    let png = STANDARD.decode(&page[start..end]).expect("base64");
    let image = image::load_from_memory(&png).expect("a PNG").to_luma8();
    assert!(
        image.width() >= 4 * 21,
        "at least 4 pixels a module: {}",
        image.width()
    );
    let file = std::env::temp_dir().join(format!("webex-oauth-qr-{}.png", std::process::id()));
    std::fs::write(&file, &png).unwrap();
    let out = Command::new("zbarimg")
        .args(["--quiet", "--raw", "-Sdisable", "-Sqrcode.enable"])
        .arg(&file)
        .output()
        .expect("zbarimg runs (apt-get install zbar-tools)");
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "zbarimg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim_end(), link);
}
