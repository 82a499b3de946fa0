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
    app.stop().await;
}
