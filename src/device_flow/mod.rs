//! The device sign-in (RFC 8628) in one place: a flow's record ([`FlowRecord`], plain data kept
//! in the store as sealed JSON), the poller's pure decision ([`decide`]), and [`DeviceFlows`],
//! the service that starts, polls, cancels and claims flows: the only part the routes call.

pub mod decide;
mod poller;

pub use poller::{DeviceFlows, FlowError};

use crate::clock::unix_now_ms;
use crate::identity::Verdict;
use crate::secret::Secret;
use crate::store::FlowData;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowStatus {
    Pending,
    Granted,
    Denied,
    Expired,
    Error,
}

impl FlowStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Granted => "granted",
            Self::Denied => "denied",
            Self::Expired => "expired",
            Self::Error => "error",
        }
    }

    pub fn is_final(self) -> bool {
        self != Self::Pending
    }
}

/// One device sign-in; the tokens, once granted, are kept beside it and taken exactly once.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FlowRecord {
    pub device_code: Secret,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    pub lifetime_secs: u64,
    /// Unix milliseconds.
    pub expires_at_ms: u64,
    /// The current interval (it only grows), and whether Webex asked us to slow down.
    pub interval_secs: u64,
    pub slowed_down: bool,
    /// Unix milliseconds before which nobody may poll this flow (survives a handover).
    pub next_poll_at_ms: u64,
    pub status: FlowStatus,
    /// What the grant's id_token proved (absent in records of earlier versions).
    #[serde(default)]
    pub id_token: Verdict,
}

impl FlowRecord {
    /// Seconds the page counts down: until the code expires, rounded up so the page never
    /// reaches 0 before the code is really gone; 0 once the flow has ended.
    pub fn expires_in(&self) -> u64 {
        if self.shown_status().is_final() {
            return 0;
        }
        let left_ms = self.expires_at_ms.saturating_sub(unix_now_ms());
        left_ms.div_ceil(1000)
    }

    /// The status the pages show: a pending code past its expiry is expired, even before its
    /// poller records it.
    pub fn shown_status(&self) -> FlowStatus {
        if self.status == FlowStatus::Pending && unix_now_ms() >= self.expires_at_ms {
            FlowStatus::Expired
        } else {
            self.status
        }
    }
}

/// What the store reads of a record: its status column and expiry.
impl FlowData for FlowRecord {
    fn status(&self) -> &'static str {
        self.status.as_str()
    }

    fn expires_at_ms(&self) -> u64 {
        self.expires_at_ms
    }
}
