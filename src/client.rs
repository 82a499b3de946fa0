//! Who a client is, for the per-client limits: its [`key`] (an IPv6 client by its /64), and
//! [`PerClient`], a count of what each key holds open, capped, given back when a [`Slot`] drops.
//!
//! A map of counts behind a mutex: neither tower nor governor counts things held *open* per
//! key (governor limits a rate, not a number in use).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};

/// The address the per-client limits count by: an IPv4 address as it is (an IPv4-mapped IPv6
/// address, `::ffff:a.b.c.d`, is that IPv4 address), an IPv6 address cut to its /64. One
/// subscriber usually gets a whole /64, so counting IPv6 clients by address would give each
/// one 2^64 quotas.
pub fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
        },
    }
}

/// How many things (connections, pending device flows) each client [`key`] holds, each at most
/// `cap`. Cloning is cheap; clones share the counts.
#[derive(Clone, Debug)]
pub struct PerClient {
    cap: usize,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One thing a client holds; dropping it gives the place back.
#[derive(Debug)]
pub struct Slot {
    key: IpAddr,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

fn lock(counts: &Mutex<HashMap<IpAddr, usize>>) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
    counts.lock().unwrap_or_else(|e| e.into_inner())
}

impl PerClient {
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            counts: Arc::default(),
        }
    }

    /// A slot for `client` (counted by its [`key`]), or `None` when it already holds `cap`.
    pub fn enter(&self, client: IpAddr) -> Option<Slot> {
        let key = key(client);
        let mut counts = lock(&self.counts);
        let held = counts.get(&key).copied().unwrap_or(0);
        if held >= self.cap {
            return None;
        }
        counts.insert(key, held.saturating_add(1));
        Some(Slot {
            key,
            counts: Arc::clone(&self.counts),
        })
    }

    /// What `client`'s key holds now.
    #[cfg(test)]
    pub fn held(&self, client: IpAddr) -> usize {
        lock(&self.counts).get(&key(client)).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        if let Some(held) = counts.get_mut(&self.key) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                // Only clients holding something stay in the map.
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_is_exact_ipv6_is_its_slash_64_and_mapped_ipv4_is_ipv4() {
        assert_eq!(key(ip("203.0.113.9")), ip("203.0.113.9"));
        assert_ne!(key(ip("203.0.113.9")), key(ip("203.0.113.10")));
        assert_eq!(
            key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(key(ip("2001:db8:1:2::1")), key(ip("2001:db8:1:2:ffff::9")));
        assert_ne!(key(ip("2001:db8:1:2::1")), key(ip("2001:db8:1:3::1")));
        assert_eq!(key(ip("::ffff:203.0.113.9")), ip("203.0.113.9"));
        assert_eq!(key(ip("::1")), ip("::"));
    }

    #[test]
    fn a_client_holds_at_most_the_cap_and_a_dropped_slot_frees_its_place() {
        let per_client = PerClient::new(2);
        let (a, b) = (ip("127.0.0.2"), ip("127.0.0.3"));
        let first = per_client.enter(a).unwrap();
        let _second = per_client.enter(a).unwrap();
        assert!(per_client.enter(a).is_none(), "the third is refused");
        assert!(
            per_client.enter(ip("::ffff:127.0.0.2")).is_none(),
            "the same client"
        );
        assert!(per_client.enter(b).is_some(), "another client is not");
        drop(first);
        assert_eq!(per_client.held(a), 1);
        let _third = per_client.enter(a).expect("a place came free");
        let v6 = PerClient::new(1);
        let _one = v6.enter(ip("2001:db8::1")).unwrap();
        assert!(v6.enter(ip("2001:db8::2")).is_none(), "one /64, one client");
    }
}
