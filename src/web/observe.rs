//! What an operator sees of each request: the request id, the span, the response log line and
//! the HTTP metrics; and the separate `/metrics` listener.

use crate::state::AppState;
use crate::telemetry::{self, PrometheusHandle};
use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, header};
use axum::response::Response;
use axum::routing::get;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// The request-id header: kept when the client (or a proxy) sends a plain one, made otherwise
/// (tower-http's `SetRequestIdLayer`, a UUID), and sent back with the response.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The longest client request id kept.
const MAX_REQUEST_ID: usize = 64;

/// Drops a client's request id that is not 1 to [`MAX_REQUEST_ID`] bytes of `[A-Za-z0-9._-]` (it
/// goes into every log line, and whatever parses them), so that `SetRequestIdLayer` makes one.
pub fn drop_odd_request_id(mut request: Request) -> Request {
    let plain = |b: &u8| b.is_ascii_alphanumeric() || b"._-".contains(b);
    if let Some(id) = request.headers().get(&REQUEST_ID)
        && !((1..=MAX_REQUEST_ID).contains(&id.len()) && id.as_bytes().iter().all(plain))
    {
        request.headers_mut().remove(&REQUEST_ID);
    }
    request
}

/// The request's span (tower-http's `TraceLayer`): every log line of the request carries the
/// method, the path (at most 256 bytes of it, and never the query: the one of `/oauth` carries
/// the authorization code) and the request id.
pub fn request_span(request: &Request) -> tracing::Span {
    let id = request.headers().get(&REQUEST_ID);
    let id = id.and_then(|id| id.to_str().ok()).unwrap_or_default();
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %LoggedPath(request.uri().path()),
        request_id = %id,
    )
}

/// The longest path logged, in bytes: a client picks the path (up to the 32 KiB of a request
/// head) and it goes into every line of the request.
const MAX_LOGGED_PATH: usize = 256;

/// A path as the log gives it: at most [`MAX_LOGGED_PATH`] bytes, then `…`.
struct LoggedPath<'a>(&'a str);

impl std::fmt::Display for LoggedPath<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.len() <= MAX_LOGGED_PATH {
            return f.write_str(self.0);
        }
        let boundary = |at: &usize| self.0.is_char_boundary(*at);
        let end = (0..=MAX_LOGGED_PATH).rev().find(boundary).unwrap_or(0);
        write!(f, "{}…", &self.0[..end])
    }
}

/// One request as the edge sees it: started when it came in, finished with its response.
pub struct Observation {
    started: Instant,
    method: &'static str,
    /// The template (`/sign-in`), never the raw path: bounded label values, no ids in them.
    route: Option<MatchedPath>,
}

impl Observation {
    pub fn start(request: &Request) -> Self {
        // The methods we serve, by name; any other is `other` (a label value each would let a
        // client grow the metrics without bound).
        const SERVED: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];
        let method = request.method().as_str();
        Self {
            started: Instant::now(),
            method: SERVED.into_iter().find(|m| *m == method).unwrap_or("other"),
            route: request.extensions().get::<MatchedPath>().cloned(),
        }
    }

    /// Logs the response (inside the request's span) and counts it by route template.
    pub fn finish(self, response: &Response) {
        let latency = self.started.elapsed();
        let status = response.status().as_u16();
        let route = self.route.as_ref().map_or("unmatched", MatchedPath::as_str);
        let latency_ms = millis(latency);
        // Probes and static files at debug level, or they drown the log.
        if is_quiet(route) {
            tracing::debug!(status, latency_ms, "response");
        } else {
            tracing::info!(status, latency_ms, "response");
        }
        if telemetry::metrics_enabled() {
            metrics::counter!(telemetry::HTTP_REQUESTS, "route" => route.to_owned(), "method" => self.method, "status" => status.to_string())
                .increment(1);
            metrics::histogram!(telemetry::HTTP_DURATION, "route" => route.to_owned(), "method" => self.method)
                .record(latency.as_secs_f64());
        }
    }
}

/// Milliseconds with three decimals (microsecond precision): a cached page takes well under one.
fn millis(latency: Duration) -> f64 {
    let micros = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
    f64::from(micros) / 1000.0
}

fn is_quiet(route: &str) -> bool {
    matches!(route, "/healthz" | "/readyz" | "/favicon.ico") || route.starts_with("/static/")
}

/// Serves `GET /metrics` (Prometheus text) on the metrics listener until aborted.
pub async fn serve_metrics(listener: TcpListener, handle: PrometheusHandle, state: AppState) {
    let scrape = handle.clone();
    let router = Router::new().route(
        "/metrics",
        get(move || async move {
            match state.flows().pending().await {
                Ok(pending) => metrics::gauge!(telemetry::DEVICE_FLOWS_PENDING).set(pending as f64),
                Err(_) => telemetry::store_error("metrics"),
            }
            let text = "text/plain; version=0.0.4; charset=utf-8";
            ([(header::CONTENT_TYPE, text)], scrape.render())
        }),
    );
    // Histograms buffer samples until drained: a scrape drains them, and so does this when
    // nobody scrapes. One task for both, so aborting it stops both.
    let upkeep = async {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    };
    tokio::select! {
        result = axum::serve(listener, router) => {
            if let Err(err) = result {
                tracing::error!(%err, "the metrics listener stopped");
            }
        }
        () = upkeep => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_keeps_microseconds() {
        assert_eq!(millis(Duration::from_micros(1234)), 1.234);
        assert_eq!(millis(Duration::from_micros(87)), 0.087);
    }

    #[test]
    fn probes_and_assets_are_quiet_pages_are_not() {
        assert!(is_quiet("/healthz") && is_quiet("/readyz") && is_quiet("/static/app.js"));
        assert!(!is_quiet("/") && !is_quiet("/sign-in") && !is_quiet("unmatched"));
    }

    #[test]
    fn plain_request_ids_are_kept_and_odd_ones_dropped() {
        let kept = |id: &str| {
            let mut request = Request::new(axum::body::Body::empty());
            let headers = request.headers_mut();
            headers.insert(&REQUEST_ID, id.parse().unwrap());
            let request = drop_odd_request_id(request);
            request.headers().contains_key(&REQUEST_ID)
        };
        // The rest of the rule: tests/api/request_heads.rs.
        assert!(kept("4f1c2a9e-6b1d-4c3e-9a7b-2d5e8f0a1b2c"));
        assert!(!kept(""));
    }
}
