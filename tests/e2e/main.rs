//! Browser tests: headless Chromium, driven through chromium-driver, walks both flows in demo mode.
//!
//! Run with `cargo test --features e2e --test e2e` after `apt-get install chromium chromium-driver`.
//! Each page visited is saved to `target/e2e-screenshots/`.
#![cfg(feature = "e2e")]

mod a11y;
mod axe;
mod browser;
mod phone_scan;
mod spaces;
mod stories;
#[path = "../support/mod.rs"]
mod support;
