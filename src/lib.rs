//! webex-oauth-axum: Webex's two Flask OAuth samples (authorization code + PKCE, and the device
//! authorization grant) ported to one Axum server, with a demo mode on an embedded fake Webex.
//!
//! Layers, data flowing one way (each module only uses those below it; README's module map says
//! more): `app` (the wiring; `serve` is its accept loop) → `web` (the router, its layers, the
//! pages) → `state` (what every request shares) → `device_flow` (the device sign-in) → `store`
//! (memory, SQLite or Redis) → `tokens` → `identity` (Login with Webex) → `webex` (the HTTP client
//! for Webex); the leaves: [`cli`] (the settings table, `--help`), [`config`], `telemetry`,
//! `crypto`, `secret`, `client`, `clock`, `qr`, `static_files`. The fake Webex is the workspace
//! crate `fake-webex`; `test_support` (feature `test-support`) is a read-only probe into a running
//! app, for tests and the benchmark.

mod app;
pub mod cli;
mod client;
mod clock;
pub mod config;
mod crypto;
mod device_flow;
mod identity;
mod qr;
mod secret;
mod serve;
mod state;
mod static_files;
mod store;
mod telemetry;
#[cfg(feature = "test-support")]
pub mod test_support;
mod tokens;
mod web;
mod webex;

pub use app::App;
pub use config::{Config, LogFormat, Mode, StoreConfig};
pub use telemetry::{LogGuard, init_logging};
