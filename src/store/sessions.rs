//! The session store behind `SESSION_STORE`, as one tower-sessions [`SessionStore`]: sealed
//! records keyed by the SHA-256 of the session id, in memory (moka), in the SQLite file (with a
//! memory cache in front) or in Redis.
//!
//! Two rules make sign-out final: `save` only ever updates a record that still exists (SQLite
//! `UPDATE … WHERE id = ?`, Redis `SET … XX`, a conditional put in memory), and only `create`
//! inserts, always under a new id. A request that loaded the session before a sign-out (or
//! before the id was cycled at sign-in) and saves it afterwards writes nothing. The cache in
//! front of SQLite keeps a tombstone for a deleted id, so a slow read cannot put it back.

use super::{StoreError, StoreResult, signed_ms as sql_ms};
use crate::clock::unix_now_ms;
use crate::crypto::{Cipher, store_key};
use async_trait::async_trait;
use fred::prelude::{Expiration, KeysInterface, Pool as RedisPool, SetOptions};
use moka::future::Cache;
use moka::ops::compute::Op;
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
    cache: Cache<String, Slot>,
    durable: Durable,
}

enum Durable {
    Memory,
    Sqlite(SqlitePool),
    Redis(RedisPool),
}

#[derive(Clone)]
enum Slot {
    Live {
        sealed: Arc<[u8]>,
        expires_at_ms: u64,
    },
    /// Deleted: a late read must not bring it back.
    Gone,
}

/// Each cache entry lives until its session's expiry (a tombstone for [`TOMBSTONE`]).
struct SlotExpiry;

impl moka::Expiry<String, Slot> for SlotExpiry {
    fn expire_after_create(&self, _: &String, slot: &Slot, _: Instant) -> Option<Duration> {
        Some(slot_ttl(slot))
    }

    fn expire_after_update(
        &self,
        _: &String,
        slot: &Slot,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(slot_ttl(slot))
    }
}

fn slot_ttl(slot: &Slot) -> Duration {
    match slot {
        Slot::Live { expires_at_ms, .. } => {
            Duration::from_millis(expires_at_ms.saturating_sub(unix_now_ms()))
        }
        Slot::Gone => TOMBSTONE,
    }
}

fn backend_error(err: impl std::fmt::Display) -> Error {
    Error::Backend(err.to_string())
}

fn expires_at_ms(record: &Record) -> u64 {
    let ms = record.expiry_date.unix_timestamp_nanos() / 1_000_000;
    u64::try_from(ms).unwrap_or(0)
}

fn redis_key(key: &str) -> String {
    format!("webex-oauth:session:{key}")
}

/// `SET` a sealed record until its expiry, under `only` (`NX`: create, `XX`: update);
/// whether it was written.
async fn redis_set(
    pool: &RedisPool,
    key: &str,
    sealed: &[u8],
    expires_at_ms: u64,
    only: SetOptions,
) -> session_store::Result<bool> {
    let set: Option<String> = pool
        .set(
            redis_key(key),
            sealed.to_vec(),
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

    /// The record's store key, its sealed bytes and its expiry (Unix ms).
    fn seal(&self, record: &Record) -> session_store::Result<(String, Arc<[u8]>, u64)> {
        let json = serde_json::to_vec(record).map_err(|e| Error::Encode(e.to_string()))?;
        let key = store_key(&record.id.to_string());
        Ok((key, self.0.cipher.seal(&json).into(), expires_at_ms(record)))
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

    /// Puts `slot` in the cache unless a tombstone is there.
    async fn cache_put_unless_gone(&self, key: String, slot: Slot) {
        self.0
            .cache
            .entry(key)
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
        let (key, sealed, expires) = self.seal(record)?;
        let slot = Slot::Live {
            sealed: sealed.clone(),
            expires_at_ms: expires,
        };
        match &self.0.durable {
            Durable::Memory => {
                let result = self
                    .0
                    .cache
                    .entry(key)
                    .and_compute_with(|entry| async move {
                        match entry {
                            None => Op::Put(slot),
                            Some(_) => Op::Nop,
                        }
                    })
                    .await;
                Ok(matches!(
                    result,
                    moka::ops::compute::CompResult::Inserted(_)
                ))
            }
            Durable::Sqlite(pool) => {
                let done = sqlx::query(
                    "insert into sessions (id, data, expires_at_ms) values (?, ?, ?)
                     on conflict (id) do nothing",
                )
                .bind(&key)
                .bind(&*sealed)
                .bind(sql_ms(expires))
                .execute(pool)
                .await
                .map_err(backend_error)?;
                if done.rows_affected() != 1 {
                    return Ok(false);
                }
                self.0.cache.insert(key, slot).await;
                Ok(true)
            }
            Durable::Redis(pool) => redis_set(pool, &key, &sealed, expires, SetOptions::NX).await,
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
        let (key, sealed, expires) = self.seal(record)?;
        let slot = Slot::Live {
            sealed: sealed.clone(),
            expires_at_ms: expires,
        };
        match &self.0.durable {
            Durable::Memory => {
                self.0
                    .cache
                    .entry(key)
                    .and_compute_with(|entry| async move {
                        match entry.map(|e| e.into_value()) {
                            Some(Slot::Live { .. }) => Op::Put(slot),
                            _ => Op::Nop,
                        }
                    })
                    .await;
            }
            Durable::Sqlite(pool) => {
                let done =
                    sqlx::query("update sessions set data = ?, expires_at_ms = ? where id = ?")
                        .bind(&*sealed)
                        .bind(sql_ms(expires))
                        .bind(&key)
                        .execute(pool)
                        .await
                        .map_err(backend_error)?;
                if done.rows_affected() == 1 {
                    self.cache_put_unless_gone(key, slot).await;
                }
            }
            Durable::Redis(pool) => {
                // Not written when the key is gone: that is the point.
                redis_set(pool, &key, &sealed, expires, SetOptions::XX).await?;
            }
        }
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let key = store_key(&id.to_string());
        match &self.0.durable {
            Durable::Memory => Ok(match self.0.cache.get(&key).await {
                Some(Slot::Live {
                    sealed,
                    expires_at_ms,
                }) => self.open(id, &sealed, expires_at_ms),
                _ => None,
            }),
            Durable::Sqlite(pool) => {
                match self.0.cache.get(&key).await {
                    Some(Slot::Live {
                        sealed,
                        expires_at_ms,
                    }) => return Ok(self.open(id, &sealed, expires_at_ms)),
                    Some(Slot::Gone) => return Ok(None),
                    None => {}
                }
                let row = sqlx::query(
                    "select data, expires_at_ms from sessions where id = ? and expires_at_ms > ?",
                )
                .bind(&key)
                .bind(sql_ms(unix_now_ms()))
                .fetch_optional(pool)
                .await
                .map_err(backend_error)?;
                let Some(row) = row else {
                    return Ok(None);
                };
                let sealed: Arc<[u8]> = row.get::<Vec<u8>, _>(0).into();
                let expires = u64::try_from(row.get::<i64, _>(1)).unwrap_or(0);
                let record = self.open(id, &sealed, expires);
                self.cache_put_unless_gone(
                    key,
                    Slot::Live {
                        sealed,
                        expires_at_ms: expires,
                    },
                )
                .await;
                Ok(record)
            }
            Durable::Redis(pool) => {
                let sealed: Option<Vec<u8>> =
                    pool.get(redis_key(&key)).await.map_err(backend_error)?;
                // Redis expires the key itself; the record's own date is checked as well.
                Ok(sealed.and_then(|s| {
                    self.open(id, &s, u64::MAX)
                        .filter(|r| r.expiry_date > time::OffsetDateTime::now_utc())
                }))
            }
        }
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        let key = store_key(&id.to_string());
        match &self.0.durable {
            Durable::Memory => self.0.cache.invalidate(&key).await,
            Durable::Sqlite(pool) => {
                // The tombstone first: a read racing with this delete cannot re-cache the row.
                self.0.cache.insert(key.clone(), Slot::Gone).await;
                sqlx::query("delete from sessions where id = ?")
                    .bind(&key)
                    .execute(pool)
                    .await
                    .map_err(backend_error)?;
            }
            Durable::Redis(pool) => {
                let _: i64 = pool.del(redis_key(&key)).await.map_err(backend_error)?;
            }
        }
        Ok(())
    }
}
