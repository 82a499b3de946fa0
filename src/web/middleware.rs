//! The app's edge: one `axum::middleware::from_fn_with_state` step inside the request's span
//! that refuses what must not run and finishes every response.

use super::{guard, observe};
use crate::state::AppState;
use crate::web::rate_limit::ClientLimiter;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Put in a response's extensions by `POST /logout`: the one response that may delete the
/// session cookie.
#[derive(Clone, Copy)]
pub struct SignedOut;

/// Every request, in order:
/// 1. [`observe`] starts the clock; the client's address goes into the request's extensions
///    (`ClientAddr`, for the rate limit and the device flows' per-client cap);
/// 2. the [`guard`] and the rate limit may refuse it at once, before any session is loaded;
/// 3. the request runs; only sign-out deletes a session cookie ([`keep_cookie_unless_signed_out`]);
/// 4. the guard gives an error response its page and every response the security headers;
/// 5. [`observe`] logs the response line and counts it.
pub async fn edge(
    State((state, limiter)): State<(AppState, ClientLimiter)>,
    mut request: Request,
    next: Next,
) -> Response {
    let observation = observe::Observation::start(&request);
    if let Some(client) = limiter.client(&request) {
        request.extensions_mut().insert(client);
    }
    let refused = guard::refusal(&state, &request).or_else(|| limiter.refusal(&request));
    let response = match refused {
        Some(err) => err.into_response(),
        None => keep_cookie_unless_signed_out(next.run(request).await),
    };
    let response = guard::finish(&state, response);
    observation.finish(&response);
    response
}

/// tower-sessions deletes the cookie whenever a request's session ends up empty, which
/// includes a request that arrives with an id another request of the same browser just
/// replaced (two tabs at the moment of sign-in): that deletion, landing last, would sign the
/// user out. A stale cookie is harmless (it maps to nothing), so only sign-out deletes it.
fn keep_cookie_unless_signed_out(mut response: Response) -> Response {
    if response.extensions().get::<SignedOut>().is_some() {
        return response;
    }
    let is_removal = |c: &HeaderValue| c.to_str().is_ok_and(|c| c.contains("Max-Age=0"));
    let headers = response.headers_mut();
    // Most responses set no cookie at all: look before rebuilding the headers.
    if headers.get_all(header::SET_COOKIE).iter().any(is_removal) {
        let cookies = headers.get_all(header::SET_COOKIE).iter();
        let kept: Vec<_> = cookies.filter(|c| !is_removal(c)).cloned().collect();
        headers.remove(header::SET_COOKIE);
        headers.extend(kept.into_iter().map(|c| (header::SET_COOKIE, c)));
    }
    response
}
