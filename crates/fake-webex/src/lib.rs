//! A faithful fake of the Webex endpoints we use, on its own loopback listener (demo mode, tests).
//!
//! It follows `webex-contract.md` §8: the same status codes, error envelope, `TrackingID` header,
//! opaque identifiers and pagination as real Webex, plus knobs (faults, expiry, approval).
//!
//! Each concern keeps its records and its handlers together: `consent` (/authorize), `tokens`
//! (/access_token and token checks), `device` (device grant, /verify), `resources` (rooms, people),
//! `oidc` (Login with Webex: discovery, JWKS, id_tokens, userinfo) and `faults`. `server` holds the shared `Fake`, the `World` behind its lock and the router;
//! `wire` (error envelope, replies, forms) and `ids` serve them all.

mod consent;
mod device;
mod faults;
mod ids;
mod oidc;
mod resources;
mod server;
mod tokens;
mod wire;

use std::{
    collections::HashMap,
    fmt,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

pub use faults::{Endpoint, Fault};
pub use oidc::{DISCOVERY_ISSUER, Forgery, REGIONAL_ISSUER};
use server::Fake;

/// Client id of the demo integration (`C` + 64 hex, like a real one).
pub const DEMO_CLIENT_ID: &str =
    "C5f1e0a9d3b7c2e4f6a8b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f";
/// Client secret of the demo integration (64 hex).
pub const DEMO_CLIENT_SECRET: &str =
    "9d4c2b1a0f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928170f6e5d";

/// How the fake integration is registered and how long what it issues lives.
#[derive(Clone)]
pub struct FakeConfig {
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uris: Vec<String>,
    pub registered_scopes: Vec<String>,
    /// Lifetime of access tokens; `expires_in` in the token JSON (whole seconds).
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// Lifetime of authorization codes.
    pub code_ttl: Duration,
    pub device_expires_in: u64,
    pub device_interval: u64,
    /// What `/device/token` says after expiry: `expired_token` (RFC 8628) or `invalid_grant`
    /// (which one real Webex sends is unknown).
    pub device_expiry_error: String,
    pub room_count: usize,
    /// When false (default) a refresh returns the same refresh token, as Webex usually does.
    pub rotate_refresh_tokens: bool,
    /// The host its links (API base, consent page, verification URIs, next-page links, avatar)
    /// carry, e.g. a LAN address so a phone can open the QR code; `None`: the bound address.
    pub public_host: Option<String>,
    /// The `iss` of the id_tokens: [`REGIONAL_ISSUER`] by default, unlike the discovery
    /// document's [`DISCOVERY_ISSUER`] (real Webex's quirk); set it to the latter to turn it off.
    pub id_token_issuer: String,
    /// Whether a granted device flow's token answer carries an id_token when `openid` was asked
    /// for (Webex's docs do not settle it; true by default).
    pub device_id_tokens: bool,
}

impl Default for FakeConfig {
    fn default() -> Self {
        let scopes =
            "spark:all spark:kms spark:people_read spark:rooms_read meeting:recordings_read";
        FakeConfig {
            client_id: DEMO_CLIENT_ID.to_owned(),
            client_secret: DEMO_CLIENT_SECRET.to_owned(),
            redirect_uris: vec!["http://localhost:10060/oauth".to_owned()],
            registered_scopes: scopes.split(' ').map(str::to_owned).collect(),
            // The lifetimes of Webex's documented examples (about 14 and 90 days).
            access_token_ttl: Duration::from_secs(1_209_599),
            refresh_token_ttl: Duration::from_secs(7_775_999),
            code_ttl: Duration::from_secs(60),
            device_expires_in: 300,
            device_interval: 2,
            device_expiry_error: "expired_token".to_owned(),
            room_count: 130,
            rotate_refresh_tokens: false,
            public_host: None,
            id_token_issuer: REGIONAL_ISSUER.to_owned(),
            device_id_tokens: true,
        }
    }
}

/// Hand-written so the secret stays out of logs: tests grep logs for it.
impl fmt::Debug for FakeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("redirect_uris", &self.redirect_uris)
            .field("registered_scopes", &self.registered_scopes)
            .field("public_host", &self.public_host)
            .finish_non_exhaustive()
    }
}

/// Request counters (every request to the endpoint counts, faulted or not).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Counter {
    CodeExchanges,
    Refreshes,
    DeviceAuthorizations,
    DevicePolls,
    RoomsCalls,
    PeopleCalls,
    /// `GET /v1/.well-known/openid-configuration`.
    Discoveries,
    /// `GET /v1/verification` (the JWKS).
    JwksFetches,
    UserInfoCalls,
}

/// A running fake; clones share the same server and records.
#[derive(Clone)]
pub struct FakeWebex {
    fake: Arc<Fake>,
}

impl fmt::Debug for FakeWebex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let origin = &self.fake.origin;
        f.debug_struct("FakeWebex")
            .field("origin", origin)
            .finish_non_exhaustive()
    }
}

impl FakeWebex {
    /// Binds `127.0.0.1:0` and serves the fake on a tokio task.
    pub async fn spawn(config: FakeConfig) -> std::io::Result<FakeWebex> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        Self::spawn_on(listener, config).await
    }

    /// Serves the fake on `listener` in a tokio task that lives as long as the runtime. Its
    /// links carry `config.public_host`, or else the bound address (loopback for a wildcard).
    pub async fn spawn_on(
        listener: tokio::net::TcpListener,
        config: FakeConfig,
    ) -> std::io::Result<FakeWebex> {
        let mut addr = listener.local_addr()?;
        // A wildcard bind is not a URL a browser or client can use; loopback always reaches it.
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr {
                SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
            });
        }
        let origin = match &config.public_host {
            Some(host) => format!("http://{host}:{}", addr.port()),
            None => format!("http://{addr}"),
        };
        let fake = Arc::new(Fake::new(origin, config));
        let app = server::router(fake.clone());
        tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                tracing::error!(%err, "fake Webex server stopped");
            }
        });
        Ok(FakeWebex { fake })
    }

    /// `http://127.0.0.1:PORT` (or the public host's).
    pub fn origin(&self) -> String {
        self.fake.origin.clone()
    }

    /// The API base to use as `WEBEX_API_BASE` (origin + `/v1`).
    pub fn base_url(&self) -> String {
        format!("{}/v1", self.fake.origin)
    }

    /// Queues `fault`; each request to `endpoint` pops one.
    pub fn inject(&self, endpoint: Endpoint, fault: Fault) {
        self.fake.lock().push_fault(endpoint, fault);
    }

    /// Lifetime of access tokens issued from now on.
    pub fn set_access_token_ttl(&self, ttl: Duration) {
        self.fake.lock().config.access_token_ttl = ttl;
    }

    /// Poll interval of device flows started from now on.
    pub fn set_device_interval(&self, secs: u64) {
        self.fake.lock().config.device_interval = secs;
    }

    /// Lifetime of device flows started from now on.
    pub fn set_device_expires_in(&self, secs: u64) {
        self.fake.lock().config.device_expires_in = secs;
    }

    /// A new signing key signs the id_tokens from now on (the old one stays in the JWKS beside
    /// it); returns its `kid`.
    pub fn rotate_signing_key(&self) -> String {
        self.fake.lock().signing.rotate()
    }

    /// The `kid` of the key that signs id_tokens now.
    pub fn signing_kid(&self) -> String {
        self.fake.lock().signing.current_kid()
    }

    /// Every access token issued so far now gets 401.
    pub fn expire_access_tokens(&self) {
        self.fake.lock().revoke_access_tokens();
    }

    /// Every refresh token issued so far now gets 400 `invalid_grant`.
    pub fn revoke_refresh_tokens(&self) {
        self.fake.lock().revoke_refresh_tokens();
    }

    /// Approves the pending flow with that user code, as the verify page would; false if none.
    pub fn approve_device(&self, user_code: &str) -> bool {
        self.fake.lock().decide_device(user_code, true)
    }

    /// Denies the pending flow with that user code; false if none.
    pub fn deny_device(&self, user_code: &str) -> bool {
        self.fake.lock().decide_device(user_code, false)
    }

    /// The user code of the most recent `/device/authorize`.
    pub fn last_user_code(&self) -> Option<String> {
        self.fake.lock().devices.last_user_code.clone()
    }

    /// The `verification_uri_complete` handed out with that user code.
    pub fn verification_uri_complete(&self, user_code: &str) -> Option<String> {
        let world = self.fake.lock();
        let flow = world.flow_by_user_code(user_code)?;
        Some(self.fake.verification_uri_complete(&flow.user_code))
    }

    /// Arrival time of each `/device/token` request for the flow with that user code.
    pub fn device_polls(&self, user_code: &str) -> Vec<Instant> {
        let world = self.fake.lock();
        world
            .flow_by_user_code(user_code)
            .map(|flow| flow.polls.clone())
            .unwrap_or_default()
    }

    pub fn count(&self, counter: Counter) -> usize {
        self.fake
            .lock()
            .counters
            .get(&counter)
            .copied()
            .unwrap_or(0)
    }

    /// The client secret and every code, token (id_tokens too) and device code issued so far
    /// (to grep logs for).
    pub fn issued_secrets(&self) -> Vec<String> {
        self.fake.lock().issued.clone()
    }

    /// The forms [`Fault::EchoForm`] echoed back so far, oldest first, each with the tracking id
    /// of its answer.
    pub fn echoed_forms(&self) -> Vec<(String, HashMap<String, String>)> {
        self.fake.lock().echoed.clone()
    }

    /// All room titles, in the order `/rooms` lists them.
    pub fn room_titles(&self) -> Vec<String> {
        let world = self.fake.lock();
        world.rooms.iter().map(|room| room.title.clone()).collect()
    }
}
