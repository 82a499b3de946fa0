//! Where device flows live beside the sessions: memory, the SQLite file, or Redis (`SESSION_STORE`).
//!
//! A flow is plain data ([`FlowRecord`], JSON in SQLite) keyed by its flow id, plus a lease (which
//! instance polls it, until when) and, once granted, the tokens, which are taken exactly once.
//! Every write a poller makes is conditional on still holding the lease, so a poller that lost
//! its lease (it stalled, another instance took the flow over) cannot overwrite newer state.

use crate::device_flows::{FlowRecord, FlowStatus};
use crate::tokens::TokenSet;
use fred::prelude::{
    Builder, ClientLike, Config as RedisConfig, Expiration, KeysInterface, LuaInterface,
    Pool as RedisPool, ReconnectPolicy, SetOptions, SetsInterface,
};
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a lease lasts without renewal. A poller renews it every [`LEASE_RENEW`].
pub const LEASE: Duration = Duration::from_secs(10);
pub const LEASE_RENEW: Duration = Duration::from_secs(3);

/// How long a refresh lock (Redis) is held at most, should its holder die mid-refresh; a
/// request waits at most this long for another instance's refresh.
pub const REFRESH_LOCK: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub enum FlowStore {
    Memory(Arc<Mutex<HashMap<String, MemoryFlow>>>),
    Sqlite(SqlitePool),
    Redis(RedisPool),
}

/// Redis keys, all under one prefix.
mod key {
    pub const PENDING: &str = "webex-oauth:flows:pending";
    pub fn flow(id: &str) -> String {
        format!("webex-oauth:flow:{id}")
    }
    pub fn lease(id: &str) -> String {
        format!("webex-oauth:flow-lease:{id}")
    }
    pub fn tokens(id: &str) -> String {
        format!("webex-oauth:flow-tokens:{id}")
    }
    pub fn lock(name: &str) -> String {
        format!("webex-oauth:lock:{name}")
    }
}

/// Connects to `redis://HOST:PORT[/DB]`. Commands time out after 5 s (a page then says the
/// store is unavailable) and the pool reconnects for ever, so the app recovers when Redis does.
pub async fn open_redis(url: &str) -> std::result::Result<RedisPool, String> {
    let config =
        RedisConfig::from_url(url).map_err(|e| format!("{url:?} is not a Redis URL: {e}"))?;
    let pool = Builder::from_config(config)
        .with_connection_config(|c| c.connection_timeout = Duration::from_secs(5))
        .with_performance_config(|c| c.default_command_timeout = Duration::from_secs(5))
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
        .build_pool(4)
        .map_err(|e| format!("cannot set up Redis: {e}"))?;
    tokio::time::timeout(Duration::from_secs(5), pool.init())
        .await
        .map_err(|_| format!("cannot reach Redis at {url}"))?
        .map_err(|e| format!("cannot reach Redis at {url}: {e}"))?;
    Ok(pool)
}

/// A lock held in Redis, released when dropped (best effort; it also expires by itself).
pub struct SharedLock {
    pool: RedisPool,
    key: String,
    owner: String,
}

impl Drop for SharedLock {
    fn drop(&mut self) {
        let (pool, key, owner) = (self.pool.clone(), self.key.clone(), self.owner.clone());
        tokio::spawn(async move {
            let _: std::result::Result<i64, _> = pool
                .eval(
                    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0",
                    vec![key],
                    vec![owner],
                )
                .await;
        });
    }
}

pub struct MemoryFlow {
    record: FlowRecord,
    lease: Option<(String, u64)>,
    tokens: Option<TokenSet>,
}

fn now_ms() -> u64 {
    crate::tokens::unix_now_ms()
}

/// Opens (creating it and its folder, mode 0600) the SQLite file, and the tables.
pub async fn open_sqlite(path: &Path) -> std::result::Result<SqlitePool, String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    create_private_file(path)?;
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // In WAL mode, NORMAL keeps the database consistent after a crash and skips an fsync
        // per commit (the last commits may be lost on power failure, not corrupted).
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    sqlx::query(
        "create table if not exists device_flows (
            id text primary key not null,
            data text not null,
            status text not null,
            expires_at_ms integer not null,
            lease_owner text,
            lease_until_ms integer not null default 0,
            tokens text
        )",
    )
    .execute(&pool)
    .await
    .map_err(|e| {
        format!(
            "cannot create the device_flows table in {}: {e}",
            path.display()
        )
    })?;
    // The pending-flow count (every sign-in) and the orphan search (every 3 s) read these
    // columns only; without the index they would scan every row and its large data column.
    sqlx::query(
        "create index if not exists device_flows_pending
         on device_flows (status, expires_at_ms, lease_until_ms)",
    )
    .execute(&pool)
    .await
    .map_err(|e| format!("cannot index device_flows in {}: {e}", path.display()))?;
    Ok(pool)
}

#[cfg(unix)]
fn create_private_file(path: &Path) -> std::result::Result<(), String> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .and_then(|_| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)))
        .map_err(|e| format!("cannot create {}: {e}", path.display()))
}

#[cfg(not(unix))]
fn create_private_file(_: &Path) -> std::result::Result<(), String> {
    Ok(())
}

/// A failed store call; the pages turn it into a 503.
#[derive(Debug, thiserror::Error)]
#[error("flow store: {0}")]
pub struct StoreError(String);

/// A store failure on a page is a 503 ("sessions are unavailable").
impl From<StoreError> for crate::error::AppError {
    fn from(err: StoreError) -> Self {
        Self::Session(err.to_string())
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        Self(err.to_string())
    }
}

impl From<fred::error::Error> for StoreError {
    fn from(err: fred::error::Error) -> Self {
        Self(err.to_string())
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(err: serde_json::Error) -> Self {
        Self(err.to_string())
    }
}

type Result<T> = std::result::Result<T, StoreError>;

impl FlowStore {
    pub fn memory() -> Self {
        Self::Memory(Arc::default())
    }

    fn mem(
        map: &Mutex<HashMap<String, MemoryFlow>>,
    ) -> std::sync::MutexGuard<'_, HashMap<String, MemoryFlow>> {
        map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a new flow, leased to `owner`.
    pub async fn insert(&self, id: &str, record: &FlowRecord, owner: &str) -> Result<()> {
        let until = now_ms() + LEASE.as_millis() as u64;
        match self {
            Self::Memory(map) => {
                Self::mem(map).insert(
                    id.to_owned(),
                    MemoryFlow {
                        record: record.clone(),
                        lease: Some((owner.to_owned(), until)),
                        tokens: None,
                    },
                );
            }
            Self::Sqlite(pool) => {
                sqlx::query(
                    "insert into device_flows (id, data, status, expires_at_ms, lease_owner, lease_until_ms)
                     values (?, ?, ?, ?, ?, ?)",
                )
                .bind(id)
                .bind(serde_json::to_string(record)?)
                .bind(record.status.as_str())
                .bind(record.expires_at_ms as i64)
                .bind(owner)
                .bind(until as i64)
                .execute(pool)
                .await?;
            }
            Self::Redis(pool) => {
                let keep = keep_ms(record);
                let _: () = pool
                    .set(
                        key::flow(id),
                        serde_json::to_string(record)?,
                        Some(Expiration::PX(keep)),
                        None,
                        false,
                    )
                    .await?;
                let _: () = pool
                    .set(
                        key::lease(id),
                        owner,
                        Some(Expiration::PX(LEASE.as_millis() as i64)),
                        None,
                        false,
                    )
                    .await?;
                let _: () = pool.sadd(key::PENDING, id).await?;
            }
        }
        Ok(())
    }

    pub async fn get(&self, id: &str) -> Result<Option<FlowRecord>> {
        match self {
            Self::Memory(map) => Ok(Self::mem(map).get(id).map(|f| f.record.clone())),
            Self::Sqlite(pool) => {
                let row = sqlx::query("select data from device_flows where id = ?")
                    .bind(id)
                    .fetch_optional(pool)
                    .await?;
                match row {
                    Some(row) => Ok(Some(serde_json::from_str(row.get::<&str, _>(0))?)),
                    None => Ok(None),
                }
            }
            Self::Redis(pool) => {
                let json: Option<String> = pool.get(key::flow(id)).await?;
                Ok(json.map(|j| serde_json::from_str(&j)).transpose()?)
            }
        }
    }

    /// Writes the poller's new state (and, when granted, the tokens) if `owner` still holds the
    /// lease. False when it does not, or the flow is gone.
    pub async fn update(
        &self,
        id: &str,
        record: &FlowRecord,
        tokens: Option<&TokenSet>,
        owner: &str,
    ) -> Result<bool> {
        let now = now_ms();
        match self {
            Self::Memory(map) => {
                let mut map = Self::mem(map);
                let Some(flow) = map.get_mut(id) else {
                    return Ok(false);
                };
                if !flow
                    .lease
                    .as_ref()
                    .is_some_and(|(o, until)| o == owner && *until >= now)
                {
                    return Ok(false);
                }
                flow.record = record.clone();
                if tokens.is_some() {
                    flow.tokens = tokens.cloned();
                }
                Ok(true)
            }
            Self::Sqlite(pool) => {
                let tokens = tokens.map(serde_json::to_string).transpose()?;
                let done = sqlx::query(
                    "update device_flows set data = ?, status = ?, tokens = coalesce(?, tokens)
                     where id = ? and lease_owner = ? and lease_until_ms >= ?",
                )
                .bind(serde_json::to_string(record)?)
                .bind(record.status.as_str())
                .bind(tokens)
                .bind(id)
                .bind(owner)
                .bind(now as i64)
                .execute(pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }
            Self::Redis(pool) => {
                // One script, so the lease check and the writes are atomic.
                let written: i64 = pool
                    .eval(
                        "if redis.call('get', KEYS[2]) ~= ARGV[1] or redis.call('exists', KEYS[1]) == 0 then return 0 end
                         redis.call('set', KEYS[1], ARGV[2], 'KEEPTTL')
                         if ARGV[3] ~= '' then redis.call('set', KEYS[3], ARGV[3], 'PX', ARGV[5]) end
                         if ARGV[4] ~= 'pending' then redis.call('srem', KEYS[4], ARGV[6]) end
                         return 1",
                        vec![key::flow(id), key::lease(id), key::tokens(id), key::PENDING.to_owned()],
                        vec![
                            owner.to_owned(),
                            serde_json::to_string(record)?,
                            tokens.map(serde_json::to_string).transpose()?.unwrap_or_default(),
                            record.status.as_str().to_owned(),
                            keep_ms(record).to_string(),
                            id.to_owned(),
                        ],
                    )
                    .await?;
                Ok(written == 1)
            }
        }
    }

    /// Takes the tokens of a granted flow and deletes the flow, atomically: exactly once.
    pub async fn take_tokens(&self, id: &str) -> Result<Option<TokenSet>> {
        match self {
            Self::Memory(map) => {
                let mut map = Self::mem(map);
                if map.get(id).is_some_and(|f| f.tokens.is_some()) {
                    return Ok(map.remove(id).and_then(|f| f.tokens));
                }
                Ok(None)
            }
            Self::Sqlite(pool) => {
                let row = sqlx::query(
                    "delete from device_flows where id = ? and tokens is not null returning tokens",
                )
                .bind(id)
                .fetch_optional(pool)
                .await?;
                match row {
                    Some(row) => Ok(Some(serde_json::from_str(row.get::<&str, _>(0))?)),
                    None => Ok(None),
                }
            }
            Self::Redis(pool) => {
                let json: Option<String> = pool
                    .eval(
                        "local t = redis.call('get', KEYS[1])
                         if t then redis.call('del', KEYS[1], KEYS[2], KEYS[3]) end
                         return t",
                        vec![key::tokens(id), key::flow(id), key::lease(id)],
                        Vec::<String>::new(),
                    )
                    .await?;
                Ok(json.map(|j| serde_json::from_str(&j)).transpose()?)
            }
        }
    }

    pub async fn delete(&self, id: &str) -> Result<()> {
        match self {
            Self::Memory(map) => {
                Self::mem(map).remove(id);
            }
            Self::Sqlite(pool) => {
                sqlx::query("delete from device_flows where id = ?")
                    .bind(id)
                    .execute(pool)
                    .await?;
            }
            Self::Redis(pool) => {
                let _: () = pool
                    .del(vec![key::flow(id), key::lease(id), key::tokens(id)])
                    .await?;
                let _: () = pool.srem(key::PENDING, id).await?;
            }
        }
        Ok(())
    }

    /// Takes or renews the lease of a pending flow for `owner`: succeeds when the lease is free,
    /// lapsed, or already `owner`'s.
    pub async fn lease(&self, id: &str, owner: &str) -> Result<bool> {
        let now = now_ms();
        let until = now + LEASE.as_millis() as u64;
        match self {
            Self::Memory(map) => {
                let mut map = Self::mem(map);
                let Some(flow) = map.get_mut(id) else {
                    return Ok(false);
                };
                let free = flow
                    .lease
                    .as_ref()
                    .is_none_or(|(o, u)| o == owner || *u < now);
                if free && flow.record.status == FlowStatus::Pending {
                    flow.lease = Some((owner.to_owned(), until));
                    return Ok(true);
                }
                Ok(false)
            }
            Self::Sqlite(pool) => {
                let done = sqlx::query(
                    "update device_flows set lease_owner = ?, lease_until_ms = ?
                     where id = ? and status = 'pending'
                       and (lease_owner is null or lease_owner = ? or lease_until_ms < ?)",
                )
                .bind(owner)
                .bind(until as i64)
                .bind(id)
                .bind(owner)
                .bind(now as i64)
                .execute(pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }
            Self::Redis(pool) => {
                // SET NX PX, or a renewal by the holder: one script, atomic.
                let taken: i64 = pool
                    .eval(
                        "if redis.call('sismember', KEYS[2], ARGV[3]) == 0 then return 0 end
                         local holder = redis.call('get', KEYS[1])
                         if holder and holder ~= ARGV[1] then return 0 end
                         redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
                         return 1",
                        vec![key::lease(id), key::PENDING.to_owned()],
                        vec![
                            owner.to_owned(),
                            LEASE.as_millis().to_string(),
                            id.to_owned(),
                        ],
                    )
                    .await?;
                Ok(taken == 1)
            }
        }
    }

    /// Extends the leases `owner` holds on `ids` (its running pollers), in one statement where
    /// the backend allows. Run every [`LEASE_RENEW`] by the app, so pollers themselves only
    /// sleep and check.
    pub async fn renew_leases(&self, owner: &str, ids: &[String]) -> Result<()> {
        let now = now_ms();
        let until = now + LEASE.as_millis() as u64;
        match self {
            Self::Memory(map) => {
                let mut map = Self::mem(map);
                for id in ids {
                    if let Some(flow) = map.get_mut(id)
                        && let Some((holder, lease_until)) = &mut flow.lease
                        && holder == owner
                        && *lease_until >= now
                    {
                        *lease_until = until;
                    }
                }
            }
            Self::Sqlite(pool) => {
                sqlx::query(
                    "update device_flows set lease_until_ms = ?
                     where lease_owner = ? and status = 'pending' and lease_until_ms >= ?",
                )
                .bind(until as i64)
                .bind(owner)
                .bind(now as i64)
                .execute(pool)
                .await?;
            }
            Self::Redis(pool) => {
                for id in ids {
                    let _: i64 = pool
                        .eval(
                            "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0",
                            vec![key::lease(id)],
                            vec![owner.to_owned(), LEASE.as_millis().to_string()],
                        )
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Whether `owner` still holds the lease of this pending flow (a read, no write).
    pub async fn holds(&self, id: &str, owner: &str) -> Result<bool> {
        let now = now_ms();
        match self {
            Self::Memory(map) => Ok(Self::mem(map).get(id).is_some_and(|f| {
                f.record.status == FlowStatus::Pending
                    && f.lease
                        .as_ref()
                        .is_some_and(|(o, until)| o == owner && *until >= now)
            })),
            Self::Sqlite(pool) => {
                let row = sqlx::query(
                    "select 1 from device_flows
                     where id = ? and status = 'pending' and lease_owner = ? and lease_until_ms >= ?",
                )
                .bind(id)
                .bind(owner)
                .bind(now as i64)
                .fetch_optional(pool)
                .await?;
                Ok(row.is_some())
            }
            Self::Redis(pool) => {
                let holder: Option<String> = pool.get(key::lease(id)).await?;
                let pending: bool = pool.sismember(key::PENDING, id).await?;
                Ok(pending && holder.as_deref() == Some(owner))
            }
        }
    }

    /// Pending, unexpired flows whose lease has lapsed: nobody polls them.
    pub async fn orphans(&self) -> Result<Vec<String>> {
        let now = now_ms();
        match self {
            Self::Memory(map) => Ok(Self::mem(map)
                .iter()
                .filter(|(_, f)| {
                    f.record.status == FlowStatus::Pending
                        && f.record.expires_at_ms > now
                        && f.lease.as_ref().is_none_or(|(_, until)| *until < now)
                })
                .map(|(id, _)| id.clone())
                .collect()),
            Self::Sqlite(pool) => {
                let rows = sqlx::query(
                    "select id from device_flows
                     where status = 'pending' and expires_at_ms > ? and lease_until_ms < ?
                     limit 1000",
                )
                .bind(now as i64)
                .bind(now as i64)
                .fetch_all(pool)
                .await?;
                Ok(rows.iter().map(|r| r.get::<String, _>(0)).collect())
            }
            Self::Redis(pool) => {
                let ids: Vec<String> = pool.smembers(key::PENDING).await?;
                let mut orphans = Vec::new();
                for id in ids.into_iter().take(1000) {
                    let held: bool = pool.exists(key::lease(&id)).await?;
                    if !held {
                        orphans.push(id);
                    }
                }
                Ok(orphans)
            }
        }
    }

    /// Pending flows, across every instance sharing the store.
    pub async fn count_pending(&self) -> Result<usize> {
        let now = now_ms();
        match self {
            Self::Memory(map) => Ok(Self::mem(map)
                .values()
                .filter(|f| f.record.status == FlowStatus::Pending && f.record.expires_at_ms > now)
                .count()),
            Self::Sqlite(pool) => {
                let row = sqlx::query("select count(*) from device_flows where status = 'pending' and expires_at_ms > ?")
                    .bind(now as i64)
                    .fetch_one(pool)
                    .await?;
                Ok(row.get::<i64, _>(0).max(0) as usize)
            }
            Self::Redis(pool) => Ok(pool.scard::<i64, _>(key::PENDING).await?.max(0) as usize),
        }
    }

    /// Number of flows recorded (any state; Redis: pending ones).
    pub async fn len(&self) -> Result<usize> {
        match self {
            Self::Memory(map) => Ok(Self::mem(map).len()),
            Self::Sqlite(pool) => {
                let row = sqlx::query("select count(*) from device_flows")
                    .fetch_one(pool)
                    .await?;
                Ok(row.get::<i64, _>(0).max(0) as usize)
            }
            Self::Redis(_) => self.count_pending().await,
        }
    }

    /// Forgets flows whose code expired more than `grace` ago (abandoned pages, unclaimed grants).
    pub async fn purge(&self, grace: Duration) -> Result<usize> {
        let cutoff = now_ms().saturating_sub(grace.as_millis() as u64);
        match self {
            Self::Memory(map) => {
                let mut map = Self::mem(map);
                let before = map.len();
                map.retain(|_, f| f.record.expires_at_ms >= cutoff);
                Ok(before - map.len())
            }
            Self::Sqlite(pool) => {
                let done = sqlx::query("delete from device_flows where expires_at_ms < ?")
                    .bind(cutoff as i64)
                    .execute(pool)
                    .await?;
                Ok(done.rows_affected() as usize)
            }
            Self::Redis(pool) => {
                // Records expire by themselves (PX); drop pending entries whose record is gone.
                let ids: Vec<String> = pool.smembers(key::PENDING).await?;
                let mut purged = 0;
                for id in ids {
                    let alive: bool = pool.exists(key::flow(&id)).await?;
                    if !alive {
                        let _: () = pool.srem(key::PENDING, &id).await?;
                        purged += 1;
                    }
                }
                Ok(purged)
            }
        }
    }

    /// Across instances (Redis), one holder of `name` at a time: waits up to [`REFRESH_LOCK`].
    /// `None` for memory and SQLite, which one process owns (the in-process lock suffices).
    pub async fn shared_lock(&self, name: &str, owner: &str) -> Result<Option<SharedLock>> {
        let Self::Redis(pool) = self else {
            return Ok(None);
        };
        let key = key::lock(name);
        let until = tokio::time::Instant::now() + REFRESH_LOCK;
        loop {
            let set: Option<String> = pool
                .set(
                    &key,
                    owner,
                    Some(Expiration::PX(REFRESH_LOCK.as_millis() as i64)),
                    Some(SetOptions::NX),
                    false,
                )
                .await?;
            if set.is_some() {
                return Ok(Some(SharedLock {
                    pool: pool.clone(),
                    key,
                    owner: owner.to_owned(),
                }));
            }
            if tokio::time::Instant::now() >= until {
                return Err(StoreError("another instance holds the refresh lock".into()));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// How long Redis keeps a flow's keys: until its code expired, plus the grace for the page.
fn keep_ms(record: &FlowRecord) -> i64 {
    let grace = 10 * 60 * 1000;
    (record.expires_at_ms.saturating_sub(now_ms()) + grace) as i64
}
