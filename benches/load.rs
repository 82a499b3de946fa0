//! Load benchmark (issue 6): prints a Markdown table of throughput, latency, memory and start-up
//! figures for the release server, each next to the machine's core count.
//!
//! Run it with one command (cargo builds the release binary; nothing to build by hand):
//!
//! ```sh
//! cargo bench --bench load
//! ```
//!
//! What one run starts, all on loopback:
//! - the fake Webex ([`FakeWebex`], zero added latency) inside this process, so its counters
//!   (refresh calls, device polls and their arrival times) can be read;
//! - the release server binary (`CARGO_BIN_EXE_webex-oauth-axum`) as a child process in live
//!   mode against that fake, in an empty temporary directory with a cleared environment (no
//!   `.env`, no proxy), so its resident memory (`VmRSS` of `/proc/PID/status`) and CPU time
//!   (`/proc/PID/stat`) are its own; it is killed when dropped, also on a panic;
//! - a plain axum handler returning the same bytes as the server's `GET /`: the ceiling;
//! - the load client: one tokio task per connection, each a minimal HTTP/1.1 keep-alive client
//!   that repeats one GET until a deadline (warm-up, then the measured window) and records
//!   every latency. A general client (reqwest) spends several times more CPU a request, which
//!   on a small machine is taken from the servers it measures; reqwest walks the flows.
//!
//! The cases:
//! 1. `GET /` (template + session load) at 1, 16 and 64 connections, one logged-in session a
//!    connection: req/s, p50/p99, and the ratio to the plain handler in the same run.
//! 2. `GET /spaces` (one page of 100 rooms) at 1 and 16 connections: req/s, p50/p99, and the
//!    ratio to calling the fake's `/v1/rooms?max=100` directly with the same client.
//! 3. `GET /spaces` over 1,000 rooms (10 pages of 100), one connection: latency.
//! 4. Refresh storm: 100 concurrent `GET /spaces`, one connection each, on a session whose
//!    access token has expired: refresh calls the fake saw (must be 1) and the p99.
//! 5. Device-flow scale: 10,000 sign-ins (`POST /sign-in`, then `GET /sign-in`, whose page gives
//!    the user code), interval 5 s, held for 30 s: resident memory per pending flow, server CPU,
//!    polls per second, and early polls (must be 0): a poll that reached the fake less than the
//!    interval after the previous poll of its flow, or after the moment the POST was sent.
//! 6. Start-up time to the first 200 from `/healthz`, idle resident memory, binary size.
//!
//! The server uses its default session store unless `BENCH_SESSION_STORE` says otherwise (it is
//! passed as `SESSION_STORE`); when that is not `memory`, cases 1 and 5 are run again with
//! `SESSION_STORE=memory` to show what the store costs.
//!
//! Other knobs (environment): `BENCH_WARMUP_SECS` (2) and `BENCH_SECS` (5) for each load run,
//! `BENCH_DEVICE_SECS` (30), `BENCH_FLOWS` (10000, the server's default cap on pending flows),
//! `BENCH_RAMP` (16 sign-ins at a time), `BENCH_RAMP_LIMIT_SECS` (120: the ramp stops there),
//! `BENCH_STORMS` (5), `BENCH_STARTS` (5), `BENCH_CASES` (`1,2,3,4,5,6`, a subset to run).
//!
//! Speed is never asserted, here or in the tests: the program prints figures, and fails only
//! when something is broken (a wrong status, a missing page, a failed request in a load run).

use axum::Router;
use axum::body::Bytes;
use axum::response::Html;
use axum::routing::get;
use reqwest::header::{COOKIE, HeaderMap, HeaderValue, LOCATION, SET_COOKIE};
use reqwest::{Client, StatusCode};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::runtime::Handle;
use webex_oauth_axum::fake_webex::{Counter, FakeConfig, FakeWebex};

#[path = "../tests/support/mod.rs"]
mod support;
use support::server::SERVER_BIN;
use support::{ChildGuard, free_port};

/// Every request of the load client gives up after this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The access-token lifetime of the fake's defaults (about 14 days).
const LONG_TTL: Duration = Duration::from_secs(1_209_599);
const DEVICE_INTERVAL_SECS: u64 = 5;
/// Longer than Webex's 300 s, so that no flow expires during a slow ramp-up plus the window.
const DEVICE_EXPIRES_IN_SECS: u64 = 900;
const STORM_SIZE: usize = 100;

struct Settings {
    warmup: Duration,
    measure: Duration,
    device_window: Duration,
    flows: usize,
    storms: usize,
    starts: usize,
    ramp: usize,
    /// `BENCH_RAMP_LIMIT_SECS`: the ramp-up of case 5 stops starting flows after this long.
    ramp_limit: Duration,
    /// `BENCH_CASES`: which cases to run, e.g. `1,2` (all by default).
    cases: Vec<u8>,
    /// `BENCH_SESSION_STORE`: passed to the server as `SESSION_STORE` (its default when unset).
    store: Option<String>,
}

fn env_u64(key: &str, default: u64) -> u64 {
    match std::env::var(key) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{key}={v:?} is not a whole number")),
        Err(_) => default,
    }
}

impl Settings {
    fn from_env() -> Self {
        let secs = |key, default| Duration::from_secs(env_u64(key, default));
        Self {
            warmup: secs("BENCH_WARMUP_SECS", 2),
            measure: secs("BENCH_SECS", 5).max(Duration::from_secs(1)),
            device_window: secs("BENCH_DEVICE_SECS", 30).max(Duration::from_secs(1)),
            flows: env_u64("BENCH_FLOWS", 10_000).clamp(1, 10_000) as usize,
            storms: env_u64("BENCH_STORMS", 5).max(1) as usize,
            starts: env_u64("BENCH_STARTS", 5).max(1) as usize,
            ramp: env_u64("BENCH_RAMP", 16).clamp(1, 256) as usize,
            ramp_limit: secs("BENCH_RAMP_LIMIT_SECS", 120),
            cases: match std::env::var("BENCH_CASES") {
                Ok(list) => list
                    .split(',')
                    .map(|c| c.trim().parse().expect("BENCH_CASES: numbers 1 to 6"))
                    .collect(),
                Err(_) => (1..=6).collect(),
            },
            store: std::env::var("BENCH_SESSION_STORE")
                .ok()
                .filter(|s| !s.is_empty()),
        }
    }
}

/// One line of the table.
struct Row {
    case: &'static str,
    figure: String,
    value: String,
    target: &'static str,
    met: Option<bool>,
}

#[derive(Default)]
struct Report {
    rows: Vec<Row>,
}

impl Report {
    fn add(&mut self, case: &'static str, figure: impl Into<String>, value: impl Into<String>) {
        self.check(case, figure, value, "", None);
    }

    fn check(
        &mut self,
        case: &'static str,
        figure: impl Into<String>,
        value: impl Into<String>,
        target: &'static str,
        met: Option<bool>,
    ) {
        let row = Row {
            case,
            figure: figure.into(),
            value: value.into(),
            target,
            met,
        };
        eprintln!("  {} | {} | {}", row.case, row.figure, row.value);
        self.rows.push(row);
    }
}

fn main() {
    let settings = Settings::from_env();
    // The fake and the plain handler get their own runtime, the load client another: the
    // client's tasks never queue behind the servers' on the same worker threads.
    let services = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-services")
        .enable_all()
        .build()
        .expect("services runtime");
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-client")
        .enable_all()
        .build()
        .expect("client runtime");
    let started = Instant::now();
    let report = client.block_on(run(&settings, services.handle().clone()));
    print_report(&settings, &report, started.elapsed());
    client.shutdown_background();
    services.shutdown_background();
}

async fn run(settings: &Settings, services: Handle) -> Report {
    let mut report = Report::default();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    eprintln!("load benchmark: {cores} cores; server {SERVER_BIN}");

    let wants = |case: u8| settings.cases.contains(&case);
    let store = settings.store.as_deref();
    eprintln!("session store: {}", store_label(store));

    // Case 6 first, on a quiet machine: start-up, idle memory, binary size.
    let one_page = Backend::start(&services, 100, store).await;
    if wants(6) {
        startup_case(settings, &one_page, &mut report).await;
    }
    if wants(1) {
        home_case(
            settings,
            &services,
            &one_page,
            &[1, 16, 64],
            "1 GET /",
            &mut report,
        )
        .await;
        if store_label(store) != store_label(Some("memory")) {
            // The same page with sessions in memory: what the store costs.
            let memory = Backend::start(&services, 100, Some("memory")).await;
            let case = "1 GET / (SESSION_STORE=memory)";
            home_case(settings, &services, &memory, &[16], case, &mut report).await;
        }
    }
    if wants(2) {
        spaces_case(settings, &one_page, &mut report).await;
    }
    if wants(3) {
        let ten_pages = Backend::start(&services, 1_000, store).await;
        many_pages_case(settings, &ten_pages, &mut report).await;
    }
    if wants(4) {
        storm_case(settings, &one_page, &mut report).await;
    }
    drop(one_page);
    if wants(5) {
        // A server of its own, so the memory per flow is measured from an idle baseline.
        let device = Backend::start(&services, 100, store).await;
        device_case(settings, &device, "5 device flows", &mut report).await;
        drop(device);
        if store_label(store) != store_label(Some("memory")) {
            let memory = Backend::start(&services, 100, Some("memory")).await;
            let case = "5 device flows (SESSION_STORE=memory)";
            device_case(settings, &memory, case, &mut report).await;
        }
    }
    report
}

// ---------------------------------------------------------------------------------------------
// The server child process and its fake.

/// A fake Webex (in this process) and the release server (a child) in live mode against it.
struct Backend {
    fake: FakeWebex,
    server: ServerProcess,
    /// How long the server took to answer its first `/healthz`.
    startup: Duration,
}

impl Backend {
    async fn start(services: &Handle, room_count: usize, store: Option<&str>) -> Self {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let config = FakeConfig {
            redirect_uris: vec![format!("{base}/oauth")],
            room_count,
            device_interval: DEVICE_INTERVAL_SECS,
            device_expires_in: DEVICE_EXPIRES_IN_SECS,
            ..FakeConfig::default()
        };
        let fake = services
            .spawn(FakeWebex::spawn(config))
            .await
            .expect("fake task")
            .expect("fake Webex binds 127.0.0.1:0");
        let (server, startup) = ServerProcess::start(&fake, port, store).await;
        Self {
            fake,
            server,
            startup,
        }
    }

    fn base(&self) -> &str {
        &self.server.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base)
    }
}

/// The server binary as a child; killed when dropped (also while unwinding from a panic).
struct ServerProcess {
    process: ChildGuard,
    base: String,
    workdir: PathBuf,
}

impl ServerProcess {
    /// Starts the binary on `port` against `fake` and waits for its first `200` from `/healthz`.
    async fn start(fake: &FakeWebex, port: u16, store: Option<&str>) -> (Self, Duration) {
        let base = format!("http://127.0.0.1:{port}");
        // An empty working directory: no `.env` is read, and the environment is only ours.
        let workdir =
            std::env::temp_dir().join(format!("webex-bench-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&workdir).expect("temporary working directory");
        let began = Instant::now();
        let mut command = support::server::command(fake, port);
        command.current_dir(&workdir).stderr(Stdio::inherit());
        if let Some(store) = store {
            command.env("SESSION_STORE", store);
        }
        let process = support::server::start(command, port, Duration::from_millis(1)).await;
        let startup = began.elapsed();
        let server = Self {
            process,
            base,
            workdir,
        };
        (server, startup)
    }

    fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Resident memory now, in bytes.
    fn rss(&self) -> u64 {
        rss_of(&format!("/proc/{}/status", self.pid()))
    }

    /// Bytes under the working directory (a SQLite store's files live there).
    fn disk(&self) -> u64 {
        dir_size(&self.workdir)
    }

    /// User plus system CPU time so far.
    fn cpu(&self) -> Duration {
        cpu_of(&format!("/proc/{}/stat", self.pid()))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.process.kill();
        let _ = std::fs::remove_dir_all(&self.workdir);
    }
}

fn dir_size(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_size(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

/// The session store the server will use, as its configuration reads `SESSION_STORE`.
fn store_label(store: Option<&str>) -> String {
    let config = webex_oauth_axum::Config::from_lookup(|key| match key {
        "SESSION_STORE" => store.map(str::to_owned),
        _ => None,
    });
    match config {
        Ok(config) => format!("{:?}", config.session_store),
        Err(err) => format!("{store:?} ({err})"),
    }
}

fn rss_of(status_path: &str) -> u64 {
    let status = std::fs::read_to_string(status_path).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// utime + stime of `/proc/PID/stat` (fields 14 and 15, counted after the command name).
fn cpu_of(stat_path: &str) -> Duration {
    let stat = std::fs::read_to_string(stat_path).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = after_name
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // After ")": state is field 3, so utime (14) and stime (15) are at indexes 11 and 12.
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64)
}

fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers.

/// Loopback only, no proxy from the environment, no redirect followed.
fn client_builder() -> reqwest::ClientBuilder {
    Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(REQUEST_TIMEOUT)
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .expect("a Location header")
        .to_owned()
}

fn cookie_headers(cookie: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(COOKIE, HeaderValue::from_str(cookie).expect("cookie value"));
    headers
}

/// Walks the authorization-code flow as a browser would (`/login` → the fake's consent answered
/// Accept → `/oauth` → `/granted`) and returns the session's `Cookie` header value.
async fn log_in(backend: &Backend) -> String {
    use reqwest::cookie::CookieStore;
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let browser = client_builder()
        .cookie_provider(jar.clone())
        .build()
        .unwrap();
    support::login::log_in(&browser, backend.base(), &backend.fake.base_url())
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    let cookie = jar
        .cookies(&url::Url::parse(backend.base()).unwrap())
        .expect("a session cookie");
    cookie.to_str().unwrap().to_owned()
}

/// An access token straight from the fake (code grant without PKCE), for calling `/rooms`.
async fn fake_access_token(backend: &Backend) -> String {
    let defaults = FakeConfig::default();
    let redirect_uri = backend.url("/oauth");
    let client = client_builder().build().unwrap();
    let answer = client
        .post(format!("{}/authorize", backend.fake.base_url()))
        .form(&[
            ("client_id", defaults.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", &redirect_uri),
            ("scope", "spark:all"),
            ("decision", "accept"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::FOUND);
    let callback = url::Url::parse(&location(&answer)).unwrap();
    let code = callback
        .query_pairs()
        .find(|(k, _)| k == "code")
        .expect("a code")
        .1
        .into_owned();
    let tokens: serde_json::Value = client
        .post(format!("{}/access_token", backend.fake.base_url()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", defaults.client_id.as_str()),
            ("client_secret", defaults.client_secret.as_str()),
            ("code", &code),
            ("redirect_uri", &redirect_uri),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    tokens["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned()
}

// ---------------------------------------------------------------------------------------------
// The load client.

/// What one connection requests, over and over.
#[derive(Clone)]
struct Target {
    url: String,
    headers: HeaderMap,
}

struct LoadResult {
    rps: f64,
    p50: Duration,
    p99: Duration,
    requests: usize,
    errors: usize,
}

impl LoadResult {
    fn summary(&self) -> String {
        format!(
            "{:.0} req/s, p50 {}, p99 {}",
            self.rps,
            ms(self.p50),
            ms(self.p99)
        )
    }
}

/// One keep-alive connection per target, each looping until the deadline. Latencies are kept
/// from requests started after the warm-up; req/s counts those over the measured window.
async fn load(targets: &[Target], warmup: Duration, measure: Duration) -> LoadResult {
    let begin = Instant::now();
    let measured_from = begin + warmup;
    let until = measured_from + measure;
    let mut tasks = Vec::with_capacity(targets.len());
    for target in targets {
        let mut connection = Connection::new(target);
        tasks.push(tokio::spawn(async move {
            let mut latencies: Vec<u32> = Vec::with_capacity(64 * 1024);
            let mut errors = 0usize;
            loop {
                let sent = Instant::now();
                if sent >= until {
                    break;
                }
                let ok = matches!(connection.get().await, Ok(200));
                if sent >= measured_from {
                    if ok {
                        let micros = sent.elapsed().as_micros();
                        latencies.push(u32::try_from(micros).unwrap_or(u32::MAX));
                    } else {
                        errors += 1;
                    }
                }
                if !ok {
                    // A refused connection must not spin.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (latencies, errs) = task.await.expect("load task");
        all.extend(latencies);
        errors += errs;
    }
    all.sort_unstable();
    LoadResult {
        rps: all.len() as f64 / measure.as_secs_f64(),
        p50: percentile(&all, 50.0),
        p99: percentile(&all, 99.0),
        requests: all.len(),
        errors,
    }
}

/// The load client's connection: a minimal HTTP/1.1 keep-alive client over one TCP stream that
/// sends the same GET again and again and reads each response whole (status line, headers,
/// `Content-Length` bytes of body). A general client (reqwest) costs several times more CPU a
/// request, which on two cores is taken from the servers being measured.
struct Connection {
    addr: String,
    request: Vec<u8>,
    stream: Option<tokio::net::TcpStream>,
    buffer: Vec<u8>,
}

impl Connection {
    fn new(target: &Target) -> Self {
        let url = url::Url::parse(&target.url).expect("a target URL");
        assert_eq!(url.scheme(), "http", "the load client speaks plain HTTP");
        let host = url.host_str().expect("a host");
        let addr = format!("{host}:{}", url.port_or_known_default().unwrap_or(80));
        let mut path = url.path().to_owned();
        if let Some(query) = url.query() {
            path.push('?');
            path.push_str(query);
        }
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n").into_bytes();
        for (name, value) in &target.headers {
            request.extend_from_slice(name.as_str().as_bytes());
            request.extend_from_slice(b": ");
            request.extend_from_slice(value.as_bytes());
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"\r\n");
        Self {
            addr,
            request,
            stream: None,
            buffer: Vec::with_capacity(64 * 1024),
        }
    }

    /// One request; the status code of its response. Any error drops the connection.
    async fn get(&mut self) -> std::io::Result<u16> {
        let result = tokio::time::timeout(REQUEST_TIMEOUT, self.exchange()).await;
        match result {
            Ok(Ok(status)) => Ok(status),
            Ok(Err(err)) => {
                self.stream = None;
                Err(err)
            }
            Err(_) => {
                self.stream = None;
                Err(std::io::ErrorKind::TimedOut.into())
            }
        }
    }

    async fn exchange(&mut self) -> std::io::Result<u16> {
        use std::io::{Error, ErrorKind};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        if self.stream.is_none() {
            let stream = tokio::net::TcpStream::connect(&self.addr).await?;
            stream.set_nodelay(true)?;
            self.stream = Some(stream);
        }
        let stream = self.stream.as_mut().expect("connected");
        stream.write_all(&self.request).await?;
        // Headers: read until the blank line.
        self.buffer.clear();
        let header_end = loop {
            if let Some(at) = find(&self.buffer, b"\r\n\r\n") {
                break at + 4;
            }
            if self.buffer.len() > 64 * 1024 {
                return Err(Error::new(ErrorKind::InvalidData, "headers too long"));
            }
            if stream.read_buf(&mut self.buffer).await? == 0 {
                return Err(ErrorKind::UnexpectedEof.into());
            }
        };
        let head = std::str::from_utf8(&self.buffer[..header_end])
            .map_err(|_| Error::new(ErrorKind::InvalidData, "headers are not UTF-8"))?;
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|line| line.strip_prefix("HTTP/1.1 "))
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| Error::new(ErrorKind::InvalidData, "bad status line"))?;
        let mut length = None;
        let mut close = false;
        for line in lines {
            if let Some((name, value)) = line.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.parse::<usize>().ok();
                } else if name.eq_ignore_ascii_case("connection") {
                    close = value.eq_ignore_ascii_case("close");
                }
            }
        }
        let length =
            length.ok_or_else(|| Error::new(ErrorKind::InvalidData, "no Content-Length"))?;
        // Body: count the bytes, keep none.
        let mut remaining = length
            .checked_sub(self.buffer.len() - header_end)
            .ok_or_else(|| Error::new(ErrorKind::InvalidData, "more bytes than announced"))?;
        while remaining > 0 {
            self.buffer.clear();
            let read = stream.read_buf(&mut self.buffer).await?;
            if read == 0 {
                return Err(ErrorKind::UnexpectedEof.into());
            }
            remaining = remaining
                .checked_sub(read)
                .ok_or_else(|| Error::new(ErrorKind::InvalidData, "more bytes than announced"))?;
        }
        if close {
            self.stream = None;
        }
        Ok(status)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Nearest-rank percentile of sorted microseconds.
fn percentile(sorted_micros: &[u32], p: f64) -> Duration {
    if sorted_micros.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted_micros.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted_micros.len()) - 1;
    Duration::from_micros(u64::from(sorted_micros[index]))
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0))
}

fn yes(met: bool) -> Option<bool> {
    Some(met)
}

/// A load run that must have gone through without a single failed request.
async fn measured(settings: &Settings, what: &str, targets: &[Target]) -> LoadResult {
    eprintln!("{what}, {} connections…", targets.len());
    let result = load(targets, settings.warmup, settings.measure).await;
    assert!(
        result.errors == 0 && result.requests > 0,
        "{what}: {} failed requests, {} good",
        result.errors,
        result.requests
    );
    result
}

// ---------------------------------------------------------------------------------------------
// The cases.

async fn startup_case(settings: &Settings, backend: &Backend, report: &mut Report) {
    eprintln!("case 6: start-up, idle memory, binary size…");
    // Idle: a second after the first /healthz, before any other request.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = backend.server.rss();
    let mut startups = vec![backend.startup];
    for _ in 1..settings.starts {
        let store = settings.store.as_deref();
        let (server, startup) = ServerProcess::start(&backend.fake, free_port(), store).await;
        drop(server);
        startups.push(startup);
    }
    startups.sort();
    let median = startups[startups.len() / 2];
    let worst = startups[startups.len() - 1];
    report.check(
        "6 start-up",
        format!(
            "spawn → first 200 from /healthz (median of {})",
            startups.len()
        ),
        format!("{} (max {})", ms(median), ms(worst)),
        "< 100 ms",
        yes(median < Duration::from_millis(100)),
    );
    report.check(
        "6 start-up",
        "idle resident memory (1 s after start)",
        mb(idle),
        "< 30 MB",
        yes(idle < 30 * 1024 * 1024),
    );
    let size = std::fs::metadata(SERVER_BIN).map_or(0, |m| m.len());
    report.add("6 start-up", "release binary size", mb(size));
}

async fn home_case(
    settings: &Settings,
    services: &Handle,
    backend: &Backend,
    connections: &[usize],
    case: &'static str,
    report: &mut Report,
) {
    let max_conns = connections.iter().copied().max().unwrap_or(1);
    // One logged-in session per connection: GET / loads it and shows "you have tokens".
    let mut sessions = Vec::with_capacity(max_conns);
    for _ in 0..max_conns {
        sessions.push(log_in(backend).await);
    }
    let page = client_builder()
        .build()
        .unwrap()
        .get(backend.url("/"))
        .header(COOKIE, &sessions[0])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.bytes().await.unwrap();
    assert!(
        std::str::from_utf8(&page).is_ok_and(|p| p.contains("Continue to your session")),
        "GET / with a session shows the signed-in link"
    );
    let plain = spawn_plain(services, page.clone()).await;
    report.add(
        case,
        "page size (the plain handler serves the same bytes)",
        format!("{} bytes", page.len()),
    );

    for &conns in connections {
        let server_targets: Vec<Target> = sessions[..conns]
            .iter()
            .map(|cookie| Target {
                url: backend.url("/"),
                headers: cookie_headers(cookie),
            })
            .collect();
        let plain_targets = vec![
            Target {
                url: format!("{plain}/"),
                headers: HeaderMap::new(),
            };
            conns
        ];
        let cpu_before = backend.server.cpu();
        let ours = measured(settings, "GET / (server)", &server_targets).await;
        let cpu = backend.server.cpu().saturating_sub(cpu_before);
        let ceiling = measured(settings, "GET / (plain axum)", &plain_targets).await;
        let ratio = ours.rps / ceiling.rps;
        let busy = settings.warmup + settings.measure;
        let server_cpu = 100.0 * cpu.as_secs_f64() / busy.as_secs_f64();
        report.add(
            case,
            format!("server, {conns} conn"),
            format!("{} (server CPU {server_cpu:.0}% of a core)", ours.summary()),
        );
        report.add(case, format!("plain axum, {conns} conn"), ceiling.summary());
        report.check(
            case,
            format!("req/s ratio server/plain, {conns} conn"),
            format!("{ratio:.2}"),
            "≥ 0.5",
            yes(ratio >= 0.5),
        );
        if conns == 16 {
            report.check(
                case,
                "p99 at 16 conn",
                ms(ours.p99),
                "< 10 ms",
                yes(ours.p99 < Duration::from_millis(10)),
            );
        }
    }
}

/// The ceiling: a plain axum handler with a fixed page, in the services runtime.
async fn spawn_plain(services: &Handle, page: Bytes) -> String {
    services
        .spawn(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let app = Router::new().route(
                "/",
                get(move || {
                    let page = page.clone();
                    async move { Html(page) }
                }),
            );
            tokio::spawn(async move { axum::serve(listener, app).await });
            format!("http://{addr}")
        })
        .await
        .expect("plain handler")
}

async fn spaces_case(settings: &Settings, backend: &Backend, report: &mut Report) {
    const CONNECTIONS: [usize; 2] = [1, 16];
    let max_conns = CONNECTIONS[CONNECTIONS.len() - 1];
    let mut sessions = Vec::with_capacity(max_conns);
    for _ in 0..max_conns {
        sessions.push(log_in(backend).await);
    }
    let token = fake_access_token(backend).await;
    let rooms_url = format!("{}/rooms?max=100", backend.fake.base_url());
    let mut bearer = HeaderMap::new();
    bearer.insert(
        reqwest::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    // Sanity: one page of 100 rooms, fetched with one /rooms call.
    let calls_before = backend.fake.count(Counter::RoomsCalls);
    let page = client_builder()
        .build()
        .unwrap()
        .get(backend.url("/spaces"))
        .header(COOKIE, &sessions[0])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert!(page.contains("100 spaces"), "GET /spaces lists 100 rooms");
    assert_eq!(backend.fake.count(Counter::RoomsCalls) - calls_before, 1);
    report.add(
        "2 GET /spaces",
        "page size (100 rooms, 1 page)",
        format!("{} bytes", page.len()),
    );

    for conns in CONNECTIONS {
        let server_targets: Vec<Target> = sessions[..conns]
            .iter()
            .map(|cookie| Target {
                url: backend.url("/spaces"),
                headers: cookie_headers(cookie),
            })
            .collect();
        let direct_targets = vec![
            Target {
                url: rooms_url.clone(),
                headers: bearer.clone(),
            };
            conns
        ];
        let ours = measured(settings, "GET /spaces (server)", &server_targets).await;
        let direct = measured(settings, "GET /v1/rooms (fake, direct)", &direct_targets).await;
        let ratio = ours.rps / direct.rps;
        report.add(
            "2 GET /spaces",
            format!("server, {conns} conn"),
            ours.summary(),
        );
        report.add(
            "2 GET /spaces",
            format!("fake /rooms direct, {conns} conn"),
            direct.summary(),
        );
        report.check(
            "2 GET /spaces",
            format!("req/s ratio server/direct, {conns} conn"),
            format!("{ratio:.2}"),
            "≥ 0.5",
            yes(ratio >= 0.5),
        );
        if conns == 16 {
            report.check(
                "2 GET /spaces",
                "p99 at 16 conn",
                ms(ours.p99),
                "< 10 ms",
                yes(ours.p99 < Duration::from_millis(10)),
            );
        }
    }
}

async fn many_pages_case(settings: &Settings, backend: &Backend, report: &mut Report) {
    let cookie = log_in(backend).await;
    let calls_before = backend.fake.count(Counter::RoomsCalls);
    let page = client_builder()
        .build()
        .unwrap()
        .get(backend.url("/spaces"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert!(
        page.contains("1000 spaces"),
        "GET /spaces lists 1,000 rooms"
    );
    let pages = backend.fake.count(Counter::RoomsCalls) - calls_before;
    assert_eq!(pages, 10, "1,000 rooms are 10 pages of 100");
    let targets = vec![Target {
        url: backend.url("/spaces"),
        headers: cookie_headers(&cookie),
    }];
    let result = measured(settings, "GET /spaces over 10 pages (server)", &targets).await;
    report.add(
        "3 GET /spaces ×10 pages",
        format!("1,000 rooms, {pages} /rooms calls a request, 1 conn"),
        result.summary(),
    );
    report.add(
        "3 GET /spaces ×10 pages",
        "page size",
        format!("{} bytes", page.len()),
    );
}

async fn storm_case(settings: &Settings, backend: &Backend, report: &mut Report) {
    eprintln!(
        "case 4: refresh storms ({} × {STORM_SIZE} requests)…",
        settings.storms
    );
    let mut refreshes = Vec::with_capacity(settings.storms);
    let mut latencies: Vec<u32> = Vec::with_capacity(settings.storms * STORM_SIZE);
    for _ in 0..settings.storms {
        // A session whose access token is already expired, at the fake and by our clock.
        backend.fake.set_access_token_ttl(Duration::ZERO);
        let cookie = log_in(backend).await;
        backend.fake.set_access_token_ttl(LONG_TTL);
        // One connection per request, opened before the storm so only the storm is timed.
        let mut clients = Vec::with_capacity(STORM_SIZE);
        for _ in 0..STORM_SIZE {
            let client = client_builder().pool_max_idle_per_host(1).build().unwrap();
            let ok = client.get(backend.url("/healthz")).send().await.unwrap();
            assert_eq!(ok.status(), StatusCode::OK);
            ok.bytes().await.unwrap();
            clients.push(client);
        }
        let before = backend.fake.count(Counter::Refreshes);
        let barrier = Arc::new(tokio::sync::Barrier::new(STORM_SIZE));
        let tasks: Vec<_> = clients
            .into_iter()
            .map(|client| {
                let (barrier, url, cookie) =
                    (barrier.clone(), backend.url("/spaces"), cookie.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    let sent = Instant::now();
                    let response = client.get(url).header(COOKIE, cookie).send().await.unwrap();
                    let status = response.status();
                    response.bytes().await.unwrap();
                    assert_eq!(status, StatusCode::OK, "a storm request failed");
                    u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX)
                })
            })
            .collect();
        for task in tasks {
            latencies.push(task.await.expect("storm request"));
        }
        refreshes.push(backend.fake.count(Counter::Refreshes) - before);
    }
    latencies.sort_unstable();
    let all_one = refreshes.iter().all(|&n| n == 1);
    let listed: Vec<String> = refreshes.iter().map(usize::to_string).collect();
    report.check(
        "4 refresh storm",
        format!(
            "refresh calls per storm of {STORM_SIZE} ({} storms)",
            refreshes.len()
        ),
        listed.join(", "),
        "1",
        yes(all_one),
    );
    report.add(
        "4 refresh storm",
        format!("p50 / p99 of the {} requests", latencies.len()),
        format!(
            "{} / {}",
            ms(percentile(&latencies, 50.0)),
            ms(percentile(&latencies, 99.0))
        ),
    );
}

/// One device sign-in as a browser starts it: `POST /sign-in`, then the page it redirects to.
struct Started {
    user_code: String,
    /// Taken before the POST was sent, so never later than the fake's start of the flow.
    sent: Instant,
    /// Bytes of the `GET /sign-in` page (the QR code is in it, as a PNG data URI).
    page_bytes: usize,
}

async fn start_sign_in(client: &Client, base: &str) -> Result<Started, String> {
    let sent = Instant::now();
    let response = client
        .post(format!("{base}/sign-in"))
        .header("Sec-Fetch-Site", "same-origin")
        .form(&[("", "")])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.status() != StatusCode::SEE_OTHER {
        return Err(format!("POST /sign-in: {}", response.status()));
    }
    let cookie = response
        .headers()
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .ok_or("POST /sign-in set no cookie")?
        .to_owned();
    let page = client
        .get(format!("{base}/sign-in"))
        .header(COOKIE, cookie)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if page.status() != StatusCode::OK {
        return Err(format!("GET /sign-in: {}", page.status()));
    }
    let page = page.text().await.map_err(|e| e.to_string())?;
    let user_code = page
        .split_once(r#"id="user-code">"#)
        .and_then(|(_, rest)| rest.split_once('<'))
        .map(|(code, _)| code.trim().to_owned())
        .ok_or("GET /sign-in shows no user code")?;
    Ok(Started {
        user_code,
        sent,
        page_bytes: page.len(),
    })
}

async fn device_case(
    settings: &Settings,
    backend: &Backend,
    case: &'static str,
    report: &mut Report,
) {
    let flows = settings.flows;
    eprintln!(
        "case 5: {flows} device flows ({} at a time), then {} s held…",
        settings.ramp,
        settings.device_window.as_secs()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = backend.server.rss();
    let ramp_cpu_before = backend.server.cpu();
    let ramp_began = Instant::now();
    let ramp_deadline = ramp_began + settings.ramp_limit;
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let client = client_builder()
        .pool_max_idle_per_host(settings.ramp)
        .build()
        .unwrap();
    let mut workers = Vec::with_capacity(settings.ramp);
    for _ in 0..settings.ramp {
        let (next, done) = (next.clone(), done.clone());
        let (client, base) = (client.clone(), backend.base().to_owned());
        workers.push(tokio::spawn(async move {
            let mut started = Vec::new();
            while Instant::now() < ramp_deadline && next.fetch_add(1, Ordering::Relaxed) < flows {
                started.push(start_sign_in(&client, &base).await);
                done.fetch_add(1, Ordering::Relaxed);
            }
            started
        }));
    }
    let mut next_progress = ramp_began + Duration::from_secs(10);
    while !workers.iter().all(|w| w.is_finished()) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if Instant::now() >= next_progress {
            next_progress += Duration::from_secs(10);
            let n = done.load(Ordering::Relaxed);
            let secs = ramp_began.elapsed().as_secs_f64();
            eprintln!("  … {n} sign-ins after {secs:.0} s");
        }
    }
    let mut started = Vec::with_capacity(flows);
    let mut failures = Vec::new();
    for worker in workers {
        for outcome in worker.await.expect("ramp worker") {
            match outcome {
                Ok(flow) => started.push(flow),
                Err(err) => failures.push(err),
            }
        }
    }
    let ramp = ramp_began.elapsed();
    let ramp_cpu = backend.server.cpu().saturating_sub(ramp_cpu_before);
    if let Some(first) = failures.first() {
        eprintln!("{} sign-ins failed; the first: {first}", failures.len());
    }
    assert!(!started.is_empty(), "no device flow started");
    let after_ramp = backend.server.rss();

    // The measured window: every flow pending, polled every 5 s.
    let window_began = Instant::now();
    let polls_before = backend.fake.count(Counter::DevicePolls);
    let cpu_before = backend.server.cpu();
    let bench_cpu_before = cpu_of("/proc/self/stat");
    let mut peak = after_ramp;
    while window_began.elapsed() < settings.device_window {
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak = peak.max(backend.server.rss());
    }
    let window = window_began.elapsed();
    let window_end = Instant::now();
    let polls = backend.fake.count(Counter::DevicePolls) - polls_before;
    let cpu = backend.server.cpu().saturating_sub(cpu_before);
    let bench_cpu = cpu_of("/proc/self/stat").saturating_sub(bench_cpu_before);
    let held = backend.server.rss();
    let disk = backend.server.disk();

    // Early polls, from the fake's arrival times: a poll less than the interval after the
    // previous one of its flow, or a first poll less than the interval after the POST was sent.
    // A user code shown to two sessions would make its polls ambiguous: left out (and counted).
    let interval = Duration::from_secs(DEVICE_INTERVAL_SECS);
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for flow in &started {
        *seen.entry(flow.user_code.as_str()).or_default() += 1;
    }
    let duplicated = started
        .iter()
        .filter(|f| seen[f.user_code.as_str()] > 1)
        .count();
    let (mut early, mut total_polls, mut polled_in_window, mut shortest) =
        (0usize, 0usize, 0usize, Duration::MAX);
    let (mut gaps, mut gap_sum) = (0u32, Duration::ZERO);
    for flow in started.iter().filter(|f| seen[f.user_code.as_str()] == 1) {
        let arrivals = backend.fake.device_polls(&flow.user_code);
        total_polls += arrivals.len();
        if arrivals
            .iter()
            .any(|&at| at >= window_began && at <= window_end)
        {
            polled_in_window += 1;
        }
        let mut previous = flow.sent;
        for &at in &arrivals {
            let gap = at.saturating_duration_since(previous);
            shortest = shortest.min(gap);
            if previous != flow.sent {
                gaps += 1;
                gap_sum += gap;
            }
            if gap < interval {
                early += 1;
            }
            previous = at;
        }
    }

    let n = started.len() as u64;
    let per_flow = held.saturating_sub(baseline) / n;
    let per_flow_peak = peak.saturating_sub(baseline) / n;
    report.check(
        case,
        "pending flows reached (POST /sign-in + GET /sign-in each)",
        format!(
            "{} in {:.1} s ({:.0}/s, server CPU {:.0}% of a core); {} failed{}{}",
            started.len(),
            ramp.as_secs_f64(),
            started.len() as f64 / ramp.as_secs_f64(),
            100.0 * ramp_cpu.as_secs_f64() / ramp.as_secs_f64(),
            failures.len(),
            if started.len() + failures.len() < flows {
                format!(
                    "; ramp stopped at the {} s limit",
                    settings.ramp_limit.as_secs()
                )
            } else {
                String::new()
            },
            if duplicated > 0 {
                format!("; {duplicated} shown a user code twice (left out)")
            } else {
                String::new()
            }
        ),
        "10,000",
        yes(started.len() >= 10_000),
    );
    report.add(
        case,
        "GET /sign-in page (with its QR code PNG as a data: URI)",
        format!("{} bytes", started[0].page_bytes),
    );
    report.add(
        case,
        "server RSS: before → after ramp → end of window",
        format!("{} → {} → {}", mb(baseline), mb(after_ramp), mb(held)),
    );
    if disk > 0 {
        report.add(
            case,
            "server working directory on disk (the SQLite store's files)",
            mb(disk),
        );
    }
    report.check(
        case,
        "RSS per pending flow (end of window; peak)",
        format!(
            "{:.1} KB ({:.1} KB)",
            per_flow as f64 / 1024.0,
            per_flow_peak as f64 / 1024.0
        ),
        "≤ 20 KB",
        yes(per_flow.max(per_flow_peak) <= 20 * 1024),
    );
    report.add(
        case,
        format!("server CPU over {:.0} s", window.as_secs_f64()),
        format!(
            "{:.1}% of one core (bench process: fake + client, {:.1}%)",
            100.0 * cpu.as_secs_f64() / window.as_secs_f64(),
            100.0 * bench_cpu.as_secs_f64() / window.as_secs_f64()
        ),
    );
    report.add(
        case,
        "polls sent per second (expected: flows / 5 s)",
        format!(
            "{:.0}/s (expected {:.0}/s; mean gap {:.2} s); {polled_in_window} of {n} flows \
             polled in the window",
            polls as f64 / window.as_secs_f64(),
            n as f64 / DEVICE_INTERVAL_SECS as f64,
            gap_sum.as_secs_f64() / f64::from(gaps.max(1))
        ),
    );
    report.check(
        case,
        format!("early polls (of {total_polls}; shortest gap)"),
        format!("{early} ({:.3} s)", shortest.as_secs_f64()),
        "0",
        yes(early == 0),
    );
}

// ---------------------------------------------------------------------------------------------
// The table.

fn print_report(settings: &Settings, report: &Report, took: Duration) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let now = time::OffsetDateTime::now_utc();
    println!();
    println!(
        "## Load benchmark, {:04}-{:02}-{:02} {:02}:{:02} UTC",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute()
    );
    println!();
    println!(
        "`cargo bench --bench load` on {cores} cores ({cpu}); warm-up {} s, {} s a load case, \
         device window {} s; took {:.0} s. Server, fake and client share the {cores} cores.",
        settings.warmup.as_secs(),
        settings.measure.as_secs(),
        settings.device_window.as_secs(),
        took.as_secs_f64()
    );
    println!();
    println!("| case | figure ({cores} cores) | value | target | met? |");
    println!("|---|---|---|---|---|");
    for row in &report.rows {
        let met = match row.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "",
        };
        println!(
            "| {} | {} | {} | {} | {met} |",
            row.case, row.figure, row.value, row.target
        );
    }
    let missed = report.rows.iter().filter(|r| r.met == Some(false)).count();
    let checked = report.rows.iter().filter(|r| r.met.is_some()).count();
    println!();
    println!("{} of {checked} targets met.", checked - missed);
}
