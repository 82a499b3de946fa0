//! Who a client is, for the per-client limits: its [`key`] (an IPv6 client by its /64), and
//! [`PerClient`], a count of what each key holds open, capped, given back when a [`Slot`] drops.
//!
//! A map of counts behind a mutex: neither tower nor governor counts things held *open* per
//! key (governor limits a rate, not a number in use).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};

/// The address the per-client limits count by: IPv4 as it is (also IPv4-mapped, `::ffff:a.b.c.d`),
/// IPv6 cut to its /64: one subscriber usually gets a whole /64, so counting IPv6 clients by
/// address would give each one 2^64 quotas.
pub fn key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
        v4 => v4,
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
    owner: PerClient,
}

impl PerClient {
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            counts: Arc::default(),
        }
    }

    fn counts(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for `client` (counted by its [`key`]), or `None` when it already holds `cap`.
    pub fn enter(&self, client: IpAddr) -> Option<Slot> {
        let key = key(client);
        let mut counts = self.counts();
        let held = counts.get(&key).copied().unwrap_or(0);
        if held >= self.cap {
            return None;
        }
        counts.insert(key, held.saturating_add(1));
        let owner = self.clone();
        Some(Slot { key, owner })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.owner.counts();
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
}
