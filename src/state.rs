//! [`AppState`]: what every request shares, cloned as one reference count; handlers take
//! `State<AppState>` and read the piece they use through its accessors.

use crate::config::Config;
use crate::device_flow::DeviceFlows;
use crate::identity::Verifier;
use crate::store::{SessionBackend, SessionLocks};
use crate::webex::WebexClient;
use axum::http::HeaderValue;
use std::sync::Arc;

/// Cloned into every request (router, extractors, middleware), so it is a single `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    config: Arc<Config>,
    sign_in: SignIn,
    /// One refresh, one device flow start or claim at a time per session.
    session_locks: SessionLocks,
    /// The session store (the session layer has its own handle; this one answers `/readyz`).
    sessions: SessionBackend,
    /// The Content-Security-Policy header every response gets (it names the avatar hosts).
    csp: HeaderValue,
    /// `Host` values we answer to, and the `Origin`s a form post may come from.
    hosts: Vec<String>,
    origins: Vec<String>,
}

/// How the app signs people in.
pub struct SignIn {
    /// The one Webex client (one connection pool) of the process.
    pub webex: WebexClient,
    /// Pending device sign-ins and their pollers.
    pub flows: DeviceFlows,
    /// Verifies the authorization-code flow's id_tokens (its key cache is the device flow's).
    pub identity: Verifier,
}

impl AppState {
    /// The app's wiring builds each piece (see `app.rs`).
    pub fn new(
        config: Arc<Config>,
        sign_in: SignIn,
        session_locks: SessionLocks,
        sessions: SessionBackend,
        csp: HeaderValue,
    ) -> Self {
        let (hosts, origins) = config.served_hosts();
        Self(Arc::new(Inner {
            config,
            sign_in,
            session_locks,
            sessions,
            csp,
            hosts,
            origins,
        }))
    }

    pub fn config(&self) -> &Config {
        &self.0.config
    }

    pub fn webex(&self) -> &WebexClient {
        &self.0.sign_in.webex
    }

    pub fn flows(&self) -> &DeviceFlows {
        &self.0.sign_in.flows
    }

    pub fn identity(&self) -> &Verifier {
        &self.0.sign_in.identity
    }

    pub fn session_locks(&self) -> &SessionLocks {
        &self.0.session_locks
    }

    pub fn sessions(&self) -> &SessionBackend {
        &self.0.sessions
    }

    pub fn allowed_hosts(&self) -> &[String] {
        &self.0.hosts
    }

    pub fn allowed_origins(&self) -> &[String] {
        &self.0.origins
    }

    pub fn csp(&self) -> &HeaderValue {
        &self.0.csp
    }

    /// Pages show a "demo mode" banner when this is true.
    pub fn is_demo(&self) -> bool {
        self.0.config.is_demo()
    }
}
