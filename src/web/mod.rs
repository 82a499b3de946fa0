//! The HTTP face of the app: the router and its layers, the typed session, the signed-in
//! extractor, the app's edge middleware, the static assets and the pages.
//!
//! - [`session`]: `WebSession`, every session key behind typed methods;
//! - [`authed`]: `Authed`, a signed-in request that calls Webex with a fresh token;
//! - [`guard`]: limits, the cross-site check, error pages and security headers;
//! - [`rate_limit`]: per-client limit on the routes that call Webex for a stranger;
//! - [`observe`]: the response log line, the request id, the HTTP metrics, `/metrics`;
//! - [`assets`]: CSS, JS and icons compiled into the binary;
//! - [`compress`]: br or gzip for the clients that ask for it;
//! - [`routes`]: the pages, one module per flow.
//!
//! The guard, the rate limit and `observe` are steps of one middleware, [`edge`], here.

mod assets;
mod authed;
mod compress;
mod guard;
mod observe;
mod rate_limit;
mod routes;
mod session;

pub use guard::content_security_policy;
pub use observe::serve_metrics;
pub use rate_limit::ClientLimiter;
pub use routes::{SPACES_PAGE_SIZE, spaces_page};

use crate::state::AppState;
use crate::store::SessionBackend;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};
use tracing::Instrument;

/// Put in a response's extensions by `POST /logout`: the one response that may delete the
/// session cookie.
#[derive(Clone, Copy)]
pub struct SignedOut;

/// tower-sessions deletes the cookie whenever a request's session ends up empty, which
/// includes a request that arrives with an id another request of the same browser just
/// replaced (two tabs at the moment of sign-in): that deletion, landing last, would sign the
/// user out. A stale cookie is harmless (it maps to nothing), so only sign-out deletes it.
fn keep_cookie_unless_signed_out(mut response: Response) -> Response {
    let is_removal = |c: &header::HeaderValue| c.to_str().is_ok_and(|c| c.contains("Max-Age=0"));
    // Most responses set no cookie at all: look before rebuilding the headers.
    let removes = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .any(is_removal);
    if removes && response.extensions().get::<SignedOut>().is_none() {
        let kept: Vec<_> = response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .filter(|c| !is_removal(c))
            .cloned()
            .collect();
        response.headers_mut().remove(header::SET_COOKIE);
        for cookie in kept {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
    }
    response
}

/// The app's edge: every request's checks and every response's finish, in one middleware (one
/// boxed future a request; as separate layers they cost one each, and moved each response
/// once more):
/// 1. the request id is kept or made ([`observe::request_id`]) and the request's span opened:
///    every log line of the request carries the method, the path (at most 256 bytes of it, and
///    never the query: the one of `/oauth` carries the authorization code) and the id;
///    [`observe`] starts the clock;
/// 2. the [`guard`] refuses a host we do not serve, a long query or a cross-site POST, and the
///    [`rate_limit`] a client over its quota on the routes that call Webex for a stranger;
///    either answers at once, before any session is loaded;
/// 3. the request runs (timeout, sessions, route), and a session cookie is deleted only by
///    sign-out ([`keep_cookie_unless_signed_out`]);
/// 4. the guard gives an error response its page and every response the security headers,
///    and the response gets the request id;
/// 5. [`observe`] logs the response line (inside the span) and counts it.
async fn edge(
    State((state, limiter)): State<(AppState, ClientLimiter)>,
    mut request: Request,
    next: Next,
) -> Response {
    let request_id = observe::request_id(&mut request);
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %observe::LoggedPath(request.uri().path()),
        request_id = %request_id.to_str().unwrap_or_default(),
    );
    async move {
        let observation = observe::Observation::start(&request);
        let refusal = guard::refusal(&state, &request).or_else(|| limiter.refusal(&request));
        let response = match refusal {
            Some(err) => err.into_response(),
            None => keep_cookie_unless_signed_out(next.run(request).await),
        };
        let mut response = guard::finish(&state, response);
        response
            .headers_mut()
            .insert(observe::REQUEST_ID, request_id);
        observation.finish(&response);
        response
    }
    .instrument(span)
    .await
}

/// Form posts here are tiny; anything bigger is refused.
const MAX_BODY_BYTES: usize = 16 * 1024;

/// The router with its layers. The order matters (outermost first): compression → [`edge`]
/// (the request id and span, the log line and metrics; the host, query, cross-site and
/// rate-limit refusals; the cookie keeper; error pages and security headers) → timeout →
/// sessions → panic catcher → body limit → routes. So error pages are rendered for everything
/// inside, including a failed session save, a panic or a timeout (right inside the edge, its
/// bare 504 gets the page, and it bounds the session load and save as well as the handler),
/// compressed, logged inside the request's span, with the headers.
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
    // and every layer that clones its inner service per request (the `from_fn`, the session
    // manager) would clone each box below it: with a dozen separate calls that was about 70
    // boxed clones a request. Listed outermost first.
    let layers = ServiceBuilder::new()
        // br or gzip, as the client accepts (images other than SVG and tiny bodies stay as
        // is); a request without Accept-Encoding goes round it.
        .layer(compress::CompressLayer::new())
        .layer(from_fn_with_state((state.clone(), limiter), edge))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            state.config().handler_timeout,
        ))
        .layer(sessions)
        .layer(CatchPanicLayer::new())
        // Innermost: the request body becomes `Limited<Body>`, which `from_fn` layers cannot
        // take but the routes can.
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES));
    routes::router(state).layer(layers)
}
