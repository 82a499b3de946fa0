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
//!   The server runs as deployed: every layer on, the default log filter (one response line a
//!   request, to stdout, here `/dev/null`) and the metrics recorder (`METRICS_ADDR`);
//! - a plain axum handler returning the same bytes as the server's `GET /`: the ceiling (in
//!   this process, as in every run so far); and the same handler in a child process of its
//!   own, as the server and the reference run, shown beside it;
//! - the lean reference of case 2 (`reference.rs`): this binary again, in a child process,
//!   doing the work of `GET /spaces` (a cookie looked up in a map, one GET of `/rooms`, the
//!   library's own parse and render of the page) without the app's layers;
//! - the load client: one tokio task per connection, each driving one keep-alive HTTP/1.1
//!   connection of hyper's own client (`hyper::client::conn::http1`) that repeats one GET
//!   until a deadline (warm-up, then the measured window) and records
//!   every latency. A general client (reqwest) spends several times more CPU a request, which
//!   on a small machine is taken from the servers it measures; reqwest walks the flows.
//!
//! The cases:
//! 1. `GET /` (template + session load) at 1, 16 and 64 connections, one logged-in session a
//!    connection: req/s, p50/p99, and the ratio to the plain handler in the same run.
//! 2. `GET /spaces` (one page of 100 rooms, which the fake serves from stored bytes) at 1 and
//!    16 connections: req/s, p50/p99 and CPU a request of the server and of the lean
//!    reference, their ratio (target at 16 connections: 0.8, p99 under 5 ms), and the fake's
//!    `/v1/rooms?max=100` called directly (the upstream alone).
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
//!
//! The files: `main.rs` (settings and the order of the cases), `server.rs` (the servers under
//! test), `reference.rs` (the lean reference), `client.rs` (the load client), `http.rs`
//! (reqwest for the rest), `cases/` (one file a concern) and `report.rs` (the table).

/// The server's allocator, so that the ceilings this binary also serves (the lean reference and
/// the plain handler, in child processes) run on the same stack as the server.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cases;
mod client;
mod http;
mod reference;
mod report;
mod server;
#[path = "../../tests/support/mod.rs"]
mod support;

use cases::{device_case, home_case, many_pages_case, spaces_case, startup_case, storm_case};
use report::{Report, print_report};
use server::{Backend, store_label};
use std::time::{Duration, Instant};
use support::server::SERVER_BIN;
use tokio::runtime::Handle;

/// Every request of the load client gives up after this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

const DEVICE_INTERVAL_SECS: u64 = 5;

/// Longer than Webex's 300 s, so that no flow expires during a slow ramp-up plus the window.
const DEVICE_EXPIRES_IN_SECS: u64 = 900;

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

fn main() {
    // The same binary, started again by case 2, serves the lean reference.
    match std::env::var(reference::ROLE).as_deref() {
        Ok("reference") => return reference::serve(),
        Ok("plain") => return reference::serve_plain(),
        _ => {}
    }
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
