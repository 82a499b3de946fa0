//! What Redis sees (feature `e2e`, a real redis-server): no command the app sends names a
//! session id, as `MONITOR` (what a replica, the AOF or an operator's console gets) shows; and
//! a sealed value copied onto another key opens for nobody.

use crate::helpers::{TestApp, quick_device_fake};
use crate::redis::{redis, use_redis};
use crate::sign_out::{browser_with_jar, cookie_of};
use reqwest::StatusCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A `MONITOR` connection: every command any client sends Redis, as Redis prints it.
pub struct Monitor {
    seen: Arc<Mutex<Vec<u8>>>,
    reader: tokio::task::JoinHandle<()>,
    addr: String,
}

impl Monitor {
    pub async fn start(url: &str) -> Self {
        let addr = url.trim_start_matches("redis://").to_owned();
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        stream.write_all(b"MONITOR\r\n").await.unwrap();
        let mut ok = [0u8; 5];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut ok))
            .await
            .expect("MONITOR answers")
            .unwrap();
        assert_eq!(&ok, b"+OK\r\n");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        // Reads until the connection closes or the task is aborted (in `finish`).
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Self { seen, reader, addr }
    }

    /// Everything seen so far and up to a marker sent now (so no command still in flight to
    /// MONITOR is missed), waiting 10 s at most for the marker.
    pub async fn finish(self) -> Vec<u8> {
        let marker = format!("monitor-end-{}", std::process::id());
        let mut other = TcpStream::connect(&self.addr).await.unwrap();
        other
            .write_all(format!("ECHO {marker}\r\n").as_bytes())
            .await
            .unwrap();
        let seen = self.seen.clone();
        crate::helpers::wait_for(
            "MONITOR to show the marker",
            Duration::from_secs(10),
            || {
                let seen = seen.clone();
                let marker = marker.clone();
                async move {
                    let seen = seen.lock().unwrap();
                    seen.windows(marker.len()).any(|w| w == marker.as_bytes())
                }
            },
        )
        .await;
        self.reader.abort();
        self.seen.lock().unwrap().clone()
    }
}

#[crate::support::test]
async fn no_command_sent_to_redis_names_a_session_id() {
    let redis = redis().await;
    let app = TestApp::spawn_with(quick_device_fake(), |c| use_redis(c, &redis.url)).await;
    let monitor = Monitor::start(&redis.url).await;
    let mut cookies = Vec::new();

    // A sign-in (anonymous session, then the cycled id) and a refresh under the refresh lock.
    let (a, jar_a) = browser_with_jar();
    a.get(app.url("/login")).send().await.unwrap();
    cookies.push(cookie_of(&app, &jar_a));
    app.login_as(&a).await;
    cookies.push(cookie_of(&app, &jar_a));
    app.fake.expire_access_tokens();
    assert_eq!(
        a.get(app.url("/spaces")).send().await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(app.fake.count(fake_webex::Counter::Refreshes), 1);

    // A device sign-in by a browser that already has a session (so it starts under the
    // session's flow lock), and its claim (under the same lock).
    let (b, jar_b) = browser_with_jar();
    b.get(app.url("/login")).send().await.unwrap();
    cookies.push(cookie_of(&app, &jar_b));
    let user_code = app.start_device_flow_as(&b).await;
    cookies.push(cookie_of(&app, &jar_b));
    assert!(app.fake.approve_device(&user_code));
    app.wait_for_device_status_as(&b, "granted", Duration::from_secs(15))
        .await;
    cookies.push(cookie_of(&app, &jar_b));
    assert_eq!(
        b.get(app.url("/whoami")).send().await.unwrap().status(),
        StatusCode::OK
    );

    let seen = monitor.finish().await;
    let shown = String::from_utf8_lossy(&seen);
    assert!(
        shown.contains("webex-oauth:lock:refresh:") && shown.contains("webex-oauth:lock:flow:"),
        "MONITOR saw both locks taken"
    );
    for cookie in &cookies {
        let (_, value) = cookie.split_once('=').unwrap();
        assert!(
            !shown.contains(value),
            "a session id reached Redis in a command: {value}"
        );
    }
    crate::at_rest::assert_holds_no_secret("MONITOR", &seen, &app, &cookies);
}

#[crate::support::test]
async fn a_sealed_session_copied_onto_another_key_reads_as_signed_out() {
    use fred::prelude::KeysInterface;
    let redis = redis().await;
    let app = TestApp::spawn_with(Default::default(), |c| use_redis(c, &redis.url)).await;
    let ((victim, victim_cookie), (attacker, attacker_cookie)) =
        crate::at_rest::victim_and_attacker(&app).await;
    let client = crate::redis::client_of(&redis.url).await;
    let key = |cookie: &str| {
        format!(
            "webex-oauth:session:{}",
            crate::at_rest::store_key_of(cookie)
        )
    };
    let sealed: Vec<u8> = client.get(key(&victim_cookie)).await.unwrap();
    assert!(!sealed.is_empty(), "the victim's record is in Redis");
    let written: Option<String> = client
        .set(
            key(&attacker_cookie),
            sealed,
            Some(fred::prelude::Expiration::EX(3600)),
            Some(fred::prelude::SetOptions::XX),
            false,
        )
        .await
        .unwrap();
    assert!(written.is_some(), "the attacker's record was replaced");
    crate::at_rest::assert_the_swap_signs_nobody_in(&app, &victim, &attacker).await;
}
