//! Device flows in this process's memory (`SESSION_STORE=memory`): lost on restart.

use super::{FlowData, StoreResult, lease_until, millis};

use crate::clock::unix_now_ms;
use crate::tokens::TokenSet;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

struct Flow<R> {
    record: R,
    /// The lease's holder, and until when (Unix ms; 0 once released).
    owner: String,
    until: u64,
    tokens: Option<TokenSet>,
    /// When the owning session last looked at it (Unix ms).
    seen_ms: u64,
}

impl<R> Flow<R> {
    /// Whether `owner` holds a live lease on it at `now`.
    fn leased_to(&self, owner: &str, now: u64) -> bool {
        self.owner == owner && self.until >= now
    }
}

#[derive(Clone)]
pub struct MemoryFlows<R>(Arc<Mutex<HashMap<String, Flow<R>>>>);

// By hand: derived, it would ask `R: Default` of the shared map.
impl<R> Default for MemoryFlows<R> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

impl<R: FlowData> MemoryFlows<R> {
    fn map(&self) -> MutexGuard<'_, HashMap<String, Flow<R>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn insert(&self, id: &str, record: &R, owner: &str) -> StoreResult<()> {
        self.map().insert(
            id.to_owned(),
            Flow {
                record: record.clone(),
                owner: owner.to_owned(),
                until: lease_until(unix_now_ms()),
                tokens: None,
                seen_ms: unix_now_ms(),
            },
        );
        Ok(())
    }

    pub fn get(&self, id: &str) -> StoreResult<Option<R>> {
        Ok(self.map().get(id).map(|f| f.record.clone()))
    }

    pub fn update(
        &self,
        id: &str,
        record: &R,
        tokens: Option<&TokenSet>,
        owner: &str,
    ) -> StoreResult<bool> {
        let now = unix_now_ms();
        let mut map = self.map();
        let Some(flow) = map.get_mut(id).filter(|f| f.leased_to(owner, now)) else {
            return Ok(false);
        };
        flow.record = record.clone();
        if tokens.is_some() {
            flow.tokens = tokens.cloned();
        }
        Ok(true)
    }

    pub fn take_tokens(&self, id: &str) -> StoreResult<Option<TokenSet>> {
        let mut map = self.map();
        if map.get(id).is_some_and(|f| f.tokens.is_some()) {
            return Ok(map.remove(id).and_then(|f| f.tokens));
        }
        Ok(None)
    }

    pub fn mark_seen(&self, id: &str) -> StoreResult<()> {
        if let Some(flow) = self.map().get_mut(id) {
            flow.seen_ms = unix_now_ms();
        }
        Ok(())
    }

    pub fn delete(&self, id: &str) -> StoreResult<()> {
        self.map().remove(id);
        Ok(())
    }

    pub fn lease(&self, id: &str, owner: &str) -> StoreResult<bool> {
        let now = unix_now_ms();
        let mut map = self.map();
        let free = |f: &&mut Flow<R>| f.owner == owner || f.until < now;
        let Some(flow) = map
            .get_mut(id)
            .filter(|f| f.record.is_pending())
            .filter(free)
        else {
            return Ok(false);
        };
        (flow.owner, flow.until) = (owner.to_owned(), lease_until(now));
        Ok(true)
    }

    pub fn renew_leases(&self, owner: &str, ids: &[String]) -> StoreResult<()> {
        let now = unix_now_ms();
        let mut map = self.map();
        for id in ids {
            if let Some(flow) = map.get_mut(id).filter(|f| f.leased_to(owner, now)) {
                flow.until = lease_until(now);
            }
        }
        Ok(())
    }

    pub fn release_leases(&self, owner: &str) -> StoreResult<usize> {
        let mut released = 0;
        for flow in self.map().values_mut() {
            if flow.owner == owner && flow.until > 0 {
                flow.until = 0; // lapsed: `orphans` and `lease` see a free flow
                released += 1;
            }
        }
        Ok(released)
    }

    pub fn holds(&self, id: &str, owner: &str) -> StoreResult<Option<u64>> {
        let now = unix_now_ms();
        Ok(self
            .map()
            .get(id)
            .filter(|f| f.record.is_pending() && f.leased_to(owner, now))
            .map(|f| f.seen_ms))
    }

    pub fn orphans(&self) -> StoreResult<Vec<String>> {
        let now = unix_now_ms();
        Ok(self
            .map()
            .iter()
            .filter(|(_, f)| {
                f.record.is_pending() && f.record.expires_at_ms() > now && f.until < now
            })
            .map(|(id, _)| id.clone())
            .collect())
    }

    pub fn count_pending(&self) -> StoreResult<usize> {
        let now = unix_now_ms();
        Ok(self
            .map()
            .values()
            .filter(|f| f.record.is_pending() && f.record.expires_at_ms() > now)
            .count())
    }

    #[cfg(any(test, feature = "test-support"))]
    pub fn len(&self) -> StoreResult<usize> {
        Ok(self.map().len())
    }

    pub fn purge(&self, grace: Duration) -> StoreResult<usize> {
        let cutoff = unix_now_ms().saturating_sub(millis(grace));
        let mut map = self.map();
        let before = map.len();
        map.retain(|_, f| f.record.expires_at_ms() >= cutoff);
        Ok(before.saturating_sub(map.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record as the store sees one: pending until its expiry.
    #[derive(Clone, serde::Serialize, serde::Deserialize)]
    struct Pending(u64);

    impl FlowData for Pending {
        fn status(&self) -> &'static str {
            "pending"
        }
        fn expires_at_ms(&self) -> u64 {
            self.0
        }
    }

    fn pending() -> Pending {
        Pending(unix_now_ms() + 300_000)
    }

    #[test]
    fn released_leases_are_free_for_another_instance_at_once() {
        let flows = MemoryFlows::default();
        for id in ["a1", "a2"] {
            flows.insert(id, &pending(), "instance-a").unwrap();
        }
        flows.insert("b1", &pending(), "instance-b").unwrap();
        assert!(flows.orphans().unwrap().is_empty(), "every lease is held");
        assert!(!flows.lease("a1", "instance-b").unwrap());

        assert_eq!(flows.release_leases("instance-a").unwrap(), 2);
        let mut orphans = flows.orphans().unwrap();
        orphans.sort();
        assert_eq!(orphans, ["a1", "a2"], "b1 is still held by its owner");
        assert!(flows.lease("a1", "instance-b").unwrap());
        assert!(
            !flows.update("a1", &pending(), None, "instance-a").unwrap(),
            "the old owner may no longer write the flow"
        );
        assert_eq!(
            flows.release_leases("instance-a").unwrap(),
            0,
            "a second release finds nothing more (a2's lease has lapsed already)"
        );
    }
}
