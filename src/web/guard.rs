//! The guard middleware around every request: the query limit, the cross-site POST check, the
//! error pages and the security headers.

use crate::error::{AppError, render_error_page};
use crate::state::AppState;
use axum::extract::{Request, State};
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

/// Longest query string accepted (the OAuth callback's is about 200 bytes).
pub const MAX_QUERY_BYTES: usize = 4096;

/// Everything around a request, in one middleware (one boxed future a request, not four):
/// 1. refuses a query longer than [`MAX_QUERY_BYTES`] (414) and a cross-site POST (403);
/// 2. runs the request;
/// 3. gives every error response its HTML page ([`render_error_page`]);
/// 4. adds the security headers: CSP, `Referrer-Policy: no-referrer` (the callback URL carries
///    the code), `nosniff`, and `Cache-Control: no-store` on pages (they may show user data)
///    unless a route set its own caching (the static assets).
///
/// The cross-site check: SameSite=Lax already keeps the session cookie off cross-site POSTs;
/// this also covers same-site neighbours (another port or subdomain). In the order of Go's
/// `CrossOriginProtection`: `Sec-Fetch-Site` (every current browser sends it) must be
/// `same-origin`; else `Origin`, else `Referer`, must name our host; with none, refused.
/// `Origin` alone cannot be the check: under `Referrer-Policy: no-referrer`, browsers send
/// `Origin: null` even on same-origin form posts.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let refused = if request
        .uri()
        .query()
        .is_some_and(|q| q.len() > MAX_QUERY_BYTES)
    {
        tracing::warn!(path = request.uri().path(), "query string too long");
        Some(AppError::QueryTooLong)
    } else if request.method() == Method::POST && !is_same_origin(request.headers()) {
        // Only POST changes anything here; other methods fall through to their 405 page.
        tracing::warn!(method = %request.method(), "cross-site request refused");
        Some(AppError::CrossSite)
    } else {
        None
    };
    let response = match refused {
        Some(err) => err.into_response(),
        None => next.run(request).await,
    };
    let mut response = render_error_page(state.is_demo(), response);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, state.csp().clone());
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
