//! The HTTP face of the app: the router and its layers, the typed session, the signed-in
//! extractor, the guard middleware, the static assets and the pages.
//!
//! - [`session`]: `WebSession`, every session key behind typed methods;
//! - [`authed`]: `Authed`, a signed-in request that calls Webex with a fresh token;
//! - [`guard`]: limits, the cross-site check, error pages and security headers;
//! - [`assets`]: CSS, JS and icons compiled into the binary;
//! - [`routes`]: the pages, one module per flow.

mod assets;
mod authed;
mod guard;
mod rate_limit;
mod routes;
mod session;

pub use guard::content_security_policy;
pub use rate_limit::ClientLimiter;

use crate::state::AppState;
use crate::store::SessionBackend;
use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::http::header;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::Response;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};
use tracing::Level;

/// Put in a response's extensions by `POST /logout`: the one response that may delete the
/// session cookie.
#[derive(Clone, Copy)]
pub struct SignedOut;

/// tower-sessions deletes the cookie whenever a request's session ends up empty, which
/// includes a request that arrives with an id another request of the same browser just
/// replaced (two tabs at the moment of sign-in): that deletion, landing last, would sign the
/// user out. A stale cookie is harmless (it maps to nothing), so only sign-out deletes it.
async fn keep_cookie_unless_signed_out(request: Request, next: axum::middleware::Next) -> Response {
    let mut response = next.run(request).await;
    if response.extensions().get::<SignedOut>().is_none() {
        let kept: Vec<_> = response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .filter(|c| !c.to_str().is_ok_and(|c| c.contains("Max-Age=0")))
            .cloned()
            .collect();
        response.headers_mut().remove(header::SET_COOKIE);
        for cookie in kept {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
    }
    response
}

/// Form posts here are tiny; anything bigger is refused.
const MAX_BODY_BYTES: usize = 16 * 1024;

/// The router with its layers. The order matters (the last `.layer` is the outermost):
/// trace → guard (host, query limit, cross-site check, error pages, security headers) →
/// timeout → body limit → rate limit → cookie keeper → sessions → panic catcher → routes, so that error pages are rendered for
/// everything inside, including a failed session save, a panic or a timeout, logged inside the
/// request's span, and carry the headers. The timeout sits right inside the guard: its bare
/// 504 gets the HTML page, and it bounds the session load and save as well as the handler.
pub fn router(state: AppState, sessions: SessionBackend, limiter: ClientLimiter) -> Router {
    // Over https the cookie takes the `__Host-` prefix: the browser then insists on Secure,
    // Path=/ and no Domain, so no subdomain can set or shadow it.
    let name = if state.config().secure_cookies() {
        "__Host-webex_oauth_session"
    } else {
        "webex_oauth_session"
    };
    let sessions = SessionManagerLayer::new(sessions)
        .with_name(name)
        .with_path("/")
        // Lax, not Strict: the browser must send the cookie on the redirect back from Webex,
        // or the callback could never find its state (tower-sessions defaults to Strict).
        .with_same_site(SameSite::Lax)
        .with_http_only(true)
        .with_secure(state.config().secure_cookies())
        // Signed-in sessions; `WebSession` shortens it for sessions without tokens.
        .with_expiry(Expiry::OnInactivity(session::SIGNED_IN_INACTIVITY));
    routes::router(state.clone())
        .layer(CatchPanicLayer::new())
        .layer(sessions)
        .layer(from_fn(keep_cookie_unless_signed_out))
        // Outside the sessions: a refused request writes no session.
        .layer(from_fn_with_state(limiter, rate_limit::limit))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            state.config().handler_timeout,
        ))
        .layer(from_fn_with_state(state, guard::guard))
        .layer(
            TraceLayer::new_for_http()
                // The path only: the query of /oauth carries the authorization code.
                .make_span_with(|request: &Request| {
                    tracing::info_span!("request", method = %request.method(), path = %request.uri().path())
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
}
