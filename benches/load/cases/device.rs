//! Case 5: device-flow scale.

use crate::http::client_builder;
use crate::report::{Report, mb, yes};
use crate::server::{Backend, cpu_of};
use crate::{DEVICE_INTERVAL_SECS, Settings};
use fake_webex::Counter;
use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::{Client, StatusCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// One device sign-in as a browser starts it: `POST /sign-in`, then the page it redirects to.
pub struct Started {
    pub user_code: String,
    /// Taken before the POST was sent, so never later than the fake's start of the flow.
    pub sent: Instant,
    /// Bytes of the `GET /sign-in` page (the QR code is in it, as a PNG data URI).
    pub page_bytes: usize,
}

pub async fn start_sign_in(client: &Client, base: &str) -> Result<Started, String> {
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

pub async fn device_case(
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
