//! The app's edge: the one layer that opens and closes every request (its id, span, checks,
//! handler timeout, error page, headers, log line and metrics), written as a tower service.
//!
//! As `axum::middleware::from_fn` plus tower-http's `TimeoutLayer` it cost, on every request,
//! a clone of the stack below it, two boxed futures, a boxed service, and a timer registered
//! and deregistered even for the page answered at once. Here the stack below is called in
//! place, the future is a plain struct, and the timer is armed only when the request waits.

use super::{guard, observe};
use crate::state::AppState;
use crate::web::rate_limit::ClientLimiter;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pin_project_lite::pin_project;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};
use tracing::Span;

/// Put in a response's extensions by `POST /logout`: the one response that may delete the
/// session cookie.
#[derive(Clone, Copy)]
pub struct SignedOut;

/// The edge around each route (see [`Edge`]).
#[derive(Clone)]
pub struct EdgeLayer {
    state: AppState,
    limiter: ClientLimiter,
    handler_timeout: Duration,
}

impl EdgeLayer {
    pub fn new(state: AppState, limiter: ClientLimiter, handler_timeout: Duration) -> Self {
        Self {
            state,
            limiter,
            handler_timeout,
        }
    }
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            layer: self.clone(),
        }
    }
}

/// Every request's checks and every response's finish:
/// 1. the request id is kept or made ([`observe::request_id`]) and the request's span opened:
///    every log line of the request carries the method, the path (at most 256 bytes of it, and
///    never the query: the one of `/oauth` carries the authorization code) and the id;
///    [`observe`] starts the clock;
/// 2. the [`guard`] refuses a host we do not serve, a long query or a cross-site POST, and the
///    rate limit a client over its quota on the routes that call Webex for a stranger; either
///    answers at once, before any session is loaded;
/// 3. the request runs (sessions, route) for at most the handler timeout, then gets a 504;
///    a session cookie is deleted only by sign-out ([`keep_cookie_unless_signed_out`]);
/// 4. the guard gives an error response its page and every response the security headers,
///    and the response gets the request id;
/// 5. [`observe`] logs the response line (inside the span) and counts it.
#[derive(Clone)]
pub struct Edge<S> {
    inner: S,
    layer: EdgeLayer,
}

impl<S> Service<Request> for Edge<S>
where
    S: Service<Request, Error = Infallible>,
    S::Response: IntoResponse,
{
    type Response = Response;
    type Error = Infallible;
    type Future = EdgeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    /// Steps 1 and 2 here, and the stack below is called in place (it was just polled ready):
    /// the rest happens as the returned future runs.
    fn call(&mut self, mut request: Request) -> Self::Future {
        let request_id = observe::request_id(&mut request);
        let span = tracing::info_span!(
            "request",
            method = %request.method(),
            path = %observe::LoggedPath(request.uri().path()),
            request_id = %request_id.to_str().unwrap_or_default(),
        );
        let entered = span.enter();
        let observation = observe::Observation::start(&request);
        // `None` (no timeout) only if the deadline does not fit in an `Instant`.
        let deadline =
            Instant::from_std(observation.started()).checked_add(self.layer.handler_timeout);
        let EdgeLayer { state, limiter, .. } = &self.layer;
        let run = match guard::refusal(state, &request).or_else(|| limiter.refusal(&request)) {
            Some(err) => Run::Refused {
                response: Some(err.into_response()),
            },
            None => Run::Running {
                response: self.inner.call(request),
                deadline,
                timer: None,
            },
        };
        drop(entered);
        EdgeFuture {
            run,
            finish: Some(Finish {
                state: state.clone(),
                request_id,
                observation,
            }),
            span,
        }
    }
}

pin_project! {
    /// The response future of [`Edge`]: the request running inside its span, then finished.
    pub struct EdgeFuture<F> {
        #[pin]
        run: Run<F>,
        finish: Option<Finish>,
        span: Span,
    }

    impl<F> PinnedDrop for EdgeFuture<F> {
        /// A request dropped unfinished (the client went away, or shutdown's drain deadline)
        /// is dropped inside its span, so whatever its drop logs carries the request id.
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if matches!(this.run.as_mut().project(), RunProj::Done) {
                return;
            }
            let _entered = this.span.enter();
            this.run.set(Run::Done);
        }
    }
}

pin_project! {
    #[project = RunProj]
    enum Run<F> {
        /// Refused by the guard or the rate limit: the response is ready.
        Refused { response: Option<Response> },
        /// Running under the handler timeout; the timer is armed the first time it waits.
        Running {
            #[pin]
            response: F,
            deadline: Option<Instant>,
            #[pin]
            timer: Option<Sleep>,
        },
        /// Answered, or dropped: nothing of the request is left.
        Done,
    }
}

/// What the response is finished with (steps 3 to 5).
struct Finish {
    state: AppState,
    request_id: HeaderValue,
    observation: observe::Observation,
}

impl<F, R> Future for EdgeFuture<F>
where
    F: Future<Output = Result<R, Infallible>>,
    R: IntoResponse,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let _entered = this.span.enter();
        let response = match this.run.as_mut().project() {
            RunProj::Refused { response } => response.take(),
            // The request first, then the timer: a response ready at the deadline is served.
            RunProj::Running {
                response,
                deadline,
                mut timer,
            } => match response.poll(cx) {
                Poll::Ready(Ok(response)) => {
                    Some(keep_cookie_unless_signed_out(response.into_response()))
                }
                Poll::Pending => {
                    let Some(deadline) = *deadline else {
                        return Poll::Pending;
                    };
                    if timer.is_none() {
                        timer.set(Some(tokio::time::sleep_until(deadline)));
                    }
                    if let Some(timer) = timer.as_pin_mut() {
                        ready!(timer.poll(cx));
                    }
                    // Past the handler timeout: the page says so (`guard::finish` logs it).
                    Some(StatusCode::GATEWAY_TIMEOUT.into_response())
                }
            },
            RunProj::Done => None,
        };
        // What is left of the request (a timed-out one) is dropped now, inside the span and
        // before the response line, as tower-http's timeout dropped it.
        this.run.set(Run::Done);
        let (Some(response), Some(finish)) = (response, this.finish.take()) else {
            panic!("the edge's response future was polled after it completed");
        };
        let mut response = guard::finish(&finish.state, response);
        response
            .headers_mut()
            .insert(&observe::REQUEST_ID, finish.request_id);
        finish.observation.finish(&response);
        Poll::Ready(Ok(response))
    }
}

/// tower-sessions deletes the cookie whenever a request's session ends up empty, which
/// includes a request that arrives with an id another request of the same browser just
/// replaced (two tabs at the moment of sign-in): that deletion, landing last, would sign the
/// user out. A stale cookie is harmless (it maps to nothing), so only sign-out deletes it.
fn keep_cookie_unless_signed_out(mut response: Response) -> Response {
    let is_removal = |c: &HeaderValue| c.to_str().is_ok_and(|c| c.contains("Max-Age=0"));
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
