//! Load and soak (ignored: it prints figures, it asserts only correctness): many simulated users
//! each walk both flows against the fake for a fixed time. The server is the real binary in its
//! own process, so its memory is measured alone (the fake, which remembers everything it ever
//! issued, stays in the test process).
//!
//! `cargo test --release --test api soak -- --ignored --nocapture`
//! (`SOAK_USERS`, default 200, and `SOAK_SECS`, default 60, change the size.)

use crate::helpers::browser;
use crate::support::login::{LOGIN_REQUESTS, log_in};
use crate::support::{self, ChildGuard, free_port};
use fake_webex::{FakeConfig, FakeWebex};
use reqwest::{Client, StatusCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// The release server as a child process, against the fake; killed when dropped.
struct Server {
    process: ChildGuard,
    base: String,
    fake: FakeWebex,
}

impl Server {
    async fn start() -> Self {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let fake = FakeWebex::spawn(FakeConfig {
            device_interval: 1,
            redirect_uris: vec![format!("{base}/oauth")],
            ..FakeConfig::default()
        })
        .await
        .unwrap();
        let mut command = support::server::command(&fake, port);
        command
            .current_dir(std::env::temp_dir()) // no .env from the work tree
            .env("SESSION_STORE", "memory")
            // 200 users share one address here; a real deployment limits each client.
            .env("RATE_LIMIT_PER_MINUTE", "100000000")
            .env("MAX_CONNECTIONS_PER_CLIENT", "10000")
            .env("MAX_PENDING_FLOWS_PER_CLIENT", "10000");
        let process = support::server::start(command, port, Duration::from_millis(50)).await;
        Self {
            process,
            base,
            fake,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Resident memory of the server process, in KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.process.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

#[derive(Default)]
struct Tally {
    requests: AtomicUsize,
    server_errors: AtomicUsize,
    lost_sessions: AtomicUsize,
    rounds: AtomicUsize,
}

fn env_or(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `SOAK_SECS`, plus time for the last rounds to end (each request gives up after 30 s).
fn soak_deadline() -> Duration {
    Duration::from_secs(env_or("SOAK_SECS", 60) + 120)
}

async fn send(tally: &Tally, request: reqwest::RequestBuilder) -> Option<reqwest::Response> {
    tally.requests.fetch_add(1, Ordering::Relaxed);
    let response = request.timeout(Duration::from_secs(30)).send().await.ok()?;
    if response.status().is_server_error() {
        tally.server_errors.fetch_add(1, Ordering::Relaxed);
    }
    Some(response)
}

/// A page that needs the session's tokens: anything but 200 means the session was lost.
async fn signed_in_page(app: &Server, tally: &Tally, b: &Client, path: &str) {
    if let Some(response) = send(tally, b.get(app.url(path))).await
        && response.status() != StatusCode::OK
        && !response.status().is_server_error()
    {
        tally.lost_sessions.fetch_add(1, Ordering::Relaxed);
    }
}

async fn one_round(app: &Server, tally: &Tally) -> Option<()> {
    // Authorization code.
    let b = browser();
    let login = log_in(&b, &app.base, &app.fake.base_url()).await;
    let sent = login
        .as_ref()
        .map_or_else(|err| err.sent, |()| LOGIN_REQUESTS);
    tally.requests.fetch_add(sent, Ordering::Relaxed);
    if let Err(err) = login {
        // No answer (a timeout) ends the round, as `send` does; a wrong answer is counted.
        match err.status {
            Some(status) if status.is_server_error() => &tally.server_errors,
            Some(_) => &tally.lost_sessions,
            None => return None,
        }
        .fetch_add(1, Ordering::Relaxed);
        return None;
    }
    signed_in_page(app, tally, &b, "/spaces").await;
    signed_in_page(app, tally, &b, "/whoami").await;
    send(
        tally,
        b.post(app.url("/logout"))
            .header("Sec-Fetch-Site", "same-origin"),
    )
    .await?;

    // Device flow: read the user code off the page, approve it as the phone would.
    let b = browser();
    send(
        tally,
        b.post(app.url("/sign-in"))
            .header("Sec-Fetch-Site", "same-origin"),
    )
    .await?;
    let page = send(tally, b.get(app.url("/sign-in")))
        .await?
        .text()
        .await
        .ok()?;
    let user_code: String = page
        .split("id=\"user-code\">")
        .nth(1)?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    send(
        tally,
        b.post(format!("{}/verify", app.fake.origin()))
            .form(&[("user_code", user_code.as_str()), ("decision", "approve")]),
    )
    .await?;
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let status = send(tally, b.get(app.url("/device/status"))).await?;
        let json: serde_json::Value = status.json().await.ok()?;
        if json["status"] == "granted" {
            break;
        }
        if Instant::now() > until || json["status"] != "pending" {
            tally.lost_sessions.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    signed_in_page(app, tally, &b, "/whoami").await;
    send(
        tally,
        b.post(app.url("/logout"))
            .header("Sec-Fetch-Site", "same-origin"),
    )
    .await?;
    tally.rounds.fetch_add(1, Ordering::Relaxed);
    Some(())
}

#[crate::support::test(flavor = "multi_thread", timeout = soak_deadline())]
#[ignore = "load and soak: run on purpose, it prints figures"]
async fn soak_both_flows_with_many_users() {
    let users = env_or("SOAK_USERS", 200) as usize;
    let secs = env_or("SOAK_SECS", 60);
    let app = Arc::new(Server::start().await);
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let warm_up = Duration::from_secs(secs.min(60) / 6);
    let deadline = started + Duration::from_secs(secs);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..users {
        let (app, tally) = (app.clone(), tally.clone());
        tasks.spawn(async move {
            // Bounded in time (the deadline) and in count (no more than 10,000 rounds).
            for _ in 0..10_000 {
                if Instant::now() >= deadline {
                    break;
                }
                one_round(&app, &tally).await;
            }
        });
    }
    tokio::time::sleep_until(started + warm_up).await;
    let rss_warm = app.rss_kib();
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed().as_secs_f64();
    let rss_end = app.rss_kib();

    let requests = tally.requests.load(Ordering::Relaxed);
    let errors = tally.server_errors.load(Ordering::Relaxed);
    let lost = tally.lost_sessions.load(Ordering::Relaxed);
    let rounds = tally.rounds.load(Ordering::Relaxed);
    let growth = (rss_end as f64 - rss_warm as f64) / rss_warm.max(1) as f64 * 100.0;
    println!("| figure | value |\n|---|---|");
    println!(
        "| cores | {} |",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| users x seconds | {users} x {secs} |");
    println!("| rounds (both flows each) | {rounds} |");
    println!(
        "| requests | {requests} ({:.0}/s) |",
        requests as f64 / elapsed
    );
    println!("| 5xx | {errors} |");
    println!("| lost sessions | {lost} |");
    println!(
        "| server RSS after warm-up ({}s) | {} MiB |",
        warm_up.as_secs(),
        rss_warm / 1024
    );
    println!(
        "| server RSS at the end | {} MiB ({growth:+.1}%) |",
        rss_end / 1024
    );
    assert_eq!(errors, 0, "no 5xx under load");
    assert_eq!(lost, 0, "no session lost under load");
    assert!(rounds > 0);
}
