//! Graceful stop: a request in flight when the stop comes still completes, new connections
//! are refused, and the real binary exits 0 on SIGTERM.

use crate::helpers::{TestApp, text, wait_for};
use fake_webex::{Counter, Endpoint, Fault};
use reqwest::StatusCode;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::time::timeout;

#[crate::support::test]
async fn a_request_in_flight_across_the_stop_completes() {
    timeout(Duration::from_secs(30), async {
        let app = TestApp::spawn().await;
        app.login().await;
        let rooms_before = app.fake.count(Counter::RoomsCalls);
        app.fake
            .inject(Endpoint::Rooms, Fault::Delay(Duration::from_secs(1)));
        let (client, url, addr) = (app.client.clone(), app.url("/spaces"), app.addr);
        let pending = tokio::spawn(async move { client.get(url).send().await });
        wait_for("/spaces to reach Webex", Duration::from_secs(5), || async {
            app.fake.count(Counter::RoomsCalls) > rooms_before
        })
        .await;

        // The stop comes while Webex sits on /rooms.
        let (_, response) = tokio::join!(app.stop(), pending);
        let response = response
            .unwrap()
            .expect("the in-flight request got its answer");
        assert_eq!(response.status(), StatusCode::OK);
        assert!(text(response).await.contains("Design review"));
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "a stopped server accepts no connection"
        );
    })
    .await
    .expect("the test finishes within 30 s");
}

/// The binary, killed (SIGKILL, that one PID) if the test fails before it exits.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[cfg(unix)]
#[crate::support::test]
async fn the_binary_exits_0_on_sigterm() {
    timeout(Duration::from_secs(60), async {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listen = format!("127.0.0.1:{port}");
        let mut server = Server(
            Command::new(env!("CARGO_BIN_EXE_webex-oauth-axum"))
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("SESSION_STORE", "memory")
                .env("LISTEN_ADDR", &listen)
                // No `.env` of the checkout is read.
                .current_dir(std::env::temp_dir())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let healthz = format!("http://{listen}/healthz");
        let client = reqwest::Client::new();
        wait_for(
            "the binary to serve /healthz",
            Duration::from_secs(30),
            || {
                let running = matches!(server.0.try_wait(), Ok(None));
                let answer = client.get(&healthz).send();
                async move {
                    assert!(running, "the binary exited before serving");
                    answer.await.is_ok_and(|r| r.status() == StatusCode::OK)
                }
            },
        )
        .await;

        let kill = Command::new("kill")
            .args(["-TERM", &server.0.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let mut status = None;
        wait_for("the binary to exit", Duration::from_secs(15), || {
            status = server.0.try_wait().unwrap();
            std::future::ready(status.is_some())
        })
        .await;
        assert_eq!(status.and_then(|s| s.code()), Some(0), "{status:?}");
    })
    .await
    .expect("the test finishes within 60 s");
}
