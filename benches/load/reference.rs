//! The ceilings, each in a process of its own (this bench binary started again with
//! `BENCH_ROLE`), so that its CPU time is its own and it gets the same cores and runtime the
//! server gets:
//!
//! - the lean reference of case 2 (`BENCH_ROLE=reference`): the work of `GET /spaces` and
//!   nothing else. Per request: the cookie looked up in a map, one GET of the same `/rooms` URL
//!   with the bearer token (reqwest, built as the app builds its Webex client), the body parsed
//!   and the page rendered by the library's own `test_support::render_spaces_page` (the route's
//!   parser, rows and template), compressed as the client accepts by tower-http's
//!   `CompressionLayer` with its defaults (every encoding this build of tower-http has, default
//!   quality), on mimalloc (the bench binary's allocator). No session layer, no other
//!   middleware, no log line, no metrics: the lean axum + reqwest + askama program of issue 30;
//! - the plain handler of case 1 (`BENCH_ROLE=plain`): axum answering `GET /` with the bytes of
//!   the server's landing page, which it reads from its stdin.

use crate::support::ChildGuard;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tower_http::compression::CompressionLayer;

/// Set (to `reference`) in the environment of the child that serves the reference.
pub const ROLE: &str = "BENCH_ROLE";
const PORT: &str = "BENCH_REFERENCE_PORT";
const ROOMS_URL: &str = "BENCH_REFERENCE_ROOMS_URL";
/// Who the pages say is signed in ("Signed in as …"), as the server's page says it.
const WHO: &str = "BENCH_REFERENCE_WHO";
/// The reference's cookie: its value is a key of the session map.
const COOKIE_NAME: &str = "reference_session";

/// The reference server as a child process, killed when dropped.
pub struct ReferenceProcess {
    pub process: ChildGuard,
    pub base: String,
}

impl ReferenceProcess {
    /// Starts the reference on `port`, calling `rooms_url`; one session per token, whose
    /// `Cookie` header values it returns. The tokens go to the child on its stdin; `who` is
    /// the "Signed in as" text its pages show.
    pub async fn start(
        port: u16,
        rooms_url: &str,
        who: &str,
        tokens: &[String],
    ) -> (Self, Vec<String>) {
        let mut sessions = String::new();
        let mut cookies = Vec::with_capacity(tokens.len());
        for (n, token) in tokens.iter().enumerate() {
            let id = format!("s{n}-{:032x}", rand::random::<u128>());
            sessions.push_str(&format!("{id} {token}\n"));
            cookies.push(format!("{COOKIE_NAME}={id}"));
        }
        let reference = start_child(
            "reference",
            port,
            &[(ROOMS_URL, rooms_url), (WHO, who)],
            sessions.as_bytes(),
            "/healthz",
        )
        .await;
        (reference, cookies)
    }

    pub fn cpu(&self) -> Duration {
        crate::server::cpu_of(&format!("/proc/{}/stat", self.process.id()))
    }
}

/// The plain handler as a child process on `port`, serving `page`; killed when dropped.
pub async fn start_plain(port: u16, page: &[u8]) -> ReferenceProcess {
    start_child("plain", port, &[], page, "/").await
}

/// This binary started again as `role` on `port` with `env`, `input` written to its stdin and
/// the stdin closed (the child starts serving at EOF); returned once `ready_path` answers 200.
async fn start_child(
    role: &str,
    port: u16,
    env: &[(&str, &str)],
    input: &[u8],
    ready_path: &str,
) -> ReferenceProcess {
    let exe = std::env::current_exe().expect("the bench binary's path");
    let mut command = Command::new(exe);
    command
        .env_clear()
        .env(ROLE, role)
        .env(PORT, port.to_string())
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let mut process = ChildGuard::spawn(role, &mut command);
    {
        let mut stdin = process.take_stdin().expect("the child's stdin");
        stdin.write_all(input).expect("the child's input");
        // Dropped here: EOF.
    }
    let base = format!("http://127.0.0.1:{port}");
    let probe = reqwest::Client::builder().no_proxy().build().unwrap();
    let ready = format!("{base}{ready_path}");
    process
        .wait_ready(
            Duration::from_secs(10),
            Duration::from_millis(5),
            || async {
                probe
                    .get(&ready)
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == reqwest::StatusCode::OK)
            },
        )
        .await;
    ReferenceProcess { process, base }
}

/// `main` of the plain child: `GET /` with the page read from stdin, until killed.
pub fn serve_plain() {
    let mut page = Vec::new();
    std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut page).expect("the page");
    let page = axum::body::Bytes::from(page);
    serve_child(Router::new().route(
        "/",
        get(move || {
            let page = page.clone();
            async move { Html(page) }
        }),
    ));
}

/// Serves `app` on the child's port until killed, on a default multi-thread runtime (a worker
/// a core), as the server's `#[tokio::main]` is.
fn serve_child(app: Router) {
    let port: u16 = std::env::var(PORT)
        .ok()
        .and_then(|p| p.parse().ok())
        .expect("BENCH_REFERENCE_PORT");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("the child's port");
        axum::serve(listener, app).await.expect("the child serves");
    });
}

struct Reference {
    sessions: HashMap<String, String>,
    http: reqwest::Client,
    rooms_url: String,
    who: String,
}

/// `main` of the child: serves until killed. Its runtime is `#[tokio::main]`'s default, as the
/// server's is (a worker a core).
pub fn serve() {
    let rooms_url = std::env::var(ROOMS_URL).expect("BENCH_REFERENCE_ROOMS_URL");
    let who = std::env::var(WHO).expect("BENCH_REFERENCE_WHO");
    let sessions = std::io::stdin()
        .lock()
        .lines()
        .map(|line| {
            let line = line.expect("a session line");
            let (id, token) = line.split_once(' ').expect("`id token`");
            (id.to_owned(), token.to_owned())
        })
        .collect();
    // As `WebexClient::new` builds it (the app's defaults: 5 s to connect, 15 s in all).
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .user_agent("webex-oauth-axum-reference")
        .build()
        .expect("an HTTP client");
    let reference = Arc::new(Reference {
        sessions,
        http,
        rooms_url,
        who,
    });
    serve_child(
        Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/spaces", get(spaces))
            .layer(CompressionLayer::new())
            .with_state(reference),
    );
}

/// The session id in the `Cookie` header, if any.
fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE_NAME)?.strip_prefix('='))
}

async fn spaces(State(reference): State<Arc<Reference>>, headers: HeaderMap) -> Response {
    let Some(token) = session_id(&headers).and_then(|id| reference.sessions.get(id)) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let answer = reference
        .http
        .get(&reference.rooms_url)
        .bearer_auth(token)
        .send()
        .await;
    let body = match answer {
        Ok(answer) if answer.status().is_success() => answer.bytes().await,
        _ => return StatusCode::BAD_GATEWAY.into_response(),
    };
    let Ok(body) = body else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    match webex_oauth_axum::test_support::render_spaces_page(
        false,
        &body,
        Some(reference.who.clone()),
    ) {
        Ok(page) => Html(page).into_response(),
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}
