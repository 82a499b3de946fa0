//! Efficient pages: compressed HTML, CSS and JS; static files at content-hashed URLs cached for
//! good; `app.js` only on the sign-in page; the CSP unchanged.

use crate::helpers::{TestApp, text};
use reqwest::StatusCode;
use reqwest::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG,
    IF_NONE_MATCH, VARY,
};

/// The `href` or `src` that follows `marker` in `html`.
fn link_after(html: &str, marker: &str) -> Option<String> {
    let rest = &html[html.find(marker)? + marker.len()..];
    Some(rest[..rest.find('"')?].to_owned())
}

#[crate::support::test]
async fn pages_and_assets_are_compressed_as_the_client_accepts() {
    let app = TestApp::spawn().await;
    // What Chrome, Firefox and Edge send gets zstd; what Safari sends (no zstd) gets gzip.
    for (accepted, encoding, magic, path) in [
        (
            "gzip, deflate, br, zstd",
            "zstd",
            &[0x28, 0xb5, 0x2f, 0xfd][..],
            "/",
        ),
        ("zstd", "zstd", &[0x28, 0xb5, 0x2f, 0xfd], "/no/such/page"),
        ("gzip, deflate, br", "gzip", &[0x1f, 0x8b], "/"),
        ("gzip", "gzip", &[0x1f, 0x8b], "/no/such/page"),
    ] {
        let response = app
            .client
            .get(app.url(path))
            .header(ACCEPT_ENCODING, accepted)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers()[CONTENT_ENCODING],
            encoding,
            "{accepted} {path}"
        );
        // The security headers survive compression.
        assert!(response.headers().contains_key("content-security-policy"));
        let body = response.bytes().await.unwrap();
        assert_eq!(&body[..magic.len()], magic, "{encoding} magic");
    }
    // Brotli is not offered: its fast qualities lose to zstd and gzip on size and time.
    let br_only = app
        .client
        .get(app.url("/"))
        .header(ACCEPT_ENCODING, "br")
        .send()
        .await
        .unwrap();
    assert!(!br_only.headers().contains_key(CONTENT_ENCODING));
    // No Accept-Encoding: plain.
    let plain = app.get("/").await;
    assert!(!plain.headers().contains_key(CONTENT_ENCODING));
    let html = text(plain).await;
    let css = link_after(&html, "rel=\"stylesheet\" href=\"").expect("a stylesheet link");
    let full = app.get(&css).await.bytes().await.unwrap().len();
    let response = app
        .client
        .get(app.url(&css))
        .header(ACCEPT_ENCODING, "gzip, deflate, br, zstd")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()[CONTENT_ENCODING], "zstd");
    let compressed = response.bytes().await.unwrap().len();
    assert!(compressed * 3 < full, "{compressed} of {full} bytes");
}

/// A request without `Accept-Encoding` gets what a client that accepts only `identity` gets.
#[crate::support::test]
async fn a_request_without_accept_encoding_gets_what_identity_gets() {
    let app = TestApp::spawn().await;
    let html = text(app.get("/").await).await;
    let css = link_after(&html, "rel=\"stylesheet\" href=\"").expect("a stylesheet link");
    // A page, a hashed asset, a body too small to compress, and an error page.
    for path in ["/", css.as_str(), "/healthz", "/no/such/page"] {
        let plain = app.get(path).await;
        let identity = app
            .client
            .get(app.url(path))
            .header(ACCEPT_ENCODING, "identity")
            .send()
            .await
            .unwrap();
        assert_eq!(plain.status(), identity.status(), "{path}");
        for name in [VARY, CONTENT_LENGTH, CONTENT_TYPE, CONTENT_ENCODING] {
            let values = |response: &reqwest::Response| -> Vec<_> {
                response.headers().get_all(&name).iter().cloned().collect()
            };
            assert_eq!(values(&plain), values(&identity), "{path}: {name}");
        }
        let vary: Vec<_> = plain.headers().get_all(VARY).iter().collect();
        let small = path == "/healthz";
        assert_eq!(vary.len(), usize::from(!small), "{path}: {vary:?}");
        assert_eq!(
            plain.bytes().await.unwrap(),
            identity.bytes().await.unwrap(),
            "{path}"
        );
    }
}

#[crate::support::test]
async fn assets_have_hashed_urls_cached_for_good_and_plain_paths_revalidate() {
    let app = TestApp::spawn().await;
    let html = text(app.get("/").await).await;
    let css = link_after(&html, "rel=\"stylesheet\" href=\"").unwrap();
    let icon = link_after(&html, "rel=\"icon\" href=\"").unwrap();
    for (url, plain) in [(&css, "/static/style.css"), (&icon, "/static/favicon.svg")] {
        assert_ne!(url, plain, "pages link to the hashed URL");
        assert!(
            url.starts_with("/static/") && url.len() == plain.len() + 11,
            "{url}"
        );
        let response = app.get(url).await;
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        assert_eq!(
            response.headers()[CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
        let etag = response.headers()[ETAG].to_str().unwrap().to_owned();
        assert!(url.contains(etag.trim_matches('"')), "{url} {etag}");
        // The plain path serves the same bytes, revalidated: the ETag gets a 304.
        let response = app.get(plain).await;
        assert_eq!(response.headers()[CACHE_CONTROL], "public, no-cache");
        assert_eq!(response.headers()[ETAG], etag.as_str());
        let again = app
            .client
            .get(app.url(plain))
            .header(IF_NONE_MATCH, &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert!(again.bytes().await.unwrap().is_empty());
    }
    let favicon = app.get("/favicon.ico").await;
    assert_eq!(favicon.status(), StatusCode::OK);
    assert_eq!(favicon.headers()["content-type"], "image/svg+xml");
    // A hash that is not the current one is a 404, not a stale file.
    let stale = app.get("/static/style.0000000000.css").await;
    assert_eq!(stale.status(), StatusCode::NOT_FOUND);
}

#[crate::support::test]
async fn app_js_is_loaded_only_by_the_sign_in_page() {
    let app = TestApp::spawn_with(crate::helpers::quick_device_fake(), |_| {}).await;
    let landing = text(app.get("/").await).await;
    assert!(!landing.contains("app."), "{landing}");
    app.start_device_flow_as(&app.client).await;
    let response = app.get("/sign-in").await;
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'") && csp.contains("style-src 'self'"));
    let page = text(response).await;
    let script = link_after(&page, "<script src=\"").expect("the sign-in page loads app.js");
    assert!(
        script.starts_with("/static/app.") && script.ends_with(".js"),
        "{script}"
    );
    let js = app.get(&script).await;
    assert_eq!(js.status(), StatusCode::OK);
    assert!(
        js.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
}

#[crate::support::test]
async fn spaces_js_is_loaded_only_by_the_spaces_page() {
    let app = TestApp::spawn_with(crate::helpers::quick_device_fake(), |_| {}).await;
    let landing = text(app.get("/").await).await;
    assert!(!landing.contains("/static/spaces."), "{landing}");
    app.login().await;
    for path in ["/granted", "/whoami"] {
        let page = text(app.get(path).await).await;
        assert!(!page.contains("<script"), "{path}: {page}");
    }
    let page = text(app.get("/spaces").await).await;
    let script = link_after(&page, "<script src=\"").expect("the spaces page loads spaces.js");
    assert!(
        script.starts_with("/static/spaces.") && script.ends_with(".js"),
        "{script}"
    );
    assert_eq!(page.matches("<script").count(), 1, "only spaces.js");
    let js = app.get(&script).await;
    assert_eq!(js.status(), StatusCode::OK);
    assert_eq!(
        js.headers()[CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert!(
        js.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    // The sign-in page loads app.js, not spaces.js.
    app.start_device_flow_as(&app.client).await;
    let sign_in = text(app.get("/sign-in").await).await;
    assert!(!sign_in.contains("/static/spaces."), "{sign_in}");
}
