//! `cargo run --release`: serves http://localhost:10060, in demo mode without `WEBEX_CLIENT_ID`;
//! `--help` lists every setting.

use std::process::ExitCode;
use webex_oauth_axum::{App, Config, cli, init_logging};

/// mimalloc rather than glibc's malloc: measured faster on the request paths (Cargo.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    // `.env` is optional: the environment alone is a complete configuration. It is read before
    // the command line, so `--help` and the flags see its values as environment.
    let dotenv = dotenvy::dotenv();
    // Exits here on --help, --version or a flag it does not know (with clap's message).
    let matches = cli::command().get_matches();
    // Logging follows the configuration, so these two errors go to stderr as one plain line.
    if let Err(err) = dotenv
        && !err.not_found()
    {
        eprintln!("cannot read .env: {err}");
        return ExitCode::from(2);
    }
    let config = match Config::from_lookup(|key| cli::value(&matches, key)) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    // Writes the log lines still waiting when `main` returns.
    let _logs = init_logging(&config);
    let app = match App::build(config).await {
        Ok(app) => app,
        Err(err) => {
            tracing::error!("cannot start: {err}");
            return ExitCode::FAILURE;
        }
    };
    let config = app.config();
    let listening = app.local_addr().map(|a| a.to_string()).unwrap_or_default();
    match app.fake() {
        Some(fake) => tracing::info!(
            "demo mode: an embedded fake Webex answers at {} (set WEBEX_CLIENT_ID for real Webex)",
            fake.base_url()
        ),
        None => tracing::info!("live mode: Webex at {}", config.api_base),
    }
    tracing::info!("sessions and device flows: {}", config.session_store);
    if let Some(metrics) = app.metrics_addr() {
        tracing::info!("metrics: http://{metrics}/metrics");
    }
    tracing::info!("listening on {listening}; open {}/", config.public_origin());
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("server error: {err}");
            ExitCode::FAILURE
        }
    }
}
