//! Case 4: refresh storms.

use crate::Settings;
use crate::client::percentile;
use crate::http::{client_builder, log_in};
use crate::report::{Report, ms, yes};
use crate::server::Backend;
use fake_webex::Counter;
use reqwest::StatusCode;
use reqwest::header::COOKIE;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The access-token lifetime of the fake's defaults (about 14 days).
pub const LONG_TTL: Duration = Duration::from_secs(1_209_599);

pub const STORM_SIZE: usize = 100;

pub async fn storm_case(settings: &Settings, backend: &Backend, report: &mut Report) {
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
