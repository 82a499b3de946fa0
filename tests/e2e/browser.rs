//! The browser harness: chromium-driver, one Chromium per profile, the demo app, and waits
//! bounded by [`DEADLINE`].

use fake_webex::FakeWebex;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use webex_oauth_axum::App;
use webex_oauth_axum::config::Config;

use crate::support::{self, ChildGuard, free_port};

/// Long enough for a cold Chromium on a busy 2-core machine; every wait is bounded by it.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// chromium-driver on a free loopback port; it and the browsers it started (its process group)
/// are killed when dropped, even when a test panicked before closing its browser.
pub struct Driver {
    _process: ChildGuard,
    url: String,
    profiles: Vec<tempdir::TempDir>,
}

mod tempdir {
    /// A directory removed when dropped (one Chromium profile each).
    pub struct TempDir(pub std::path::PathBuf);
    impl TempDir {
        pub fn new(tag: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "webex-oauth-e2e-{tag}-{}-{}",
                std::process::id(),
                rand_suffix()
            ));
            std::fs::create_dir_all(&path).expect("create a profile directory");
            Self(path)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    fn rand_suffix() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }
}

impl Driver {
    /// chromium-driver's own URL, for the commands fantoccini does not wrap (axe.rs).
    pub fn url(&self) -> &str {
        &self.url
    }
}

pub async fn start_driver() -> Driver {
    let port = free_port();
    let mut command = Command::new("chromedriver");
    command
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let process = ChildGuard::spawn(
        "chromedriver (apt-get install chromium-driver)",
        &mut command,
    );
    let url = format!("http://127.0.0.1:{port}");
    let status = format!("{url}/status");
    process
        .wait_ready(DEADLINE, Duration::from_millis(100), || async {
            reqwest::get(&status)
                .await
                .is_ok_and(|response| response.status().is_success())
        })
        .await;
    Driver {
        _process: process,
        url,
        profiles: Vec::new(),
    }
}

/// A new browser (its own profile, so its own cookies) on `driver`.
pub async fn browser(driver: &mut Driver, tag: &str) -> Client {
    browser_with_prefs(driver, tag, json!({})).await
}

/// A new browser with JavaScript turned off (Chromium's content setting), for the pages'
/// no-script paths.
pub async fn browser_without_js(driver: &mut Driver, tag: &str) -> Client {
    let prefs = json!({ "profile.managed_default_content_settings.javascript": 2 });
    browser_with_prefs(driver, tag, prefs).await
}

/// A new browser whose profile starts with these Chromium `prefs`.
pub async fn browser_with_prefs(
    driver: &mut Driver,
    tag: &str,
    prefs: serde_json::Value,
) -> Client {
    let profile = tempdir::TempDir::new(tag);
    let args = vec![
        "--headless".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-quic".to_owned(),
        "--no-first-run".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        "--window-size=1280,900".to_owned(),
        format!("--user-data-dir={}", profile.0.display()),
    ];
    driver.profiles.push(profile);
    // The browser's console log (errors included) is read back through `/se/log` (axe.rs).
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": args, "prefs": prefs },
        "goog:loggingPrefs": { "browser": "ALL" },
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

/// The app in demo mode on a free loopback port; device codes poll every second.
pub struct Demo {
    pub base: String,
    pub fake: FakeWebex,
    _stop: oneshot::Sender<()>,
}

pub async fn demo() -> Demo {
    demo_with("127.0.0.1", &[]).await
}

/// The demo app on `ip` (another loopback address stands in for a LAN address), with its
/// redirect URI on that address too: the fake then builds its links on it.
pub async fn demo_on(ip: &str) -> Demo {
    demo_with(ip, &[]).await
}

/// The demo app on `ip` with more configuration keys, e.g. `("RATE_LIMIT_PER_MINUTE", "3")`.
pub async fn demo_with(ip: &str, settings: &[(&str, &str)]) -> Demo {
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let redirect = format!("{base}/oauth");
    let config = Config::from_lookup(|key| match key {
        "WEBEX_REDIRECT_URI" => Some(redirect.clone()),
        _ => settings
            .iter()
            .find(|(name, _)| *name == key)
            .map(|(_, value)| (*value).to_owned()),
    })
    .unwrap();
    let app = App::with_listener(config, listener).await.unwrap();
    let fake = app.fake().unwrap().clone();
    fake.set_device_interval(1);
    let (stop, stopped) = oneshot::channel::<()>();
    support::spawn_watched(app.run_until(async {
        let _ = stopped.await;
    }));
    Demo {
        base,
        fake,
        _stop: stop,
    }
}

pub fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/e2e-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub async fn shot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).unwrap();
}

pub async fn wait_for(browser: &Client, css: &str) -> fantoccini::elements::Element {
    browser
        .wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css} within {DEADLINE:?}: {e}"))
}

pub async fn click(browser: &Client, css: &str) {
    wait_for(browser, css).await.click().await.unwrap();
}

/// Waits until the browser's path is `path` (the page moved on by itself or by a click).
pub async fn wait_for_path(browser: &Client, path: &str) {
    let until = tokio::time::Instant::now() + DEADLINE;
    loop {
        let url = browser.current_url().await.unwrap();
        if url.path() == path {
            return;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "still on {url} instead of {path}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn wait_for_text(browser: &Client, css: &str, needle: &str) {
    let until = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Ok(element) = browser.find(Locator::Css(css)).await
            && let Ok(text) = element.text().await
            && text.contains(needle)
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "{css} never said {needle:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads the sign-in page's QR code back into text from the PNG itself, as served (the image's
/// `src`, a data URI), at its own size.
pub async fn decode_qr(browser: &Client) -> String {
    let src = wait_for(browser, "#qr")
        .await
        .attr("src")
        .await
        .unwrap()
        .expect("the QR code has a src");
    let png = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        src.strip_prefix("data:image/png;base64,")
            .expect("a PNG data URI"),
    )
    .unwrap();
    let image = image::load_from_memory(&png).unwrap().to_luma8();
    let (width, height) = image.dimensions();
    let mut prepared =
        rqrr::PreparedImage::prepare_from_greyscale(width as usize, height as usize, |x, y| {
            image.get_pixel(x as u32, y as u32)[0]
        });
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code on the page");
    grids[0].decode().unwrap().1
}
