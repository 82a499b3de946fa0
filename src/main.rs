//! `cargo run --release`: serves http://localhost:10060, in demo mode without `WEBEX_CLIENT_ID`.

use std::process::ExitCode;
use tracing_subscriber::EnvFilter;
use webex_oauth_axum::{App, Config};

#[tokio::main]
async fn main() -> ExitCode {
    // `.env` is optional: the environment alone is a complete configuration.
    let dotenv = dotenvy::dotenv();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("webex_oauth_axum=info,tower_http=info,warn")),
        )
        .init();
    if let Err(err) = dotenv
        && !err.not_found()
    {
        tracing::error!("cannot read .env: {err}");
        return ExitCode::from(2);
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            tracing::error!("configuration error: {err}");
            return ExitCode::from(2);
        }
    };
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
    tracing::info!("listening on {listening}; open {}/", config.public_origin());
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("server error: {err}");
            ExitCode::FAILURE
        }
    }
}
