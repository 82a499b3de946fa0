//! The session store behind `SESSION_STORE`, as one tower-sessions [`SessionStore`]: in memory
//! (moka, see `session_cache`), or in the SQLite file or in Redis, sealed and keyed by the
//! SHA-256 of the session id. Those two are read on every request, with no cache in front that
//! could disagree with them.
//!
//! Two rules make sign-out final: `save` only updates a record that still exists (SQLite
//! `UPDATE … WHERE id = ?`, Redis `SET … XX`, a conditional put in memory), and only `create`
//! inserts, always under a new id. A request that loaded the session before a sign-out (or an id
//! cycle at sign-in) and saves it afterwards writes nothing.
//!
//! The memory store keeps records open: sealing guards copies of the store, and a reader of this
//! process's memory would find the key beside them.

use super::session_cache::{MAX_ANONYMOUS, MAX_SIGNED_IN, SessionCache, expires_at_ms};
use super::sqlite::{checkpoint, checkpoint_when_done};
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
pub struct SessionBackend(Arc<Backend>);

impl std::fmt::Debug for SessionBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &*self.0 {
            Backend::Memory(_) => "memory",
            Backend::Sealed(Db::Sqlite(_), _) => "sqlite",
            Backend::Sealed(Db::Redis(_), _) => "redis",
        };
        write!(f, "SessionBackend({kind})")
    }
}

/// Where records live: open in this process, or sealed by the cipher in the file or Redis.
enum Backend {
    Memory(SessionCache),
    Sealed(Db, Cipher),
}

/// The file or Redis, holding sealed records under their [`durable_key`].
pub(super) enum Db {
    Sqlite(SqlitePool),
    Redis(RedisPool),
}

fn backend_error(err: impl std::fmt::Display) -> Error {
    Error::Backend(err.to_string())
}

/// The record sealed, bound to `key`, its key in the file or Redis.
fn seal(cipher: &Cipher, key: &str, record: &Record) -> session_store::Result<Vec<u8>> {
    let json = serde_json::to_vec(record).map_err(|e| Error::Encode(e.to_string()))?;
    Ok(cipher.seal(Kind::Session, key, &json))
}

/// The record and whether it is of the old format (to rewrite), or `None` (signed out) when it is
/// expired or does not open as the session under `key` (a retired key, a record copied over).
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

impl Db {
    /// The sealed record under `key`, if any (SQLite: unexpired; Redis expires keys itself).
    async fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(match self {
            Db::Sqlite(pool) => {
                sqlx::query_scalar("select data from sessions where id = ? and expires_at_ms > ?")
                    .bind(key)
                    .bind(sql_ms(unix_now_ms()))
                    .fetch_optional(pool)
                    .await?
            }
            Db::Redis(pool) => pool.get(redis_key(key)).await?,
        })
    }

    /// Writes `sealed` under `key` until `expires_ms`: when `new`, only if no record has that
    /// key (SQLite `ON CONFLICT DO NOTHING`, Redis `NX`), else only if one has (SQLite
    /// `UPDATE`, Redis `XX`). Whether it wrote.
    async fn put(
        &self,
        key: &str,
        sealed: Vec<u8>,
        expires_ms: u64,
        new: bool,
    ) -> StoreResult<bool> {
        Ok(match self {
            Db::Sqlite(pool) => {
                let sql = if new {
                    "insert into sessions (data, expires_at_ms, id) values (?, ?, ?)
                     on conflict (id) do nothing"
                } else {
                    "update sessions set data = ?, expires_at_ms = ? where id = ?"
                };
                let query = sqlx::query(sql)
                    .bind(sealed)
                    .bind(sql_ms(expires_ms))
                    .bind(key);
                query.execute(pool).await?.rows_affected() == 1
            }
            Db::Redis(pool) => {
                let only = if new { SetOptions::NX } else { SetOptions::XX };
                let expires = Some(Expiration::PXAT(sql_ms(expires_ms)));
                let set: Option<String> = pool
                    .set(redis_key(key), sealed, expires, Some(only), false)
                    .await?;
                set.is_some()
            }
        })
    }

    /// Replaces `old` under `key` with `new`, keeping its expiry, unless it changed meanwhile.
    async fn replace(&self, key: &str, old: Vec<u8>, new: Vec<u8>) -> StoreResult<()> {
        match self {
            Db::Sqlite(pool) => {
                sqlx::query("update sessions set data = ? where id = ? and data = ?")
                    .bind(new)
                    .bind(key)
                    .bind(old)
                    .execute(pool)
                    .await?;
            }
            Db::Redis(pool) => {
                let _: i64 = pool
                    .eval(
                        "if redis.call('get', KEYS[1]) == ARGV[1] then
                           redis.call('set', KEYS[1], ARGV[2], 'KEEPTTL') return 1 end
                         return 0",
                        vec![redis_key(key)],
                        vec![old, new],
                    )
                    .await?;
            }
        }
        Ok(())
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        match self {
            Db::Sqlite(pool) => {
                let delete = sqlx::query("delete from sessions where id = ?").bind(key);
                delete.execute(pool).await?;
                // Committed: now the WAL's copy of the record goes too.
                checkpoint(pool).await;
            }
            Db::Redis(pool) => {
                let _: i64 = pool.del(redis_key(key)).await?;
            }
        }
        Ok(())
    }
}

impl SessionBackend {
    /// Records never leave the process, so nothing is sealed.
    pub(super) fn memory() -> Self {
        Self::memory_with_caps(MAX_SIGNED_IN, MAX_ANONYMOUS)
    }

    /// In memory with caps of its own (the unit tests use small ones).
    fn memory_with_caps(max_signed_in: u64, max_anonymous: u64) -> Self {
        let cache = SessionCache::new(max_signed_in, max_anonymous);
        Self(Arc::new(Backend::Memory(cache)))
    }

    /// Sealed by `cipher` in `db` (SQLite: the `sessions` table must exist, see `sqlite::open`).
    pub(super) fn sealed(db: Db, cipher: Cipher) -> Self {
        Self(Arc::new(Backend::Sealed(db, cipher)))
    }

    /// Whether the store answers (for `/readyz`).
    pub async fn ping(&self) -> StoreResult<()> {
        match &*self.0 {
            Backend::Memory(_) => {}
            Backend::Sealed(Db::Sqlite(pool), _) => {
                sqlx::query("select 1").execute(pool).await?;
            }
            Backend::Sealed(Db::Redis(pool), _) => {
                let _: Option<String> = pool.get("webex-oauth:ping").await?;
            }
        }
        Ok(())
    }

    /// Runs for ever where the backend needs it (SQLite: checkpoint the WAL every
    /// [`CHECKPOINT_EVERY`], delete expired sessions every [`SWEEP_EVERY`]; moka and Redis
    /// expire sessions by themselves). The app aborts it at shutdown.
    pub async fn sweep_expired(self) {
        let Backend::Sealed(Db::Sqlite(pool), _) = &*self.0 else {
            return;
        };
        let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
        let sweep_every = SWEEP_EVERY.as_secs() / CHECKPOINT_EVERY.as_secs();
        for round in 0u64.. {
            tick.tick().await;
            if round % sweep_every == 0 {
                let expired = sqlx::query("delete from sessions where expires_at_ms < ?");
                match expired.bind(sql_ms(unix_now_ms())).execute(pool).await {
                    Ok(done) if done.rows_affected() > 0 => {
                        checkpoint(pool).await;
                        continue;
                    }
                    Ok(_) => {}
                    Err(err) => tracing::warn!(
                        error = %StoreError::from(err),
                        "cannot delete expired sessions"
                    ),
                }
            }
            checkpoint_when_done(pool).await;
        }
    }

    /// How many sessions the memory store holds: (signed in, anonymous); none elsewhere.
    #[cfg(any(test, feature = "test-support"))]
    pub async fn cached(&self) -> (u64, u64) {
        match &*self.0 {
            Backend::Memory(cache) => cache.counts().await,
            Backend::Sealed(..) => (0, 0),
        }
    }

    /// Writes `record` if no record has its id (`new`: `create`) or if one has (`save`: a
    /// deleted record stays deleted); whether it did.
    async fn put(&self, record: &Record, new: bool) -> session_store::Result<bool> {
        match &*self.0 {
            Backend::Memory(cache) => Ok(cache.put(record.clone(), new).await),
            Backend::Sealed(db, cipher) => {
                let key = durable_key(&record.id);
                let sealed = seal(cipher, &key, record)?;
                let put = db.put(&key, sealed, expires_at_ms(record), new).await;
                put.map_err(backend_error)
            }
        }
    }
}

#[async_trait]
impl SessionStore for SessionBackend {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        for _ in 0..CREATE_TRIES {
            if self.put(record, true).await? {
                return Ok(());
            }
            record.id = Id::default();
        }
        Err(Error::Backend("no free session id".into()))
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.put(record, false).await.map(drop)
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let (db, cipher) = match &*self.0 {
            // moka drops an expired record a little later; until then it reads as none.
            Backend::Memory(cache) => {
                let slot = cache.get(id).await;
                let live = slot.filter(|r| expires_at_ms(r) > unix_now_ms());
                return Ok(live.map(|record| Record::clone(&record)));
            }
            Backend::Sealed(db, cipher) => (db, cipher),
        };
        let key = durable_key(id);
        let Some(sealed) = db.get(&key).await.map_err(backend_error)? else {
            return Ok(None);
        };
        let Some((record, legacy)) = open(cipher, id, &key, &sealed) else {
            return Ok(None);
        };
        // One of the old format (sealed without its key) is sealed anew, bound to its key.
        if legacy {
            let new = seal(cipher, &key, &record)?;
            db.replace(&key, sealed, new).await.map_err(backend_error)?;
        }
        Ok(Some(record))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match &*self.0 {
            Backend::Memory(cache) => cache.delete(id).await,
            Backend::Sealed(db, _) => db.delete(&durable_key(id)).await.map_err(backend_error)?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
