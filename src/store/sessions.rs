//! The session store behind `SESSION_STORE`, as one tower-sessions [`SessionStore`]: in memory
//! (moka, see `session_cache`), in the SQLite file or in Redis. What leaves the process is the
//! record sealed, keyed by the SHA-256 of the session id. SQLite and Redis are read on every
//! request, with no cache in front that could disagree with them.
//!
//! Two rules make sign-out final: `save` only updates a record that still exists (SQLite
//! `UPDATE … WHERE id = ?`, Redis `SET … XX`, a conditional put in memory), and only `create`
//! inserts, always under a new id. A request that loaded the session before a sign-out (or an id
//! cycle at sign-in) and saves it afterwards writes nothing.
//!
//! The memory store keeps records open: sealing guards copies of the store, and a reader of this
//! process's memory would find the key beside them.

use super::session_cache::{MAX_ANONYMOUS, MAX_SIGNED_IN, SessionCache, expires_at_ms};
use super::{StoreError, StoreResult, signed_ms as sql_ms};
use crate::clock::unix_now_ms;
use crate::crypto::{Cipher, Kind, store_key};
use async_trait::async_trait;
use fred::prelude::{Expiration, KeysInterface, LuaInterface, Pool as RedisPool, SetOptions};
use sqlx::sqlite::SqlitePool;
use std::sync::Arc;
use std::time::Duration;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, Error, SessionStore};

/// How often expired SQLite sessions are deleted.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// How often the SQLite WAL is checkpointed (and emptied when no reader holds it), so a burst
/// of writes leaves no large WAL behind.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(5);
/// Tries at a fresh id when a new one collides (it never does: 128 random bits).
const CREATE_TRIES: usize = 8;

/// Cloning is cheap; clones share the backend.
#[derive(Clone)]
pub struct SessionBackend(Arc<Durable>);

impl std::fmt::Debug for SessionBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match *self.0 {
            Durable::Memory(..) => "memory",
            Durable::Sqlite(..) => "sqlite",
            Durable::Redis(..) => "redis",
        };
        write!(f, "SessionBackend({kind})")
    }
}

/// Where records live: open in this process, or sealed by the cipher in the file or Redis.
enum Durable {
    Memory(SessionCache),
    Sqlite(SqlitePool, Cipher),
    Redis(RedisPool, Cipher),
}

fn backend_error(err: impl std::fmt::Display) -> Error {
    Error::Backend(err.to_string())
}

/// The record sealed, for the file or Redis, bound to its key there.
fn seal(cipher: &Cipher, record: &Record) -> session_store::Result<Vec<u8>> {
    let json = serde_json::to_vec(record).map_err(|e| Error::Encode(e.to_string()))?;
    Ok(cipher.seal(Kind::Session, &durable_key(&record.id), &json))
}

/// The record, or `None` when it is expired or does not open as the session stored under `key`
/// (a wrong or retired key, or a record copied from another key: the user is simply signed
/// out). The flag is true for a record of the old format, which the caller rewrites.
fn open(cipher: &Cipher, id: &Id, key: &str, sealed: &[u8]) -> Option<(Record, bool)> {
    let Some(opened) = cipher.open(Kind::Session, key, sealed) else {
        tracing::warn!(
            "a session record does not open with ENCRYPTION_KEYS under its key; treating it as signed out"
        );
        return None;
    };
    match serde_json::from_slice::<Record>(&opened.plaintext) {
        Ok(record) if record.expiry_date <= time::OffsetDateTime::now_utc() => None,
        Ok(mut record) => {
            record.id = *id;
            Some((record, opened.legacy))
        }
        Err(err) => {
            tracing::warn!(%err, "a session record does not decode; treating it as signed out");
            None
        }
    }
}

/// The key of a session in the file or in Redis: never the id itself.
fn durable_key(id: &Id) -> String {
    store_key(&id.to_string())
}

fn redis_key(key: &str) -> String {
    format!("webex-oauth:session:{key}")
}

/// `SET` the record sealed until its expiry, under `only` (`NX`: create, `XX`: update);
/// whether it was written.
async fn redis_set(
    pool: &RedisPool,
    cipher: &Cipher,
    record: &Record,
    only: SetOptions,
) -> session_store::Result<bool> {
    let expires = Expiration::PXAT(sql_ms(expires_at_ms(record)));
    let key = redis_key(&durable_key(&record.id));
    let set: Option<String> = pool
        .set(key, seal(cipher, record)?, Some(expires), Some(only), false)
        .await
        .map_err(backend_error)?;
    Ok(set.is_some())
}

/// Runs `sql` with the record sealed (`?1`), its expiry (`?2`) and its key (`?3`); the rows
/// it wrote.
async fn sqlite_write(
    pool: &SqlitePool,
    cipher: &Cipher,
    record: &Record,
    sql: &str,
) -> session_store::Result<u64> {
    let done = sqlx::query(sql)
        .bind(seal(cipher, record)?)
        .bind(sql_ms(expires_at_ms(record)))
        .bind(durable_key(&record.id))
        .execute(pool)
        .await
        .map_err(backend_error)?;
    Ok(done.rows_affected())
}

impl SessionBackend {
    /// Records never leave the process, so nothing is sealed.
    pub(super) fn memory() -> Self {
        Self::memory_with_caps(MAX_SIGNED_IN, MAX_ANONYMOUS)
    }

    /// In memory with caps of its own (the unit tests use small ones).
    fn memory_with_caps(max_signed_in: u64, max_anonymous: u64) -> Self {
        let cache = SessionCache::new(max_signed_in, max_anonymous);
        Self(Arc::new(Durable::Memory(cache)))
    }

    /// The `sessions` table must exist (see `sqlite::open`).
    pub(super) fn sqlite(pool: SqlitePool, cipher: Cipher) -> Self {
        Self(Arc::new(Durable::Sqlite(pool, cipher)))
    }

    pub(super) fn redis(pool: RedisPool, cipher: Cipher) -> Self {
        Self(Arc::new(Durable::Redis(pool, cipher)))
    }

    /// Whether the store answers (for `/readyz`).
    pub async fn ping(&self) -> StoreResult<()> {
        match &*self.0 {
            Durable::Memory(_) => Ok(()),
            Durable::Sqlite(pool, _) => {
                sqlx::query("select 1").execute(pool).await?;
                Ok(())
            }
            Durable::Redis(pool, _) => {
                let _: Option<String> = pool.get("webex-oauth:ping").await?;
                Ok(())
            }
        }
    }

    /// Runs for ever where the backend needs it (SQLite: checkpoint the WAL every
    /// [`CHECKPOINT_EVERY`], delete expired sessions every [`SWEEP_EVERY`]; moka and Redis
    /// expire sessions by themselves). The app aborts it at shutdown.
    pub async fn sweep_expired(self) {
        let Durable::Sqlite(pool, _) = &*self.0 else {
            return;
        };
        let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
        let sweep_every = SWEEP_EVERY.as_secs() / CHECKPOINT_EVERY.as_secs();
        for round in 0u64.. {
            tick.tick().await;
            if round % sweep_every == 0 {
                match sqlx::query("delete from sessions where expires_at_ms < ?")
                    .bind(sql_ms(unix_now_ms()))
                    .execute(pool)
                    .await
                {
                    Ok(done) if done.rows_affected() > 0 => {
                        super::sqlite::checkpoint(pool).await;
                        continue;
                    }
                    Ok(_) => {}
                    Err(err) => tracing::warn!(
                        error = %StoreError::from(err),
                        "cannot delete expired sessions"
                    ),
                }
            }
            super::sqlite::checkpoint_when_done(pool).await;
        }
    }

    /// How many sessions the memory store holds: (signed in, anonymous); none elsewhere.
    pub async fn cached(&self) -> (u64, u64) {
        match &*self.0 {
            Durable::Memory(cache) => cache.counts().await,
            _ => (0, 0),
        }
    }

    /// Inserts under `record.id` only if no record has that key; false on a collision.
    async fn insert_new(&self, record: &Record) -> session_store::Result<bool> {
        match &*self.0 {
            Durable::Memory(cache) => {
                Ok(cache.put_where(record.clone(), |now| now.is_none()).await)
            }
            Durable::Sqlite(pool, cipher) => {
                let insert = "insert into sessions (id, data, expires_at_ms) values (?3, ?1, ?2)
                              on conflict (id) do nothing";
                Ok(sqlite_write(pool, cipher, record, insert).await? == 1)
            }
            Durable::Redis(pool, cipher) => redis_set(pool, cipher, record, SetOptions::NX).await,
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
        match &*self.0 {
            Durable::Memory(cache) => {
                // Only over a live record: a deleted one stays deleted.
                cache.put_where(record.clone(), |now| now.is_some()).await;
            }
            Durable::Sqlite(pool, cipher) => {
                let update = "update sessions set data = ?1, expires_at_ms = ?2 where id = ?3";
                sqlite_write(pool, cipher, record, update).await?;
            }
            Durable::Redis(pool, cipher) => {
                // Not written when the key is gone: that is the point.
                redis_set(pool, cipher, record, SetOptions::XX).await?;
            }
        }
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match &*self.0 {
            // moka drops an expired record a little later; until then it reads as none.
            Durable::Memory(cache) => Ok(cache
                .get(id)
                .await
                .filter(|record| expires_at_ms(record) > unix_now_ms())
                .map(|record| Record::clone(&record))),
            Durable::Sqlite(pool, cipher) => load_sqlite(pool, cipher, id).await,
            Durable::Redis(pool, cipher) => load_redis(pool, cipher, id).await,
        }
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match &*self.0 {
            Durable::Memory(cache) => cache.delete(id).await,
            Durable::Sqlite(pool, _) => {
                sqlx::query("delete from sessions where id = ?")
                    .bind(durable_key(id))
                    .execute(pool)
                    .await
                    .map_err(backend_error)?;
                // Committed: now the WAL's copy of the record goes too.
                super::sqlite::checkpoint(pool).await;
            }
            Durable::Redis(pool, _) => {
                let _: i64 = pool
                    .del(redis_key(&durable_key(id)))
                    .await
                    .map_err(backend_error)?;
            }
        }
        Ok(())
    }
}

/// The record under `id` in Redis, if any and unexpired. One of the old format (sealed
/// without its key) is sealed anew, bound to its key, unless it changed meanwhile.
async fn load_redis(pool: &RedisPool, cipher: &Cipher, id: &Id) -> Result<Option<Record>, Error> {
    let key = durable_key(id);
    let sealed: Option<Vec<u8>> = pool.get(redis_key(&key)).await.map_err(backend_error)?;
    let Some(sealed) = sealed else {
        return Ok(None);
    };
    // Redis expires the key itself; `open` checks the record's own date as well.
    let Some((record, legacy)) = open(cipher, id, &key, &sealed) else {
        return Ok(None);
    };
    if legacy {
        let _: i64 = pool
            .eval(
                "if redis.call('get', KEYS[1]) == ARGV[1] then
                   redis.call('set', KEYS[1], ARGV[2], 'KEEPTTL') return 1 end
                 return 0",
                vec![redis_key(&key)],
                vec![sealed, seal(cipher, &record)?],
            )
            .await
            .map_err(backend_error)?;
    }
    Ok(Some(record))
}

/// The record under `id` in the SQLite file, if any and unexpired; one of the old format is
/// sealed anew, as in Redis.
async fn load_sqlite(pool: &SqlitePool, cipher: &Cipher, id: &Id) -> Result<Option<Record>, Error> {
    let key = durable_key(id);
    let sealed: Option<Vec<u8>> =
        sqlx::query_scalar("select data from sessions where id = ? and expires_at_ms > ?")
            .bind(&key)
            .bind(sql_ms(unix_now_ms()))
            .fetch_optional(pool)
            .await
            .map_err(backend_error)?;
    let Some(sealed) = sealed else {
        return Ok(None);
    };
    let Some((record, legacy)) = open(cipher, id, &key, &sealed) else {
        return Ok(None);
    };
    if legacy {
        sqlx::query("update sessions set data = ? where id = ? and data = ?")
            .bind(seal(cipher, &record)?)
            .bind(&key)
            .bind(&sealed)
            .execute(pool)
            .await
            .map_err(backend_error)?;
    }
    Ok(Some(record))
}

#[cfg(test)]
mod tests;
