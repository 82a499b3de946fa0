//! What an operator sees of each request: the response log line (latency in milliseconds with
//! microsecond precision; health checks and static files at debug level), the request id, the
//! HTTP metrics, and the separate `/metrics` listener.

use crate::state::AppState;
use crate::telemetry::{self, PrometheusHandle};
use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::response::Response;
use axum::routing::get;
use metrics::{Counter, Histogram};
use std::collections::HashMap;
use std::sync::{LazyLock, RwLock};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// The request-id header: kept when the client (or a proxy) sends one, made otherwise. A
/// `HeaderName` made once: inserting by `&str` copies a name that is not a standard one into
/// a new allocation each time.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// A client's request id longer than this, or with anything but `[A-Za-z0-9._:-]`, is replaced
/// (it goes into every log line of the request).
const MAX_REQUEST_ID: usize = 128;

/// The request's id: the client's (or its proxy's) when it is a plain short token, otherwise
/// a new one, which replaces it on the request. An odd one is replaced because it goes into
/// every log line of the request.
///
/// A new id is a random UUID (version 4 layout) from the thread's userspace generator: an id
/// only has to be unique, not secret, and asking the kernel for each one (as tower-http's
/// `MakeRequestUuid` does) is a system call a request.
pub fn request_id(request: &mut Request) -> HeaderValue {
    if let Some(id) = request.headers().get(&REQUEST_ID)
        && is_plain_token(id.as_bytes())
    {
        return id.clone();
    }
    let made = HeaderValue::from_bytes(&uuid_v4_text(rand::random()))
        .unwrap_or(HeaderValue::from_static("-"));
    request.headers_mut().insert(&REQUEST_ID, made.clone());
    made
}

/// At most [`MAX_REQUEST_ID`] bytes of `[A-Za-z0-9._:-]`.
fn is_plain_token(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(b))
}

/// `xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx` (y is 8 to b) of 128 random bits.
fn uuid_v4_text(bits: u128) -> [u8; 36] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // Version 4 in the high nibble of octet 6, variant `10` in the top bits of octet 8.
    let bits = (bits & !(0xF << 76)) | (0x4 << 76);
    let bits = (bits & !(0x3 << 62)) | (0x2 << 62);
    let mut text = [b'-'; 36];
    let mut at = 0;
    for (i, slot) in text.iter_mut().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            continue;
        }
        let shift = 124 - 4 * at;
        *slot = HEX[((bits >> shift) & 0xF) as usize];
        at += 1;
    }
    text
}

/// The longest path logged, in bytes: a client picks the path (hyper takes up to 64 KB) and it
/// goes into every line of the request.
const MAX_LOGGED_PATH: usize = 256;

/// A request's path as its log lines give it: at most [`MAX_LOGGED_PATH`] bytes, then `…`.
pub struct LoggedPath<'a>(pub &'a str);

impl std::fmt::Display for LoggedPath<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.len() <= MAX_LOGGED_PATH {
            return f.write_str(self.0);
        }
        let end = (0..=MAX_LOGGED_PATH)
            .rev()
            .find(|&at| self.0.is_char_boundary(at))
            .unwrap_or(0);
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
        Self {
            started: Instant::now(),
            method: method_label(request.method()),
            route: request.extensions().get::<MatchedPath>().cloned(),
        }
    }

    /// When the request came in.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Logs the response (inside the request's span) and counts it by route template.
    pub fn finish(self, response: &Response) {
        let latency = self.started.elapsed();
        let status = response.status().as_u16();
        let route = self.route.as_ref().map_or("unmatched", MatchedPath::as_str);
        let latency_ms = millis(latency);
        if is_quiet(route) {
            tracing::debug!(status, latency_ms, "response");
        } else {
            tracing::info!(status, latency_ms, "response");
        }
        if telemetry::metrics_enabled() {
            let (requests, duration) = http_metrics(route, self.method, status);
            requests.increment(1);
            duration.record(latency.as_secs_f64());
        }
    }
}

/// Metric handles by route, then by (method, status), looked up without allocating: building a
/// labelled key for each request (three label strings, a registry lookup) cost more than
/// counting. The routes are the router's templates, so the map is small and bounded, as the
/// label values are.
type Handles = (Counter, Histogram);
type ByMethodAndStatus = HashMap<(&'static str, u16), Handles>;
static HTTP_METRICS: LazyLock<RwLock<HashMap<Box<str>, ByMethodAndStatus>>> =
    LazyLock::new(Default::default);

/// `webex_oauth_http_requests_total{route, method, status}` and
/// `webex_oauth_http_request_duration_seconds{route, method}` of one response.
fn http_metrics(route: &str, method: &'static str, status: u16) -> Handles {
    let key = (method, status);
    let read = HTTP_METRICS.read().unwrap_or_else(|e| e.into_inner());
    if let Some(handles) = read.get(route).and_then(|by_key| by_key.get(&key)) {
        return handles.clone();
    }
    drop(read);
    // The recorder hands out the same histogram for every status of a (route, method).
    let handles = (
        metrics::counter!(telemetry::HTTP_REQUESTS, "route" => route.to_owned(), "method" => method, "status" => status.to_string()),
        metrics::histogram!(telemetry::HTTP_DURATION, "route" => route.to_owned(), "method" => method),
    );
    HTTP_METRICS
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .entry(route.into())
        .or_default()
        .insert(key, handles.clone());
    handles
}

/// Milliseconds with three decimals (microsecond precision): a cached page takes well under one.
fn millis(latency: Duration) -> f64 {
    let micros = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
    f64::from(micros) / 1000.0
}

/// Probes and static files: logged at debug level, or they drown the log.
fn is_quiet(route: &str) -> bool {
    matches!(route, "/healthz" | "/readyz" | "/favicon.ico") || route.starts_with("/static/")
}

/// The methods we serve, by name; any other method is `other` (a label value each would let a
/// client grow the metrics without bound).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
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
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                )],
                scrape.render(),
            )
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
    fn made_request_ids_are_version_4_uuids() {
        let text = uuid_v4_text(u128::MAX);
        assert_eq!(&text, b"ffffffff-ffff-4fff-bfff-ffffffffffff");
        let text = uuid_v4_text(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        assert_eq!(&text, b"01234567-89ab-4def-8123-456789abcdef");
    }

    #[test]
    fn plain_request_ids_are_kept_and_odd_ones_replaced() {
        let kept = |id: &str| {
            let mut request = Request::builder()
                .header(&REQUEST_ID, id)
                .body(axum::body::Body::empty())
                .unwrap();
            let given = request_id(&mut request);
            assert_eq!(
                request.headers()[&REQUEST_ID],
                given,
                "the request carries it"
            );
            given == id
        };
        assert!(kept("4f1c2a9e-6b1d-4c3e-9a7b-2d5e8f0a1b2c"));
        assert!(kept("req_123.abc:7"));
        assert!(!kept("has space"));
        assert!(!kept(&"x".repeat(129)));
        assert!(!kept(""));
        let mut without = Request::new(axum::body::Body::empty());
        assert_eq!(request_id(&mut without).len(), 36);
    }
}
