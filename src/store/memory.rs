//! Device flows in this process's memory (`SESSION_STORE=memory`): lost on restart.

use super::{StoreResult, lease_until, millis};

use crate::clock::unix_now_ms;
use crate::device_flow::{FlowRecord, FlowStatus};
use crate::tokens::TokenSet;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

struct Flow {
    record: FlowRecord,
    /// Holder and until when (Unix ms).
    lease: Option<(String, u64)>,
    tokens: Option<TokenSet>,
    /// When the owning session last looked at it (Unix ms).
    seen_ms: u64,
}

#[derive(Clone, Default)]
pub struct MemoryFlows(Arc<Mutex<HashMap<String, Flow>>>);

impl MemoryFlows {
    fn map(&self) -> MutexGuard<'_, HashMap<String, Flow>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn insert(&self, id: &str, record: &FlowRecord, owner: &str) -> StoreResult<()> {
        self.map().insert(
            id.to_owned(),
            Flow {
                record: record.clone(),
                lease: Some((owner.to_owned(), lease_until(unix_now_ms()))),
                tokens: None,
                seen_ms: unix_now_ms(),
            },
        );
        Ok(())
    }

    pub fn get(&self, id: &str) -> StoreResult<Option<FlowRecord>> {
        Ok(self.map().get(id).map(|f| f.record.clone()))
    }

    pub fn update(
        &self,
        id: &str,
        record: &FlowRecord,
        tokens: Option<&TokenSet>,
        owner: &str,
    ) -> StoreResult<bool> {
        let now = unix_now_ms();
        let mut map = self.map();
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
        let Some(flow) = map.get_mut(id) else {
            return Ok(false);
        };
        let free = flow
            .lease
            .as_ref()
            .is_none_or(|(o, u)| o == owner || *u < now);
        if free && flow.record.status == FlowStatus::Pending {
            flow.lease = Some((owner.to_owned(), lease_until(now)));
            return Ok(true);
        }
        Ok(false)
    }

    pub fn renew_leases(&self, owner: &str, ids: &[String]) -> StoreResult<()> {
        let now = unix_now_ms();
        let mut map = self.map();
        for id in ids {
            if let Some(flow) = map.get_mut(id)
                && let Some((holder, until)) = &mut flow.lease
                && holder == owner
                && *until >= now
            {
                *until = lease_until(now);
            }
        }
        Ok(())
    }

    pub fn release_leases(&self, owner: &str) -> StoreResult<usize> {
        let mut released = 0;
        for flow in self.map().values_mut() {
            if let Some((holder, until)) = &mut flow.lease
                && holder == owner
                && *until > 0
            {
                *until = 0; // lapsed: `orphans` and `lease` see a free flow
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
            .filter(|f| {
                f.record.status == FlowStatus::Pending
                    && f.lease
                        .as_ref()
                        .is_some_and(|(o, until)| o == owner && *until >= now)
            })
            .map(|f| f.seen_ms))
    }

    pub fn orphans(&self) -> StoreResult<Vec<String>> {
        let now = unix_now_ms();
        Ok(self
            .map()
            .iter()
            .filter(|(_, f)| {
                f.record.status == FlowStatus::Pending
                    && f.record.expires_at_ms > now
                    && f.lease.as_ref().is_none_or(|(_, until)| *until < now)
            })
            .map(|(id, _)| id.clone())
            .collect())
    }

    pub fn count_pending(&self) -> StoreResult<usize> {
        let now = unix_now_ms();
        Ok(self
            .map()
            .values()
            .filter(|f| f.record.status == FlowStatus::Pending && f.record.expires_at_ms > now)
            .count())
    }

    pub fn len(&self) -> StoreResult<usize> {
        Ok(self.map().len())
    }

    pub fn purge(&self, grace: Duration) -> StoreResult<usize> {
        let cutoff = unix_now_ms().saturating_sub(millis(grace));
        let mut map = self.map();
        let before = map.len();
        map.retain(|_, f| f.record.expires_at_ms >= cutoff);
        Ok(before.saturating_sub(map.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn pending() -> FlowRecord {
        FlowRecord {
            device_code: Secret::new("device-code"),
            user_code: "ABCD-EFGH".to_owned(),
            verification_uri: "https://example.test/verify".to_owned(),
            verification_uri_complete: "https://example.test/verify?code=ABCD-EFGH".to_owned(),
            lifetime_secs: 300,
            expires_at_ms: unix_now_ms() + 300_000,
            interval_secs: 5,
            slowed_down: false,
            next_poll_at_ms: 0,
            status: FlowStatus::Pending,
            id_token: Default::default(),
        }
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
