//! What a flood of sessions costs: anonymous sessions have a cap of their own in memory that
//! never evicts a signed-in user, and the SQLite WAL does not keep what a burst of writes grew.

use crate::helpers::TestApp;
use reqwest::StatusCode;
use std::time::Duration;
use webex_oauth_axum::test_support::{MAX_ANONYMOUS_SESSIONS, WAL_SIZE_LIMIT};

/// `count` cookie-less `GET /login`s (each makes an anonymous session), 16 at a time.
async fn anonymous_logins(app: &TestApp, count: u64) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..count {
        if i >= 16 {
            let done = requests.join_next().await.unwrap().unwrap();
            assert_eq!(done, StatusCode::SEE_OTHER);
        }
        let (client, url) = (client.clone(), app.url("/login"));
        requests.spawn(async move { client.get(url).send().await.unwrap().status() });
    }
    while let Some(done) = requests.join_next().await {
        assert_eq!(done.unwrap(), StatusCode::SEE_OTHER);
    }
}

#[crate::support::test]
async fn a_flood_of_anonymous_sessions_leaves_a_signed_in_user_signed_in() {
    let app = TestApp::spawn().await;
    app.login().await;
    assert_eq!(app.get("/spaces").await.status(), StatusCode::OK);

    anonymous_logins(&app, MAX_ANONYMOUS_SESSIONS + 500).await;

    let (signed_in, anonymous) = app.probe.cached_sessions().await;
    assert_eq!(signed_in, 1, "the one signed-in session is kept");
    assert!(
        anonymous <= MAX_ANONYMOUS_SESSIONS,
        "{anonymous} anonymous sessions kept"
    );
    assert!(
        anonymous > MAX_ANONYMOUS_SESSIONS / 2,
        "the flood made sessions: {anonymous}"
    );
    assert_eq!(
        app.get("/spaces").await.status(),
        StatusCode::OK,
        "the signed-in cookie still works"
    );
}

#[crate::support::test]
async fn the_sqlite_wal_shrinks_back_after_a_burst_of_writes() {
    use sqlx::Connection;
    let dir = crate::at_rest::temp_dir("wal");
    let db = dir.join("sessions.db");
    let app = TestApp::spawn_with(Default::default(), |c| {
        c.session_store = webex_oauth_axum::StoreConfig::Sqlite(db.clone())
    })
    .await;
    let wal = dir.join("sessions.db-wal");
    let wal_size = || std::fs::metadata(&wal).map_or(0, |m| m.len());
    // A reader holding an old snapshot keeps every checkpoint from emptying the WAL (as busy
    // readers did in the review), so the writes below pile up in it.
    let mut reader = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("begin").execute(&mut reader).await.unwrap();
    let _: i64 = sqlx::query_scalar("select count(*) from sessions")
        .fetch_one(&mut reader)
        .await
        .unwrap();
    anonymous_logins(&app, 1_500).await;
    let grown = wal_size();
    assert!(
        grown > WAL_SIZE_LIMIT,
        "the writes grew the WAL past the limit: {grown} bytes"
    );

    // Once the reader is done, the WAL goes back under the limit without another write.
    sqlx::query("commit").execute(&mut reader).await.unwrap();
    reader.close().await.unwrap();
    crate::helpers::wait_for("the WAL to shrink", Duration::from_secs(30), || async {
        wal_size() <= WAL_SIZE_LIMIT
    })
    .await;
    assert_eq!(
        app.get("/healthz").await.status(),
        StatusCode::OK,
        "the server is fine"
    );
    app.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
