//! Test and bench support, written once: a child process killed with its whole process group
//! (and the release server as one), a free loopback port, a bounded wait, the
//! authorization-code login walk, and the test runner (a deadline for every test, and an
//! immediate failure when the server task under test dies).
//!
//! Each test binary and the bench include this file as a module (`mod support;` beside
//! `tests/fake_webex.rs`, `#[path]` from `tests/api/main.rs`, `tests/e2e/main.rs` and
//! `benches/load/main.rs`). Each uses a part of it, hence `dead_code` is allowed here.
#![allow(dead_code)]

pub mod login;
pub mod process;
pub mod run;
pub mod server;

// The short names; not every crate uses each one.
#[allow(unused_imports)]
pub use process::{ChildGuard, free_port};
#[allow(unused_imports)]
pub use run::{TEST_TIMEOUT, run_async, run_blocking, spawn_watched};
/// `#[support::test]`: a test whose body runs through [`run_async`] (or [`run_blocking`]).
#[allow(unused_imports)]
pub use support_macros::test;

use std::future::Future;
use std::time::Duration;

/// Polls `check` every `every` until it holds; panics after `deadline`, naming `what`.
pub async fn wait_until<F, Fut>(what: &str, deadline: Duration, every: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(every).await;
    }
}
