//! webex-oauth-axum: Webex's two Flask OAuth samples (authorization code + PKCE, and the device
//! authorization grant) ported to one Axum server, with a demo mode on an embedded fake Webex.
//!
//! Map of the crate (one line a module):
//! - [`app`]: binds the listener, builds the router and its layers, runs until shutdown.
//! - [`config`]: the environment contract (`WEBEX_*`, `LISTEN_ADDR`, `SESSION_STORE`), checked at start-up.
//! - [`state`]: the one cheap-to-clone state every handler draws from.
//! - [`store`]: where device flows live beside the sessions (memory or SQLite), with leases.
//! - [`error`]: `AppError`, every failure as an HTML page with the right status.
//! - [`security`]: security headers and the cross-site POST check.
//! - [`secret`]: `Secret`, a string whose `Debug`/`Display` never show the value.
//! - [`tokens`]: the token set kept in the session, refresh-before-expiry and refresh-once-on-401.
//! - [`device_flows`]: pending device sign-ins and the tokio task that polls each one.
//! - [`webex`]: our HTTP client for the Webex endpoints (OAuth, device grant, rooms, people).
//! - [`routes`]: the pages, one module per flow.
//! - [`templates`]: one askama struct per page.
//! - [`qr`]: text to a QR code PNG data URI.
//! - [`assets`]: the CSS, JS and images under `static/`, compiled into the binary.
//! - [`fake_webex`]: a faithful fake of the Webex endpoints, for demo mode and the tests.

pub mod app;
pub mod assets;
pub mod config;
pub mod device_flows;
pub mod error;
pub mod fake_webex;
pub mod qr;
pub mod routes;
pub mod secret;
pub mod security;
pub mod state;
pub mod store;
pub mod templates;
pub mod tokens;
pub mod webex;

pub use app::App;
pub use config::Config;
