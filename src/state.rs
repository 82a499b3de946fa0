//! `AppState`: the one cheap-to-clone state every handler draws from.

use crate::config::Config;
use crate::device_flows::DeviceFlows;
use crate::tokens::RefreshLocks;
use crate::webex::WebexClient;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    /// The one Webex client (one connection pool) of the process.
    pub webex: WebexClient,
    /// Pending device sign-ins and their pollers.
    pub flows: DeviceFlows,
    /// One refresh at a time per session.
    pub refresh_locks: RefreshLocks,
}
