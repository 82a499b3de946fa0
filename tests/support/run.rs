//! The test runner, in the style of rust-lang/bors' `run_test`: each test body runs under a
//! deadline, and fails at once when a server task it started ends with an error or a panic
//! (rather than later, on a refused connection or at a distant timeout).
//!
//! `#[support::test]` (see `tests/support/macros`) wraps a test's body in [`run_async`] (an
//! `async fn`, run by `#[tokio::test]`) or [`run_blocking`] (a plain `fn`). While the body runs,
//! its thread knows the test's "died" channel; [`spawn_watched`], which the test helpers use to
//! start the app, reports on it. A body's future is polled on the test's thread by
//! `#[tokio::test]` (and a blocking body drives its own runtime on the thread it runs on), so
//! the app is started where the channel is known. A server started outside a test panics.

use std::cell::RefCell;
use std::fmt::Display;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Every test's deadline unless its `#[support::test(timeout = …)]` says otherwise: a backstop
/// behind each test's own bounded waits, generous on a busy two-core machine (a cold Chromium,
/// or a 20 s wait for a Redis lease to lapse).
pub const TEST_TIMEOUT: Duration = Duration::from_secs(90);

/// Reports that a watched task ended while the test still ran.
type Report = Arc<dyn Fn(String) + Send + Sync>;

thread_local! {
    static DIED: RefCell<Option<Report>> = const { RefCell::new(None) };
}

/// Makes `report` this thread's "died" channel until dropped.
struct Scope(Option<Report>);

impl Scope {
    fn enter(report: Report) -> Self {
        Self(DIED.with(|died| died.borrow_mut().replace(report)))
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let previous = self.0.take();
        DIED.with(|died| *died.borrow_mut() = previous);
    }
}

/// Runs `body` until it ends, for at most `timeout`; panics at once if a task started with
/// [`spawn_watched`] meanwhile failed.
pub async fn run_async<T>(timeout: Duration, body: impl Future<Output = T>) -> T {
    let (tx, mut died) = tokio::sync::mpsc::unbounded_channel::<String>();
    let _scope = Scope::enter(Arc::new(move |why| {
        let _ = tx.send(why);
    }));
    tokio::select! {
        biased;
        Some(why) = died.recv() => panic!("{why}"),
        outcome = tokio::time::timeout(timeout, body) => {
            outcome.unwrap_or_else(|_| panic!("the test did not finish within {timeout:?}"))
        }
    }
}

enum Event<T> {
    Done(std::thread::Result<T>),
    Died(String),
}

/// [`run_async`] for a test that is not `async` (it drives its own runtime): `body` runs on a
/// thread of its own, watched from the test's. At the deadline, or when a watched task fails,
/// the test fails and that thread is left to end with the test process.
pub fn run_blocking<T: Send + 'static>(
    timeout: Duration,
    body: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, events) = std::sync::mpsc::channel::<Event<T>>();
    let report = tx.clone();
    let name = std::thread::current().name().unwrap_or("test").to_owned();
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let _scope = Scope::enter(Arc::new(move |why| {
                let _ = report.send(Event::Died(why));
            }));
            let outcome = catch_unwind(AssertUnwindSafe(body));
            let _ = tx.send(Event::Done(outcome));
        })
        .expect("a thread for the test body");
    match events.recv_timeout(timeout) {
        Ok(Event::Done(Ok(value))) => value,
        Ok(Event::Done(Err(panic))) => resume_unwind(panic),
        Ok(Event::Died(why)) => panic!("{why}"),
        Err(_) => panic!("the test did not finish within {timeout:?}"),
    }
}

/// `tokio::spawn(server)`, watched: if it ends with an error or panics, the running test fails
/// at once, naming where it was spawned. An `Ok` end is a stop the test asked for. The handle
/// yields what the server did (a panic is passed on to whoever awaits it).
#[track_caller]
pub fn spawn_watched<T, E>(
    server: impl Future<Output = Result<T, E>> + Send + 'static,
) -> JoinHandle<Result<T, E>>
where
    T: Send + 'static,
    E: Display + Send + 'static,
{
    let what = format!(
        "the server task spawned at {}",
        std::panic::Location::caller()
    );
    let report = DIED
        .with(|died| died.borrow().clone())
        .unwrap_or_else(|| panic!("{what} was started outside a #[support::test]"));
    let server = tokio::spawn(server);
    tokio::spawn(async move {
        match server.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => {
                report(format!("{what} died: it ended with an error: {err}"));
                Err(err)
            }
            Err(join) if join.is_panic() => {
                let panic = join.into_panic();
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                report(format!("{what} died: it panicked: {message}"));
                resume_unwind(panic)
            }
            Err(join) => panic!("{what} was cancelled: {join}"),
        }
    })
}
