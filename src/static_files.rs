//! The files under `static/`, compiled into the binary (it runs from any directory), each with a
//! content-hashed URL (`/static/style.1a2b3c4d5e.css`) that pages link to, so a new release never
//! meets a stale copy in a browser's cache.

use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// One static file.
pub struct StaticFile {
    /// Its plain path, e.g. `/static/style.css` (still served, revalidated by `ETag`).
    pub path: &'static str,
    /// `/static/style.<10 hex digits of its SHA-256>.css`: the URL pages use, cached for good.
    pub url: String,
    /// The strong `ETag`, quoted: the same hash.
    pub etag: String,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

impl StaticFile {
    fn new(path: &'static str, content_type: &'static str, body: &'static [u8]) -> Self {
        let hash: String = Sha256::digest(body)
            .iter()
            .take(5)
            .map(|b| format!("{b:02x}"))
            .collect();
        let url = match path.rsplit_once('.') {
            Some((stem, ext)) => format!("{stem}.{hash}.{ext}"),
            None => format!("{path}.{hash}"),
        };
        Self {
            path,
            url,
            etag: format!("\"{hash}\""),
            content_type,
            body,
        }
    }
}

/// `static/NAME`, compiled in, served under `/static/NAME`.
macro_rules! static_file {
    ($name:literal, $content_type:literal) => {
        LazyLock::new(|| {
            let body = include_bytes!(concat!("../static/", $name));
            StaticFile::new(concat!("/static/", $name), $content_type, body)
        })
    };
}

pub static STYLE_CSS: LazyLock<StaticFile> = static_file!("style.css", "text/css; charset=utf-8");
pub static APP_JS: LazyLock<StaticFile> = static_file!("app.js", "text/javascript; charset=utf-8");
pub static SPACES_JS: LazyLock<StaticFile> =
    static_file!("spaces.js", "text/javascript; charset=utf-8");
pub static FAVICON_SVG: LazyLock<StaticFile> = static_file!("favicon.svg", "image/svg+xml");

/// Every static file, for the router.
pub fn all() -> [&'static StaticFile; 4] {
    [&STYLE_CSS, &APP_JS, &SPACES_JS, &FAVICON_SVG]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_urls_keep_the_extension_and_differ_by_content() {
        assert!(STYLE_CSS.url.starts_with("/static/style.") && STYLE_CSS.url.ends_with(".css"));
        assert_eq!(STYLE_CSS.url.len(), "/static/style..css".len() + 10);
        assert_ne!(STYLE_CSS.etag, APP_JS.etag);
        assert!(FAVICON_SVG.etag.starts_with('"') && FAVICON_SVG.etag.ends_with('"'));
    }
}
