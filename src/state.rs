//! `AppState`: the one state every handler draws from; cloning it is one reference count.

use crate::config::Config;
use crate::device_flows::DeviceFlows;
use crate::store::FlowStore;
use crate::tokens::RefreshLocks;
use crate::webex::WebexClient;
use axum::http::HeaderValue;
use std::ops::Deref;
use std::sync::Arc;

/// Cloned into every request (router, extractors, middleware), so it is a single `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub config: Arc<Config>,
    /// The one Webex client (one connection pool) of the process.
    pub webex: WebexClient,
    /// The store shared by every instance (device flows, cross-instance refresh locks).
    pub store: FlowStore,
    /// Pending device sign-ins and their pollers.
    pub flows: DeviceFlows,
    /// One refresh at a time per session.
    pub refresh_locks: RefreshLocks,
    /// The Content-Security-Policy header every response gets (it names the avatar hosts).
    pub csp: HeaderValue,
}

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}
