//! Load benchmark (issues 6 and 30): prints a Markdown table of throughput, latency, bytes on
//! the wire, memory and start-up figures of the server, beside its ceilings and the Flask
//! sample, with the targets; `benches/README.md` says what each case measures and why.
//!
//! Run it with one command (cargo builds both binaries with the `bench` profile: fat LTO, one
//! codegen unit, as `dist`):
//!
//! ```sh
//! cargo bench --bench load
//! ```
//!
//! What one run starts, all on loopback:
//! - the fake Webex ([`FakeWebex`], zero added latency) inside this process, so its counters
//!   (refresh calls, device polls and their arrival times) can be read; it serves `/rooms`
//!   from bytes it serialized once (a static upstream);
//! - the server binary (`CARGO_BIN_EXE_webex-oauth-axum`) as a child process in live mode
//!   against that fake, in an empty temporary directory with a cleared environment, as
//!   deployed: every layer on, the default log filter (a response line a request, to
//!   `/dev/null`) and the metrics recorder; killed with its process group when dropped;
//! - the ceilings, this binary started again as children (`reference.rs`): the plain handler
//!   of case 1 and the lean reference of case 2 (axum + reqwest + askama + tower-http's
//!   `CompressionLayer` with its defaults, on mimalloc);
//! - the Flask sample of case 2 (`flask.rs`, `benches/flask/`): Werkzeug in a child process,
//!   from a virtual environment under `target/` made on first use; without Python the row is
//!   skipped, and the run says so;
//! - the load client (`client.rs`): a task a connection, each one keep-alive HTTP/1.1
//!   connection of hyper's own client repeating one GET until a deadline, with a browser's
//!   page-load headers or bare, recording every latency and the bytes of every response.
//!
//! The cases: 1 `GET /`, 2 `GET /spaces`, 3 `GET /spaces` over 10 pages, 4 refresh storms,
//! 5 device-flow scale, 6 start-up and idle memory.
//!
//! Knobs (environment): `BENCH_WARMUP_SECS` (2) and `BENCH_SECS` (5) for each load run,
//! `BENCH_DEVICE_SECS` (30), `BENCH_FLOWS` (10000, the server's default cap on pending flows),
//! `BENCH_RAMP` (16 sign-ins at a time), `BENCH_RAMP_LIMIT_SECS` (120: the ramp stops there),
//! `BENCH_STORMS` (5), `BENCH_STARTS` (5), `BENCH_CASES` (`1,2,3,4,5,6`, a subset to run),
//! `BENCH_SESSION_STORE` (passed as `SESSION_STORE`; unless it is `memory`, cases 1 and 5 run
//! again with `SESSION_STORE=memory` to show what the store costs).
//!
//! Speed is never asserted, here or in the tests: the program prints figures, and fails only
//! when something is broken (a wrong status, a missing page, a failed request in a load run).
//!
//! The files: `main.rs` (settings and the order of the cases), `server.rs` (the server under
//! test), `reference.rs` (the ceilings), `flask.rs` (the Flask sample), `client.rs` (the load
//! client), `http.rs` (reqwest for the rest), `cases/` (one file a concern), `report.rs`.

/// The server's allocator, so that the ceilings this binary also serves (the lean reference and
/// the plain handler, in child processes) run on the same stack as the server.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cases;
mod client;
mod flask;
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
