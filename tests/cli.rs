//! The server binary as a newcomer and an operator meet it: `.env.example` loads, `--help`,
//! `--version`, a clear error for an unknown flag or a bad `RUST_LOG`, and its log lines (JSON
//! objects with the request id; plain text lines, uncoloured when standard output is not a terminal).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use webex_oauth_axum::Config;
use webex_oauth_axum::cli::SETTINGS;

/// `#[support::test]`: every test here under a deadline.
mod support;

const BIN: &str = env!("CARGO_BIN_EXE_webex-oauth-axum");
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/.env.example");

/// The binary with only `vars` in its environment, run from a directory without a `.env`.
fn server(vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BIN);
    command.env_clear().current_dir(std::env::temp_dir());
    command.envs(vars.iter().copied());
    command
}

fn run(args: &[&str], vars: &[(&str, &str)]) -> Output {
    server(vars).args(args).output().expect("the binary runs")
}

fn known(key: &str) -> bool {
    SETTINGS.iter().any(|s| s.key == key)
}

#[crate::support::test]
fn env_example_loads_and_every_key_in_it_is_a_valid_setting() {
    // The active lines, through the loader the server uses.
    let active: Vec<(String, String)> = dotenvy::from_path_iter(EXAMPLE)
        .expect(".env.example exists")
        .collect::<Result<_, _>>()
        .expect(".env.example parses with dotenvy");
    for (key, _) in &active {
        assert!(known(key), "{key} in .env.example is not a setting");
    }
    let lookup = |extra: &[(String, String)], key: &str| {
        extra
            .iter()
            .chain(&active)
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let config = Config::from_lookup(|key| lookup(&[], key)).expect("its active lines are valid");
    assert!(config.is_demo());

    // The commented `# KEY=value` lines: each parses the same way and is valid on its own.
    let text = std::fs::read_to_string(EXAMPLE).unwrap();
    let mut seen: Vec<String> = active.iter().map(|(k, _)| k.clone()).collect();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# ") else {
            continue;
        };
        let Some((key, _)) = rest.split_once('=') else {
            continue;
        };
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
            continue;
        }
        let parsed: Vec<(String, String)> = dotenvy::from_read_iter(rest.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{rest:?} does not parse: {e}"));
        assert_eq!(parsed.len(), 1, "{rest}");
        assert!(known(key), "{key} (commented) is not a setting");
        if let Err(err) = Config::from_lookup(|k| lookup(&parsed, k)) {
            panic!("{rest:?} is not valid: {err}");
        }
        seen.push(key.to_owned());
    }
    // And the example shows every setting, so it cannot fall behind.
    for setting in SETTINGS {
        assert!(
            seen.iter().any(|k| k == setting.key),
            "{} is missing from .env.example",
            setting.key
        );
    }
}

#[crate::support::test]
fn help_lists_every_setting_with_its_variable_and_default() {
    let out = run(&["--help"], &[("WEBEX_CLIENT_SECRET", "do-not-print-me")]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for setting in SETTINGS {
        assert!(
            help.contains(&format!("--{}", setting.flag)),
            "{}",
            setting.flag
        );
        assert!(
            help.contains(&format!("[env: {}", setting.key)),
            "{}",
            setting.key
        );
        assert!(
            help.contains(&format!("[default: {}]", setting.default)),
            "{}",
            setting.key
        );
    }
    assert!(!help.contains("do-not-print-me"), "help printed a secret");
}

#[crate::support::test]
fn version_prints_the_version() {
    let out = run(&["--version"], &[]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        format!("webex-oauth-axum {}", env!("CARGO_PKG_VERSION"))
    );
}

#[crate::support::test]
fn an_unknown_flag_is_a_clear_error() {
    let out = run(&["--lisen-addr", "127.0.0.1:1"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("unexpected argument '--lisen-addr'"), "{err}");
    assert!(
        err.contains("--listen-addr"),
        "suggests the right flag: {err}"
    );
}

#[crate::support::test]
fn a_bad_setting_stops_start_up_naming_its_key() {
    for (key, value) in [
        ("RUST_LOG", "webex_oauth_axum=loud"),
        ("LOG_FORMAT", "xml"),
        ("PORT", "eighty"),
    ] {
        let out = run(&[], &[(key, value)]);
        assert_eq!(out.status.code(), Some(2), "{key}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.starts_with(&format!("configuration error: {key}: ")),
            "{err}"
        );
    }
}

#[crate::support::test]
fn a_malformed_redis_url_stops_start_up_without_showing_its_password() {
    for value in [
        "redis://user:hunter2@[bad",
        "rediss://:hunter2@",
        "redis:user:hunter2@cache.internal:6379",
    ] {
        let out = run(&[], &[("SESSION_STORE", value)]);
        assert_eq!(out.status.code(), Some(2), "{value}");
        let (err, log) = (
            String::from_utf8(out.stderr).unwrap(),
            String::from_utf8(out.stdout).unwrap(),
        );
        assert!(
            err.starts_with("configuration error: SESSION_STORE: "),
            "{err}"
        );
        assert!(
            !err.contains("hunter2") && !log.contains("hunter2"),
            "{err}{log}"
        );
    }
}

/// A running server, killed when dropped; its stdout lines arrive on a channel.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    fn start(vars: &[(&str, &str)]) -> Self {
        let mut child = server(vars)
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("SESSION_STORE", "memory")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the server starts");
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        Self { child, lines }
    }

    /// The first line that `pick` accepts, within 10 s (and at most 10,000 lines).
    fn line<T>(&self, mut pick: impl FnMut(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(10);
        for _ in 0..10_000 {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).expect("a log line in time");
            if let Some(found) = pick(&line) {
                return found;
            }
        }
        panic!("no such line");
    }
}

impl Running {
    /// The JSON response line of the request whose id is `id` (every line before it must be
    /// JSON too).
    fn response_line(&self, id: &str) -> (serde_json::Value, usize) {
        self.line(|line| {
            let value = json(line);
            (value["span"]["request_id"] == id && value["fields"]["message"] == "response")
                .then_some((value, line.len()))
        })
    }
}

/// `GET http://127.0.0.1:{port}{path}` with the request id `id`.
async fn get_with_id(port: u16, path: &str, id: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .header("x-request-id", id)
        .send()
        .await
        .unwrap()
}

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"))
}

#[crate::support::test]
async fn json_logs_are_one_object_a_line_with_the_request_id() {
    let server = Running::start(&[("LOG_FORMAT", "json")]);
    let port: u16 = server.line(|line| {
        let message = json(line)["fields"]["message"].as_str()?.to_owned();
        let rest = message.strip_prefix("listening on 127.0.0.1:")?;
        let (port, open) = rest.split_once(';')?;
        // The URL to open follows the bound port too.
        assert_eq!(open.trim(), format!("open http://localhost:{port}/"));
        port.parse().ok()
    });
    let response = get_with_id(port, "/", "cli-json-1").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "cli-json-1");
    let (line, _) = server.response_line("cli-json-1");
    assert_eq!(line["level"], "INFO");
    let latency = &line["fields"]["latency_ms"];
    assert!(latency.as_f64().is_some_and(|ms| ms > 0.0), "{latency}");

    // Lines logged by every worker at once stay whole and all arrive (they leave in batches of
    // whole lines; `json` panics on a line cut or mixed with another).
    const CONCURRENT: usize = 16;
    const EACH: usize = 25;
    let client = reqwest::Client::new();
    let mut requests = tokio::task::JoinSet::new();
    for task in 0..CONCURRENT {
        let (client, url) = (client.clone(), format!("http://127.0.0.1:{port}/"));
        requests.spawn(async move {
            for n in 0..EACH {
                let id = format!("cli-json-burst-{task}-{n}");
                let response = client.get(&url).header("x-request-id", &id).send().await;
                assert_eq!(response.unwrap().status(), 200, "{id}");
            }
        });
    }
    while let Some(done) = requests.join_next().await {
        done.unwrap();
    }
    let mut seen = std::collections::HashSet::new();
    while seen.len() < CONCURRENT * EACH {
        let id = server.line(|line| {
            let value = json(line);
            let id = value["span"]["request_id"].as_str()?;
            (id.starts_with("cli-json-burst-") && value["fields"]["message"] == "response")
                .then(|| id.to_owned())
        });
        seen.insert(id);
    }

    // A client picks the path: 30 KB of it (a request head is at most 32 KiB) is logged as
    // its first 256 bytes and a mark.
    let long = format!("/{}", "a".repeat(30_000));
    let response = get_with_id(port, &long, "cli-json-long").await;
    assert_eq!(response.status(), 404);
    let (line, length) = server.response_line("cli-json-long");
    assert_eq!(line["span"]["path"], format!("{}…", &long[..256]));
    assert!(length < 4096, "{length}");
}

#[crate::support::test]
async fn text_logs_are_plain_lines_with_the_request_span() {
    let server = Running::start(&[]);
    let port: u16 = server.line(|line| {
        let rest = line.split_once("listening on 127.0.0.1:")?.1;
        rest.split_once(';')?.0.parse().ok()
    });
    let response = get_with_id(port, "/", "cli-text-1").await;
    assert_eq!(response.status(), 200);
    let line = server.line(|line| {
        line.contains("request_id=cli-text-1")
            .then(|| line.to_owned())
    });
    // Not coloured: standard output here is a pipe, not a terminal. Then the time, the level,
    // the span with its fields, the target, the event's fields.
    assert!(!line.contains('\u{1b}'), "{line:?}");
    let (time, rest) = line
        .split_once("  INFO ")
        .expect("the level after the time");
    assert_eq!(time.len(), "2026-12-03T10:24:00.123456Z".len(), "{line}");
    let fields = rest
        .strip_prefix(
            "request{method=GET path=/ request_id=cli-text-1}: \
             webex_oauth_axum::web::observe: response status=200 latency_ms=",
        )
        .unwrap_or_else(|| panic!("not the response line's shape: {line}"));
    assert!(fields.parse::<f64>().is_ok_and(|ms| ms > 0.0), "{line}");
}
