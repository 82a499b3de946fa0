//! `AppState`: the one cheap-to-clone state every handler draws from.

use crate::config::Config;
use crate::device_flows::DeviceFlows;
use crate::store::FlowStore;
use crate::tokens::RefreshLocks;
use crate::webex::WebexClient;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    /// The one Webex client (one connection pool) of the process.
    pub webex: WebexClient,
    /// The store shared by every instance (device flows, cross-instance refresh locks).
    pub store: FlowStore,
    /// Pending device sign-ins and their pollers.
    pub flows: DeviceFlows,
    /// One refresh at a time per session.
    pub refresh_locks: RefreshLocks,
}
