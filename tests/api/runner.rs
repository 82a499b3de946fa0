//! The test runner itself (`tests/support/run.rs`): a test fails at its deadline, and at once
//! when a server task it watches dies, not at the deadline.

use crate::support::spawn_watched;
use std::time::Duration;

#[crate::support::test(timeout = Duration::from_millis(200))]
#[should_panic(expected = "did not finish within 200ms")]
async fn a_test_fails_at_its_deadline() {
    std::future::pending::<()>().await;
}

#[crate::support::test(timeout = Duration::from_millis(200))]
#[should_panic(expected = "did not finish within 200ms")]
fn a_blocking_test_fails_at_its_deadline() {
    std::thread::park_timeout(Duration::from_secs(5));
}

// The default deadline is far away: only the server's death can end these tests in time.

#[crate::support::test]
#[should_panic(expected = "died: it ended with an error: the listener closed")]
async fn a_server_task_that_fails_fails_its_test_at_once() {
    let _server = spawn_watched(async { Err::<(), _>("the listener closed") });
    std::future::pending::<()>().await;
}

#[crate::support::test]
#[should_panic(expected = "died: it panicked: boom")]
async fn a_server_task_that_panics_fails_its_test_at_once() {
    let _server = spawn_watched(async {
        if true {
            panic!("boom");
        }
        Ok::<(), String>(())
    });
    std::future::pending::<()>().await;
}

#[crate::support::test]
#[should_panic(expected = "died: it ended with an error: the listener closed")]
fn a_server_task_that_fails_fails_a_blocking_test_at_once() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _inside = runtime.enter();
    let _server = spawn_watched(async { Err::<(), _>("the listener closed") });
    std::thread::park_timeout(Duration::from_secs(60));
}

#[crate::support::test]
async fn a_server_task_that_stops_cleanly_is_no_failure() {
    let server = spawn_watched(async { Ok::<(), String>(()) });
    assert_eq!(server.await.unwrap(), Ok(()));
}
