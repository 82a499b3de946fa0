//! SQLite: sessions and device flows survive a restart; a store that cannot be opened stops
//! start-up with a line naming SESSION_STORE.

use crate::helpers::{TestApp, quick_device_fake, text, wait_for};
use fake_webex::FakeConfig;
use reqwest::StatusCode;
use std::path::PathBuf;
use std::time::Duration;
use webex_oauth_axum::StoreConfig;

/// A fresh folder (not yet created: the app creates it) for one test's database.
fn db_path(tag: &str) -> PathBuf {
    std::env::temp_dir()
        .join(format!(
            "webex-oauth-{tag}-{}-{}",
            std::process::id(),
            rand_suffix()
        ))
        .join("data")
        .join("sessions.db")
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64)
}

#[crate::support::test]
async fn an_auth_code_login_survives_a_restart_on_sqlite() {
    let path = db_path("login");
    let app = TestApp::spawn_with(FakeConfig::default(), |c| {
        c.session_store = StoreConfig::Sqlite(path.clone())
    })
    .await;
    app.login().await;
    assert_eq!(app.get("/spaces").await.status(), StatusCode::OK);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the session file is private");
    }

    let app = app.restart().await;
    let response = app.get("/spaces").await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the same cookie works after the restart"
    );
    assert!(text(response).await.contains("Design review"));
    app.stop().await;
    let _ = std::fs::remove_dir_all(path.parent().unwrap().parent().unwrap());
}

#[crate::support::test]
async fn a_pending_device_flow_survives_a_restart_on_sqlite() {
    let path = db_path("device");
    let app = TestApp::spawn_with(quick_device_fake(), |c| {
        c.session_store = StoreConfig::Sqlite(path.clone())
    })
    .await;
    let user_code = app.start_device_flow_as(&app.client).await;
    wait_for("a first poll", Duration::from_secs(5), || async {
        !app.fake.device_polls(&user_code).is_empty()
    })
    .await;

    // The stop released the old process's lease: the new one adopts the flow on its first
    // housekeeping round, well before the lease (10 s) could have lapsed.
    let app = app.restart().await;
    wait_for(
        "the new process to adopt the flow",
        Duration::from_secs(5),
        || async { app.probe.active_pollers() == 1 },
    )
    .await;
    let (_, json) = app.device_status_as(&app.client).await;
    assert_eq!(json["status"], "pending", "the new process knows the flow");
    assert!(app.fake.approve_device(&user_code));
    app.wait_for_device_status_as(&app.client, "granted", Duration::from_secs(30))
        .await;
    let profile = app.get("/whoami").await;
    assert_eq!(profile.status(), StatusCode::OK);
    assert!(text(profile).await.contains("Ada Lovelace"));

    // The handover kept the interval: no two polls closer than it.
    let polls = app.fake.device_polls(&user_code);
    for pair in polls.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_secs(1),
            "an early poll across the restart"
        );
    }
    app.stop().await;
    let _ = std::fs::remove_dir_all(path.parent().unwrap().parent().unwrap());
}

#[crate::support::test]
async fn a_store_that_cannot_be_opened_stops_start_up_naming_session_store() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = webex_oauth_axum::Config::from_lookup(|key| {
        (key == "SESSION_STORE").then(|| "sqlite:///dev/null/nested/sessions.db".to_owned())
    })
    .unwrap();
    let err = match webex_oauth_axum::App::with_listener(config, listener).await {
        Ok(_) => panic!("the app started on an impossible path"),
        Err(err) => err.to_string(),
    };
    assert!(err.starts_with("SESSION_STORE:"), "{err}");
}
