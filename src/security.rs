//! Browser-facing defences: security headers on every response, and the cross-site POST check.

use crate::error::AppError;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The Content-Security-Policy: our own scripts and styles only, images from us, `data:` (the
/// QR code) and the avatar hosts, no framing, forms only to us.
pub fn content_security_policy(avatar_origins: &[String]) -> String {
    let mut img = String::from("'self' data: https://*.webexcontent.com");
    for origin in avatar_origins {
        img.push(' ');
        img.push_str(origin);
    }
    format!(
        "default-src 'self'; img-src {img}; script-src 'self'; style-src 'self'; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// Adds the security headers; pages get `Cache-Control: no-store` (they may show user data),
/// unless a route set its own caching (the static assets).
pub async fn security_headers(csp: HeaderValue, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    // The callback URL carries the code: never send it on as a Referer.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Refuses requests whose query string is longer than `max` bytes (414, with the error page).
pub async fn limit_query(max: usize, request: Request, next: Next) -> Response {
    if request.uri().query().is_some_and(|q| q.len() > max) {
        tracing::warn!(path = request.uri().path(), "query string too long");
        return AppError::QueryTooLong.into_response();
    }
    next.run(request).await
}

/// Refuses state-changing requests from other sites. SameSite=Lax already keeps the session
/// cookie off cross-site POSTs; this check also covers same-site neighbours (another port or
/// subdomain). The same order as Go's `CrossOriginProtection`:
/// 1. `Sec-Fetch-Site` (every current browser sends it): only `same-origin` passes;
/// 2. else `Origin` (older browsers) must name our host;
/// 3. else `Referer`. With none of them, the request is refused.
///
/// `Origin` alone cannot be the check: with `Referrer-Policy: no-referrer`, browsers send
/// `Origin: null` even on same-origin form posts.
pub async fn same_origin_posts(request: Request, next: Next) -> Response {
    // Only POST changes anything here; other methods fall through to their 405 page.
    if request.method() != Method::POST || is_same_origin(request.headers()) {
        return next.run(request).await;
    }
    tracing::warn!(method = %request.method(), "cross-site request refused");
    AppError::CrossSite.into_response()
}

fn is_same_origin(headers: &HeaderMap) -> bool {
    let value = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(site) = value("sec-fetch-site") {
        return site == "same-origin";
    }
    let Some(host) = value(header::HOST.as_str()) else {
        return false;
    };
    let source = match value(header::ORIGIN.as_str()) {
        Some(origin) => origin,
        None => match value(header::REFERER.as_str()) {
            Some(referer) => referer,
            None => return false,
        },
    };
    let Ok(source) = url::Url::parse(source) else {
        return false; // includes "null"
    };
    let authority = match (source.host_str(), source.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        (None, _) => return false,
    };
    authority.eq_ignore_ascii_case(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn origin_or_referer_must_name_our_host() {
        assert!(is_same_origin(&headers(&[
            ("host", "localhost:10060"),
            ("origin", "http://localhost:10060")
        ])));
        assert!(is_same_origin(&headers(&[
            ("host", "localhost:10060"),
            ("referer", "http://localhost:10060/sign-in")
        ])));
        assert!(!is_same_origin(&headers(&[
            ("host", "localhost:10060"),
            ("origin", "http://evil.example")
        ])));
        assert!(!is_same_origin(&headers(&[
            ("host", "localhost:10060"),
            ("origin", "null")
        ])));
        assert!(!is_same_origin(&headers(&[("host", "localhost:10060")])));
        assert!(!is_same_origin(&headers(&[(
            "origin",
            "http://localhost:10060"
        )])));
        // Sec-Fetch-Site decides when present, whatever Origin says.
        assert!(is_same_origin(&headers(&[
            ("host", "localhost:10060"),
            ("sec-fetch-site", "same-origin"),
            ("origin", "null")
        ])));
        assert!(!is_same_origin(&headers(&[
            ("host", "localhost:10060"),
            ("sec-fetch-site", "same-site"),
            ("origin", "http://localhost:10060")
        ])));
        assert!(!is_same_origin(&headers(&[
            ("host", "localhost:10060"),
            ("sec-fetch-site", "cross-site")
        ])));
        // Origin wins over Referer.
        assert!(!is_same_origin(&headers(&[
            ("host", "localhost:10060"),
            ("origin", "http://evil.example"),
            ("referer", "http://localhost:10060/")
        ])));
    }

    #[test]
    fn csp_lists_the_avatar_origins() {
        let csp = content_security_policy(&["http://127.0.0.1:4000".into()]);
        assert!(
            csp.contains("img-src 'self' data: https://*.webexcontent.com http://127.0.0.1:4000;")
        );
        assert!(csp.contains("frame-ancestors 'none'"));
    }
}
