//! What a request's head may say (issue 27, Info): one `Host`, an absolute-form target naming
//! the same host, a plain `X-Request-ID`; and `Strict-Transport-Security` over https.

use crate::helpers::{TestApp, raw_exchange};
use tokio::net::TcpStream;

/// `head` (without its final blank line) sent as it is; the answer's status line.
async fn status_line(app: &TestApp, head: &str) -> String {
    let request = format!("{head}Connection: close\r\n\r\n");
    let stream = TcpStream::connect(app.addr).await.unwrap();
    let answer = raw_exchange(stream, request.as_bytes()).await;
    answer.lines().next().unwrap_or_default().to_owned()
}

#[crate::support::test]
async fn two_host_headers_or_a_target_naming_another_host_get_400() {
    let app = TestApp::spawn().await;
    let ours = app.addr.to_string();
    for (what, head) in [
        (
            "two Host lines",
            format!("GET / HTTP/1.1\r\nHost: {ours}\r\nHost: evil.example\r\n"),
        ),
        (
            "two Host lines, both ours",
            format!("GET / HTTP/1.1\r\nHost: {ours}\r\nHost: {ours}\r\n"),
        ),
        (
            "a target naming another host",
            format!("GET http://evil.example/ HTTP/1.1\r\nHost: {ours}\r\n"),
        ),
        (
            "a target and Host naming the same other host",
            "GET http://evil.example/ HTTP/1.1\r\nHost: evil.example\r\n".to_owned(),
        ),
        (
            "a target with a user name",
            format!("GET http://user@{ours}/ HTTP/1.1\r\nHost: {ours}\r\n"),
        ),
        (
            "two Host lines on a probe",
            format!("GET /healthz HTTP/1.1\r\nHost: {ours}\r\nHost: evil.example\r\n"),
        ),
        // RFC 9112 §3.2: HTTP/1.1 requires Host.
        ("no Host in HTTP/1.1", "GET / HTTP/1.1\r\n".to_owned()),
        ("no Host on a probe", "GET /healthz HTTP/1.1\r\n".to_owned()),
    ] {
        let status = status_line(&app, &head).await;
        assert!(status.starts_with("HTTP/1.1 400"), "{what}: {status}");
    }
    for (what, head) in [
        ("one Host", format!("GET / HTTP/1.1\r\nHost: {ours}\r\n")),
        (
            "a target naming our host",
            format!("GET http://{ours}/ HTTP/1.1\r\nHost: {ours}\r\n"),
        ),
    ] {
        let status = status_line(&app, &head).await;
        assert!(status.starts_with("HTTP/1.1 200"), "{what}: {status}");
    }
    // HTTP/1.0 may omit it.
    let status = status_line(&app, "GET /healthz HTTP/1.0\r\n").await;
    assert!(status.contains(" 200 "), "no Host in HTTP/1.0: {status}");
    app.stop().await;
}

#[crate::support::test]
async fn over_https_every_response_has_strict_transport_security_and_over_http_none() {
    let https = TestApp::spawn_with(fake_webex::FakeConfig::default(), |c| {
        let https = c.redirect_uri.as_str().replacen("http://", "https://", 1);
        c.redirect_uri = https.parse().unwrap();
    })
    .await;
    let http = TestApp::spawn().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // A page, a redirect, a 404, a probe, and a refusal at the edge (a host we do not serve).
    for (path, host) in [
        ("/", None),
        ("/login", None),
        ("/no-such-page", None),
        ("/healthz", None),
        ("/", Some("evil.example")),
    ] {
        for (app, want) in [
            (&https, Some("max-age=63072000; includeSubDomains")),
            (&http, None),
        ] {
            let mut request = client.get(app.url(path));
            if let Some(host) = host {
                request = request.header(reqwest::header::HOST, host);
            }
            let response = request.send().await.unwrap();
            let hsts = response
                .headers()
                .get("strict-transport-security")
                .map(|v| v.to_str().unwrap().to_owned());
            assert_eq!(hsts.as_deref(), want, "{path} ({})", response.status());
        }
    }
    https.stop().await;
    http.stop().await;
}

#[crate::support::test]
async fn a_plain_request_id_of_64_characters_is_kept_and_any_other_is_replaced() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::new();
    let echoed = |id: String| {
        let request = client.get(app.url("/healthz")).header("x-request-id", id);
        async move {
            let response = request.send().await.unwrap();
            response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned()
        }
    };
    let plain = format!("{}-._{}", "A".repeat(31), "z9".repeat(15));
    assert_eq!(plain.len(), 64);
    assert_eq!(
        echoed(plain.clone()).await,
        plain,
        "64 plain characters are kept"
    );
    for odd in [
        format!("{plain}x"),
        "req:7".to_owned(),
        "has space".to_owned(),
    ] {
        let ours = echoed(odd.clone()).await;
        assert_ne!(ours, odd);
        // A UUID of ours: 8-4-4-4-12 hex digits.
        let groups: Vec<usize> = ours.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{odd:?} became {ours}");
        assert!(
            ours.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit()),
            "{ours}"
        );
    }
    app.stop().await;
}
