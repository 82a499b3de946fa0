//! Unit tests of the session store: records kept open in memory, sign-out final in the cache.

use super::*;
use serde_json::json;

fn record(expires_in: time::Duration) -> Record {
    Record {
        id: Id::default(),
        data: [("webex.tokens".to_owned(), json!({ "access": "a" }))].into(),
        expiry_date: time::OffsetDateTime::now_utc() + expires_in,
    }
}

#[tokio::test]
async fn the_memory_store_keeps_records_open_and_sign_out_final() {
    let store = SessionBackend::memory();
    let mut live = record(time::Duration::minutes(5));
    store.create(&mut live).await.unwrap();
    let loaded = store.load(&live.id).await.unwrap().expect("cached");
    assert_eq!(loaded.data, live.data);
    assert_eq!(loaded.id, live.id);

    store.delete(&live.id).await.unwrap();
    store.save(&live).await.unwrap();
    assert!(
        store.load(&live.id).await.unwrap().is_none(),
        "a save after the delete writes nothing"
    );

    let mut stale = record(time::Duration::milliseconds(-1));
    store.create(&mut stale).await.unwrap();
    assert!(
        store.load(&stale.id).await.unwrap().is_none(),
        "an expired record reads as signed out"
    );
}

#[tokio::test]
async fn the_sqlite_cache_keeps_a_deleted_session_deleted() {
    let dir = std::env::temp_dir().join(format!("sessions-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sessions.db");
    let pool = super::super::sqlite::open(&path).await.unwrap();
    let cipher = Cipher::new(&[[7u8; 32]]).unwrap();
    let store = SessionBackend::sqlite(pool.clone(), cipher.clone());
    let mut live = record(time::Duration::minutes(5));
    store.create(&mut live).await.unwrap();
    assert_eq!(store.load(&live.id).await.unwrap().unwrap().data, live.data);

    store.delete(&live.id).await.unwrap();
    store.save(&live).await.unwrap();
    assert!(
        store.load(&live.id).await.unwrap().is_none(),
        "the cache has a tombstone"
    );
    // A store with an empty cache over the same file: what the next start would read.
    let fresh = SessionBackend::sqlite(pool, cipher);
    assert!(
        fresh.load(&live.id).await.unwrap().is_none(),
        "the file has no row: the save after the delete updated nothing"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
