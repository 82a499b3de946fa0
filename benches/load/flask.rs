//! The Flask baseline of case 2: the Webex Flask sample's `/spaces` (`benches/flask/app.py`) on
//! Werkzeug, as a child process, from a virtual environment under `target/` that is made on first
//! use (and again when `benches/flask/requirements.txt` changes).
//!
//! Its sessions: Flask keeps the session in a cookie signed with the app's secret key. The bench
//! picks a random key (`FLASK_SECRET_KEY`, given to the app) and has the app itself sign one
//! session per access token (`app.py cookie`, Flask's own session serializer), so the cookies
//! are the ones Flask would have set after the sample's `/oauth`, and the app has no route the
//! sample lacks.
//!
//! Every step is bounded in time, and every child (venv, pip, the app) is a [`ChildGuard`]:
//! killed with its process group when dropped, on an error or a panic too.

use crate::support::ChildGuard;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `benches/flask`: the app, its templates and its requirements.
const APP_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/flask");

/// The Flask app as a child process, killed when dropped.
pub struct FlaskProcess {
    pub process: ChildGuard,
    pub base: String,
}

impl FlaskProcess {
    /// Makes the virtual environment if needed, signs one session per access token and starts
    /// the app on `port` against `rooms_url`; the app and its sessions' `Cookie` header values.
    /// `Err` says why it could not (no Python, no venv module, pip failed): the caller skips the
    /// row and prints why.
    pub async fn start(
        port: u16,
        rooms_url: &str,
        tokens: &[String],
    ) -> Result<(Self, Vec<String>), String> {
        let secret = format!(
            "{:032x}{:032x}",
            rand::random::<u128>(),
            rand::random::<u128>()
        );
        let (python, cookies) = {
            let (secret, tokens) = (secret.clone(), tokens.to_vec());
            tokio::task::spawn_blocking(move || {
                let python = ensure_venv()?;
                let cookies = sign_sessions(&python, &secret, &tokens)?;
                Ok::<_, String>((python, cookies))
            })
            .await
            .map_err(|e| format!("the Flask set-up task failed: {e}"))??
        };
        let log = target_dir().join("bench-flask.log");
        let mut command = app_command(&python, &secret);
        command
            .args(["serve", &port.to_string()])
            .env("BENCH_ROOMS_URL", rooms_url)
            .stdout(log_file(&log)?)
            .stderr(log_file(&log)?);
        let what = format!(
            "the Flask app (benches/flask/app.py; its log: {})",
            log.display()
        );
        let process = ChildGuard::spawn(&what, &mut command);
        let base = format!("http://127.0.0.1:{port}");
        let probe = crate::http::client_builder()
            .build()
            .expect("a probe client");
        let (url, cookie) = (format!("{base}/spaces"), cookies[0].clone());
        process
            .wait_ready(Duration::from_secs(30), Duration::from_millis(20), || {
                let request = probe
                    .get(&url)
                    .header(reqwest::header::COOKIE, &cookie)
                    .send();
                async move { request.await.is_ok_and(|r| r.status().is_success()) }
            })
            .await;
        Ok((Self { process, base }, cookies))
    }

    pub fn cpu(&self) -> Duration {
        crate::server::cpu_of(&format!("/proc/{}/stat", self.process.id()))
    }
}

/// Cargo's target directory: `CARGO_TARGET_DIR` when set, else `target/` of this package.
fn target_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => manifest.join(dir),
        None => manifest.join("target"),
    }
}

/// The virtual environment's Python, made (`python3 -m venv`, then pip) when it is missing or
/// was made from other requirements.
fn ensure_venv() -> Result<PathBuf, String> {
    let venv = target_dir().join("bench-flask-venv");
    let python = venv.join("bin/python");
    let requirements = Path::new(APP_DIR).join("requirements.txt");
    let wanted = std::fs::read_to_string(&requirements)
        .map_err(|e| format!("cannot read {}: {e}", requirements.display()))?;
    // What the venv was made from, written once pip succeeded.
    let stamp = venv.join("bench-requirements.txt");
    if python.exists() && std::fs::read_to_string(&stamp).is_ok_and(|made| made == wanted) {
        return Ok(python);
    }
    match Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(status) if status.success() => {}
        Ok(status) => return Err(format!("`python3 --version` failed ({status})")),
        Err(err) => return Err(format!("python3 not found ({err})")),
    }
    eprintln!(
        "Flask baseline: making {} (python3 -m venv, pip install -r {})…",
        venv.display(),
        requirements.display()
    );
    let log = target_dir().join("bench-flask-venv.log");
    let mut make = Command::new("python3");
    make.args(["-m", "venv", "--clear"]).arg(&venv);
    run_bounded(
        "python3 -m venv (on Debian: apt-get install python3-venv)",
        &mut make,
        &log,
        Duration::from_secs(120),
    )?;
    let mut install = Command::new(&python);
    install
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
        ])
        .args(["--quiet", "--timeout", "30", "-r"])
        .arg(&requirements);
    run_bounded("pip install", &mut install, &log, Duration::from_secs(600))?;
    std::fs::write(&stamp, wanted).map_err(|e| format!("cannot write {}: {e}", stamp.display()))?;
    Ok(python)
}

/// `python app.py …` in `benches/flask`, with nothing from our environment but the key.
fn app_command(python: &Path, secret: &str) -> Command {
    let mut command = Command::new(python);
    command
        .current_dir(APP_DIR)
        .arg("app.py")
        .env_clear()
        .env("FLASK_SECRET_KEY", secret)
        // No __pycache__ in the source tree.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null());
    command
}

/// One Flask session cookie (`session=…`) per access token, signed by the app (`app.py cookie`).
fn sign_sessions(python: &Path, secret: &str, tokens: &[String]) -> Result<Vec<String>, String> {
    use std::io::Write;
    let dir = std::env::temp_dir().join(format!("webex-bench-flask-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
    let out = dir.join("cookies");
    let err = dir.join("stderr");
    let mut command = app_command(python, secret);
    command
        .arg("cookie")
        .stdin(Stdio::piped())
        .stdout(log_file(&out)?)
        .stderr(log_file(&err)?);
    let mut child = ChildGuard::spawn("app.py cookie", &mut command);
    {
        let mut stdin = child.take_stdin().expect("the child's stdin");
        let lines: String = tokens.iter().map(|t| format!("{t}\n")).collect();
        // A write error shows below as a failed child.
        let _ = stdin.write_all(lines.as_bytes());
    }
    let outcome = wait_bounded("app.py cookie", child, &err, Duration::from_secs(60));
    let cookies = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    outcome?;
    let cookies: Vec<String> = cookies.lines().map(str::to_owned).collect();
    if cookies.len() != tokens.len() || !cookies.iter().all(|c| c.starts_with("session=")) {
        return Err(format!(
            "app.py cookie printed {} session cookies for {} tokens",
            cookies.len(),
            tokens.len()
        ));
    }
    Ok(cookies)
}

/// A log file (appended to) for a child's output.
fn log_file(path: &Path) -> Result<std::fs::File, String> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))
}

/// Runs `command` with its output appended to `log`; `Err` when it fails or outlives `limit`.
fn run_bounded(
    what: &str,
    command: &mut Command,
    log: &Path,
    limit: Duration,
) -> Result<(), String> {
    command
        .stdin(Stdio::null())
        .stdout(log_file(log)?)
        .stderr(log_file(log)?);
    let child = ChildGuard::spawn(what, command);
    wait_bounded(what, child, log, limit)
}

/// Waits for `child` to exit, at most `limit` (then it is killed); `Err` with the last lines of
/// `log` unless it exited with success.
fn wait_bounded(
    what: &str,
    mut child: ChildGuard,
    log: &Path,
    limit: Duration,
) -> Result<(), String> {
    let until = Instant::now() + limit;
    while !child.has_exited() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    let finished = child.has_exited();
    // Reaps it (and kills its group first, if it is still running).
    let status = child.kill();
    let tail = || {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" / ")
    };
    match status {
        Some(status) if finished && status.success() => Ok(()),
        Some(status) if finished => Err(format!("{what} failed ({status}): {}", tail())),
        _ if finished => Err(format!("{what}: no exit status: {}", tail())),
        _ => Err(format!(
            "{what} still running after {} s, killed: {}",
            limit.as_secs(),
            tail()
        )),
    }
}
