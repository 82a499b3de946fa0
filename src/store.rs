//! Where device flows live beside the sessions: memory, or the SQLite file (`SESSION_STORE`).
//!
//! A flow is plain data ([`FlowRecord`], JSON in SQLite) keyed by its flow id, plus a lease (which
//! instance polls it, until when) and, once granted, the tokens, which are taken exactly once.
//! Every write a poller makes is conditional on still holding the lease, so a poller that lost
//! its lease (it stalled, another instance took the flow over) cannot overwrite newer state.

use crate::device_flows::{FlowRecord, FlowStatus};
use crate::tokens::TokenSet;
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a lease lasts without renewal. A poller renews it every [`LEASE_RENEW`].
pub const LEASE: Duration = Duration::from_secs(10);
pub const LEASE_RENEW: Duration = Duration::from_secs(3);

#[derive(Clone)]
pub enum FlowStore {
    Memory(Arc<Mutex<HashMap<String, MemoryFlow>>>),
    Sqlite(SqlitePool),
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

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
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
        }
    }

    /// Number of flows recorded (any state).
    pub async fn len(&self) -> Result<usize> {
        match self {
            Self::Memory(map) => Ok(Self::mem(map).len()),
            Self::Sqlite(pool) => {
                let row = sqlx::query("select count(*) from device_flows")
                    .fetch_one(pool)
                    .await?;
                Ok(row.get::<i64, _>(0).max(0) as usize)
            }
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
        }
    }
}
