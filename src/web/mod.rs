//! The HTTP face of the app: the router and its layers, the typed session ([`session`]), the
//! signed-in extractor ([`authed`]), the app's edge middleware, the static assets and the pages
//! ([`routes`], [`templates`]), and every failure as its page ([`error`]).

mod assets;
mod authed;
pub(crate) mod error;
mod guard;
mod middleware;
mod observe;
mod rate_limit;
mod routes;
mod session;
pub(crate) mod templates;

pub use guard::content_security_policy;
pub use middleware::SignedOut;
pub use observe::serve_metrics;
pub use rate_limit::ClientLimiter;
#[cfg(feature = "test-support")]
pub use routes::spaces_page;

use crate::state::AppState;
use crate::store::SessionBackend;
use axum::Router;
use axum::http::StatusCode;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::{CompressionLayer, CompressionLevel};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

/// Form posts here are tiny; anything bigger is refused.
const MAX_BODY_BYTES: usize = 16 * 1024;

/// The router with its layers, outermost first as listed: [`middleware::edge`] sits inside the
/// span and outside the timeout, sessions and panic catcher, so it renders the page of a failed
/// session save, a panic or a timeout (which bounds the session load and save too), compressed.
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
    let request_id = observe::REQUEST_ID.clone();
    let edge = axum::middleware::from_fn_with_state((state.clone(), limiter), middleware::edge);
    let timeout = state.config().handler_timeout;
    let timeout = TimeoutLayer::with_status_code(StatusCode::GATEWAY_TIMEOUT, timeout);
    let layers = ServiceBuilder::new()
        // zstd, else gzip, at their fastest (tower-http skips images and tiny bodies): on the
        // 44.5 KB spaces page zstd-1 makes 2.7 KB in 28 µs, gzip-1 3.4 KB in 38 µs, brotli 4
        // 2.8 KB in 149 µs, and its fast qualities lose on both, so it is not offered.
        .layer(CompressionLayer::new().quality(CompressionLevel::Fastest))
        .map_request(observe::drop_odd_request_id)
        .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
        // The span only: the edge writes the response line.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(observe::request_span)
                .on_request(())
                .on_response(())
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::new(request_id))
        .layer(edge)
        .layer(timeout)
        .layer(sessions)
        .layer(CatchPanicLayer::new())
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES));
    routes::router(state).layer(layers)
}
