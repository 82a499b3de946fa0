//! Cases 1 to 3: `GET /` and `GET /spaces` under load, each asked for as a browser loads a page
//! (its page-load headers, `Accept-Encoding` among them) and bare (no header but the cookie, as
//! curl or a monitor asks), next to its ceilings: the plain handler for `GET /`; the lean
//! reference and the Flask sample for `GET /spaces`.

use super::{Contender, Outcome, interleaved, measured};
use crate::Settings;
use crate::client::{Site, Target, bare_headers, browser_headers, thousands};
use crate::flask::FlaskProcess;
use crate::http::{client_builder, fake_access_token, log_in};
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
    let page = page_at(backend.base(), "/", &sessions[0]).await;
    assert!(
        std::str::from_utf8(&page).is_ok_and(|p| p.contains("Continue to your session")),
        "GET / with a session shows the signed-in link"
    );
    let plain = spawn_plain(services, page.clone()).await;
    // The same handler in a process of its own, as the server and the reference are: the
    // share of the gap that is only where the ceiling runs.
    let plain_process = reference::start_plain(free_port(), &page).await;
    report.add(
        case,
        "page size (the plain handler serves the same bytes, uncompressed)",
        format!("{} bytes", thousands(page.len() as u64)),
    );

    for &conns in connections {
        // Typed into the address bar: `Sec-Fetch-Site: none`.
        let browser = session_targets(backend, "/", &sessions[..conns], Some(Site::None));
        let bare = session_targets(backend, "/", &sessions[..conns], None);
        let plain_targets = same_targets(&format!("{plain}/"), HeaderMap::new(), conns);
        let apart_targets =
            same_targets(&format!("{}/", plain_process.base), HeaderMap::new(), conns);
        let server_cpu = || backend.server.cpu();
        let apart_cpu = || plain_process.cpu();
        let outcomes = interleaved(
            settings,
            &[
                Contender {
                    what: "GET / (server, browser headers)",
                    targets: &browser,
                    cpu: Some(&server_cpu),
                },
                Contender {
                    what: "GET / (server, bare)",
                    targets: &bare,
                    cpu: Some(&server_cpu),
                },
                Contender {
                    what: "GET / (plain axum)",
                    targets: &plain_targets,
                    cpu: None,
                },
                Contender {
                    what: "GET / (plain axum, own process)",
                    targets: &apart_targets,
                    cpu: Some(&apart_cpu),
                },
            ],
        )
        .await;
        let [ours, ours_bare, ceiling, apart] = four(outcomes);
        let rows = [
            ("server, browser headers", &ours),
            ("server, bare", &ours_bare),
            ("plain axum (in the bench process)", &ceiling),
            ("plain axum in its own process", &apart),
        ];
        for (who, outcome) in rows {
            report.add(case, format!("{who}, {conns} conn"), outcome.line());
        }
        report.add(
            case,
            format!(
                "req/s server/plain (server/plain in its own process), {conns} conn: \
                 to a browser; bare"
            ),
            format!(
                "{:.3} ({:.3}); {:.3} ({:.3})",
                ours.load.rps / ceiling.load.rps,
                ours.load.rps / apart.load.rps,
                ours_bare.load.rps / ceiling.load.rps,
                ours_bare.load.rps / apart.load.rps
            ),
        );
    }
}

/// `GET /spaces` against the fake serving `/rooms` from stored bytes, next to the lean reference
/// (`reference.rs`: the same work without the app's layers), the Flask sample (`flask.rs`: the
/// page users compare with) and the fake called directly (the upstream alone).
pub async fn spaces_case(settings: &Settings, backend: &Backend, report: &mut Report) {
    const CASE: &str = "2 GET /spaces";
    const CONNECTIONS: [usize; 2] = [1, 16];
    let max_conns = CONNECTIONS[CONNECTIONS.len() - 1];
    let sessions = sessions(backend, max_conns).await;
    // One access token per connection for the reference and Flask too, as each of our
    // sessions has one.
    let mut tokens = Vec::with_capacity(max_conns);
    for _ in 0..max_conns {
        tokens.push(fake_access_token(backend).await);
    }
    let rooms_url = format!("{}/rooms?max=100", backend.fake.base_url());
    // Sanity: one page of 100 rooms, fetched with one /rooms call, and the reference renders
    // the very same bytes (saying who is signed in as the page does); Flask lists the same
    // 100 titles.
    let calls_before = backend.fake.count(Counter::RoomsCalls);
    let page = page_at(backend.base(), "/spaces", &sessions[0]).await;
    let text = std::str::from_utf8(&page).unwrap();
    assert!(text.contains("100 spaces"), "GET /spaces lists 100 rooms");
    assert_eq!(backend.fake.count(Counter::RoomsCalls) - calls_before, 1);
    let who = text
        .split_once("Signed in as ")
        .and_then(|(_, rest)| rest.split_once("</p>"))
        .map(|(who, _)| who.to_owned())
        .expect("GET /spaces says who is signed in");
    let (reference, reference_cookies) =
        ReferenceProcess::start(free_port(), &rooms_url, &who, &tokens).await;
    let flask = match FlaskProcess::start(free_port(), &rooms_url, &tokens).await {
        Ok(flask) => Ok(flask),
        Err(reason) => {
            eprintln!("Flask baseline skipped: {reason}");
            Err(reason)
        }
    };
    let mut bearer = HeaderMap::new();
    bearer.insert(
        reqwest::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {}", tokens[0])).unwrap(),
    );
    let reference_page = page_at(&reference.base, "/spaces", &reference_cookies[0]).await;
    assert!(
        reference_page == page,
        "the reference renders the same page as GET /spaces"
    );
    report.add(
        CASE,
        "page size (100 rooms, 1 page; the reference renders the same bytes)",
        format!("{} bytes", thousands(page.len() as u64)),
    );
    if let Ok((flask, cookies)) = &flask {
        let flask_page = page_at(&flask.base, "/spaces", &cookies[0]).await;
        let items = std::str::from_utf8(&flask_page)
            .unwrap()
            .matches("<li>")
            .count();
        assert_eq!(items, 100, "the Flask sample lists 100 rooms");
        report.add(
            CASE,
            "the Flask sample's page size (its titles only, as the sample lists them)",
            format!("{} bytes", thousands(flask_page.len() as u64)),
        );
    }

    for conns in CONNECTIONS {
        let site = Some(Site::SameOrigin);
        let browser = session_targets(backend, "/spaces", &sessions[..conns], site);
        let bare = session_targets(backend, "/spaces", &sessions[..conns], None);
        let reference_url = format!("{}/spaces", reference.base);
        let reference_browser = cookie_targets(&reference_url, &reference_cookies[..conns], site);
        let reference_bare = cookie_targets(&reference_url, &reference_cookies[..conns], None);
        let direct = same_targets(&rooms_url, bearer.clone(), conns);
        let server_cpu = || backend.server.cpu();
        let reference_cpu = || reference.cpu();
        let mut contenders = vec![
            Contender {
                what: "GET /spaces (server, browser headers)",
                targets: &browser,
                cpu: Some(&server_cpu),
            },
            Contender {
                what: "GET /spaces (server, bare)",
                targets: &bare,
                cpu: Some(&server_cpu),
            },
            Contender {
                what: "GET /spaces (lean reference, browser headers)",
                targets: &reference_browser,
                cpu: Some(&reference_cpu),
            },
            Contender {
                what: "GET /spaces (lean reference, bare)",
                targets: &reference_bare,
                cpu: Some(&reference_cpu),
            },
            Contender {
                what: "GET /v1/rooms (fake, direct)",
                targets: &direct,
                cpu: None,
            },
        ];
        // Flask sends the same raw page whatever the client accepts: measured once, with a
        // browser's headers, and compared with both of the server's lines.
        let flask_targets = match &flask {
            Ok((flask, cookies)) => {
                cookie_targets(&format!("{}/spaces", flask.base), &cookies[..conns], site)
            }
            Err(_) => Vec::new(),
        };
        let flask_cpu = || flask.as_ref().map_or(Duration::ZERO, |(f, _)| f.cpu());
        if flask.is_ok() {
            contenders.push(Contender {
                what: "GET /spaces (the Flask sample, Werkzeug)",
                targets: &flask_targets,
                cpu: Some(&flask_cpu),
            });
        }
        let mut outcomes = interleaved(settings, &contenders).await.into_iter();
        let [ours, ours_bare, lean, lean_bare] = four(outcomes.by_ref().take(4).collect());
        let direct = outcomes.next().expect("the upstream's outcome");
        let sample = outcomes.next();
        let rows = [
            ("server, browser headers", Some(&ours)),
            ("server, bare", Some(&ours_bare)),
            ("lean reference, browser headers", Some(&lean)),
            ("lean reference, bare", Some(&lean_bare)),
            (
                "the Flask sample (Werkzeug; browser headers)",
                sample.as_ref(),
            ),
        ];
        for (who, outcome) in rows {
            if let Some(outcome) = outcome {
                report.add(CASE, format!("{who}, {conns} conn"), outcome.line());
            }
        }
        report.add(
            CASE,
            format!("fake /rooms direct (the upstream alone), {conns} conn"),
            direct.load.summary(),
        );
        spaces_ratios(
            report,
            conns,
            [&ours, &ours_bare, &lean, &lean_bare],
            sample.as_ref(),
            &flask,
        );
    }
}

/// Case 2's ratios; at 16 connections the targets of issue 30.
fn spaces_ratios(
    report: &mut Report,
    conns: usize,
    [ours, ours_bare, lean, lean_bare]: [&Outcome; 4],
    sample: Option<&Outcome>,
    flask: &Result<(FlaskProcess, Vec<String>), String>,
) {
    const CASE: &str = "2 GET /spaces";
    let targets = conns == 16;
    let mut ratio = |figure: &str, value: f64, target: &'static str, at_least: f64| {
        let figure = format!("{figure}, {conns} conn");
        if targets {
            report.check(
                CASE,
                figure,
                format!("{value:.3}"),
                target,
                yes(value >= at_least),
            );
        } else {
            report.add(CASE, figure, format!("{value:.3}"));
        }
    };
    ratio(
        "browser: req/s server/reference",
        ours.load.rps / lean.load.rps,
        "≥ 0.8",
        0.8,
    );
    ratio(
        "bare: req/s server/reference",
        ours_bare.load.rps / lean_bare.load.rps,
        "≥ 0.7",
        0.7,
    );
    match (sample, flask) {
        (Some(sample), _) => {
            ratio(
                "browser: req/s server/Flask",
                ours.load.rps / sample.load.rps,
                "≥ 40",
                40.0,
            );
            ratio(
                "bare: req/s server/Flask",
                ours_bare.load.rps / sample.load.rps,
                "≥ 40",
                40.0,
            );
        }
        (None, Err(reason)) if targets => {
            report.skip(CASE, "browser: req/s server/Flask, 16 conn", "≥ 40", reason);
            report.skip(CASE, "bare: req/s server/Flask, 16 conn", "≥ 40", reason);
        }
        _ => {}
    }
    if targets {
        report.check(
            CASE,
            "browser: p99, 16 conn",
            ms(ours.load.p99),
            "< 8 ms",
            yes(ours.load.p99 < Duration::from_millis(8)),
        );
        // The bare body is the raw page.
        let share =
            ours.load.body_per_response() as f64 / ours_bare.load.body_per_response() as f64;
        report.check(
            CASE,
            "browser: body on the wire / raw page",
            format!(
                "{share:.3} ({} of {} B, {})",
                thousands(ours.load.body_per_response()),
                thousands(ours_bare.load.body_per_response()),
                ours.load.bytes.encoding.as_deref().unwrap_or("identity")
            ),
            "≤ 0.25",
            yes(share <= 0.25),
        );
    }
}

pub async fn many_pages_case(settings: &Settings, backend: &Backend, report: &mut Report) {
    const CASE: &str = "3 GET /spaces ×10 pages";
    let cookie = log_in(backend).await;
    let calls_before = backend.fake.count(Counter::RoomsCalls);
    let page = page_at(backend.base(), "/spaces", &cookie).await;
    assert!(
        std::str::from_utf8(&page).is_ok_and(|p| p.contains("1000 spaces")),
        "GET /spaces lists 1,000 rooms"
    );
    let pages = backend.fake.count(Counter::RoomsCalls) - calls_before;
    assert_eq!(pages, 10, "1,000 rooms are 10 pages of 100");
    let one = std::slice::from_ref(&cookie);
    let browser = session_targets(backend, "/spaces", one, Some(Site::SameOrigin));
    let bare = session_targets(backend, "/spaces", one, None);
    for (how, targets) in [("browser headers", browser), ("bare", bare)] {
        let what = format!("GET /spaces over 10 pages (server, {how})");
        let result = measured(settings, &what, &targets).await;
        report.add(
            CASE,
            format!("1,000 rooms, {pages} /rooms calls a request, 1 conn, {how}"),
            format!("{}; {}", result.summary(), result.wire_summary()),
        );
    }
    report.add(
        CASE,
        "page size",
        format!("{} bytes", thousands(page.len() as u64)),
    );
}

/// Exactly four outcomes, as an array.
fn four(outcomes: Vec<Outcome>) -> [Outcome; 4] {
    outcomes
        .try_into()
        .unwrap_or_else(|v: Vec<Outcome>| panic!("4 outcomes expected, {} came", v.len()))
}

/// `n` logged-in sessions (their `Cookie` header values).
async fn sessions(backend: &Backend, n: usize) -> Vec<String> {
    let mut sessions = Vec::with_capacity(n);
    for _ in 0..n {
        sessions.push(log_in(backend).await);
    }
    sessions
}

/// `GET {base}{path}` with `cookie` and no other header (so the page comes raw), which must
/// answer 200; the page.
async fn page_at(base: &str, path: &str, cookie: &str) -> Bytes {
    let page = client_builder()
        .build()
        .unwrap()
        .get(format!("{base}{path}"))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK, "GET {base}{path}");
    page.bytes().await.unwrap()
}

/// One load connection per session of the server, each requesting `path` in it: as a browser
/// coming from `site`, or bare (`None`).
fn session_targets(
    backend: &Backend,
    path: &str,
    sessions: &[String],
    site: Option<Site>,
) -> Vec<Target> {
    cookie_targets(&backend.url(path), sessions, site)
}

/// One load connection per cookie, each requesting `url`: as a browser coming from `site`, or
/// bare (`None`).
fn cookie_targets(url: &str, cookies: &[String], site: Option<Site>) -> Vec<Target> {
    cookies
        .iter()
        .map(|cookie| Target {
            url: url.to_owned(),
            headers: match site {
                Some(site) => browser_headers(site, Some(cookie)),
                None => bare_headers(Some(cookie)),
            },
        })
        .collect()
}

/// `n` connections requesting `url` with the same headers.
fn same_targets(url: &str, headers: HeaderMap, n: usize) -> Vec<Target> {
    vec![
        Target {
            url: url.to_owned(),
            headers,
        };
        n
    ]
}
