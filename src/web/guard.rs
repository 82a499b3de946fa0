//! The guard, the first and last step of the app's edge: the host and query limits, the
//! cross-site POST check, the error pages and the security headers.

use crate::state::AppState;
use crate::web::error::{AppError, render_error_page};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Version, header};
use axum::response::Response;

/// The Content-Security-Policy: our own scripts and styles only, images from us, `data:` (the
/// QR code) and the avatar hosts, no framing, forms only to us.
pub fn content_security_policy(avatar_origins: &[String]) -> String {
    let avatars: String = avatar_origins.iter().map(|o| format!(" {o}")).collect();
    format!(
        "default-src 'self'; img-src 'self' data: https://*.webexcontent.com{avatars}; \
         script-src 'self'; style-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}

/// Longest query string accepted (the OAuth callback's is about 200 bytes).
pub const MAX_QUERY_BYTES: usize = 4096;

/// What the guard refuses before a request runs, in this order: two hosts named, or none in
/// HTTP/1.1 (400 on every path, [`named_host`]); a host we do not serve (400: DNS rebinding; the
/// probes answer any host); a query over [`MAX_QUERY_BYTES`] (414); a cross-site POST (403,
/// [`is_same_origin`]).
pub fn refusal(state: &AppState, request: &Request) -> Option<AppError> {
    let uri = request.uri();
    let probe = matches!(uri.path(), "/healthz" | "/readyz");
    let (refused, why) = match named_host(request) {
        Err(TwoHosts) => (AppError::UnknownHost, "request naming two hosts refused"),
        // RFC 9112 §3.2: an HTTP/1.1 request without a host is a 400 (HTTP/1.0 may omit it).
        Ok(None) if request.version() == Version::HTTP_11 => (
            AppError::UnknownHost,
            "HTTP/1.1 request without Host refused",
        ),
        Ok(host) if !probe && !host_allowed(host, state.allowed_hosts()) => {
            (AppError::UnknownHost, "request for a host we do not serve")
        }
        _ if uri.query().is_some_and(|q| q.len() > MAX_QUERY_BYTES) => {
            (AppError::QueryTooLong, "query string too long")
        }
        // Only POST changes anything here; other methods fall through to their 405 page.
        _ if request.method() == Method::POST
            && !is_same_origin(request.headers(), state.allowed_origins()) =>
        {
            (AppError::CrossSite, "cross-site request refused")
        }
        _ => return None,
    };
    // The request's span carries the method and the path.
    tracing::warn!("{why}");
    Some(refused)
}

/// `Strict-Transport-Security` when served over https: two years, subdomains too.
const HSTS: &str = "max-age=63072000; includeSubDomains";

/// Gives an error response its HTML page ([`render_error_page`]) and every response the
/// security headers: CSP, `Referrer-Policy: no-referrer` (the callback URL carries the code),
/// `nosniff`, `Cache-Control: no-store` unless a route set its own (pages may show user data),
/// and [`HSTS`] when the redirect URI is https (then so is the app, by itself or its proxy).
pub fn finish(state: &AppState, response: Response) -> Response {
    let mut response = render_error_page(state.is_demo(), response);
    let headers = response.headers_mut();
    let fixed = HeaderValue::from_static;
    if state.config().secure_cookies() {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, fixed(HSTS));
    }
    headers.insert(header::CONTENT_SECURITY_POLICY, state.csp().clone());
    headers.insert(header::REFERRER_POLICY, fixed("no-referrer"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, fixed("nosniff"));
    let cache = headers.entry(header::CACHE_CONTROL);
    cache.or_insert(fixed("no-store"));
    response
}

/// `sec-fetch-site`, which `http` has no constant for (by `&str` it is parsed on every lookup).
static SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

/// Two different hosts named: two `Host` lines, one that is not text, or an absolute-form
/// target (`GET http://host/ HTTP/1.1`) whose authority is not the `Host` line (RFC 9112 §3.2).
struct TwoHosts;

/// The host a request names: its absolute-form target's authority (it wins over `Host`), else
/// its `Host`; `None` when it names none.
fn named_host(request: &Request) -> Result<Option<&str>, TwoHosts> {
    let mut lines = request.headers().get_all(header::HOST).iter();
    let host = lines.next().map(|h| h.to_str().map_err(|_| TwoHosts));
    if lines.next().is_some() {
        return Err(TwoHosts);
    }
    let host = host.transpose()?;
    match request.uri().authority().map(|a| a.as_str()) {
        // Compared as sent: a user name (`user@host`) in the target does not match.
        Some(target) if host.is_some_and(|h| !h.eq_ignore_ascii_case(target)) => Err(TwoHosts),
        Some(target) => Ok(Some(target)),
        None => Ok(host),
    }
}

/// The named host is one we serve (compared without case). Only an HTTP/1.0 request gets here
/// without one, and it cannot be a browser's rebinding attack.
fn host_allowed(host: Option<&str>, allowed: &[String]) -> bool {
    host.is_none_or(|host| allowed.iter().any(|a| a.eq_ignore_ascii_case(host)))
}

/// SameSite=Lax already keeps the session cookie off cross-site POSTs; this also covers
/// same-site neighbours (another port or subdomain), as Go 1.25's `http.CrossOriginProtection`
/// does: `Sec-Fetch-Site` (every current browser sends it) passes when `same-origin` or `none`;
/// without it, an `Origin` must be one of ours (scheme, host and port); with neither, the
/// request is not a browser's (no ambient cookie to abuse) and passes.
fn is_same_origin(headers: &HeaderMap, origins: &[String]) -> bool {
    let text = |name: &HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text(&SEC_FETCH_SITE) {
        return matches!(site, "same-origin" | "none");
    }
    match text(&header::ORIGIN) {
        Some(origin) => origins.iter().any(|o| o.eq_ignore_ascii_case(origin)),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_origin_rules_follow_go_cross_origin_protection() {
        let ours = ["http://app:1".to_owned()];
        let same = |pairs: &[(&'static str, &'static str)]| {
            let headers = pairs
                .iter()
                .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v)));
            is_same_origin(&headers.collect(), &ours)
        };
        // Sec-Fetch-Site decides when present (`none`: typed by the user); else an Origin of
        // ours, scheme and port included; Referer is not consulted; with neither, not a browser.
        for pairs in [
            &[("sec-fetch-site", "same-origin"), ("origin", "null")][..],
            &[("sec-fetch-site", "none")],
            &[("origin", "http://app:1")],
            &[("referer", "http://evil.example/")],
            &[],
        ] {
            assert!(same(pairs), "{pairs:?}");
        }
        for pairs in [
            &[("sec-fetch-site", "same-site"), ("origin", "http://app:1")][..],
            &[("sec-fetch-site", "cross-site")],
            &[("origin", "https://app:1")],
            &[("origin", "http://app:2")],
            &[("origin", "http://evil.example")],
            &[("origin", "null")],
            &[
                ("referer", "http://app:1/"),
                ("origin", "http://evil.example"),
            ],
        ] {
            assert!(!same(pairs), "{pairs:?}");
        }
    }

    #[test]
    fn only_our_hosts_are_served() {
        let ours = ["localhost:10060".to_owned(), "127.0.0.1:10060".to_owned()];
        // Another host: tests/api/abuse.rs.
        assert!(host_allowed(Some("LOCALHOST:10060"), &ours));
        assert!(host_allowed(Some("127.0.0.1:10060"), &ours));
        assert!(!host_allowed(Some("localhost:10061"), &ours));
        assert!(host_allowed(None, &ours));
    }

    #[test]
    fn a_request_names_one_host() {
        let named = |target: &str, hosts: &[&'static str]| {
            let mut request = Request::builder().uri(target);
            for host in hosts {
                request = request.header(header::HOST, *host);
            }
            let request = request.body(axum::body::Body::empty()).unwrap();
            named_host(&request).ok().map(|h| h.map(str::to_owned))
        };
        // Two hosts, a user name, one host: tests/api/request_heads.rs.
        assert_eq!(named("/", &[]), Some(None));
        assert_eq!(named("http://A:1/x", &["a:1"]), Some(Some("A:1".into())));
        assert_eq!(named("http://b:1/x", &[]), Some(Some("b:1".into())));
    }

    #[test]
    fn csp_lists_the_avatar_origins() {
        let csp = content_security_policy(&["http://127.0.0.1:4000".into()]);
        let images = "img-src 'self' data: https://*.webexcontent.com http://127.0.0.1:4000;";
        assert!(csp.contains(images), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"));
    }
}
