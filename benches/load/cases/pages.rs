//! Cases 1 to 3: `GET /` and `GET /spaces` under load, each next to a ceiling (the plain
//! handler for `GET /`, the lean reference for `GET /spaces`).

use super::{Contender, interleaved, measured};
use crate::Settings;
use crate::client::Target;
use crate::http::{client_builder, cookie_headers, fake_access_token, log_in};
use crate::reference::{self, ReferenceProcess};
use crate::report::{Report, ms, yes};
use crate::server::{Backend, spawn_plain};
use crate::support::free_port;
use axum::body::Bytes;
use fake_webex::Counter;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, HeaderMap, HeaderValue};
use std::time::Duration;
use tokio::runtime::Handle;

pub async fn home_case(
    settings: &Settings,
    services: &Handle,
    backend: &Backend,
    connections: &[usize],
    case: &'static str,
    report: &mut Report,
) {
    let max_conns = connections.iter().copied().max().unwrap_or(1);
    // One logged-in session per connection: GET / loads it and shows "you have tokens".
    let sessions = sessions(backend, max_conns).await;
    let page = page_as(backend, "/", &sessions[0]).await;
    assert!(
        std::str::from_utf8(&page).is_ok_and(|p| p.contains("Continue to your session")),
        "GET / with a session shows the signed-in link"
    );
    let plain = spawn_plain(services, page.clone()).await;
    // The same handler in a process of its own, as the server and the reference are: the
    // share of the gap that is only where the ceiling runs (shown, not the target).
    let plain_process = reference::start_plain(free_port(), &page).await;
    report.add(
        case,
        "page size (the plain handler serves the same bytes)",
        format!("{} bytes", page.len()),
    );

    for &conns in connections {
        let server_targets = session_targets(backend, "/", &sessions[..conns]);
        let plain_targets = vec![
            Target {
                url: format!("{plain}/"),
                headers: HeaderMap::new(),
            };
            conns
        ];
        let plain_process_targets = vec![
            Target {
                url: format!("{}/", plain_process.base),
                headers: HeaderMap::new(),
            };
            conns
        ];
        let server_cpu = || backend.server.cpu();
        let apart_cpu = || plain_process.cpu();
        let [ours, ceiling, apart] = interleaved(
            settings,
            [
                Contender {
                    what: "GET / (server)",
                    targets: &server_targets,
                    cpu: Some(&server_cpu),
                },
                Contender {
                    what: "GET / (plain axum)",
                    targets: &plain_targets,
                    cpu: None,
                },
                Contender {
                    what: "GET / (plain axum, own process)",
                    targets: &plain_process_targets,
                    cpu: Some(&apart_cpu),
                },
            ],
        )
        .await;
        let ratio = ours.load.rps / ceiling.load.rps;
        report.add(
            case,
            format!("server, {conns} conn"),
            format!(
                "{} (server CPU {} a request)",
                ours.load.summary(),
                ours.cpu_per_request()
            ),
        );
        report.add(
            case,
            format!("plain axum, {conns} conn"),
            ceiling.load.summary(),
        );
        report.add(
            case,
            format!("plain axum in its own process, {conns} conn"),
            format!(
                "{} (its CPU {} a request); server/plain {:.2}",
                apart.load.summary(),
                apart.cpu_per_request(),
                ours.load.rps / apart.load.rps
            ),
        );
        check_targets(report, case, "server/plain", conns, ratio, ours.load.p99);
    }
}

/// `GET /spaces` against the fake serving `/rooms` from stored bytes, next to the lean reference
/// (`reference.rs`: the same work without the app's layers) and to the fake called directly.
pub async fn spaces_case(settings: &Settings, backend: &Backend, report: &mut Report) {
    const CASE: &str = "2 GET /spaces";
    const CONNECTIONS: [usize; 2] = [1, 16];
    let max_conns = CONNECTIONS[CONNECTIONS.len() - 1];
    let sessions = sessions(backend, max_conns).await;
    // One access token per connection for the reference too, as each of our sessions has one.
    let mut tokens = Vec::with_capacity(max_conns);
    for _ in 0..max_conns {
        tokens.push(fake_access_token(backend).await);
    }
    let rooms_url = format!("{}/rooms?max=100", backend.fake.base_url());
    let (reference, reference_cookies) =
        ReferenceProcess::start(free_port(), &rooms_url, &tokens).await;
    let mut bearer = HeaderMap::new();
    bearer.insert(
        reqwest::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {}", tokens[0])).unwrap(),
    );
    // Sanity: one page of 100 rooms, fetched with one /rooms call, and the reference renders
    // the very same bytes.
    let calls_before = backend.fake.count(Counter::RoomsCalls);
    let page = page_as(backend, "/spaces", &sessions[0]).await;
    let text = std::str::from_utf8(&page).unwrap();
    assert!(text.contains("100 spaces"), "GET /spaces lists 100 rooms");
    assert_eq!(backend.fake.count(Counter::RoomsCalls) - calls_before, 1);
    let reference_page = page_at(&reference.base, "/spaces", &reference_cookies[0]).await;
    assert!(
        reference_page == page,
        "the reference renders the same page as GET /spaces"
    );
    report.add(
        CASE,
        "page size (100 rooms, 1 page; the reference renders the same bytes)",
        format!("{} bytes", page.len()),
    );

    for conns in CONNECTIONS {
        let server_targets = session_targets(backend, "/spaces", &sessions[..conns]);
        let reference_targets: Vec<Target> = reference_cookies[..conns]
            .iter()
            .map(|cookie| Target {
                url: format!("{}/spaces", reference.base),
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
        let server_cpu = || backend.server.cpu();
        let reference_cpu = || reference.cpu();
        let [ours, lean, direct] = interleaved(
            settings,
            [
                Contender {
                    what: "GET /spaces (server)",
                    targets: &server_targets,
                    cpu: Some(&server_cpu),
                },
                Contender {
                    what: "GET /spaces (lean reference)",
                    targets: &reference_targets,
                    cpu: Some(&reference_cpu),
                },
                Contender {
                    what: "GET /v1/rooms (fake, direct)",
                    targets: &direct_targets,
                    cpu: None,
                },
            ],
        )
        .await;
        let ratio = ours.load.rps / lean.load.rps;
        report.add(
            CASE,
            format!("server, {conns} conn"),
            format!(
                "{} (server CPU {} a request)",
                ours.load.summary(),
                ours.cpu_per_request()
            ),
        );
        report.add(
            CASE,
            format!("lean reference, {conns} conn"),
            format!(
                "{} (its CPU {} a request)",
                lean.load.summary(),
                lean.cpu_per_request()
            ),
        );
        report.add(
            CASE,
            format!("fake /rooms direct (the upstream alone), {conns} conn"),
            direct.load.summary(),
        );
        if conns == 16 {
            report.check(
                CASE,
                "req/s ratio server/reference, 16 conn",
                format!("{ratio:.3}"),
                "≥ 0.8",
                yes(ratio >= 0.8),
            );
            report.check(
                CASE,
                "p99 at 16 conn",
                ms(ours.load.p99),
                "< 5 ms",
                yes(ours.load.p99 < Duration::from_millis(5)),
            );
        } else {
            report.add(
                CASE,
                format!("req/s ratio server/reference, {conns} conn"),
                format!("{ratio:.2}"),
            );
        }
    }
}

pub async fn many_pages_case(settings: &Settings, backend: &Backend, report: &mut Report) {
    let cookie = log_in(backend).await;
    let calls_before = backend.fake.count(Counter::RoomsCalls);
    let page = String::from_utf8(page_as(backend, "/spaces", &cookie).await.into()).unwrap();
    assert!(
        page.contains("1000 spaces"),
        "GET /spaces lists 1,000 rooms"
    );
    let pages = backend.fake.count(Counter::RoomsCalls) - calls_before;
    assert_eq!(pages, 10, "1,000 rooms are 10 pages of 100");
    let targets = session_targets(backend, "/spaces", std::slice::from_ref(&cookie));
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

/// `n` logged-in sessions (their `Cookie` header values).
async fn sessions(backend: &Backend, n: usize) -> Vec<String> {
    let mut sessions = Vec::with_capacity(n);
    for _ in 0..n {
        sessions.push(log_in(backend).await);
    }
    sessions
}

/// `GET path` in the session `cookie`, which must answer 200; the page.
async fn page_as(backend: &Backend, path: &str, cookie: &str) -> Bytes {
    page_at(backend.base(), path, cookie).await
}

/// `GET {base}{path}` with `cookie`, which must answer 200; the page.
async fn page_at(base: &str, path: &str, cookie: &str) -> Bytes {
    let page = client_builder()
        .build()
        .unwrap()
        .get(format!("{base}{path}"))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK, "GET {path}");
    page.bytes().await.unwrap()
}

/// One load connection per session, each requesting `path` in it.
fn session_targets(backend: &Backend, path: &str, sessions: &[String]) -> Vec<Target> {
    sessions
        .iter()
        .map(|cookie| Target {
            url: backend.url(path),
            headers: cookie_headers(cookie),
        })
        .collect()
}

/// The targets of `GET /`: the req/s ratio to the plain handler (`versus`) at least 0.5, and at
/// 16 connections a p99 under 10 ms.
fn check_targets(
    report: &mut Report,
    case: &'static str,
    versus: &str,
    conns: usize,
    ratio: f64,
    p99: Duration,
) {
    report.check(
        case,
        format!("req/s ratio {versus}, {conns} conn"),
        format!("{ratio:.3}"),
        "≥ 0.5",
        yes(ratio >= 0.5),
    );
    if conns == 16 {
        report.check(
            case,
            "p99 at 16 conn",
            ms(p99),
            "< 10 ms",
            yes(p99 < Duration::from_millis(10)),
        );
    }
}
