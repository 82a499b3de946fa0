//! The HTTP face of the app: the router and its layers, the typed session, the signed-in
//! extractor, the guard middleware, the static assets and the pages.
//!
//! - [`session`]: `WebSession`, every session key behind typed methods;
//! - [`authed`]: `Authed`, a signed-in request that calls Webex with a fresh token;
//! - [`guard`]: limits, the cross-site check, error pages and security headers;
//! - [`assets`]: CSS, JS and icons compiled into the binary;
//! - [`observe`]: the response log line, the request id, the HTTP metrics, `/metrics`;
//! - [`routes`]: the pages, one module per flow.

mod assets;
mod authed;
mod guard;
mod observe;
mod routes;
mod session;

pub use guard::content_security_policy;
pub use observe::serve_metrics;

use crate::state::AppState;
use crate::store::SessionBackend;
use axum::Router;
use axum::extract::Request;
use axum::http::HeaderName;
use axum::middleware::{from_fn, from_fn_with_state};
use tower::util::MapRequestLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

/// A session nobody used for this long is gone (a signed-in session is renewed at most once a
/// day, see `session::TOUCH_EVERY_SECS`).
const SESSION_INACTIVITY: time::Duration = time::Duration::days(30);
/// Form posts here are tiny; anything bigger is refused.
const MAX_BODY_BYTES: usize = 16 * 1024;

/// The router with its layers. The order matters (the last `.layer` is the outermost):
/// request id (an odd one dropped, then kept or made, then copied to the response) → trace (the
/// span, with the request id) → observe (the response line, the metrics) → compression → guard
/// (query limit, cross-site check, error pages, security headers) → body limit → sessions →
/// panic catcher → routes, so that error pages are rendered for everything inside, including a
/// failed session save or a panic, compressed, logged inside the request's span, and carry the
/// headers.
pub fn router(state: AppState, sessions: SessionBackend) -> Router {
    let sessions = SessionManagerLayer::new(sessions)
        .with_name("webex_oauth_session")
        // Lax, not Strict: the browser must send the cookie on the redirect back from Webex,
        // or the callback could never find its state (tower-sessions defaults to Strict).
        .with_same_site(SameSite::Lax)
        .with_http_only(true)
        .with_secure(state.config().secure_cookies())
        .with_expiry(Expiry::OnInactivity(SESSION_INACTIVITY));
    let request_id = HeaderName::from_static(observe::REQUEST_ID);
    routes::router(state.clone())
        .layer(CatchPanicLayer::new())
        .layer(sessions)
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(from_fn_with_state(state, guard::guard))
        // br or gzip, as the client accepts; images other than SVG and tiny bodies stay as is.
        .layer(CompressionLayer::new().br(true).gzip(true))
        .layer(from_fn(observe::observe))
        .layer(
            TraceLayer::new_for_http()
                // The path only: the query of /oauth carries the authorization code.
                .make_span_with(|request: &Request| {
                    tracing::info_span!(
                        "request",
                        method = %request.method(),
                        path = %request.uri().path(),
                        request_id = %observe::request_id(request),
                    )
                })
                // `observe` writes the response line, at a level that depends on the route.
                .on_response(()),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(MapRequestLayer::new(observe::drop_odd_request_id))
}
