//! Unit tests of the session store: records kept in memory until they expire, old records
//! sealed anew, the anonymous cap.

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
async fn the_memory_store_keeps_records_until_they_expire() {
    let store = SessionBackend::memory();
    let (mut live, mut stale) = (
        record(time::Duration::minutes(5)),
        record(-time::Duration::MILLISECOND),
    );
    for record in [&mut live, &mut stale] {
        store.create(record).await.unwrap();
    }
    let loaded = store.load(&live.id).await.unwrap().expect("cached");
    assert_eq!((loaded.id, loaded.data), (live.id, live.data));
    // Sign-out being final (a save after the delete writes nothing) is tests/api/sign_out.rs's.
    let expired = store.load(&stale.id).await.unwrap();
    assert!(expired.is_none(), "an expired record reads as signed out");
}

#[tokio::test]
async fn a_record_of_the_old_format_still_reads_and_is_sealed_anew() {
    use chacha20poly1305::aead::{Aead, KeyInit};
    let dir = std::env::temp_dir().join(format!("sessions-legacy-{}", std::process::id()));
    let pool = super::super::sqlite::open(&dir.join("sessions.db"))
        .await
        .unwrap();
    let key = [8u8; 32];
    let cipher = Cipher::new(&[key]).unwrap();
    let live = record(time::Duration::minutes(5));
    // As versions before the key binding sealed it: nonce || ciphertext, no associated data.
    let nonce = [3u8; 24];
    let aead = chacha20poly1305::XChaCha20Poly1305::new((&key).into());
    let json = serde_json::to_vec(&live).unwrap();
    let sealed = aead.encrypt(
        chacha20poly1305::XNonce::from_slice(&nonce),
        json.as_slice(),
    );
    let old = [nonce.as_slice(), &sealed.unwrap()].concat();
    let (db, key) = (Db::Sqlite(pool.clone()), durable_key(&live.id));
    let inserted = db.put(&key, old.clone(), expires_at_ms(&live), true).await;
    assert!(inserted.unwrap());
    let store = SessionBackend::sealed(db, cipher.clone());
    let loaded = store.load(&live.id).await.unwrap();
    assert_eq!(loaded.expect("the old record reads").data, live.data);
    let now = Db::Sqlite(pool)
        .get(&key)
        .await
        .unwrap()
        .expect("still there");
    assert_ne!(now, old, "rewritten");
    let opened = cipher.open(Kind::Session, &key, &now);
    assert!(!opened.expect("bound to its key").legacy);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_flood_of_anonymous_sessions_never_evicts_a_signed_in_one() {
    let store = SessionBackend::memory_with_caps(10, 5);
    let mut user = record(time::Duration::minutes(5));
    store.create(&mut user).await.unwrap();
    let anonymous = || Record {
        data: [("oauth.pending".to_owned(), json!([]))].into(),
        ..record(time::Duration::minutes(5))
    };
    let mut last = anonymous();
    for _ in 0..200 {
        last = anonymous();
        store.create(&mut last).await.unwrap();
    }
    let (signed_in, kept) = store.cached().await;
    assert_eq!(signed_in, 1);
    assert!(kept <= 5, "{kept} anonymous sessions kept");
    let loads = [
        store.load(&user.id).await.unwrap(),
        store.load(&last.id).await.unwrap(),
    ];
    assert!(loads[0].is_some(), "still signed in");
    assert!(loads[1].is_some(), "the newest login is admitted");

    // Losing its tokens (Webex refused them), the user's session stays where it was.
    let mut forgotten = user.clone();
    forgotten.data.clear();
    store.save(&forgotten).await.unwrap();
    for _ in 0..50 {
        store.create(&mut anonymous()).await.unwrap();
    }
    assert!(store.load(&user.id).await.unwrap().is_some());
    assert_eq!(store.cached().await.0, 1);
    // Deleted, it is gone from both caches.
    for id in [user.id, last.id] {
        store.delete(&id).await.unwrap();
        assert!(store.load(&id).await.unwrap().is_none());
    }
}
