//! A hostile Webex: replies too large to read, device values that would overflow a poller or
//! put `javascript:` in a link. Each is refused with a 502 page, or clamped, and every flow ends.

use crate::helpers::{
    TestApp, browser, captured_logs, location, problem_after_post, quick_device_fake, text,
    wait_for,
};
use fake_webex::{Endpoint, FakeConfig, FakeWebex, Fault};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// 300 MB: far past what the server reads, and more than it could hold without anyone noticing.
const HUGE: u64 = 300 * 1000 * 1000;

fn huge(status: u16, declare_length: bool) -> Fault {
    Fault::HugeBody {
        status,
        bytes: HUGE,
        declare_length,
    }
}

/// Asserts a 502 HTML page that says `says`; returns its text.
async fn bad_gateway(response: reqwest::Response, says: &str) -> String {
    let status = response.status();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = text(response).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(body.contains(says), "the page says {says:?}: {body}");
    body
}

#[crate::support::test]
async fn oversized_replies_are_refused_with_a_502_page() {
    let app = TestApp::spawn().await;
    app.login().await;
    for declare_length in [true, false] {
        for (endpoint, path) in [
            (Endpoint::Rooms, "/spaces"),
            (Endpoint::PeopleMe, "/whoami"),
        ] {
            app.fake.inject(endpoint, huge(200, declare_length));
            let body = bad_gateway(app.get(path).await, "Webex sent too much").await;
            assert!(body.contains("1024 KiB"), "{body}");
            // An error body that large is read only as far as 64 KiB, then classified by status.
            app.fake.inject(endpoint, huge(500, declare_length));
            bad_gateway(app.get(path).await, "Webex answered 500").await;
        }
        // The refresh behind a page: the access token is refused, the refresh answer is huge.
        app.fake.expire_access_tokens();
        app.fake
            .inject(Endpoint::AccessToken, huge(200, declare_length));
        bad_gateway(app.get("/whoami").await, "token refresh response larger").await;
        // The code exchange of a new login.
        let callback = app.authorize(&app.client, "accept").await;
        app.fake
            .inject(Endpoint::AccessToken, huge(200, declare_length));
        let response = app.client.get(&callback).send().await.unwrap();
        bad_gateway(response, "code exchange response larger").await;
        app.login().await;
    }
    assert_eq!(app.get("/whoami").await.status(), StatusCode::OK);
}

/// A device authorization with these fields over the fake's usual ones.
fn device_json(fake: &FakeWebex, fields: Value) -> Fault {
    let mut body = json!({
        "device_code": "not-one-the-fake-knows",
        "user_code": "418205",
        "verification_uri": format!("{}/verify", fake.origin()),
        "verification_uri_complete": format!("{}/verify?userCode=ab", fake.origin()),
        "expires_in": 300,
        "interval": 2,
    });
    for (key, value) in fields.as_object().unwrap() {
        body[key] = value.clone();
    }
    Fault::Json(body)
}

/// Waits until the flow has ended and its poller task returned (a panicked task would stay
/// in the poller map, so `active_pollers` would never reach 0).
async fn wait_until_ended(app: &TestApp, want: &str, deadline: Duration) {
    wait_for(&format!("the flow to end {want}"), deadline, || async {
        app.device_status_as(&app.client).await.1["status"] == want
            && app.probe.active_pollers() == 0
    })
    .await;
}

#[crate::support::test]
async fn an_interval_of_2_64_minus_1_does_not_stop_the_flow_from_ending() {
    let app = TestApp::spawn_with(quick_device_fake(), |_| {}).await;
    let fault = device_json(&app.fake, json!({ "interval": u64::MAX, "expires_in": 2 }));
    app.fake.inject(Endpoint::DeviceAuthorize, fault);
    let response = app.post("/sign-in").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let page = app.get("/sign-in").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(text(page).await.contains("418205"));
    // Clamped to 60 s, the first poll would come after the 2 s deadline: the flow expires.
    wait_until_ended(&app, "expired", Duration::from_secs(10)).await;
}

#[crate::support::test]
async fn huge_lifetimes_are_clamped_to_30_minutes() {
    let app = TestApp::spawn_with(quick_device_fake(), |_| {}).await;
    let fault = device_json(
        &app.fake,
        json!({ "interval": u64::MAX, "expires_in": u64::MAX }),
    );
    app.fake.inject(Endpoint::DeviceAuthorize, fault);
    assert_eq!(app.post("/sign-in").await.status(), StatusCode::SEE_OTHER);
    let (status, body) = app.device_status_as(&app.client).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("pending"))
    );
    let expires_in = body["expires_in"].as_u64().unwrap();
    assert!((1790..=1800).contains(&expires_in), "{body}");
    assert_eq!(app.get("/sign-in").await.status(), StatusCode::OK);
    assert_eq!(
        app.post("/sign-in/cancel").await.status(),
        StatusCode::SEE_OTHER
    );
    wait_for("the poller to stop", Duration::from_secs(5), || async {
        app.probe.active_pollers() == 0
    })
    .await;
}

#[crate::support::test]
async fn a_retry_after_of_2_64_minus_1_seconds_waits_only_until_the_deadline() {
    let fake = FakeConfig {
        device_expires_in: 3,
        ..quick_device_fake()
    };
    let app = TestApp::spawn_with(fake, |_| {}).await;
    let retry_after = u64::MAX;
    let fault = Fault::RateLimited { retry_after };
    app.fake.inject(Endpoint::DeviceToken, fault);
    let user_code = app.start_device_flow_as(&app.client).await;
    wait_until_ended(&app, "expired", Duration::from_secs(10)).await;
    assert_eq!(
        app.fake.device_polls(&user_code).len(),
        1,
        "no poll after the 429"
    );
}

#[crate::support::test]
async fn hostile_verification_links_are_a_502_page_and_start_no_flow() {
    let app = TestApp::spawn_with(quick_device_fake(), |_| {}).await;
    let too_long = format!("https://x.example/{}", "a".repeat(3000));
    let cases = [
        (
            "javascript:alert(1)",
            "a verification link that is not https",
        ),
        (
            "data:text/html,<b>x</b>",
            "a verification link that is not https",
        ),
        (
            "ftp://x.example/verify",
            "a verification link that is not https",
        ),
        ("/verify", "a verification link that is not an absolute URL"),
        (
            "https://u:p@x.example/verify",
            "a verification link without a proper host",
        ),
        (
            too_long.as_str(),
            "a verification link too long to show as a QR code",
        ),
    ];
    for field in ["verification_uri", "verification_uri_complete"] {
        for (link, says) in &cases {
            let fault = device_json(&app.fake, json!({ field: link }));
            app.fake.inject(Endpoint::DeviceAuthorize, fault);
            // A form post: the page is a redirect away, in general words; the details are logged.
            let response = app.post("/sign-in").await;
            let (kind, status, body) = problem_after_post(&app, &app.client, response).await;
            assert_eq!(
                (kind.as_str(), status),
                ("webex-unexpected", StatusCode::OK)
            );
            assert!(body.contains("Webex sent something unexpected"), "{body}");
            assert!(captured_logs().contains(says), "{says} is logged");
            assert!(
                !body.contains("javascript:"),
                "{field}: the link is not shown"
            );
            assert_eq!(app.probe.flow_count().await, 0, "{field} {link}: no flow");
        }
    }
    // An https link is fine even when the API base is http; it lands in the page's links.
    let link = "https://oauth-helper-r.wbx2.com/verify";
    let fault = device_json(&app.fake, json!({ "verification_uri_complete": link }));
    app.fake.inject(Endpoint::DeviceAuthorize, fault);
    assert_eq!(app.post("/sign-in").await.status(), StatusCode::SEE_OTHER);
    let page = text(app.get("/sign-in").await).await;
    assert!(page.contains(&format!("href=\"{link}\"")), "{page}");
}

/// The server binary as a child in its own process group, which is ended when this is dropped.
/// (Local to this file until the shared guard in `tests/support/` lands.)
struct ChildServer {
    child: Child,
    base: String,
}

impl ChildServer {
    fn start(fake: &FakeWebex, port: u16) -> Self {
        use std::os::unix::process::CommandExt;
        let base = format!("http://127.0.0.1:{port}");
        let config = FakeConfig::default();
        let child = Command::new(env!("CARGO_BIN_EXE_webex-oauth-axum"))
            .current_dir(std::env::temp_dir()) // no .env from the work tree
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("WEBEX_CLIENT_ID", &config.client_id)
            .env("WEBEX_CLIENT_SECRET", &config.client_secret)
            .env("WEBEX_API_BASE", fake.base_url())
            .env("WEBEX_REDIRECT_URI", format!("{base}/oauth"))
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("SESSION_STORE", "memory")
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        Self { child, base }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A `VmHWM` (peak) or `VmRSS` (now) figure of the child, in KiB.
    fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/PID/status"))
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        // The group id is the child's pid (process_group(0)); SIGTERM shuts the server down.
        let group = self.child.id().to_string();
        let _ = Command::new("pkill").args(["-g", &group]).status();
        for _ in 0..100 {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Still there after 5 s: end that one process (by its id) and reap it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The authorization-code flow in `b`, against the child server.
async fn login(server: &ChildServer, fake: &FakeWebex, b: &Client) -> String {
    let login = b.get(server.url("/login")).send().await.unwrap();
    let authorize = url::Url::parse(&location(&login)).unwrap();
    let mut form: Vec<(String, String)> = authorize.query_pairs().into_owned().collect();
    form.push(("decision".into(), "accept".into()));
    let consent = format!("{}/authorize", fake.base_url());
    let answer = b.post(consent).form(&form).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::FOUND);
    location(&answer)
}

#[crate::support::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_of_300_mb_leave_the_servers_memory_flat() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let port = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let fake = FakeWebex::spawn(FakeConfig {
            redirect_uris: vec![format!("http://127.0.0.1:{port}/oauth")],
            ..FakeConfig::default()
        })
        .await
        .unwrap();
        let server = ChildServer::start(&fake, port);
        let health = server.url("/healthz");
        wait_for("the server to start", Duration::from_secs(20), || async {
            reqwest::get(&health)
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        let b = browser();
        let callback = login(&server, &fake, &b).await;
        assert_eq!(b.get(&callback).send().await.unwrap().status(), StatusCode::SEE_OTHER);
        // Warm up: every page once, so the baseline holds what normal use allocates.
        for path in ["/spaces", "/whoami", "/spaces", "/whoami"] {
            assert_eq!(b.get(server.url(path)).send().await.unwrap().status(), StatusCode::OK);
        }
        let (peak_before, rss_before) = (server.memory_kib("VmHWM"), server.memory_kib("VmRSS"));

        for declare_length in [false, true] {
            for (endpoint, path) in [(Endpoint::Rooms, "/spaces"), (Endpoint::PeopleMe, "/whoami")] {
                fake.inject(endpoint, huge(200, declare_length));
                let response = b.get(server.url(path)).send().await.unwrap();
                bad_gateway(response, "Webex sent too much").await;
            }
            let callback = login(&server, &fake, &b).await;
            fake.inject(Endpoint::AccessToken, huge(200, declare_length));
            let response = b.get(&callback).send().await.unwrap();
            bad_gateway(response, "code exchange response larger").await;
        }
        // The same replies from many users at once.
        for endpoint in [Endpoint::Rooms, Endpoint::PeopleMe] {
            for _ in 0..4 {
                fake.inject(endpoint, huge(200, false));
            }
        }
        let pages = ["/spaces", "/whoami"].into_iter().cycle().take(8);
        let replies = futures_util::future::join_all(
            pages.map(|path| b.get(server.url(path)).send()),
        )
        .await;
        for reply in replies {
            assert_eq!(reply.unwrap().status(), StatusCode::BAD_GATEWAY);
        }

        let (peak_after, rss_after) = (server.memory_kib("VmHWM"), server.memory_kib("VmRSS"));
        eprintln!(
            "server memory: peak {peak_before} → {peak_after} KiB, resident {rss_before} → {rss_after} KiB"
        );
        assert!(
            peak_after.saturating_sub(peak_before) < 32 * 1024,
            "peak memory grew from {peak_before} to {peak_after} KiB"
        );
        // Still serving, and still signed in.
        let callback = login(&server, &fake, &b).await;
        assert_eq!(b.get(&callback).send().await.unwrap().status(), StatusCode::SEE_OTHER);
        assert_eq!(b.get(server.url("/whoami")).send().await.unwrap().status(), StatusCode::OK);
    })
    .await
    .expect("the memory test finishes within 2 minutes");
}
