//! Per-client rate limit on the two routes that make us call Webex for a stranger: `GET /login`
//! (and its `HEAD`, which axum answers with the GET handler) and `POST /sign-in`:
//! `RATE_LIMIT_PER_MINUTE` per client address, a burst of that size, then the 429 page.
//!
//! The client address is the peer's, or, when `CLIENT_IP_HEADER` names a header (behind your
//! proxy), the last hop that header gives: the one your proxy appended, which a client cannot
//! forge; an IPv6 client counts by its /64 ([`client::key`]). The edge puts it in every
//! request's extensions as [`ClientAddr`] (the device flow's per-client cap reads it there).

use crate::client;
use crate::web::error::AppError;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderName, Method};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

/// The client a request comes from, as the per-client limits count it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// Cloning is cheap; clones share the counts.
#[derive(Clone)]
pub struct ClientLimiter {
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    header: Option<HeaderName>,
}

impl ClientLimiter {
    pub fn new(per_minute: u32, header: Option<HeaderName>) -> Self {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_minute(per_minute).allow_burst(per_minute);
        Self {
            limiter: Arc::new(DefaultKeyedRateLimiter::keyed(quota)),
            header,
        }
    }

    /// Forgets clients whose bucket is full again (run every minute by the app), so the map
    /// holds only clients seen lately.
    pub fn forget_idle_clients(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// The request's client: the last hop of the configured header, else the peer; by its key.
    pub fn client(&self, request: &Request) -> Option<ClientAddr> {
        let headers = request.headers();
        let hop = self.header.as_ref().and_then(|h| last_hop(headers, h));
        let peer = request.extensions().get::<ConnectInfo<SocketAddr>>();
        let ip = hop.or(peer.map(|c| c.0.ip()))?;
        Some(ClientAddr(client::key(ip)))
    }

    /// The 429 for a request over its client's quota on a limited route (run by the edge
    /// before the session is loaded, so a refused request writes no session).
    pub fn refusal(&self, request: &Request) -> Option<AppError> {
        let limited = matches!(
            (request.method(), request.uri().path()),
            (&Method::GET | &Method::HEAD, "/login") | (&Method::POST, "/sign-in")
        );
        if !limited {
            return None;
        }
        let ClientAddr(client) = *request.extensions().get::<ClientAddr>()?;
        let not_until = self.limiter.check_key(&client).err()?;
        tracing::warn!("client rate limited");
        // Whole seconds, rounded up: the page and `Retry-After` never say to come back too early.
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let retry_after_secs = u64::try_from(wait.as_millis().div_ceil(1000).max(1)).unwrap_or(60);
        Some(AppError::TooManyRequests { retry_after_secs })
    }
}

/// The last address of the last line of `name` (`X-Forwarded-For: client, proxy1, proxy2`).
fn last_hop(headers: &HeaderMap, name: &HeaderName) -> Option<IpAddr> {
    let value = headers.get_all(name).iter().next_back()?.to_str().ok()?;
    let hop = value.rsplit(',').next()?.trim();
    let with_port = || hop.parse::<SocketAddr>().ok().map(|a| a.ip());
    hop.parse::<IpAddr>().ok().or_else(with_port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_last_hop_of_the_header_is_the_client() {
        let name = HeaderName::from_static("x-forwarded-for");
        let mut headers = HeaderMap::new();
        headers.append(&name, HeaderValue::from_static("203.0.113.9, 10.0.0.1"));
        assert_eq!(last_hop(&headers, &name), "10.0.0.1".parse().ok());
        headers.append(&name, HeaderValue::from_static("198.51.100.7"));
        assert_eq!(last_hop(&headers, &name), "198.51.100.7".parse().ok());
        let mut odd = HeaderMap::new();
        odd.insert(&name, HeaderValue::from_static("garbage"));
        assert_eq!(last_hop(&odd, &name), None);
    }
}
