//! The HTTP face of the app: the router and its layers, the typed session, the signed-in
//! extractor, the app's edge middleware, the static assets and the pages.
//!
//! - [`session`]: `WebSession`, every session key behind typed methods;
//! - [`authed`]: `Authed`, a signed-in request that calls Webex with a fresh token;
//! - [`edge`]: the layer that opens and closes every request (the steps below, in order);
//! - [`guard`]: limits, the cross-site check, error pages and security headers;
//! - [`rate_limit`]: per-client limit on the routes that call Webex for a stranger;
//! - [`observe`]: the response log line, the request id, the HTTP metrics, `/metrics`;
//! - [`assets`]: CSS, JS and icons compiled into the binary;
//! - [`compress`]: br or gzip for the clients that ask for it;
//! - [`routes`]: the pages, one module per flow.
//!
//! The guard, the rate limit, the handler timeout and `observe` are steps of one layer,
//! [`edge::Edge`].

mod assets;
mod authed;
mod compress;
mod edge;
mod guard;
mod observe;
mod rate_limit;
mod routes;
mod session;

pub use edge::SignedOut;
pub use guard::content_security_policy;
pub use observe::serve_metrics;
pub use rate_limit::ClientLimiter;
#[cfg(feature = "test-support")]
pub use routes::{SPACES_PAGE_SIZE, spaces_page};

use crate::state::AppState;
use crate::store::SessionBackend;
use axum::Router;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

/// Form posts here are tiny; anything bigger is refused.
const MAX_BODY_BYTES: usize = 16 * 1024;

/// The router with its layers. The order matters (outermost first): compression →
/// [`edge::Edge`] (the request id and span, the log line and metrics; the host, query,
/// cross-site and rate-limit refusals; the handler timeout; the cookie keeper; error pages and
/// security headers) → sessions → panic catcher → body limit → routes. So error pages are
/// rendered for everything inside, including a failed session save, a panic or a timeout (the
/// timeout bounds the session load and save as well as the handler), compressed, logged inside
/// the request's span, with the headers.
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
    // One `Router::layer` call with the whole stack: axum boxes a route once per `layer` call,
    // and every layer that clones its inner service per request (the session manager) would
    // clone each box below it: with a dozen separate calls that was about 70 boxed clones a
    // request. Listed outermost first.
    let layers = ServiceBuilder::new()
        // br or gzip, as the client accepts (images other than SVG and tiny bodies stay as
        // is); a request without Accept-Encoding goes round it.
        .layer(compress::CompressLayer::new())
        .layer(edge::EdgeLayer::new(
            state.clone(),
            limiter,
            state.config().handler_timeout,
        ))
        .layer(sessions)
        .layer(CatchPanicLayer::new())
        // Innermost: the request body becomes `Limited<Body>`, which the edge (a service of
        // `Request<Body>`) could not take but the routes can.
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES));
    routes::router(state).layer(layers)
}
