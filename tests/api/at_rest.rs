//! Data at rest: a copy of the SQLite file gives nobody a token, a device code or a working
//! cookie; keys rotate; a wrong key signs users out cleanly; sessions without tokens are short.

use crate::helpers::{TestApp, location, quick_device_fake};
use crate::sign_out::{browser_with_jar, cookie_of};
use reqwest::StatusCode;
use std::path::{Path, PathBuf};
use std::time::Duration;
use webex_oauth_axum::StoreConfig;
use webex_oauth_axum::config::EncryptionKey;

/// A fresh folder for one test's files.
pub fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    std::env::temp_dir().join(format!("webex-oauth-{tag}-{}-{nanos}", std::process::id()))
}

/// The database, its WAL and its shared-memory file, as raw bytes.
fn raw_files(db: &Path) -> Vec<(String, Vec<u8>)> {
    ["", "-wal", "-shm"]
        .iter()
        .filter_map(|suffix| {
            let path = PathBuf::from(format!("{}{suffix}", db.display()));
            std::fs::read(&path)
                .ok()
                .map(|b| (path.display().to_string(), b))
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
}

/// Fails when `bytes` (a store's raw contents) hold, in clear, a secret the fake issued or
/// the value of one of `cookies` (`Cookie` headers, `name=value`).
pub fn assert_holds_no_secret(what: &str, bytes: &[u8], app: &TestApp, cookies: &[String]) {
    let mut secrets = app.fake.issued_secrets();
    secrets.extend(
        cookies
            .iter()
            .filter_map(|c| c.split_once('=').map(|(_, v)| v.to_owned())),
    );
    for secret in &secrets {
        assert!(!contains(bytes, secret), "{what} holds a secret in clear");
    }
}

/// Every sealed session and device-flow record in the file now, by table and id (read through
/// a connection of its own, closed again so it holds no snapshot the app must wait for).
async fn sealed_rows(db: &Path) -> Vec<(String, Vec<u8>)> {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", db.display()))
        .await
        .unwrap();
    let mut rows: Vec<(String, Vec<u8>)> =
        sqlx::query_as("select 'session:' || id, data from sessions")
            .fetch_all(&pool)
            .await
            .unwrap();
    let flows: Vec<(String, String, Option<String>)> =
        sqlx::query_as("select 'flow:' || id, data, tokens from device_flows")
            .fetch_all(&pool)
            .await
            .unwrap();
    for (id, data, tokens) in flows {
        rows.push((id.clone(), data.into_bytes()));
        rows.extend(tokens.map(|t| (id, t.into_bytes())));
    }
    pool.close().await;
    rows
}

/// Fails when any 32-byte piece of a record the store deleted (its id no longer in `now`) is
/// still somewhere in the database, its WAL or its shm.
fn assert_deleted_records_are_gone(
    db: &Path,
    seen: &[(String, Vec<u8>)],
    now: &[(String, Vec<u8>)],
) {
    let deleted: Vec<&(String, Vec<u8>)> = seen
        .iter()
        .filter(|(id, _)| !now.iter().any(|(live, _)| live == id))
        .collect();
    assert!(
        deleted.len() >= 4,
        "the test saw records deleted: {}",
        deleted.len()
    );
    for (file, bytes) in raw_files(db) {
        for (id, sealed) in &deleted {
            for piece in sealed.chunks_exact(32) {
                assert!(
                    !bytes.windows(32).any(|w| w == piece),
                    "{file} still holds bytes of the deleted record {id}"
                );
            }
        }
    }
}

#[crate::support::test]
async fn the_sqlite_file_holds_no_token_device_code_or_cookie_value() {
    let dir = temp_dir("at-rest");
    let db = dir.join("sessions.db");
    let app = TestApp::spawn_with(quick_device_fake(), |c| {
        c.session_store = StoreConfig::Sqlite(db.clone())
    })
    .await;
    let mut cookies = Vec::new();
    // Each sealed record as it was written: the ones deleted by the end (an anonymous session
    // whose id was cycled, a signed-out one, a claimed flow) must have left no byte behind.
    let mut seen = Vec::new();

    // Both flows, a refresh, and a sign-out.
    let (a, jar_a) = browser_with_jar();
    a.get(app.url("/login")).send().await.unwrap();
    cookies.push(cookie_of(&app, &jar_a));
    seen.extend(sealed_rows(&db).await);
    app.login_as(&a).await;
    cookies.push(cookie_of(&app, &jar_a));
    seen.extend(sealed_rows(&db).await);
    let (b, jar_b) = browser_with_jar();
    let user_code = app.start_device_flow_as(&b).await;
    cookies.push(cookie_of(&app, &jar_b));
    seen.extend(sealed_rows(&db).await);
    assert!(app.fake.approve_device(&user_code));
    app.wait_for_device_status_as(&b, "granted", Duration::from_secs(15))
        .await;
    cookies.push(cookie_of(&app, &jar_b));
    assert_eq!(
        b.get(app.url("/whoami")).send().await.unwrap().status(),
        StatusCode::OK
    );
    app.fake.expire_access_tokens();
    assert_eq!(
        a.get(app.url("/spaces")).send().await.unwrap().status(),
        StatusCode::OK
    );
    seen.extend(sealed_rows(&db).await);
    assert_eq!(
        app.post_as(&a, "/logout").await.status(),
        StatusCode::SEE_OTHER
    );
    // B is still signed in: its (sealed) record is in the file.
    assert_eq!(
        b.get(app.url("/spaces")).send().await.unwrap().status(),
        StatusCode::OK
    );

    let files = raw_files(&db);
    assert!(!files.is_empty());
    for (file, bytes) in &files {
        assert_holds_no_secret(file, bytes, &app, &cookies);
    }
    assert_deleted_records_are_gone(&db, &seen, &sealed_rows(&db).await);
    app.stop().await;
    let key = dir.join("encryption.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the generated key file is private");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// The store's key for the session of `cookie` (a `Cookie` header, `name=value`): SHA-256 of
/// the id, base64url, as `crypto::store_key` makes it.
pub fn store_key_of(cookie: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    let (_, id) = cookie.split_once('=').unwrap();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(id.as_bytes()))
}

/// A signed-in victim, an anonymous attacker, both in `app`: their browsers and cookies.
pub async fn victim_and_attacker(
    app: &TestApp,
) -> ((reqwest::Client, String), (reqwest::Client, String)) {
    let (victim, victim_jar) = browser_with_jar();
    app.login_as(&victim).await;
    let (attacker, attacker_jar) = browser_with_jar();
    attacker.get(app.url("/login")).send().await.unwrap();
    let (v, a) = (cookie_of(app, &victim_jar), cookie_of(app, &attacker_jar));
    ((victim, v), (attacker, a))
}

/// After the victim's sealed record was copied onto the attacker's key: the attacker is signed
/// out (never the victim), and the victim still signed in.
pub async fn assert_the_swap_signs_nobody_in(
    app: &TestApp,
    victim: &reqwest::Client,
    attacker: &reqwest::Client,
) {
    let response = attacker.get(app.url("/whoami")).send().await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "the copied record must not sign the attacker in as the victim"
    );
    assert_eq!(location(&response), "/");
    let response = victim.get(app.url("/whoami")).send().await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the victim is still signed in"
    );
}

#[crate::support::test]
async fn a_sealed_session_copied_onto_another_row_reads_as_signed_out() {
    let dir = temp_dir("swap");
    let db = dir.join("sessions.db");
    let app = TestApp::spawn_with(Default::default(), |c| {
        c.session_store = StoreConfig::Sqlite(db.clone())
    })
    .await;
    let ((victim, victim_cookie), (attacker, attacker_cookie)) = victim_and_attacker(&app).await;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let copied = sqlx::query(
        "update sessions set data = (select data from sessions where id = ?1),
                             expires_at_ms = (select expires_at_ms from sessions where id = ?1)
         where id = ?2",
    )
    .bind(store_key_of(&victim_cookie))
    .bind(store_key_of(&attacker_cookie))
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(copied.rows_affected(), 1);
    pool.close().await;
    // Restarted, so nothing but the file plays a part: the next read is the row's.
    let mut app = app;
    let config = app.probe.config().clone();
    app = app.restart_with(config).await;
    assert_the_swap_signs_nobody_in(&app, &victim, &attacker).await;
    app.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[crate::support::test]
async fn a_rotated_key_keeps_sessions_and_a_wrong_key_signs_out_cleanly() {
    let dir = temp_dir("rotation");
    let db = dir.join("sessions.db");
    let (old, new, wrong) = (
        EncryptionKey([1; 32]),
        EncryptionKey([2; 32]),
        EncryptionKey([3; 32]),
    );
    let app = TestApp::spawn_with(Default::default(), |c| {
        c.session_store = StoreConfig::Sqlite(db.clone());
        c.encryption_keys = vec![old.clone()];
    })
    .await;
    app.login().await;
    assert_eq!(app.get("/spaces").await.status(), StatusCode::OK);

    // New key first (it seals from now on), the old one still opens.
    let mut app = app;
    let mut config = app.probe.config().clone();
    config.encryption_keys = vec![new.clone(), old.clone()];
    app = app.restart_with(config).await;
    assert_eq!(
        app.get("/spaces").await.status(),
        StatusCode::OK,
        "rotation keeps the session"
    );

    // Neither key: the record does not open, and the user is simply signed out.
    let mut config = app.probe.config().clone();
    config.encryption_keys = vec![wrong];
    app = app.restart_with(config).await;
    let response = app.get("/spaces").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/");
    assert_eq!(app.get("/").await.status(), StatusCode::OK);
    app.login().await;
    assert_eq!(
        app.get("/spaces").await.status(),
        StatusCode::OK,
        "signing in again works"
    );
    app.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[crate::support::test]
async fn sessions_without_tokens_expire_after_fifteen_minutes() {
    let dir = temp_dir("anonymous");
    let db = dir.join("sessions.db");
    let app = TestApp::spawn_with(Default::default(), |c| {
        c.session_store = StoreConfig::Sqlite(db.clone())
    })
    .await;
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    let expiries = || async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let rows: Vec<i64> = sqlx::query_scalar("select expires_at_ms from sessions")
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        rows
    };
    // A cookie-less script's /login.
    let login = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.url("/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    let rows = expiries().await;
    assert_eq!(rows.len(), 1);
    let fifteen = 15 * 60 * 1000;
    assert!(
        rows[0] <= now_ms() + fifteen && rows[0] > now_ms() + fifteen - 60_000,
        "{rows:?}"
    );

    // Signed in, the session lives 30 days of inactivity.
    app.login().await;
    let rows = expiries().await;
    let thirty_days = 30 * 86_400 * 1000;
    assert!(
        rows.iter().any(|e| *e > now_ms() + thirty_days - 60_000),
        "{rows:?}"
    );
    app.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(unix)]
#[crate::support::test]
async fn a_key_file_readable_by_others_is_made_private_and_the_folder_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let _ = crate::helpers::captured_logs(); // capture from here on
    let dir = temp_dir("key-mode");
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("encryption.key");
    std::fs::write(&key, "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    // Then a database in a folder that does not exist yet.
    let data = dir.join("data");
    let db = data.join("sessions.db");
    let app = TestApp::spawn_with(Default::default(), |c| {
        c.session_store = StoreConfig::Sqlite(dir.join("sessions.db"))
    })
    .await;
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&key), 0o600, "the key is made private at start-up");
    let logs = crate::helpers::captured_logs();
    assert!(
        logs.contains(&format!("{} was readable by others", key.display())),
        "the start-up warns, naming the file"
    );
    app.login().await;
    assert_eq!(app.get("/spaces").await.status(), StatusCode::OK);
    app.stop().await;

    let app = TestApp::spawn_with(Default::default(), |c| {
        c.session_store = StoreConfig::Sqlite(db.clone())
    })
    .await;
    assert_eq!(mode(&data), 0o700, "the database's new folder is private");
    assert_eq!(mode(&db), 0o600);
    assert_eq!(mode(&data.join("encryption.key")), 0o600);
    app.login().await;
    for file in ["sessions.db-wal", "sessions.db-shm"] {
        let path = data.join(file);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{file}");
        }
    }
    app.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// A file of a version that kept sessions and device flows in clear (tower-sessions' own
/// `tower_sessions` table): at start-up both tables go, and no byte of their rows is left in the
/// database or its WAL; the app then serves from tables of its own.
#[crate::support::test]
async fn a_file_of_the_clear_text_version_keeps_nothing_of_it_after_start_up() {
    let dir = temp_dir("clear-text");
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("sessions.db");
    let old = ["old-clear-access-token", "old-clear-device-code"];
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=rwc", db.display()))
        .await
        .unwrap();
    let old_tables = format!(
        "create table tower_sessions (id text primary key, data blob, expiry_date integer);
         insert into tower_sessions values ('s', '{}', 0);
         create table device_flows (id text primary key, data text);
         insert into device_flows values ('f', '{}');",
        old[0], old[1]
    );
    sqlx::raw_sql(&old_tables).execute(&pool).await.unwrap();
    pool.close().await;
    let app = TestApp::spawn_with(Default::default(), |c| {
        c.session_store = StoreConfig::Sqlite(db.clone())
    })
    .await;
    for (file, bytes) in raw_files(&db) {
        for text in old {
            assert!(!contains(&bytes, text), "{file} still holds {text}");
        }
    }
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", db.display()))
        .await
        .unwrap();
    let tables: Vec<String> =
        sqlx::query_scalar("select name from sqlite_master where type = 'table' order by name")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(tables, ["device_flows", "sessions"]);
    pool.close().await;
    assert_eq!(app.get("/login").await.status(), StatusCode::SEE_OTHER);
    app.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
