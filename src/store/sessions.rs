//! The tower-sessions backend behind `SESSION_STORE`, as one [`SessionStore`]: memory (moka), a
//! memory cache in front of the SQLite file, or Redis; and the SQLite expiry sweep.

use super::StoreResult;
use async_trait::async_trait;
use fred::prelude::Pool as RedisPool;
use sqlx::sqlite::SqlitePool;
use std::time::Duration;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion};
use tower_sessions::{CachingSessionStore, SessionStore};
use tower_sessions_moka_store::MokaStore;
use tower_sessions_redis_store::RedisStore;
use tower_sessions_sqlx_store::SqliteStore;

/// The in-memory store (and the cache in front of SQLite) keeps at most this many sessions
/// (least used go first), so a flood of `/login` requests cannot grow memory without bound.
const MAX_MEMORY_SESSIONS: u64 = 100_000;
/// How often expired SQLite sessions are deleted.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Cloning is cheap; clones share the backend.
#[derive(Clone, Debug)]
pub enum SessionBackend {
    /// Moka evicts each session at its own expiry date and caps the count; tower-sessions'
    /// MemoryStore never deletes expired sessions.
    Memory(MokaStore),
    /// Reads come from memory; writes go to both. One instance owns the file, so the cache
    /// cannot go stale.
    Sqlite {
        cached: CachingSessionStore<MokaStore, SqliteStore>,
        sqlite: SqliteStore,
    },
    /// Each session is a key that expires with the session.
    Redis(RedisStore<RedisPool>),
}

impl SessionBackend {
    pub(super) fn memory() -> Self {
        Self::Memory(MokaStore::new(Some(MAX_MEMORY_SESSIONS)))
    }

    pub(super) async fn sqlite(pool: SqlitePool) -> StoreResult<Self> {
        let sqlite = SqliteStore::new(pool);
        sqlite.migrate().await.map_err(|e| {
            super::StoreError::Open(format!("cannot create the session table: {e}"))
        })?;
        let cached =
            CachingSessionStore::new(MokaStore::new(Some(MAX_MEMORY_SESSIONS)), sqlite.clone());
        Ok(Self::Sqlite { cached, sqlite })
    }

    pub(super) fn redis(pool: RedisPool) -> Self {
        Self::Redis(RedisStore::new(pool))
    }

    /// Runs for ever where the backend needs it (SQLite: delete expired sessions every
    /// minute; moka and Redis expire sessions by themselves). The app aborts it at shutdown.
    pub async fn sweep_expired(self) {
        match self {
            Self::Sqlite { sqlite, .. } => {
                if let Err(err) = sqlite.continuously_delete_expired(SWEEP_EVERY).await {
                    tracing::warn!(%err, "the expired-session sweep stopped");
                }
            }
            Self::Memory(_) | Self::Redis(_) => {}
        }
    }
}

#[async_trait]
impl SessionStore for SessionBackend {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        match self {
            Self::Memory(s) => s.create(record).await,
            Self::Sqlite { cached, .. } => cached.create(record).await,
            Self::Redis(s) => s.create(record).await,
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        match self {
            Self::Memory(s) => s.save(record).await,
            Self::Sqlite { cached, .. } => cached.save(record).await,
            Self::Redis(s) => s.save(record).await,
        }
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match self {
            Self::Memory(s) => s.load(id).await,
            Self::Sqlite { cached, .. } => cached.load(id).await,
            Self::Redis(s) => s.load(id).await,
        }
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match self {
            Self::Memory(s) => s.delete(id).await,
            Self::Sqlite { cached, .. } => cached.delete(id).await,
            Self::Redis(s) => s.delete(id).await,
        }
    }
}
