//! Where sessions, device flows and refresh locks live: memory, a SQLite file, or Redis
//! (`SESSION_STORE`), behind one type each; [`open`] builds all three from the configuration.
//!
//! A flow is any [`FlowData`] (`device_flow`'s record, kept as sealed JSON) under its flow id,
//! with a lease (which instance polls it, until when) and, once granted, the tokens, taken
//! exactly once. A poller's every write is conditional on still holding the lease, so one that
//! lost it (it stalled, another instance took over) cannot overwrite newer state.

mod files;
mod memory;
mod redis;
mod session_cache;
mod session_lock;
mod sessions;
mod sqlite;

pub use session_cache::{OBJECT_TOKENS_KEY, TOKENS_KEY};
pub use session_lock::{Lock, SessionGuard, SessionLocks};
use sessions::Db;
pub use sessions::SessionBackend;
// For `test_support`: the tests check these caps.
#[cfg(feature = "test-support")]
pub use {session_cache::MAX_ANONYMOUS, sqlite::WAL_SIZE_LIMIT};

use crate::config::StoreConfig;
use crate::crypto::{Cipher, EncryptionKey, Kind};
use crate::tokens::TokenSet;
use memory::MemoryFlows;
use redis::RedisFlows;
use sqlite::SqliteFlows;
use std::time::Duration;

/// How long a lease lasts without renewal; the app renews them every [`LEASE_RENEW`].
pub const LEASE: Duration = Duration::from_secs(10);
pub const LEASE_RENEW: Duration = Duration::from_secs(3);

/// A failed store call, its cause kept; the pages turn it into a 503.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("SQLite: {0}")]
    Sqlite(#[from] sqlx::Error),
    #[error("Redis: {0}")]
    Redis(#[from] fred::error::Error),
    #[error("a stored record does not decode: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("another instance holds the refresh lock")]
    LockBusy,
    /// The store cannot be opened at start-up (the message names the file or host).
    #[error("{0}")]
    Open(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What the store needs of a device flow's record (`device_flow`'s): kept as sealed JSON,
/// filtered on its status and expiry.
pub trait FlowData:
    serde::Serialize + serde::de::DeserializeOwned + Clone + Send + Sync + 'static
{
    /// The status column's value.
    fn status(&self) -> &'static str;
    /// Whether a poller still works on it (status `pending`).
    fn is_pending(&self) -> bool {
        self.status() == "pending"
    }
    /// When its code expires (Unix ms).
    fn expires_at_ms(&self) -> u64;
}

/// What [`open`] gives: the three things kept in the configured backend.
pub struct Store<R> {
    pub flows: FlowStore<R>,
    pub sessions: SessionBackend,
    pub session_locks: SessionLocks,
}

/// Opens the configured backend, sealing what goes to the file or Redis with `keys`
/// (`ENCRYPTION_KEYS`, which Redis needs). Without keys SQLite uses `encryption.key` beside the
/// file, so `cargo run` needs no setup and restarts keep sessions. Memory seals nothing.
pub async fn open<R: FlowData>(
    config: &StoreConfig,
    keys: &[EncryptionKey],
) -> StoreResult<Store<R>> {
    let given = Cipher::new(&keys.iter().map(|k| k.0).collect::<Vec<_>>());
    let (flows, sessions, shared_locks) = match config {
        StoreConfig::Memory => (
            Backend::Memory(MemoryFlows::default()),
            SessionBackend::memory(),
            None,
        ),
        StoreConfig::Sqlite(path) => {
            let pool = sqlite::open(path).await?;
            let cipher = given.map_or_else(|| files::key_beside(path), Ok)?;
            let sessions = SessionBackend::sealed(Db::Sqlite(pool.clone()), cipher.clone());
            (
                Backend::Sqlite(SqliteFlows { pool, cipher }),
                sessions,
                None,
            )
        }
        StoreConfig::Redis(url) => {
            let cipher = given
                .ok_or_else(|| StoreError::Open("ENCRYPTION_KEYS is required with Redis".into()))?;
            let pool = redis::open(url).await?;
            let flows = RedisFlows::new(pool.clone(), cipher.clone());
            let sessions = SessionBackend::sealed(Db::Redis(pool), cipher);
            (Backend::Redis(flows.clone()), sessions, Some(flows))
        }
    };
    Ok(Store {
        flows: FlowStore(flows),
        sessions,
        session_locks: SessionLocks::new(shared_locks),
    })
}

/// The device flows of every instance sharing the store. Cloning is cheap.
#[derive(Clone)]
pub struct FlowStore<R>(Backend<R>);

#[derive(Clone)]
enum Backend<R> {
    Memory(MemoryFlows<R>),
    Sqlite(SqliteFlows),
    Redis(RedisFlows),
}

/// Each method calls its namesake on the backend (the memory backend's are not async).
macro_rules! flow_methods {
    ($($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {$(
        $(#[$doc])*
        pub async fn $name(&self, $($arg: $ty),*) -> StoreResult<$ret> {
            match &self.0 {
                Backend::Memory(m) => m.$name($($arg),*),
                Backend::Sqlite(s) => s.$name($($arg),*).await,
                Backend::Redis(r) => r.$name($($arg),*).await,
            }
        }
    )*};
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Unix milliseconds as a signed integer for SQLite and Redis (saturating; ours fit by far).
fn signed_ms(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// A flow record or token set as sealed JSON text, bound to its kind and flow id.
fn seal_json<T: serde::Serialize>(
    cipher: &Cipher,
    kind: Kind,
    id: &str,
    value: &T,
) -> StoreResult<String> {
    Ok(cipher.seal_text(kind, id, &serde_json::to_string(value)?))
}

/// The value, or `None` when there is none or no key opens it as `kind` of flow `id` (a retired
/// key, or a value copied from another flow): the flow reads as gone.
fn open_json<T: serde::de::DeserializeOwned>(
    cipher: &Cipher,
    kind: Kind,
    id: &str,
    sealed: Option<String>,
) -> StoreResult<Option<T>> {
    let Some(sealed) = sealed else {
        return Ok(None);
    };
    match cipher.open_text(kind, id, &sealed) {
        Some(json) => Ok(Some(serde_json::from_str(&json)?)),
        None => {
            tracing::warn!(
                "a device flow does not decrypt with ENCRYPTION_KEYS (or was copied from another); treating it as gone"
            );
            Ok(None)
        }
    }
}

/// The end of a lease taken at `now_ms`.
fn lease_until(now_ms: u64) -> u64 {
    now_ms.saturating_add(millis(LEASE))
}

impl<R: FlowData> FlowStore<R> {
    flow_methods! {
        /// Records a new flow, leased to `owner`.
        fn insert(id: &str, record: &R, owner: &str) -> ();

        fn get(id: &str) -> Option<R>;

        /// Writes the poller's new state (and, when granted, the tokens) if `owner` still holds the
        /// lease; false when it does not, or the flow is gone.
        fn update(id: &str, record: &R, tokens: Option<&TokenSet>, owner: &str) -> bool;

        /// Takes the tokens of a granted flow and deletes the flow, atomically: exactly once.
        fn take_tokens(id: &str) -> Option<TokenSet>;

        fn delete(id: &str) -> ();

        /// Records that the owning session looked at the flow now (SQLite: at most every few
        /// seconds, so a watched page costs few writes).
        fn mark_seen(id: &str) -> ();

        /// Takes or renews the lease of a pending flow for `owner`: succeeds when the lease is
        /// free, lapsed, or already `owner`'s.
        fn lease(id: &str, owner: &str) -> bool;

        /// Extends the leases `owner` holds on `ids` (its running pollers).
        fn renew_leases(owner: &str, ids: &[String]) -> ();

        /// Lets go of every lease `owner` holds, live or not (at shutdown), never another
        /// owner's; how many it released.
        fn release_leases(owner: &str) -> usize;

        /// When the owning session last looked at this pending flow (Unix ms), if `owner` still
        /// holds its lease (a read, no write); `None` when the lease is lost or the flow gone.
        fn holds(id: &str, owner: &str) -> Option<u64>;

        /// Pending, unexpired flows whose lease has lapsed: nobody polls them (at most 1,000).
        fn orphans() -> Vec<String>;

        /// Pending flows, across every instance sharing the store.
        fn count_pending() -> usize;

        /// Number of flows recorded (any state; Redis: pending ones).
        #[cfg(any(test, feature = "test-support"))]
        fn len() -> usize;

        /// Forgets flows whose code expired more than `grace` ago (abandoned pages, unclaimed
        /// grants).
        fn purge(grace: Duration) -> usize;
    }
}
