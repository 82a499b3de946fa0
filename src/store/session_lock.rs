//! `SessionLocks`: one token refresh, and one device sign-in start or claim, at a time per
//! session: an async mutex in this process and, with Redis, a lock every instance shares (SET NX
//! PX), taken as one guard. Both are keyed by the session's [`SessionKey`] (a hash), never its
//! id: a Redis key name reaches `MONITOR`, the AOF, replicas and snapshots.

use super::StoreResult;
use super::redis::{RedisFlows, RedisLock};
use crate::crypto::SessionKey;
use crate::secret::random_token;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

type LocalMap = Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>;

/// What a session holds the lock for: each is a lock of its own.
#[derive(Clone, Copy, Debug)]
pub enum Lock {
    /// A token refresh.
    Refresh,
    /// Starting or claiming the session's device flow.
    Flow,
}

impl Lock {
    /// The lock's name: `refresh:KEY` or `flow:KEY` (a Redis key under `webex-oauth:lock:`).
    fn name(self, session: &SessionKey) -> String {
        let kind = match self {
            Self::Refresh => "refresh",
            Self::Flow => "flow",
        };
        format!("{kind}:{}", session.as_str())
    }
}

/// Cloning is cheap; clones share the locks.
#[derive(Clone)]
pub struct SessionLocks {
    /// One mutex per lock name held or waited for; an entry goes with its last holder.
    local: LocalMap,
    /// Redis: other instances may refresh the same session.
    shared: Option<RedisFlows>,
}

/// Held while a session refreshes (or starts or claims a device flow); dropping it lets the
/// next request of that session in.
pub struct SessionGuard {
    local: LocalMap,
    key: String,
    _local: tokio::sync::OwnedMutexGuard<()>,
    _shared: Option<RedisLock>,
}

impl SessionLocks {
    /// With Redis, the in-process lock then the shared one; else (one process owns the store)
    /// the in-process lock alone.
    pub(super) fn new(shared: Option<RedisFlows>) -> Self {
        let local = LocalMap::default();
        Self { local, shared }
    }

    /// Waits for this session's turn at `lock` (in this process, then across instances).
    pub async fn lock(&self, lock: Lock, session: &SessionKey) -> StoreResult<SessionGuard> {
        let name = lock.name(session);
        let mutex = {
            let mut map = self.local.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(name.clone()).or_default().clone()
        };
        let mut guard = SessionGuard {
            local: self.local.clone(),
            key: name,
            _local: mutex.lock_owned().await,
            _shared: None,
        };
        // On failure the guard drops, which forgets the map entry as usual.
        if let Some(redis) = &self.shared {
            guard._shared = Some(redis.lock(&guard.key, random_token().expose()).await?);
        }
        Ok(guard)
    }

    /// How many locks are held (or waited for) in this process now.
    #[cfg(any(test, feature = "test-support"))]
    pub fn len(&self) -> usize {
        self.local.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let mut map = self.local.lock().unwrap_or_else(|e| e.into_inner());
        // Two owners left (the map and our guard): nobody else is waiting, forget the entry.
        // Every clone is taken under this same map lock, so the count cannot grow meanwhile.
        if map
            .get(&self.key)
            .is_some_and(|m| Arc::strong_count(m) <= 2)
        {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn session_locks_serialise_one_key_and_clean_up() {
        let locks = SessionLocks::new(None);
        let (s1, s2) = (SessionKey::of("s1"), SessionKey::of("s2"));
        let first = locks.lock(Lock::Refresh, &s1).await.unwrap();
        let other = locks.lock(Lock::Refresh, &s2).await.unwrap(); // another session is not blocked
        let flow = locks.lock(Lock::Flow, &s1).await.unwrap(); // nor another lock of the same one
        assert_eq!(locks.len(), 3);
        let names: Vec<String> = locks.local.lock().unwrap().keys().cloned().collect();
        let hashed = names.iter().all(|k| !k.contains("s1") && !k.contains("s2"));
        assert!(hashed, "the map holds hashes, not session ids: {names:?}");
        let waiter = {
            let locks = locks.clone();
            tokio::spawn(async move {
                let _g = locks.lock(Lock::Refresh, &s1).await.unwrap();
            })
        };
        drop(other);
        drop(flow);
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(locks.len(), 0);
    }
}
