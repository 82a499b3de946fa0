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

pub static STYLE_CSS: LazyLock<StaticFile> = LazyLock::new(|| {
    StaticFile::new(
        "/static/style.css",
        "text/css; charset=utf-8",
        include_bytes!("../static/style.css"),
    )
});

pub static APP_JS: LazyLock<StaticFile> = LazyLock::new(|| {
    StaticFile::new(
        "/static/app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../static/app.js"),
    )
});

pub static SPACES_JS: LazyLock<StaticFile> = LazyLock::new(|| {
    StaticFile::new(
        "/static/spaces.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../static/spaces.js"),
    )
});

pub static FAVICON_SVG: LazyLock<StaticFile> = LazyLock::new(|| {
    StaticFile::new(
        "/static/favicon.svg",
        "image/svg+xml",
        include_bytes!("../static/favicon.svg"),
    )
});

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
