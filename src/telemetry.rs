//! Logs and metrics: the tracing subscriber (`LOG_FORMAT`, `RUST_LOG`), the metric names, and the
//! one Prometheus recorder of the process.

use crate::config::{Config, LogFormat};
use metrics_exporter_prometheus::PrometheusBuilder;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Held by `main` for the life of the process: dropping it writes the log lines still queued.
pub type LogGuard = tracing_appender::non_blocking::WorkerGuard;

/// Installs the global log subscriber: tracing-subscriber's text (coloured only on a terminal) or
/// JSON format, filtered by `RUST_LOG`, to standard output through tracing-appender's lossless
/// non-blocking writer (a worker thread writes, off the request path). Call once, in `main`.
#[must_use = "hold the guard until main ends, or the queued lines are lost"]
pub fn init_logging(config: &Config) -> LogGuard {
    let filter = EnvFilter::builder()
        .parse(&config.log_filter)
        .unwrap_or_else(|_| EnvFilter::new(crate::config::DEFAULT_LOG_FILTER));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match config.log_format {
        LogFormat::Text => builder.with_ansi(std::io::stdout().is_terminal()).init(),
        // Its defaults put the span fields (the request id, the short flow id) in every line.
        LogFormat::Json => builder.json().init(),
    }
    guard
}

/// `webex_oauth_http_requests_total{route, method, status}`: route is the matched template.
pub const HTTP_REQUESTS: &str = "webex_oauth_http_requests_total";
/// `webex_oauth_http_request_duration_seconds{route, method}`.
pub const HTTP_DURATION: &str = "webex_oauth_http_request_duration_seconds";
/// `webex_oauth_webex_requests_total{endpoint, status}`: status is the HTTP code, or `error`
/// when no answer came (refused, timed out).
pub const WEBEX_REQUESTS: &str = "webex_oauth_webex_requests_total";
/// `webex_oauth_webex_request_duration_seconds{endpoint}`.
pub const WEBEX_DURATION: &str = "webex_oauth_webex_request_duration_seconds";
/// `webex_oauth_token_refreshes_total{outcome}`: `refreshed`, `already_refreshed` (another
/// request did it while this one waited), `sign_in_again`, `error`.
pub const TOKEN_REFRESHES: &str = "webex_oauth_token_refreshes_total";
pub const DEVICE_FLOWS_STARTED: &str = "webex_oauth_device_flows_started_total";
/// `webex_oauth_device_flows_ended_total{outcome}`: `granted`, `denied`, `expired`, `error`,
/// `cancelled`.
pub const DEVICE_FLOWS_ENDED: &str = "webex_oauth_device_flows_ended_total";
/// `webex_oauth_device_flows_pending`: pending flows in the store (shared by every instance on
/// Redis), read at each scrape.
pub const DEVICE_FLOWS_PENDING: &str = "webex_oauth_device_flows_pending";
/// `webex_oauth_store_errors_total{place}`: `request`, `poller`, `housekeeping`, `metrics`.
pub const STORE_ERRORS: &str = "webex_oauth_store_errors_total";

/// Latency buckets, in seconds: from a cached page (under a millisecond) to Webex's 15 s timeout.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0,
];

static RECORDER: std::sync::OnceLock<Result<PrometheusHandle, String>> = std::sync::OnceLock::new();

pub use metrics_exporter_prometheus::PrometheusHandle;

/// The Prometheus recorder of the process, installed by the first app with `METRICS_ADDR` (the
/// `metrics` macros write to one global recorder: a test process running many apps shares it,
/// and installing a second one would fail). Until then the macros do nothing.
pub fn prometheus() -> Result<PrometheusHandle, String> {
    RECORDER
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .map_err(|e| e.to_string())?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).map_err(|e| e.to_string())?;
            describe();
            Ok(handle)
        })
        .clone()
}

/// True once a recorder is installed: the request middleware skips building labels before.
pub fn metrics_enabled() -> bool {
    RECORDER.get().is_some_and(Result::is_ok)
}

fn describe() {
    use metrics::{Unit::Seconds, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route template, method and status"
    );
    describe_histogram!(HTTP_DURATION, Seconds, "Time to answer an HTTP request");
    describe_counter!(WEBEX_REQUESTS, "Calls to Webex, by endpoint and status");
    describe_histogram!(WEBEX_DURATION, Seconds, "Time Webex took to answer");
    describe_counter!(TOKEN_REFRESHES, "Access-token refreshes, by outcome");
    describe_counter!(DEVICE_FLOWS_STARTED, "Device sign-ins started");
    describe_counter!(DEVICE_FLOWS_ENDED, "Device sign-ins ended, by outcome");
    describe_gauge!(DEVICE_FLOWS_PENDING, "Device sign-ins pending in the store");
    describe_counter!(
        STORE_ERRORS,
        "Failed calls to the session and flow store, by place"
    );
}

/// Counts one failed store call at `place` (`request`, `poller`, `housekeeping`).
pub fn store_error(place: &'static str) {
    metrics::counter!(STORE_ERRORS, "place" => place).increment(1);
}
