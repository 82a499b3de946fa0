//! Text to a QR code PNG, as a `data:` URI made in memory (never a shared file on disk).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use image::{ImageFormat, Luma};
use qrcode::QrCode;
use std::io::Cursor;

/// `data:image/png;base64,...` of the QR code of `text`. Black on white with the standard quiet
/// zone, **one pixel a module**: the page scales it up with `image-rendering: pixelated`, so it
/// is as sharp as a bigger image at any size, and the data URI is about 1 KB instead of 4.7 KB
/// at 8 px a module. It is kept with each pending device flow, so that is 3.7 KB less a flow.
pub fn png_data_uri(text: &str) -> Result<String, String> {
    let code = QrCode::new(text.as_bytes()).map_err(|e| format!("cannot encode a QR code: {e}"))?;
    let image = code
        .render::<Luma<u8>>()
        .quiet_zone(true)
        .module_dimensions(1, 1)
        .build();
    let mut png = Vec::with_capacity(1024);
    image
        .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .map_err(|e| format!("cannot write the QR code PNG: {e}"))?;
    Ok(format!("data:image/png;base64,{}", STANDARD.encode(png)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_a_png_data_uri() {
        let uri = png_data_uri("http://127.0.0.1:1/verify?userCode=abc").unwrap();
        let png = STANDARD
            .decode(uri.strip_prefix("data:image/png;base64,").unwrap())
            .unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // One pixel a module: version 3 (29 modules) plus a quiet zone of 4 on each side.
        let image = image::load_from_memory(&png).unwrap();
        assert_eq!((image.width(), image.height()), (37, 37));
        assert!(uri.len() < 1500, "{} bytes", uri.len());
    }

    #[test]
    fn the_longest_link_the_client_accepts_still_makes_a_qr_code() {
        // Byte mode is the worst case: every character not a digit or upper-case letter.
        let max = crate::webex::device::MAX_VERIFICATION_URI_LEN;
        let prefix = "https://x.example/verify?userCode=";
        let link: String = prefix
            .chars()
            .chain("a~-._".chars().cycle().take(max - prefix.len()))
            .collect();
        assert_eq!(link.len(), max);
        assert!(png_data_uri(&link).is_ok());
    }
}
