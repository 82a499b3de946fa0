//! Device flows and refresh locks in Redis (`SESSION_STORE=redis://…` or `rediss://…`), shared
//! by several instances. Every check-and-write is one Lua script, so it is atomic. Flow records
//! and tokens are sealed.

use super::{FlowData, LEASE, StoreError, StoreResult, millis, open_json, seal_json, signed_ms};
use crate::clock::unix_now_ms;
use crate::crypto::{Cipher, Kind};
use crate::tokens::TokenSet;
use fred::prelude::{
    Builder, ClientLike, Config as RedisConfig, Expiration, KeysInterface, LuaInterface,
    Pool as RedisPool, ReconnectPolicy, SetOptions, SetsInterface,
};
use std::time::Duration;

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
    pub fn seen(id: &str) -> String {
        format!("webex-oauth:flow-seen:{id}")
    }
    /// Every key of flow `id` but its place in [`PENDING`].
    pub fn all(id: &str) -> Vec<String> {
        vec![flow(id), lease(id), tokens(id), seen(id)]
    }
    pub fn lock(name: &str) -> String {
        format!("webex-oauth:lock:{name}")
    }
}

/// How long a session's lock is held at most, should its holder die mid-refresh; a request
/// waits at most this long for another instance's refresh.
const REFRESH_LOCK: Duration = Duration::from_secs(10);
/// How long Redis keeps a flow's keys: until its code expired, plus the grace for the page.
const KEEP_AFTER_EXPIRY_MS: u64 = 10 * 60 * 1000;
/// How long a flow's seen key lives: longer than any flow (its lifetime is clamped to
/// `MAX_EXPIRES_IN`), so a missing key means the flow is gone too.
const SEEN_KEY_MS: u64 = crate::webex::device::MAX_EXPIRES_IN * 1000 + KEEP_AFTER_EXPIRY_MS;

/// Connects to `redis://HOST:PORT[/DB]`. Commands time out after 5 s (a page then says the
/// store is unavailable) and the pool reconnects for ever, so the app recovers when Redis does.
pub async fn open(url: &str) -> StoreResult<RedisPool> {
    // Never the URL itself in a message: it may carry the password.
    let shown = redacted(url);
    let config = RedisConfig::from_url(url)
        .map_err(|_| StoreError::Open(format!("{shown} is not a Redis URL")))?;
    let failed =
        |what: &str, kind: &str| StoreError::Open(format!("{what} Redis at {shown}{kind}"));
    let pool = Builder::from_config(config)
        .with_connection_config(|c| c.connection_timeout = Duration::from_secs(5))
        .with_performance_config(|c| c.default_command_timeout = Duration::from_secs(5))
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
        .build_pool(4)
        .map_err(|e| failed("cannot set up", &format!(": {}", e.kind().to_str())))?;
    tokio::time::timeout(Duration::from_secs(5), pool.init())
        .await
        .map_err(|_| failed("cannot reach", ""))?
        .map_err(|e| failed("cannot reach", &format!(" ({})", e.kind().to_str())))?;
    Ok(pool)
}

/// `scheme://host:port/db`, without user name or password.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Err(_) => "the configured Redis URL".to_owned(),
    }
}

#[derive(Clone)]
pub struct RedisFlows {
    pool: RedisPool,
    cipher: Cipher,
}

/// Deletes each of `KEYS` whose value is `ARGV[1]` (its holder), leaving another holder's alone;
/// how many it deleted.
const DELETE_HELD: &str = "local deleted = 0
    for _, key in ipairs(KEYS) do
      if redis.call('get', key) == ARGV[1] then
        redis.call('del', key)
        deleted = deleted + 1
      end
    end
    return deleted";

/// A lock held in Redis, released when dropped (best effort; it also expires by itself).
pub struct RedisLock {
    pool: RedisPool,
    key: String,
    owner: String,
}

impl Drop for RedisLock {
    fn drop(&mut self) {
        let (pool, key, owner) = (self.pool.clone(), self.key.clone(), self.owner.clone());
        tokio::spawn(async move {
            let _: Result<i64, _> = pool.eval(DELETE_HELD, vec![key], vec![owner]).await;
        });
    }
}

fn keep_ms(record: &impl FlowData) -> i64 {
    let left = record.expires_at_ms().saturating_sub(unix_now_ms());
    signed_ms(left.saturating_add(KEEP_AFTER_EXPIRY_MS))
}

fn lease_ms() -> i64 {
    signed_ms(millis(LEASE))
}

impl RedisFlows {
    pub fn new(pool: RedisPool, cipher: Cipher) -> Self {
        Self { pool, cipher }
    }

    /// `SET key value PX ms`, under `only` (`NX`) if given; whether it was set.
    async fn set_px(
        &self,
        key: &str,
        value: &str,
        ms: i64,
        only: Option<SetOptions>,
    ) -> StoreResult<bool> {
        let px = Some(Expiration::PX(ms));
        let set: Option<String> = self.pool.set(key, value, px, only, false).await?;
        Ok(set.is_some())
    }

    pub async fn insert<R: FlowData>(&self, id: &str, record: &R, owner: &str) -> StoreResult<()> {
        let sealed = seal_json(&self.cipher, Kind::Flow, id, record)?;
        self.set_px(&key::flow(id), &sealed, keep_ms(record), None)
            .await?;
        self.set_px(&key::lease(id), owner, lease_ms(), None)
            .await?;
        let _: () = self.pool.sadd(key::PENDING, id).await?;
        self.mark_seen(id).await
    }

    /// The seen key expires with the lease's flow; one SET, no read first.
    pub async fn mark_seen(&self, id: &str) -> StoreResult<()> {
        let (now, keep) = (unix_now_ms().to_string(), signed_ms(SEEN_KEY_MS));
        self.set_px(&key::seen(id), &now, keep, None).await?;
        Ok(())
    }

    pub async fn get<R: FlowData>(&self, id: &str) -> StoreResult<Option<R>> {
        let sealed: Option<String> = self.pool.get(key::flow(id)).await?;
        open_json(&self.cipher, Kind::Flow, id, sealed)
    }

    pub async fn update<R: FlowData>(
        &self,
        id: &str,
        record: &R,
        tokens: Option<&TokenSet>,
        owner: &str,
    ) -> StoreResult<bool> {
        let written: i64 = self
            .pool
            .eval(
                "if redis.call('get', KEYS[2]) ~= ARGV[1] or redis.call('exists', KEYS[1]) == 0 then return 0 end
                 redis.call('set', KEYS[1], ARGV[2], 'KEEPTTL')
                 if ARGV[3] ~= '' then redis.call('set', KEYS[3], ARGV[3], 'PX', ARGV[5]) end
                 if ARGV[4] ~= 'pending' then redis.call('srem', KEYS[4], ARGV[6]) end
                 return 1",
                vec![
                    key::flow(id),
                    key::lease(id),
                    key::tokens(id),
                    key::PENDING.to_owned(),
                ],
                vec![
                    owner.to_owned(),
                    seal_json(&self.cipher, Kind::Flow, id, record)?,
                    tokens.map(|t| seal_json(&self.cipher, Kind::FlowTokens, id, t)).transpose()?.unwrap_or_default(),
                    record.status().to_owned(),
                    keep_ms(record).to_string(),
                    id.to_owned(),
                ],
            )
            .await?;
        Ok(written == 1)
    }

    pub async fn take_tokens(&self, id: &str) -> StoreResult<Option<TokenSet>> {
        let json: Option<String> = self
            .pool
            .eval(
                "local t = redis.call('get', KEYS[1])
                 if t then redis.call('del', KEYS[1], KEYS[2], KEYS[3]) end
                 return t",
                vec![key::tokens(id), key::flow(id), key::lease(id)],
                Vec::<String>::new(),
            )
            .await?;
        open_json(&self.cipher, Kind::FlowTokens, id, json)
    }

    pub async fn delete(&self, id: &str) -> StoreResult<()> {
        let _: () = self.pool.del(key::all(id)).await?;
        let _: () = self.pool.srem(key::PENDING, id).await?;
        Ok(())
    }

    /// SET NX PX, or a renewal by the holder: one script, atomic.
    pub async fn lease(&self, id: &str, owner: &str) -> StoreResult<bool> {
        let taken: i64 = self
            .pool
            .eval(
                "if redis.call('sismember', KEYS[2], ARGV[3]) == 0 then return 0 end
                 local holder = redis.call('get', KEYS[1])
                 if holder and holder ~= ARGV[1] then return 0 end
                 redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
                 return 1",
                vec![key::lease(id), key::PENDING.to_owned()],
                vec![owner.to_owned(), lease_ms().to_string(), id.to_owned()],
            )
            .await?;
        Ok(taken == 1)
    }

    pub async fn renew_leases(&self, owner: &str, ids: &[String]) -> StoreResult<()> {
        for id in ids {
            let _: i64 = self
                .pool
                .eval(
                    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0",
                    vec![key::lease(id)],
                    vec![owner.to_owned(), lease_ms().to_string()],
                )
                .await?;
        }
        Ok(())
    }

    /// Deletes the lease keys of pending flows whose value is `owner`, in one script per batch
    /// ([`DELETE_HELD`]), so a lease another instance took in between is left alone.
    pub async fn release_leases(&self, owner: &str) -> StoreResult<usize> {
        let ids: Vec<String> = self.pool.smembers(key::PENDING).await?;
        let mut released = 0usize;
        for batch in ids.chunks(100) {
            let leases: Vec<String> = batch.iter().map(|id| key::lease(id)).collect();
            let count: usize = self.pool.eval(DELETE_HELD, leases, owner).await?;
            released = released.saturating_add(count);
        }
        Ok(released)
    }

    pub async fn holds(&self, id: &str, owner: &str) -> StoreResult<Option<u64>> {
        let holder: Option<String> = self.pool.get(key::lease(id)).await?;
        let pending: bool = self.pool.sismember(key::PENDING, id).await?;
        if !pending || holder.as_deref() != Some(owner) {
            return Ok(None);
        }
        // A seen key that expired (unwatched for longer than it lives) reads as never seen.
        let seen: Option<String> = self.pool.get(key::seen(id)).await?;
        Ok(Some(seen.and_then(|s| s.parse().ok()).unwrap_or(0)))
    }

    pub async fn orphans(&self) -> StoreResult<Vec<String>> {
        let ids: Vec<String> = self.pool.smembers(key::PENDING).await?;
        let mut orphans = Vec::new();
        for id in ids.into_iter().take(1000) {
            let held: bool = self.pool.exists(key::lease(&id)).await?;
            if !held {
                orphans.push(id);
            }
        }
        Ok(orphans)
    }

    pub async fn count_pending(&self) -> StoreResult<usize> {
        Ok(self.pool.scard(key::PENDING).await?)
    }

    /// Only pending flows are counted (the others expire by themselves).
    #[cfg(any(test, feature = "test-support"))]
    pub async fn len(&self) -> StoreResult<usize> {
        self.count_pending().await
    }

    /// Records expire by themselves (PX, [`KEEP_AFTER_EXPIRY_MS`] after their code): this drops
    /// pending entries whose record is gone.
    pub async fn purge(&self, _grace: Duration) -> StoreResult<usize> {
        let ids: Vec<String> = self.pool.smembers(key::PENDING).await?;
        let mut purged = 0usize;
        for id in ids {
            let alive: bool = self.pool.exists(key::flow(&id)).await?;
            if !alive {
                let _: () = self.pool.srem(key::PENDING, &id).await?;
                purged = purged.saturating_add(1);
            }
        }
        Ok(purged)
    }

    /// One holder of `name` across instances at a time: waits up to [`REFRESH_LOCK`].
    pub async fn lock(&self, name: &str, owner: &str) -> StoreResult<RedisLock> {
        let key = key::lock(name);
        let until = tokio::time::Instant::now() + REFRESH_LOCK;
        let px = signed_ms(millis(REFRESH_LOCK));
        loop {
            if self.set_px(&key, owner, px, Some(SetOptions::NX)).await? {
                return Ok(RedisLock {
                    pool: self.pool.clone(),
                    key,
                    owner: owner.to_owned(),
                });
            }
            if tokio::time::Instant::now() >= until {
                return Err(StoreError::LockBusy);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}
