//! The session store behind `SESSION_STORE`, as one tower-sessions [`SessionStore`]: in memory
//! (moka), in the SQLite file (with a memory cache in front) or in Redis. What leaves the process
//! (a row of the file, a Redis value) is the record sealed, keyed by the SHA-256 of the session id.
//!
//! Two rules make sign-out final: `save` only ever updates a record that still exists (SQLite
//! `UPDATE … WHERE id = ?`, Redis `SET … XX`, a conditional put in memory), and only `create`
//! inserts, always under a new id. A request that loaded the session before a sign-out (or
//! before the id was cycled at sign-in) and saves it afterwards writes nothing. The cache in
//! front of SQLite keeps a tombstone for a deleted id, so a slow read cannot put it back.
//!
//! In memory (the memory store, the cache in front of SQLite) records are kept open, by id:
//! sealing guards copies of the store, and a reader of this process's memory would find the
//! key beside them. Opening and decoding a record was a sixth of the CPU of a `GET /`.

use super::{StoreError, StoreResult, signed_ms as sql_ms};
use crate::clock::unix_now_ms;
use crate::crypto::{Cipher, store_key};
use async_trait::async_trait;
use fred::prelude::{Expiration, KeysInterface, Pool as RedisPool, SetOptions};
use moka::future::Cache;
use moka::ops::compute::{CompResult, Op};
use sqlx::Row;
use sqlx::sqlite::SqlitePool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, Error, SessionStore};

/// The memory store (and the cache in front of SQLite) keeps at most this many sessions
/// (least used go first), so a flood of `/login` requests cannot grow memory without bound.
const MAX_MEMORY_SESSIONS: u64 = 100_000;
/// How often expired SQLite sessions are deleted.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// How long the cache remembers that an id was deleted: far longer than any request lives.
const TOMBSTONE: Duration = Duration::from_secs(600);
/// Tries at a fresh id when a new one collides (it never does: 128 random bits).
const CREATE_TRIES: usize = 8;

/// Cloning is cheap; clones share the backend.
#[derive(Clone)]
pub struct SessionBackend(Arc<Inner>);

impl std::fmt::Debug for SessionBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.0.durable {
            Durable::Memory => "memory",
            Durable::Sqlite(_) => "sqlite",
            Durable::Redis(_) => "redis",
        };
        write!(f, "SessionBackend({kind})")
    }
}

struct Inner {
    cipher: Cipher,
    /// The whole store (memory), or a cache in front of the file (SQLite); unused with Redis,
    /// which other instances change too.
    cache: Cache<Id, Slot>,
    durable: Durable,
}

enum Durable {
    Memory,
    Sqlite(SqlitePool),
    Redis(RedisPool),
}

#[derive(Clone)]
enum Slot {
    Live(Arc<Record>),
    /// Deleted: a late read must not bring it back.
    Gone,
}

/// Each cache entry lives until its session's expiry (a tombstone for [`TOMBSTONE`]).
struct SlotExpiry;

impl moka::Expiry<Id, Slot> for SlotExpiry {
    fn expire_after_create(&self, _: &Id, slot: &Slot, _: Instant) -> Option<Duration> {
        Some(slot_ttl(slot))
    }

    fn expire_after_update(
        &self,
        _: &Id,
        slot: &Slot,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(slot_ttl(slot))
    }
}

fn slot_ttl(slot: &Slot) -> Duration {
    match slot {
        Slot::Live(record) => {
            Duration::from_millis(expires_at_ms(record).saturating_sub(unix_now_ms()))
        }
        Slot::Gone => TOMBSTONE,
    }
}

/// A cached record, unless it expired (moka drops it a little later).
fn unexpired(record: &Record) -> Option<Record> {
    (expires_at_ms(record) > unix_now_ms()).then(|| record.clone())
}

fn backend_error(err: impl std::fmt::Display) -> Error {
    Error::Backend(err.to_string())
}

fn expires_at_ms(record: &Record) -> u64 {
    let ms = record.expiry_date.unix_timestamp_nanos() / 1_000_000;
    u64::try_from(ms).unwrap_or(0)
}

/// The key of a session in the file or in Redis: never the id itself.
fn durable_key(id: &Id) -> String {
    store_key(&id.to_string())
}

fn redis_key(key: &str) -> String {
    format!("webex-oauth:session:{key}")
}

/// `SET` a sealed record until its expiry, under `only` (`NX`: create, `XX`: update);
/// whether it was written.
async fn redis_set(
    pool: &RedisPool,
    key: &str,
    sealed: Vec<u8>,
    expires_at_ms: u64,
    only: SetOptions,
) -> session_store::Result<bool> {
    let set: Option<String> = pool
        .set(
            redis_key(key),
            sealed,
            Some(Expiration::PXAT(sql_ms(expires_at_ms))),
            Some(only),
            false,
        )
        .await
        .map_err(backend_error)?;
    Ok(set.is_some())
}

impl SessionBackend {
    fn new(cipher: Cipher, durable: Durable) -> Self {
        let cache = Cache::builder()
            .max_capacity(MAX_MEMORY_SESSIONS)
            .expire_after(SlotExpiry)
            .build();
        Self(Arc::new(Inner {
            cipher,
            cache,
            durable,
        }))
    }

    pub(super) fn memory(cipher: Cipher) -> Self {
        Self::new(cipher, Durable::Memory)
    }

    /// The `sessions` table must exist (see `sqlite::open`).
    pub(super) fn sqlite(pool: SqlitePool, cipher: Cipher) -> Self {
        Self::new(cipher, Durable::Sqlite(pool))
    }

    pub(super) fn redis(pool: RedisPool, cipher: Cipher) -> Self {
        Self::new(cipher, Durable::Redis(pool))
    }

    /// Whether the store answers (for `/readyz`).
    pub async fn ping(&self) -> StoreResult<()> {
        match &self.0.durable {
            Durable::Memory => Ok(()),
            Durable::Sqlite(pool) => {
                sqlx::query("select 1").execute(pool).await?;
                Ok(())
            }
            Durable::Redis(pool) => {
                let _: Option<String> = pool.get("webex-oauth:ping").await?;
                Ok(())
            }
        }
    }

    /// Runs for ever where the backend needs it (SQLite: delete expired sessions every
    /// minute; moka and Redis expire sessions by themselves). The app aborts it at shutdown.
    pub async fn sweep_expired(self) {
        let Durable::Sqlite(pool) = &self.0.durable else {
            return;
        };
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        loop {
            tick.tick().await;
            if let Err(err) = sqlx::query("delete from sessions where expires_at_ms < ?")
                .bind(sql_ms(unix_now_ms()))
                .execute(pool)
                .await
            {
                tracing::warn!(error = %StoreError::from(err), "cannot delete expired sessions");
            }
        }
    }

    /// The record sealed, for the file or Redis.
    fn seal(&self, record: &Record) -> session_store::Result<Vec<u8>> {
        let json = serde_json::to_vec(record).map_err(|e| Error::Encode(e.to_string()))?;
        Ok(self.0.cipher.seal(&json))
    }

    /// The record, or `None` when it is expired or does not open (a wrong or retired key:
    /// the user is simply signed out).
    fn open(&self, id: &Id, sealed: &[u8], expires_at_ms: u64) -> Option<Record> {
        if expires_at_ms <= unix_now_ms() {
            return None;
        }
        let Some(json) = self.0.cipher.open(sealed) else {
            tracing::warn!(
                "a session record does not decrypt with ENCRYPTION_KEYS; treating it as signed out"
            );
            return None;
        };
        match serde_json::from_slice::<Record>(&json) {
            Ok(mut record) => {
                record.id = *id;
                Some(record)
            }
            Err(err) => {
                tracing::warn!(%err, "a session record does not decode; treating it as signed out");
                None
            }
        }
    }

    /// Puts `record` in the cache unless a tombstone is there.
    async fn cache_unless_gone(&self, record: Record) {
        let id = record.id;
        let slot = Slot::Live(Arc::new(record));
        self.0
            .cache
            .entry(id)
            .and_compute_with(|entry| async move {
                match entry.map(|e| e.into_value()) {
                    Some(Slot::Gone) => Op::Nop,
                    _ => Op::Put(slot),
                }
            })
            .await;
    }

    /// Inserts under `record.id` only if no record has that key; false on a collision.
    async fn insert_new(&self, record: &Record) -> session_store::Result<bool> {
        match &self.0.durable {
            Durable::Memory => {
                let slot = Slot::Live(Arc::new(record.clone()));
                let result = self
                    .0
                    .cache
                    .entry(record.id)
                    .and_compute_with(|entry| async move {
                        match entry {
                            None => Op::Put(slot),
                            Some(_) => Op::Nop,
                        }
                    })
                    .await;
                Ok(matches!(result, CompResult::Inserted(_)))
            }
            Durable::Sqlite(pool) => {
                let done = sqlx::query(
                    "insert into sessions (id, data, expires_at_ms) values (?, ?, ?)
                     on conflict (id) do nothing",
                )
                .bind(durable_key(&record.id))
                .bind(self.seal(record)?)
                .bind(sql_ms(expires_at_ms(record)))
                .execute(pool)
                .await
                .map_err(backend_error)?;
                if done.rows_affected() != 1 {
                    return Ok(false);
                }
                self.0
                    .cache
                    .insert(record.id, Slot::Live(Arc::new(record.clone())))
                    .await;
                Ok(true)
            }
            Durable::Redis(pool) => {
                let key = durable_key(&record.id);
                let sealed = self.seal(record)?;
                redis_set(pool, &key, sealed, expires_at_ms(record), SetOptions::NX).await
            }
        }
    }
}

#[async_trait]
impl SessionStore for SessionBackend {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        for _ in 0..CREATE_TRIES {
            if self.insert_new(record).await? {
                return Ok(());
            }
            record.id = Id::default();
        }
        Err(Error::Backend("no free session id".into()))
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        match &self.0.durable {
            Durable::Memory => {
                let slot = Slot::Live(Arc::new(record.clone()));
                self.0
                    .cache
                    .entry(record.id)
                    .and_compute_with(|entry| async move {
                        match entry.map(|e| e.into_value()) {
                            Some(Slot::Live(_)) => Op::Put(slot),
                            _ => Op::Nop,
                        }
                    })
                    .await;
            }
            Durable::Sqlite(pool) => {
                let done =
                    sqlx::query("update sessions set data = ?, expires_at_ms = ? where id = ?")
                        .bind(self.seal(record)?)
                        .bind(sql_ms(expires_at_ms(record)))
                        .bind(durable_key(&record.id))
                        .execute(pool)
                        .await
                        .map_err(backend_error)?;
                if done.rows_affected() == 1 {
                    self.cache_unless_gone(record.clone()).await;
                }
            }
            Durable::Redis(pool) => {
                // Not written when the key is gone: that is the point.
                let key = durable_key(&record.id);
                let sealed = self.seal(record)?;
                redis_set(pool, &key, sealed, expires_at_ms(record), SetOptions::XX).await?;
            }
        }
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let file = match &self.0.durable {
            Durable::Redis(pool) => {
                let sealed: Option<Vec<u8>> = pool
                    .get(redis_key(&durable_key(id)))
                    .await
                    .map_err(backend_error)?;
                // Redis expires the key itself; the record's own date is checked as well.
                return Ok(sealed.and_then(|s| {
                    self.open(id, &s, u64::MAX)
                        .filter(|r| r.expiry_date > time::OffsetDateTime::now_utc())
                }));
            }
            Durable::Memory => None,
            Durable::Sqlite(pool) => Some(pool),
        };
        match self.0.cache.get(id).await {
            Some(Slot::Live(record)) => return Ok(unexpired(&record)),
            Some(Slot::Gone) => return Ok(None),
            None => {}
        }
        // In memory, the cache is the store.
        let Some(pool) = file else {
            return Ok(None);
        };
        let row = sqlx::query(
            "select data, expires_at_ms from sessions where id = ? and expires_at_ms > ?",
        )
        .bind(durable_key(id))
        .bind(sql_ms(unix_now_ms()))
        .fetch_optional(pool)
        .await
        .map_err(backend_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let sealed: Vec<u8> = row.get(0);
        let expires = u64::try_from(row.get::<i64, _>(1)).unwrap_or(0);
        let record = self.open(id, &sealed, expires);
        if let Some(record) = &record {
            self.cache_unless_gone(record.clone()).await;
        }
        Ok(record)
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match &self.0.durable {
            Durable::Memory => self.0.cache.invalidate(id).await,
            Durable::Sqlite(pool) => {
                // The tombstone first: a read racing with this delete cannot re-cache the row.
                self.0.cache.insert(*id, Slot::Gone).await;
                sqlx::query("delete from sessions where id = ?")
                    .bind(durable_key(id))
                    .execute(pool)
                    .await
                    .map_err(backend_error)?;
            }
            Durable::Redis(pool) => {
                let _: i64 = pool
                    .del(redis_key(&durable_key(id)))
                    .await
                    .map_err(backend_error)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
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
        let store = SessionBackend::memory(Cipher::random());
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
}
