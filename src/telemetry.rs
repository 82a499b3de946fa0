//! Logs and metrics: the tracing subscriber (`LOG_FORMAT`, `RUST_LOG`), the metric names, and the
//! one Prometheus recorder of the process.

use crate::config::{Config, LogFormat};
use metrics_exporter_prometheus::PrometheusBuilder;
use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime as DefaultTime};
use tracing_subscriber::fmt::writer::BoxMakeWriter;

// Used only where standard output can be duplicated (unix).
#[cfg_attr(not(unix), allow(dead_code))]
mod lines;
mod text;

pub use lines::LogGuard;

/// Installs the global log subscriber: plain text (never coloured, see Cargo.toml) or one JSON
/// object a line, filtered by `RUST_LOG` (already checked by `Config`), written to standard
/// output by `lines::Lines`: in batches about 50 ms old, errors at once. Call
/// once, in `main`, and hold the guard until `main` ends: it writes the lines still waiting.
#[must_use = "hold the guard until main ends, or batching ends at once"]
pub fn init_logging(config: &Config) -> Option<LogGuard> {
    let filter = EnvFilter::builder()
        .parse(&config.log_filter)
        .unwrap_or_else(|_| EnvFilter::new(crate::config::DEFAULT_LOG_FILTER));
    let (writer, guard) = log_writer();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match config.log_format {
        // The default format's lines, written without its `write!` layers (`text.rs`).
        LogFormat::Text => builder
            .with_ansi(false)
            .fmt_fields(text::TextFields)
            .event_format(text::TextLine { timer: LineTime })
            .init(),
        // Span fields (the request id, the short flow id) go into every line of the span.
        LogFormat::Json => builder
            .with_timer(LineTime)
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
    guard
}

/// Where log lines go: standard output, through `lines::Lines` on a duplicate of the
/// descriptor rather than `std::io::Stdout`, whose lock is held across the system call. Falls
/// back to `Stdout`, a `write` a line, when the descriptor cannot be duplicated.
fn log_writer() -> (BoxMakeWriter, Option<LogGuard>) {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        if let Ok(fd) = std::io::stdout().as_fd().try_clone_to_owned() {
            let lines = lines::Lines::new(std::fs::File::from(fd));
            let guard = lines.start_flushing();
            guard.write_lines_before_panic_messages();
            return (BoxMakeWriter::new(lines), Some(guard));
        }
    }
    (BoxMakeWriter::new(std::io::stdout), None)
}

/// A line's time as tracing-subscriber's default writes it (`2026-12-03T10:24:00.123456Z`, UTC),
/// with the date and the time of day formatted once a second (per thread) rather than on every
/// line: its seven formatted fields were about 2 % of the CPU of a `GET /`. A clock before 1970
/// or past the year 9999 is left to the default timer.
struct LineTime;

/// `YYYY-MM-DDTHH:MM:SS.`
const SECOND_TEXT: usize = 20;

impl FormatTime for LineTime {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        thread_local! {
            static SECOND: Cell<(u64, [u8; SECOND_TEXT])> =
                const { Cell::new((u64::MAX, [0; SECOND_TEXT])) };
        }
        let Ok(now) = SystemTime::now().duration_since(UNIX_EPOCH) else {
            return DefaultTime.format_time(w);
        };
        let second = match SECOND.get() {
            (at, text) if at == now.as_secs() => text,
            _ => match second_text(now.as_secs()) {
                Some(text) => {
                    SECOND.set((now.as_secs(), text));
                    text
                }
                None => return DefaultTime.format_time(w),
            },
        };
        let mut text = [b'Z'; SECOND_TEXT + 7];
        text[..SECOND_TEXT].copy_from_slice(&second);
        let mut micros = now.subsec_micros();
        for digit in text[SECOND_TEXT..SECOND_TEXT + 6].iter_mut().rev() {
            *digit = b'0' + (micros % 10) as u8;
            micros /= 10;
        }
        // Always ASCII: digits, `-`, `T`, `:`, `.` and `Z`.
        w.write_str(std::str::from_utf8(&text).unwrap_or("?"))
    }
}

/// `YYYY-MM-DDTHH:MM:SS.` of a Unix second, by the `time` crate's calendar; `None` for a second
/// it cannot place or whose year has more than four digits.
fn second_text(unix_secs: u64) -> Option<[u8; SECOND_TEXT]> {
    use std::io::Write as _;
    let at = time::OffsetDateTime::from_unix_timestamp(i64::try_from(unix_secs).ok()?).ok()?;
    let mut text = [b'0'; SECOND_TEXT];
    // A fifth digit of the year would not fit: `write!` fails, and so do we.
    write!(
        &mut text[..],
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
    .ok()?;
    Some(text)
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
/// `webex_oauth_device_flows_started_total`.
pub const DEVICE_FLOWS_STARTED: &str = "webex_oauth_device_flows_started_total";
/// `webex_oauth_device_flows_ended_total{outcome}`: `granted`, `denied`, `expired`, `error`,
/// `cancelled`.
pub const DEVICE_FLOWS_ENDED: &str = "webex_oauth_device_flows_ended_total";
/// `webex_oauth_device_flows_pending`: pending flows in the store (shared by every instance on
/// Redis), read at each scrape.
pub const DEVICE_FLOWS_PENDING: &str = "webex_oauth_device_flows_pending";
/// `webex_oauth_store_errors_total{place}`: `request`, `poller`, `housekeeping`, `metrics`.
pub const STORE_ERRORS: &str = "webex_oauth_store_errors_total";

/// Latency buckets, in seconds: from a cached page (well under a millisecond) to Webex's 15 s
/// timeout.
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
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route template, method and status"
    );
    describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "Time to answer an HTTP request"
    );
    describe_counter!(WEBEX_REQUESTS, "Calls to Webex, by endpoint and status");
    describe_histogram!(
        WEBEX_DURATION,
        metrics::Unit::Seconds,
        "Time Webex took to answer"
    );
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

/// What a test of the log's writers wrote: a `Write` and a `MakeWriter` into one shared buffer.
#[cfg(test)]
#[derive(Clone, Default)]
struct Written(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(test)]
impl Written {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[cfg(test)]
impl std::io::Write for Written {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Written {
    type Writer = Written;

    fn make_writer(&'a self) -> Written {
        self.clone()
    }
}

#[cfg(test)]
mod time_tests {
    use super::*;

    #[test]
    fn a_second_is_written_as_rfc_3339_in_utc() {
        assert_eq!(second_text(0), Some(*b"1970-01-01T00:00:00."));
        assert_eq!(second_text(1_764_755_040), Some(*b"2025-12-03T09:44:00."));
        assert_eq!(second_text(951_868_799), Some(*b"2000-02-29T23:59:59."));
        assert_eq!(second_text(253_402_300_799), Some(*b"9999-12-31T23:59:59."));
        // The year 10000, and past what i64 seconds hold: the default timer writes those.
        assert_eq!(second_text(253_402_300_800), None);
        assert_eq!(second_text(u64::MAX), None);
    }

    #[test]
    fn a_line_time_is_now_with_microseconds_as_the_default_timer_writes_it() {
        for _ in 0..3 {
            let mut ours = String::new();
            let mut theirs = String::new();
            LineTime.format_time(&mut Writer::new(&mut ours)).unwrap();
            DefaultTime
                .format_time(&mut Writer::new(&mut theirs))
                .unwrap();
            assert_eq!(ours.len(), "2026-12-03T10:24:00.123456Z".len(), "{ours}");
            let parsed =
                time::OffsetDateTime::parse(&ours, &time::format_description::well_known::Rfc3339)
                    .unwrap();
            let off = (time::OffsetDateTime::now_utc() - parsed).abs();
            assert!(off < time::Duration::seconds(5), "{ours} is {off} off");
            // Same text to the second, unless the second turned between the two calls.
            if ours[..19] == theirs[..19] {
                assert_eq!(ours.as_bytes()[26], b'Z');
                return;
            }
        }
        panic!("the two timers never agreed to the second in three tries");
    }
}
