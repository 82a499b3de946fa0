//! `TestApp`: the fake Webex and the app on `127.0.0.1:0`, plus small helpers to walk the flows.

use crate::support::{login, spawn_watched};
use fake_webex::{FakeConfig, FakeWebex};
use reqwest::header::LOCATION;
use reqwest::{Client, Response, StatusCode};
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use webex_oauth_axum::App;
use webex_oauth_axum::config::Config;
use webex_oauth_axum::test_support::Probe;

/// Every log line of every test in this binary (tests grep it for secrets).
static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        if std::env::var_os("TEST_LOG").is_some() {
            std::io::stderr().write_all(buf)?;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Captures all logs at debug level (trace for our crate), once per test binary.
fn init_logs() -> Arc<Mutex<Vec<u8>>> {
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new("debug,webex_oauth_axum=trace"))
            .with_writer(Capture(buffer.clone()))
            .with_ansi(false)
            .init();
        buffer
    })
    .clone()
}

pub fn captured_logs() -> String {
    String::from_utf8_lossy(&init_logs().lock().unwrap()).into_owned()
}

pub struct TestApp {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub fake: FakeWebex,
    pub probe: Probe,
    /// The `/metrics` listener, when the config set `metrics_addr`.
    pub metrics: Option<SocketAddr>,
    /// The "browser": keeps cookies, never follows redirects.
    pub client: Client,
    stop: oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// A new browser: its own cookie jar, no redirects followed.
pub fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(FakeConfig::default(), |_| {}).await
    }

    /// The fake with `fake` (its redirect URI set to the app's), then the app in live mode
    /// against it; `tweak` may change the app's configuration last.
    pub async fn spawn_with(mut fake: FakeConfig, tweak: impl FnOnce(&mut Config)) -> Self {
        init_logs();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let redirect_uri = format!("{base}/oauth");
        fake.redirect_uris = vec![redirect_uri.clone()];
        let (client_id, client_secret) = (fake.client_id.clone(), fake.client_secret.clone());
        let fake = FakeWebex::spawn(fake).await.unwrap();
        let api_base = fake.base_url();
        let mut config = Config::from_lookup(|key| match key {
            "WEBEX_CLIENT_ID" => Some(client_id.clone()),
            "WEBEX_CLIENT_SECRET" => Some(client_secret.clone()),
            "WEBEX_REDIRECT_URI" => Some(redirect_uri.clone()),
            "WEBEX_API_BASE" => Some(api_base.clone()),
            "SESSION_STORE" => Some("memory".into()),
            _ => None,
        })
        .unwrap();
        // Short timeouts keep the timeout tests quick.
        config.connect_timeout = Duration::from_secs(1);
        config.request_timeout = Duration::from_secs(2);
        // Tests sign in far more often than a person; the rate-limit tests set their own.
        config.rate_limit_per_minute = 100_000;
        tweak(&mut config);
        Self::serve(config, listener, fake).await
    }

    /// The app in demo mode (no credentials), its redirect URI on its own port.
    pub async fn demo() -> Self {
        init_logs();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let redirect = format!("http://{}/oauth", listener.local_addr().unwrap());
        let config =
            Config::from_lookup(|key| (key == "WEBEX_REDIRECT_URI").then(|| redirect.clone()))
                .unwrap();
        let app = App::with_listener(config, listener).await.unwrap();
        let fake = app.fake().expect("demo mode embeds the fake").clone();
        Self::run(app, fake)
    }

    /// Starts `config` on `listener`, with `fake` as the Webex the tests talk to.
    pub async fn serve(config: Config, listener: TcpListener, fake: FakeWebex) -> Self {
        init_logs();
        let app = App::with_listener(config, listener).await.unwrap();
        Self::run(app, fake)
    }

    pub fn run(app: App, fake: FakeWebex) -> Self {
        let addr = app.local_addr().unwrap();
        let probe = app.probe();
        let metrics = app.metrics_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = spawn_watched(app.run_until(async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            base: format!("http://{addr}"),
            fake,
            probe,
            metrics,
            client: browser(),
            stop,
            server,
        }
    }

    /// Stops the server as a restart would (its pollers stop, the store stays), and starts it
    /// again on a new port with the same configuration and the same browser.
    pub async fn restart(self) -> Self {
        let config = self.probe.config().clone();
        let (fake, client) = (self.fake.clone(), self.client.clone());
        self.stop().await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut app = Self::serve(config, listener, fake).await;
        app.client = client;
        app
    }

    /// Stops the server and starts it again on the same address (so the redirect URI still
    /// works) with `config`, the same fake and the same browser.
    pub async fn restart_with(self, config: Config) -> Self {
        let (fake, client, addr) = (self.fake.clone(), self.client.clone(), self.addr);
        self.stop().await;
        let listener = TcpListener::bind(addr).await.unwrap();
        let mut app = Self::serve(config, listener, fake).await;
        app.client = client;
        app
    }

    /// Stops the server and waits until it has stopped.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.server)
            .await
            .expect("the server stops")
            .unwrap()
            .unwrap();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn post(&self, path: &str) -> Response {
        self.post_as(&self.client, path).await
    }

    pub async fn post_as(&self, browser: &Client, path: &str) -> Response {
        browser
            .post(self.url(path))
            .header("Origin", &self.base)
            .form(&[("", "")])
            .send()
            .await
            .unwrap()
    }

    /// `GET /login`, then the fake's consent page answered with `decision`; returns the
    /// callback URL Webex sends the browser to (not yet visited).
    pub async fn authorize(&self, browser: &Client, decision: &str) -> String {
        login::authorize(browser, &self.base, &self.fake.base_url(), decision)
            .await
            .unwrap_or_else(|err| panic!("{err}"))
    }

    /// The whole authorization-code flow in `browser`, ending on /granted.
    pub async fn login_as(&self, browser: &Client) {
        login::log_in(browser, &self.base, &self.fake.base_url())
            .await
            .unwrap_or_else(|err| panic!("{err}"));
    }

    pub async fn login(&self) {
        self.login_as(&self.client).await
    }

    /// `POST /sign-in` in `browser`; returns the user code the fake issued.
    pub async fn start_device_flow_as(&self, browser: &Client) -> String {
        let response = self.post_as(browser, "/sign-in").await;
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "{}",
            text(response).await
        );
        assert_eq!(location(&response), "/sign-in");
        self.fake
            .last_user_code()
            .expect("the fake issued a user code")
    }

    pub async fn device_status_as(&self, browser: &Client) -> (StatusCode, serde_json::Value) {
        let response = browser
            .get(self.url("/device/status"))
            .send()
            .await
            .unwrap();
        let status = response.status();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    /// Polls `/device/status` until it says `want` (or fails at the deadline).
    pub async fn wait_for_device_status_as(
        &self,
        browser: &Client,
        want: &str,
        deadline: Duration,
    ) {
        wait_for(&format!("device status {want}"), deadline, || async {
            self.device_status_as(browser).await.1["status"] == want
        })
        .await;
    }
}

pub fn location(response: &Response) -> String {
    response
        .headers()
        .get(LOCATION)
        .expect("a Location header")
        .to_str()
        .unwrap()
        .to_owned()
}

pub async fn text(response: Response) -> String {
    response.text().await.unwrap()
}

/// Polls `check` every 50 ms until it holds; panics after `deadline`.
pub async fn wait_for<F, Fut>(what: &str, deadline: Duration, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    crate::support::wait_until(what, deadline, Duration::from_millis(50), check).await
}

/// A fake whose device flows poll every second, so device tests run in seconds.
pub fn quick_device_fake() -> FakeConfig {
    FakeConfig {
        device_interval: 1,
        ..FakeConfig::default()
    }
}

/// An app whose device flow, started by `app.client` with a 2 s code, expired unapproved.
pub async fn app_with_an_expired_device_flow() -> TestApp {
    let fake = FakeConfig {
        device_interval: 1,
        device_expires_in: 2,
        ..FakeConfig::default()
    };
    let app = TestApp::spawn_with(fake, |_| {}).await;
    app.start_device_flow_as(&app.client).await;
    app.wait_for_device_status_as(&app.client, "expired", Duration::from_secs(10))
        .await;
    app
}

/// What askama makes of text in HTML.
pub fn html_escape(s: &str) -> String {
    s.replace('&', "&#38;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

/// A failed form post: asserts its 303 to `/problem?kind=…`, then follows it in `browser`.
/// Returns the kind, and the page's status and body.
pub async fn problem_after_post(
    app: &TestApp,
    browser: &Client,
    response: Response,
) -> (String, StatusCode, String) {
    let status = response.status();
    let to = location(&response);
    assert_eq!(status, StatusCode::SEE_OTHER, "{}", text(response).await);
    let kind = to
        .strip_prefix("/problem?kind=")
        .unwrap_or_else(|| panic!("a /problem page, not {to}"));
    let kind = kind.split('&').next().unwrap().to_owned();
    let page = browser.get(app.url(&to)).send().await.unwrap();
    let status = page.status();
    (kind, status, text(page).await)
}

/// A TCP connection to `addr` from the loopback address `ip` (127.0.0.2, 127.0.0.3 … stand in
/// for distinct clients).
pub async fn connect_from(ip: &str, addr: SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(ip.parse().unwrap(), 0))
        .unwrap();
    socket.connect(addr).await.unwrap()
}

/// Sends `request` as it is on `stream` and reads until the server closes (or resets) it, for
/// at most 10 s; returns what came back (empty when the server closed without answering). A
/// server that answers before reading the whole request may reset the connection: what it
/// sent before that is still returned.
pub async fn raw_exchange(mut stream: tokio::net::TcpStream, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A write the server cut short (it answered and closed first) is not an error here.
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the server neither answered nor closed within 10 s"
    );
    String::from_utf8_lossy(&answer).into_owned()
}
