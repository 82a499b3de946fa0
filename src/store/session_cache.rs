//! The memory session store's records: signed-in sessions in one moka cache, anonymous ones (no
//! tokens: a login or a device sign-in in progress) in another with a cap of its own, so a flood
//! of anonymous sessions evicts only anonymous ones, never a signed-in user.
//!
//! A record is signed in when it holds a token set ([`TOKENS_KEY`] or [`OBJECT_TOKENS_KEY`]).
//! Tokens come only under a new id (sign-in cycles it), so an id created anonymous stays so; one
//! that loses its tokens stays in the signed-in cache. Every write of an id, to either cache,
//! runs inside the signed-in cache's per-key compute, so the writes of one id never interleave.

use crate::clock::unix_now_ms;
use moka::future::Cache;
use moka::ops::compute::Op;
use moka::policy::EvictionPolicy;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tower_sessions::session::{Id, Record};

/// Where a session keeps its token set, as one JSON string (see `WebSession::tokens`).
pub const TOKENS_KEY: &str = "webex.tokens.v2";
/// Where versions before the string layout kept the token set, as a JSON object: still read, so
/// their sessions stay signed in, and removed when the tokens are next written (a refresh).
pub const OBJECT_TOKENS_KEY: &str = "webex.tokens";

/// Signed-in sessions kept at most (the least used go first past it). Each is a completed
/// sign-in at Webex, so no anonymous client can fill this.
pub const MAX_SIGNED_IN: u64 = 100_000;
/// Anonymous sessions kept at most: past it the least recently used one goes (its login starts
/// again). One lives 15 minutes past its last write (with a device sign-in, the code's life and
/// 5 minutes) and `/login` is rate limited per client, so one client holds a few hundred at
/// most; 10,000 is many clients at once, in some 10 MB.
pub const MAX_ANONYMOUS: u64 = 10_000;
type Slot = Arc<Record>;

pub struct SessionCache {
    signed_in: Cache<Id, Slot>,
    anonymous: Cache<Id, Slot>,
}

/// Whether `record` holds a token set.
pub fn signed_in(record: &Record) -> bool {
    record.data.contains_key(TOKENS_KEY) || record.data.contains_key(OBJECT_TOKENS_KEY)
}

pub fn expires_at_ms(record: &Record) -> u64 {
    let ms = record.expiry_date.unix_timestamp_nanos() / 1_000_000;
    u64::try_from(ms).unwrap_or(0)
}

/// Each cache entry lives until its session's expiry.
struct SlotExpiry;

impl moka::Expiry<Id, Slot> for SlotExpiry {
    fn expire_after_create(&self, _: &Id, slot: &Slot, _: Instant) -> Option<Duration> {
        let left = expires_at_ms(slot).saturating_sub(unix_now_ms());
        Some(Duration::from_millis(left))
    }

    fn expire_after_update(
        &self,
        id: &Id,
        slot: &Slot,
        now: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        self.expire_after_create(id, slot, now)
    }
}

impl SessionCache {
    /// At most `max_signed_in` signed-in sessions and `max_anonymous` others.
    pub fn new(max_signed_in: u64, max_anonymous: u64) -> Self {
        let signed_in = Cache::builder()
            .max_capacity(max_signed_in)
            .expire_after(SlotExpiry)
            .build();
        // LRU, not moka's default TinyLFU: a new login is always admitted (TinyLFU may turn a
        // new entry away when full), and the one idle longest goes.
        let anonymous = Cache::builder()
            .max_capacity(max_anonymous)
            .eviction_policy(EvictionPolicy::lru())
            .expire_after(SlotExpiry)
            .build();
        Self {
            signed_in,
            anonymous,
        }
    }

    /// The record under `id`, in either cache.
    pub async fn get(&self, id: &Id) -> Option<Slot> {
        match self.signed_in.get(id).await {
            Some(slot) => Some(slot),
            None => self.anonymous.get(id).await,
        }
    }

    /// Caches `record` if `new` and nothing is cached under its id, or if not `new` and a record
    /// is (a deleted one stays deleted); whether it did. It goes to the signed-in cache when it
    /// holds tokens or its id is there already, else to the anonymous one.
    pub async fn put(&self, record: Record, new: bool) -> bool {
        let id = record.id;
        let to_signed_in = signed_in(&record);
        let slot = Arc::new(record);
        let (anonymous, put) = (&self.anonymous, AtomicBool::new(false));
        self.signed_in
            .entry(id)
            .and_compute_with(|entry| async {
                let here = entry.map(|e| e.into_value());
                let there = match here {
                    Some(_) => None,
                    None => anonymous.get(&id).await,
                };
                if (here.is_none() && there.is_none()) != new {
                    return Op::Nop;
                }
                put.store(true, Ordering::Relaxed);
                if here.is_some() || to_signed_in {
                    if there.is_some() {
                        anonymous.invalidate(&id).await;
                    }
                    Op::Put(slot)
                } else {
                    anonymous.insert(id, slot).await;
                    Op::Nop
                }
            })
            .await;
        put.into_inner()
    }

    /// Forgets `id` in both caches; a save in flight cannot put the record back after it (it
    /// only updates a record still there).
    pub async fn delete(&self, id: &Id) {
        let anonymous = &self.anonymous;
        self.signed_in
            .entry(*id)
            .and_compute_with(|_| async move {
                anonymous.invalidate(id).await;
                Op::Remove
            })
            .await;
    }

    /// How many entries each cache holds (signed-in, anonymous), pending evictions applied.
    #[cfg(any(test, feature = "test-support"))]
    pub async fn counts(&self) -> (u64, u64) {
        self.signed_in.run_pending_tasks().await;
        self.anonymous.run_pending_tasks().await;
        (self.signed_in.entry_count(), self.anonymous.entry_count())
    }
}
