//! webex-oauth-axum: Webex's two Flask OAuth samples (authorization code + PKCE, and the device
//! authorization grant) ported to one Axum server, with a demo mode on an embedded fake Webex.
//!
//! Layers, data flowing one way (each module only uses those below it; README's module map says
//! more):
//! - `app`: the wiring: fake (demo) → store → state → router → `serve` (the accept loop).
//! - `web`: the router and its layers, the typed session, `Authed`, the pages and templates.
//! - `state`: what every request shares.
//! - `device_flow`: the device sign-in: a flow's record, the poller's pure decision, the service.
//! - `store`: sessions, device flows and session locks in memory, SQLite or Redis (a flow's
//!   record is any `FlowData`: the store knows only its status and expiry).
//! - `tokens`: plain data (the token set).
//! - `identity`: Login with Webex: id_tokens verified (jsonwebtoken) against Webex's cached keys.
//! - `webex`: the HTTP client for Webex (OAuth, device grant, rooms, people) and its rules.
//! - leaves: [`config`] (and [`cli`], its `--help`), `telemetry`, `crypto`, `secret`, `client`
//!   (a client's key, per-client counts), `clock`, `qr`, `static_files`.
//! - the fake Webex is the workspace crate `fake-webex` (crates/fake-webex).
//! - `test_support` (feature `test-support`): a read-only probe into a running app, for tests and
//!   the benchmark.

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
