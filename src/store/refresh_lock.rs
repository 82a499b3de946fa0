//! One token refresh at a time per session: an async mutex per session in this process, and,
//! with Redis, a lock shared by every instance (SET NX PX), taken together as one guard.

use super::StoreResult;
use super::redis::{RedisFlows, RedisLock};
use crate::secret::random_token;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

type LocalMap = Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>;

/// Cloning is cheap; clones share the locks.
#[derive(Clone)]
pub struct RefreshLocks {
    /// One mutex per session id that is refreshing or waiting to; entries go away when the
    /// last holder is done, so the map only holds sessions refreshing right now.
    local: LocalMap,
    /// Redis: other instances may refresh the same session.
    shared: Option<RedisFlows>,
}

/// Held while a session refreshes; dropping it lets the next request of that session in.
pub struct RefreshGuard {
    local: LocalMap,
    key: String,
    _local: tokio::sync::OwnedMutexGuard<()>,
    _shared: Option<RedisLock>,
}

impl RefreshLocks {
    /// Memory and SQLite: one process owns the store, the in-process lock suffices.
    pub fn in_process() -> Self {
        Self {
            local: LocalMap::default(),
            shared: None,
        }
    }

    /// Redis: the in-process lock, then the shared one.
    pub(super) fn shared(redis: RedisFlows) -> Self {
        Self {
            local: LocalMap::default(),
            shared: Some(redis),
        }
    }

    /// Waits for this session's turn (in this process, then across instances).
    pub async fn lock(&self, session_key: &str) -> StoreResult<RefreshGuard> {
        let mutex = {
            let mut map = self.local.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(session_key.to_owned()).or_default().clone()
        };
        let local = mutex.lock_owned().await;
        let guard = |shared| RefreshGuard {
            local: self.local.clone(),
            key: session_key.to_owned(),
            _local: local,
            _shared: shared,
        };
        match &self.shared {
            None => Ok(guard(None)),
            Some(redis) => {
                let owner = random_token();
                let shared = redis
                    .lock(&format!("refresh:{session_key}"), owner.expose())
                    .await?;
                Ok(guard(Some(shared)))
            }
        }
    }

    /// How many sessions are refreshing (or waiting to) in this process now.
    pub fn len(&self) -> usize {
        self.local.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for RefreshGuard {
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
    async fn refresh_locks_serialise_one_key_and_clean_up() {
        let locks = RefreshLocks::in_process();
        let first = locks.lock("s1").await.unwrap();
        let other = locks.lock("s2").await.unwrap(); // another session is not blocked
        assert_eq!(locks.len(), 2);
        let waiter = {
            let locks = locks.clone();
            tokio::spawn(async move {
                let _g = locks.lock("s1").await.unwrap();
            })
        };
        drop(other);
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert!(locks.is_empty());
    }
}
