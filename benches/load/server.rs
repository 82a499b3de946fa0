//! The servers under test: the release binary as a child process (with its fake Webex in this
//! process) and its `/proc` readings, and the plain axum handler that serves as the ceiling.

use crate::support;
use crate::support::{ChildGuard, free_port};
use crate::{DEVICE_EXPIRES_IN_SECS, DEVICE_INTERVAL_SECS};
use axum::Router;
use axum::body::Bytes;
use axum::response::Html;
use axum::routing::get;
use fake_webex::{FakeConfig, FakeWebex};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::runtime::Handle;

/// A fake Webex (in this process) and the release server (a child) in live mode against it.
pub struct Backend {
    pub fake: FakeWebex,
    pub server: ServerProcess,
    /// How long the server took to answer its first `/healthz`.
    pub startup: Duration,
}

impl Backend {
    pub async fn start(services: &Handle, room_count: usize, store: Option<&str>) -> Self {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let config = FakeConfig {
            redirect_uris: vec![format!("{base}/oauth")],
            room_count,
            device_interval: DEVICE_INTERVAL_SECS,
            device_expires_in: DEVICE_EXPIRES_IN_SECS,
            ..FakeConfig::default()
        };
        let fake = services
            .spawn(FakeWebex::spawn(config))
            .await
            .expect("fake task")
            .expect("fake Webex binds 127.0.0.1:0");
        let (server, startup) = ServerProcess::start(&fake, port, store).await;
        Self {
            fake,
            server,
            startup,
        }
    }

    pub fn base(&self) -> &str {
        &self.server.base
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base)
    }
}

/// The server binary as a child; killed when dropped (also while unwinding from a panic).
pub struct ServerProcess {
    pub process: ChildGuard,
    pub base: String,
    pub workdir: PathBuf,
}

impl ServerProcess {
    /// Starts the binary on `port` against `fake` and waits for its first `200` from `/healthz`.
    pub async fn start(fake: &FakeWebex, port: u16, store: Option<&str>) -> (Self, Duration) {
        let base = format!("http://127.0.0.1:{port}");
        // An empty working directory: no `.env` is read, and the environment is only ours.
        let workdir =
            std::env::temp_dir().join(format!("webex-bench-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&workdir).expect("temporary working directory");
        let began = Instant::now();
        let mut command = support::server::command(fake, port);
        command
            .current_dir(&workdir)
            .stderr(Stdio::inherit())
            // Every load connection comes from 127.0.0.1, and the device case holds 10,000 flows
            // whose pages nobody watches: lift the per-client limits and the abandonment.
            .env("RATE_LIMIT_PER_MINUTE", "100000000")
            .env("MAX_CONNECTIONS_PER_CLIENT", "10000")
            .env("MAX_PENDING_FLOWS_PER_CLIENT", "100000")
            .env("ABANDONED_FLOW_SECS", "86400")
            // Every layer on, as deployed: the default log filter (a response line per
            // request, to stdout, which is /dev/null here) and the metrics recorder.
            .env_remove("RUST_LOG")
            .env("METRICS_ADDR", format!("127.0.0.1:{}", free_port()));
        if let Some(store) = store {
            command.env("SESSION_STORE", store);
        }
        let process = support::server::start(command, port, Duration::from_millis(1)).await;
        let startup = began.elapsed();
        let server = Self {
            process,
            base,
            workdir,
        };
        (server, startup)
    }

    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Resident memory now, in bytes.
    pub fn rss(&self) -> u64 {
        rss_of(&format!("/proc/{}/status", self.pid()))
    }

    /// Bytes under the working directory (a SQLite store's files live there).
    pub fn disk(&self) -> u64 {
        dir_size(&self.workdir)
    }

    /// User plus system CPU time so far.
    pub fn cpu(&self) -> Duration {
        cpu_of(&format!("/proc/{}/stat", self.pid()))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.process.kill();
        let _ = std::fs::remove_dir_all(&self.workdir);
    }
}

pub fn dir_size(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_size(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

/// The session store the server will use, as its configuration reads `SESSION_STORE`.
pub fn store_label(store: Option<&str>) -> String {
    let config = webex_oauth_axum::Config::from_lookup(|key| match key {
        "SESSION_STORE" => store.map(str::to_owned),
        _ => None,
    });
    match config {
        Ok(config) => format!("{:?}", config.session_store),
        Err(err) => format!("{store:?} ({err})"),
    }
}

pub fn rss_of(status_path: &str) -> u64 {
    let status = std::fs::read_to_string(status_path).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// utime + stime of `/proc/PID/stat` (fields 14 and 15, counted after the command name).
pub fn cpu_of(stat_path: &str) -> Duration {
    let stat = std::fs::read_to_string(stat_path).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = after_name
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // After ")": state is field 3, so utime (14) and stime (15) are at indexes 11 and 12.
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64)
}

pub fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}

/// The ceiling: a plain axum handler with a fixed page, in the services runtime.
pub async fn spawn_plain(services: &Handle, page: Bytes) -> String {
    services
        .spawn(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let app = Router::new().route(
                "/",
                get(move || {
                    let page = page.clone();
                    async move { Html(page) }
                }),
            );
            tokio::spawn(async move { axum::serve(listener, app).await });
            format!("http://{addr}")
        })
        .await
        .expect("plain handler")
}
