//! Integration tests over real HTTP: the app and the fake Webex on random loopback ports, and a
//! cookie-keeping client that does not follow redirects (so each hop is checked).

mod abuse;
mod assets;
mod at_rest;
mod auth_code;
mod connections;
mod device;
mod errors;
mod fuzz;
mod helpers;
mod hostile_webex;
mod login_with_webex;
mod ops;
mod pages;
mod per_client;
mod request_heads;
// zbarimg is a system package (zbar-tools), like redis-server: with the e2e feature.
#[cfg(feature = "e2e")]
mod qr_code;
#[cfg(feature = "e2e")]
mod redis;
#[cfg(feature = "e2e")]
mod redis_keys;
mod runner;
mod session_caps;
mod shutdown;
mod sign_in_page;
mod sign_out;
mod soak;
mod spaces;
mod stores;
#[path = "../support/mod.rs"]
mod support;
mod tokens;
mod upstream_text;
