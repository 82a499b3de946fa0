//! Text to a QR code PNG, as a `data:` URI made in memory (never a shared file on disk).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use image::{ImageFormat, Luma};
use qrcode::QrCode;
use std::io::Cursor;

/// Pixels a module: a decoder (zbar, a phone's camera app) reads the PNG as served, at its own
/// size, not only once the browser has scaled it up.
pub const PIXELS_PER_MODULE: u32 = 6;

/// `data:image/png;base64,...` of the QR code of `text`, black on white, with the standard quiet
/// zone of four modules. Made each time the sign-in page is served: a flow keeps only its link.
pub fn png_data_uri(text: &str) -> Result<String, String> {
    let code = QrCode::new(text.as_bytes()).map_err(|e| format!("cannot encode a QR code: {e}"))?;
    let image = code
        .render::<Luma<u8>>()
        .quiet_zone(true)
        .module_dimensions(PIXELS_PER_MODULE, PIXELS_PER_MODULE)
        .build();
    let mut png = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .map_err(|e| format!("cannot write the QR code PNG: {e}"))?;
    Ok(format!("data:image/png;base64,{}", STANDARD.encode(png)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decoding the served PNG is tests/api/qr_code.rs's (zbarimg, at its own size).
    #[test]
    fn the_png_has_six_pixels_a_module_and_a_quiet_zone() {
        let uri = png_data_uri("http://127.0.0.1:1/verify?userCode=ABCD-EFGH").unwrap();
        let png = STANDARD
            .decode(uri.strip_prefix("data:image/png;base64,").unwrap())
            .unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let image = image::load_from_memory(&png).unwrap();
        // Version 4 (33 modules) plus a quiet zone of 4 on each side, 6 pixels a module.
        assert_eq!((image.width(), image.height()), (41 * 6, 41 * 6));
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
