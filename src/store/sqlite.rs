//! Device flows in the SQLite file (`SESSION_STORE=sqlite://PATH`), beside the sessions, which
//! one instance owns: the flow record and tokens are sealed, the columns the queries filter on
//! (status, instants, lease) are not. Also the file: its tables, migration and WAL checkpoints.

use super::files::{create_private_dir, create_private_file};
use super::{
    FlowData, StoreError, StoreResult, lease_until, millis, open_json, seal_json,
    signed_ms as sql_ms,
};
use crate::clock::unix_now_ms;
use crate::crypto::{Cipher, Kind};
use crate::tokens::TokenSet;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::path::Path;
use std::time::Duration;

#[derive(Clone)]
pub struct SqliteFlows {
    pub pool: SqlitePool,
    pub cipher: Cipher,
}

/// `mark_seen` writes at most this often per flow.
const SEEN_RESOLUTION_MS: u64 = 5_000;
/// Bumped when the file's layout changes; see [`migrate`].
const SCHEMA_VERSION: i64 = 3;

/// The tables and indexes [`open`] creates when missing. The pending-flow count (every sign-in)
/// and the orphan search (every 3 s) read only `device_flows_pending`'s columns: without it they
/// would scan every row and its large data column.
const SCHEMA: &str = "
    create table if not exists sessions (
        id text primary key not null,
        data blob not null,
        expires_at_ms integer not null
    );
    create index if not exists sessions_expiry on sessions (expires_at_ms);
    create table if not exists device_flows (
        id text primary key not null,
        data text not null,
        status text not null,
        expires_at_ms integer not null,
        lease_owner text,
        lease_until_ms integer not null default 0,
        tokens text,
        seen_at_ms integer not null default 0
    );
    create index if not exists device_flows_pending
        on device_flows (status, expires_at_ms, lease_until_ms);
";

/// Opens (creating it, mode 0600, and its folder, mode 0700) the SQLite file, and the tables.
pub async fn open(path: &Path) -> StoreResult<SqlitePool> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir)
            .map_err(|e| StoreError::Open(format!("cannot create {}: {e}", dir.display())))?;
    }
    create_private_file(path).map_err(StoreError::Open)?;
    let cannot = |what: &str, e: sqlx::Error| {
        StoreError::Open(format!("cannot {what} {}: {e}", path.display()))
    };
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // In WAL mode, NORMAL keeps the database consistent after a crash and skips an fsync
        // per commit (the last commits may be lost on power failure, not corrupted).
        .synchronous(SqliteSynchronous::Normal)
        // Deleted rows are overwritten with zeros in the database; [`checkpoint`] after each
        // delete then empties the WAL, which still held them: a sign-out leaves no bytes behind.
        .pragma("secure_delete", "on")
        .pragma("journal_size_limit", WAL_SIZE_LIMIT.to_string())
        .busy_timeout(BUSY_TIMEOUT);
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .map_err(|e| cannot("open", e))?;
    migrate(&pool, path).await?;
    let schema = sqlx::raw_sql(SCHEMA).execute(&pool).await;
    schema.map_err(|e| cannot("create the tables in", e))?;
    Ok(pool)
}

/// What the WAL file is cut back to whenever it starts over (`journal_size_limit`): without a
/// limit SQLite keeps it at the largest size it ever reached (450 MB after a `/login` flood).
pub const WAL_SIZE_LIMIT: u64 = 8 * 1024 * 1024;

/// How long a statement waits for a lock another connection holds.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a checkpoint waits for readers of older pages: while it waits it holds back every
/// writer, so only briefly (ours read for a millisecond or so).
const CHECKPOINT_WAIT_MS: u64 = 100;

/// `wal_checkpoint(TRUNCATE)`: the WAL copied into the database and emptied. Run after a delete
/// is committed: `secure_delete` zeroes the record in the database, but the WAL holds the old
/// pages until a checkpoint. One held up past [`CHECKPOINT_WAIT_MS`] by readers, or failing, is
/// logged and left to the next (the sessions' sweep runs one every 5 s), never the caller's error.
pub async fn checkpoint(pool: &SqlitePool) {
    match checkpoint_briefly(pool).await {
        Ok((0, _, _)) => {}
        Ok(_) => tracing::info!("the SQLite WAL checkpoint waits for readers; retried later"),
        Err(err) => {
            tracing::warn!(error = %StoreError::from(err), "cannot checkpoint the SQLite WAL")
        }
    }
}

/// The TRUNCATE checkpoint, its connection's busy timeout cut to [`CHECKPOINT_WAIT_MS`] for it
/// (and set back after; a connection where that fails is closed, not reused).
async fn checkpoint_briefly(pool: &SqlitePool) -> Result<(i64, i64, i64), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    sqlx::query(&format!("pragma busy_timeout = {CHECKPOINT_WAIT_MS}"))
        .execute(&mut *conn)
        .await?;
    let done = sqlx::query_as("pragma wal_checkpoint(truncate)")
        .fetch_one(&mut *conn)
        .await;
    let restore = format!("pragma busy_timeout = {}", BUSY_TIMEOUT.as_millis());
    if sqlx::query(&restore).execute(&mut *conn).await.is_err() {
        let _ = conn.close().await;
    }
    done
}

/// The periodic checkpoint: a passive one, which never waits, then, when it copied every page (no
/// reader still needs the WAL's), [`checkpoint`] to empty the file; writers are never blocked.
pub async fn checkpoint_when_done(pool: &SqlitePool) {
    let passive: Result<(i64, i64, i64), _> = sqlx::query_as("pragma wal_checkpoint(passive)")
        .fetch_one(pool)
        .await;
    match passive {
        Ok((0, log, copied)) if log > 0 && copied == log => checkpoint(pool).await,
        Ok(_) => {}
        Err(err) => {
            tracing::warn!(error = %StoreError::from(err), "cannot checkpoint the SQLite WAL")
        }
    }
}

/// Version 3 added `device_flows.seen_at_ms` (flows are short-lived: dropped, not altered).
/// Files from before version 2 kept sessions (tower-sessions' table) and flows in clear, keyed
/// by the cookie value: drop them (their users sign in again) and reclaim the pages.
async fn migrate(pool: &SqlitePool, path: &Path) -> StoreResult<()> {
    let version: i64 = sqlx::query_scalar("pragma user_version")
        .fetch_one(pool)
        .await?;
    if version >= SCHEMA_VERSION {
        return Ok(());
    }
    let old: Option<String> = sqlx::query_scalar(
        "select name from sqlite_master where name in ('tower_sessions', 'device_flows') limit 1",
    )
    .fetch_optional(pool)
    .await?;
    if old.is_some() {
        tracing::warn!(
            file = %path.display(),
            "dropping sessions and device flows stored in clear by an older version; users sign in again"
        );
        let drop = "drop table if exists tower_sessions; drop table if exists device_flows; vacuum";
        sqlx::raw_sql(drop).execute(pool).await?;
        // The vacuumed pages are in the WAL; until a checkpoint the file keeps the old ones.
        checkpoint(pool).await;
    }
    sqlx::query(&format!("pragma user_version = {SCHEMA_VERSION}"))
        .execute(pool)
        .await?;
    Ok(())
}

impl SqliteFlows {
    pub async fn insert<R: FlowData>(&self, id: &str, record: &R, owner: &str) -> StoreResult<()> {
        sqlx::query(
            "insert into device_flows (id, data, status, expires_at_ms, lease_owner, lease_until_ms, seen_at_ms)
             values (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(seal_json(&self.cipher, Kind::Flow, id, record)?)
        .bind(record.status())
        .bind(sql_ms(record.expires_at_ms()))
        .bind(owner)
        .bind(sql_ms(lease_until(unix_now_ms())))
        .bind(sql_ms(unix_now_ms()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn get<R: FlowData>(&self, id: &str) -> StoreResult<Option<R>> {
        let sealed = sqlx::query_scalar("select data from device_flows where id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        open_json(&self.cipher, Kind::Flow, id, sealed)
    }

    pub async fn update<R: FlowData>(
        &self,
        id: &str,
        record: &R,
        tokens: Option<&TokenSet>,
        owner: &str,
    ) -> StoreResult<bool> {
        let tokens = tokens
            .map(|t| seal_json(&self.cipher, Kind::FlowTokens, id, t))
            .transpose()?;
        let done = sqlx::query(
            "update device_flows set data = ?, status = ?, tokens = coalesce(?, tokens)
             where id = ? and lease_owner = ? and lease_until_ms >= ?",
        )
        .bind(seal_json(&self.cipher, Kind::Flow, id, record)?)
        .bind(record.status())
        .bind(tokens)
        .bind(id)
        .bind(owner)
        .bind(sql_ms(unix_now_ms()))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn take_tokens(&self, id: &str) -> StoreResult<Option<TokenSet>> {
        let sealed = sqlx::query_scalar(
            "delete from device_flows where id = ? and tokens is not null returning tokens",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        // The tokens move to the session; their sealed copy leaves the WAL too.
        checkpoint(&self.pool).await;
        open_json(&self.cipher, Kind::FlowTokens, id, sealed)
    }

    pub async fn mark_seen(&self, id: &str) -> StoreResult<()> {
        let now = unix_now_ms();
        sqlx::query("update device_flows set seen_at_ms = ? where id = ? and seen_at_ms < ?")
            .bind(sql_ms(now))
            .bind(id)
            .bind(sql_ms(now.saturating_sub(SEEN_RESOLUTION_MS)))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete(&self, id: &str) -> StoreResult<()> {
        sqlx::query("delete from device_flows where id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        checkpoint(&self.pool).await;
        Ok(())
    }

    pub async fn lease(&self, id: &str, owner: &str) -> StoreResult<bool> {
        let now = unix_now_ms();
        let done = sqlx::query(
            "update device_flows set lease_owner = ?1, lease_until_ms = ?2
             where id = ?3 and status = 'pending'
               and (lease_owner is null or lease_owner = ?1 or lease_until_ms < ?4)",
        )
        .bind(owner)
        .bind(sql_ms(lease_until(now)))
        .bind(id)
        .bind(sql_ms(now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// One statement for all of `owner`'s leases (so `ids` is not needed).
    pub async fn renew_leases(&self, owner: &str, _ids: &[String]) -> StoreResult<()> {
        let now = unix_now_ms();
        sqlx::query(
            "update device_flows set lease_until_ms = ?
             where lease_owner = ? and status = 'pending' and lease_until_ms >= ?",
        )
        .bind(sql_ms(lease_until(now)))
        .bind(owner)
        .bind(sql_ms(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One statement: `owner`'s leases lapse (0 is before any `now`).
    pub async fn release_leases(&self, owner: &str) -> StoreResult<usize> {
        let done = sqlx::query(
            "update device_flows set lease_until_ms = 0
             where lease_owner = ? and lease_until_ms > 0",
        )
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
    }

    pub async fn holds(&self, id: &str, owner: &str) -> StoreResult<Option<u64>> {
        let seen: Option<i64> = sqlx::query_scalar(
            "select seen_at_ms from device_flows
             where id = ? and status = 'pending' and lease_owner = ? and lease_until_ms >= ?",
        )
        .bind(id)
        .bind(owner)
        .bind(sql_ms(unix_now_ms()))
        .fetch_optional(&self.pool)
        .await?;
        Ok(seen.map(|s| u64::try_from(s).unwrap_or(0)))
    }

    pub async fn orphans(&self) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "select id from device_flows
             where status = 'pending' and expires_at_ms > ?1 and lease_until_ms < ?1
             limit 1000",
        )
        .bind(sql_ms(unix_now_ms()))
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn count_pending(&self) -> StoreResult<usize> {
        let count: i64 = sqlx::query_scalar(
            "select count(*) from device_flows where status = 'pending' and expires_at_ms > ?",
        )
        .bind(sql_ms(unix_now_ms()))
        .fetch_one(&self.pool)
        .await?;
        Ok(usize::try_from(count).unwrap_or(0))
    }

    #[cfg(any(test, feature = "test-support"))]
    pub async fn len(&self) -> StoreResult<usize> {
        let count: i64 = sqlx::query_scalar("select count(*) from device_flows")
            .fetch_one(&self.pool)
            .await?;
        Ok(usize::try_from(count).unwrap_or(0))
    }

    pub async fn purge(&self, grace: Duration) -> StoreResult<usize> {
        let cutoff = unix_now_ms().saturating_sub(millis(grace));
        let done = sqlx::query("delete from device_flows where expires_at_ms < ?")
            .bind(sql_ms(cutoff))
            .execute(&self.pool)
            .await?;
        Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
    }
}
