//! Integration tests over real HTTP: the app and the fake Webex on random loopback ports, and a
//! cookie-keeping client that does not follow redirects (so each hop is checked).

mod assets;
mod auth_code;
mod device;
mod errors;
mod fuzz;
mod helpers;
mod ops;
mod pages;
#[cfg(feature = "e2e")]
mod redis;
mod soak;
mod stores;
mod tokens;
