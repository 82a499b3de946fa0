//! The release server binary as a child process, in live mode against a fake Webex.

use crate::support::ChildGuard;
use fake_webex::{FakeConfig, FakeWebex};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The server binary, as cargo built it for this test or bench target.
pub const SERVER_BIN: &str = env!("CARGO_BIN_EXE_webex-oauth-axum");

/// The server binary in live mode against `fake` (with the fake's default client), to listen on
/// `127.0.0.1:port`, logging warnings, with a cleared environment (no proxy, nothing of ours)
/// and no stdin or stdout. The caller picks its working directory (one without a `.env`).
pub fn command(fake: &FakeWebex, port: u16) -> Command {
    let defaults = FakeConfig::default();
    let mut command = Command::new(SERVER_BIN);
    command
        .env_clear()
        .env("WEBEX_CLIENT_ID", &defaults.client_id)
        .env("WEBEX_CLIENT_SECRET", &defaults.client_secret)
        .env("WEBEX_API_BASE", fake.base_url())
        .env(
            "WEBEX_REDIRECT_URI",
            format!("http://127.0.0.1:{port}/oauth"),
        )
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    command
}

/// Spawns `command` (from [`command`]) and returns once `/healthz` on `port` answered 200,
/// polled every `every`. Panics if the server exits first, or after 10 s.
pub async fn start(mut command: Command, port: u16, every: Duration) -> ChildGuard {
    let process = ChildGuard::spawn(SERVER_BIN, &mut command);
    let probe = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a probe client");
    let health = format!("http://127.0.0.1:{port}/healthz");
    process
        .wait_ready(Duration::from_secs(10), every, || async {
            probe
                .get(&health)
                .send()
                .await
                .is_ok_and(|response| response.status() == reqwest::StatusCode::OK)
        })
        .await;
    // The answer came from our child, not from a stray server on that port.
    assert!(
        !process.has_exited(),
        "the server exited after its first /healthz"
    );
    process
}
