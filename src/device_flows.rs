//! Pending device sign-ins, and the tokio task that polls `/device/token` for each one.
//!
//! A flow is plain data ([`FlowRecord`]) keyed by an unguessable flow id that only the owning
//! session knows; the poller task's handle is kept beside it, never inside the session. The
//! poller is a pure decision function ([`PollState::decide`]) plus a bounded loop ([`poll`]):
//! - the first poll comes after `interval`, and no poll ever comes sooner than the interval;
//! - `slow_down` adds 5 s to the interval for this and every later poll (RFC 8628 §3.5);
//! - `access_denied` ends the flow as denied; `expired_token`/`invalid_grant`, or our own
//!   deadline from `expires_in` (checked after every sleep), as expired;
//! - 5xx, timeouts and transport failures back off and go on, up to 3 in a row, then error;
//! - 429 waits `Retry-After` (never less than the interval) and goes on.
//!
//! The task always ends: every path either finishes the flow or sleeps toward the deadline.
//! It is aborted by a new sign-in, a cancel or a logout.

use crate::error::AppError;
use crate::qr;
use crate::secret::Secret;
use crate::tokens::{Grant, TokenSet, unix_now};
use crate::webex::WebexClient;
use crate::webex::device::{DeviceAuthorization, PollReply};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// Session key of this session's flow id.
pub const FLOW_KEY: &str = "device.flow";
/// RFC 8628's default when Webex gives no interval, and the floor we never go below.
const DEFAULT_INTERVAL: u64 = 5;
const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);
const MAX_TRANSIENT_FAILURES: u32 = 3;
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Finished or abandoned flows are forgotten this long after their code expired.
const KEEP_AFTER_EXPIRY_SECS: u64 = 600;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
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

/// One device sign-in: what the page shows, where the poller is, and the tokens once granted.
#[derive(Clone, Debug)]
pub struct FlowRecord {
    pub device_code: Secret,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    /// The QR code of `verification_uri_complete`, rendered once when the flow starts.
    pub qr_data_uri: String,
    pub lifetime_secs: u64,
    /// Unix seconds.
    pub expires_at: u64,
    pub interval_secs: u64,
    pub slowed_down: bool,
    pub status: FlowStatus,
    pub tokens: Option<TokenSet>,
}

impl FlowRecord {
    pub fn expires_in(&self, now: u64) -> u64 {
        self.expires_at.saturating_sub(now)
    }
}

#[derive(Default)]
struct Inner {
    records: HashMap<String, FlowRecord>,
    pollers: HashMap<String, AbortHandle>,
}

/// The registry of flows. Cloning is cheap; clones share the registry.
#[derive(Clone)]
pub struct DeviceFlows {
    inner: Arc<Mutex<Inner>>,
    max_pending: usize,
}

impl DeviceFlows {
    /// `max_pending`: past this many pending flows, new sign-ins get a 503 page.
    pub fn new(max_pending: usize) -> Self {
        Self {
            inner: Arc::default(),
            max_pending,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Refuses a new flow when too many are pending (early, before asking Webex for a code).
    pub fn check_capacity(&self) -> Result<(), AppError> {
        // A flow is pending exactly while its poller runs: O(1), no scan.
        if self.active_pollers() >= self.max_pending {
            return Err(AppError::Busy);
        }
        Ok(())
    }

    /// Records a flow Webex just started and spawns its poller. Returns the new flow id.
    pub fn start(&self, webex: WebexClient, auth: DeviceAuthorization) -> Result<String, AppError> {
        let verification_uri_complete = auth
            .verification_uri_complete
            .clone()
            .unwrap_or_else(|| auth.verification_uri.clone());
        let qr_data_uri =
            qr::png_data_uri(&verification_uri_complete).map_err(AppError::Internal)?;
        let interval_secs = auth.interval.unwrap_or(DEFAULT_INTERVAL).max(1);
        let record = FlowRecord {
            device_code: auth.device_code,
            user_code: auth.user_code,
            verification_uri: auth.verification_uri,
            verification_uri_complete,
            qr_data_uri,
            lifetime_secs: auth.expires_in,
            expires_at: unix_now().saturating_add(auth.expires_in),
            interval_secs,
            slowed_down: false,
            status: FlowStatus::Pending,
            tokens: None,
        };
        let id = crate::webex::oauth::random_token().expose().to_owned();
        let deadline = Instant::now() + Duration::from_secs(auth.expires_in);
        let device_code = record.device_code.clone();
        let mut inner = self.lock();
        // Checked again under the lock: concurrent sign-ins cannot overshoot the cap.
        if inner.pollers.len() >= self.max_pending {
            return Err(AppError::Busy);
        }
        inner.records.insert(id.clone(), record);
        let task = tokio::spawn(poll(
            self.clone(),
            webex,
            id.clone(),
            device_code,
            Duration::from_secs(interval_secs),
            deadline,
        ));
        inner.pollers.insert(id.clone(), task.abort_handle());
        Ok(id)
    }

    /// A copy of the flow without its tokens, for the pages.
    pub fn get(&self, id: &str) -> Option<FlowRecord> {
        self.lock().records.get(id).map(|r| FlowRecord {
            tokens: None,
            ..r.clone()
        })
    }

    /// Takes the tokens of a granted flow, exactly once, and forgets the flow.
    pub fn take_tokens(&self, id: &str) -> Option<TokenSet> {
        let mut inner = self.lock();
        inner.records.get(id)?.tokens.as_ref()?;
        inner.pollers.remove(id);
        inner.records.remove(id)?.tokens
    }

    /// Stops the poller and forgets the flow.
    pub fn cancel(&self, id: &str) {
        let mut inner = self.lock();
        if let Some(task) = inner.pollers.remove(id) {
            task.abort();
        }
        inner.records.remove(id);
    }

    /// Number of flows known (pending or finished but not yet claimed or purged).
    pub fn len(&self) -> usize {
        self.lock().records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of poller tasks still running.
    pub fn active_pollers(&self) -> usize {
        self.lock().pollers.len()
    }

    /// Forgets flows whose code expired long ago (abandoned pages, unclaimed grants).
    pub fn purge(&self, now: u64) -> usize {
        let mut inner = self.lock();
        let stale: Vec<String> = inner
            .records
            .iter()
            .filter(|(_, r)| r.expires_at.saturating_add(KEEP_AFTER_EXPIRY_SECS) < now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &stale {
            inner.records.remove(id);
            if let Some(task) = inner.pollers.remove(id) {
                task.abort();
            }
        }
        stale.len()
    }

    /// Applies `change` to the flow if it still exists; false when it was cancelled.
    fn update(&self, id: &str, change: impl FnOnce(&mut FlowRecord)) -> bool {
        match self.lock().records.get_mut(id) {
            Some(record) => {
                change(record);
                true
            }
            None => false,
        }
    }

    fn finish(&self, id: &str, status: FlowStatus, tokens: Option<TokenSet>) {
        let mut inner = self.lock();
        inner.pollers.remove(id);
        if let Some(record) = inner.records.get_mut(id) {
            record.status = status;
            record.tokens = tokens;
        }
    }
}

/// What the poller does after a reply.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Wait(Duration),
    Finish(FlowStatus),
}

/// The poller's memory between replies.
#[derive(Debug)]
pub struct PollState {
    /// The current interval; only ever grows.
    pub interval: Duration,
    pub transient_failures: u32,
    pub slowed_down: bool,
}

impl PollState {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            transient_failures: 0,
            slowed_down: false,
        }
    }

    /// The pure decision: a reply in, the next step out. Never waits less than the interval.
    pub fn decide(&mut self, reply: &PollReply) -> Step {
        if !matches!(reply, PollReply::Transient(_)) {
            self.transient_failures = 0;
        }
        match reply {
            PollReply::Pending => Step::Wait(self.interval),
            PollReply::SlowDown => {
                self.interval += SLOW_DOWN_STEP;
                self.slowed_down = true;
                Step::Wait(self.interval)
            }
            PollReply::RateLimited(retry_after) => {
                Step::Wait(retry_after.unwrap_or(self.interval).max(self.interval))
            }
            PollReply::Granted(_) => Step::Finish(FlowStatus::Granted),
            PollReply::Denied => Step::Finish(FlowStatus::Denied),
            PollReply::Expired => Step::Finish(FlowStatus::Expired),
            PollReply::Failed(_) => Step::Finish(FlowStatus::Error),
            PollReply::Transient(_) => {
                self.transient_failures += 1;
                if self.transient_failures >= MAX_TRANSIENT_FAILURES {
                    Step::Finish(FlowStatus::Error)
                } else {
                    let backoff = self.interval * 2u32.pow(self.transient_failures);
                    Step::Wait(backoff.min(MAX_BACKOFF).max(self.interval))
                }
            }
        }
    }
}

/// The poller task of one flow.
async fn poll(
    flows: DeviceFlows,
    webex: WebexClient,
    id: String,
    device_code: Secret,
    interval: Duration,
    deadline: Instant,
) {
    let mut state = PollState::new(interval);
    let mut wait = interval;
    loop {
        tokio::time::sleep_until((Instant::now() + wait).min(deadline)).await;
        if Instant::now() >= deadline {
            tracing::info!("device code expired before approval");
            flows.finish(&id, FlowStatus::Expired, None);
            return;
        }
        let reply = webex.device_poll(&device_code).await;
        match state.decide(&reply) {
            Step::Wait(next) => {
                match &reply {
                    PollReply::SlowDown => tracing::info!(
                        interval_secs = state.interval.as_secs(),
                        "Webex asked us to slow down"
                    ),
                    PollReply::Transient(err) => {
                        tracing::warn!(error = %err, failures = state.transient_failures, "device poll failed; backing off")
                    }
                    PollReply::RateLimited(_) => {
                        tracing::warn!(wait_secs = next.as_secs(), "device poll rate limited")
                    }
                    _ => {}
                }
                let (interval_secs, slowed_down) = (state.interval.as_secs(), state.slowed_down);
                if !flows.update(&id, |r| {
                    r.interval_secs = interval_secs;
                    r.slowed_down = slowed_down;
                }) {
                    return; // cancelled meanwhile
                }
                wait = next;
            }
            Step::Finish(status) => {
                let tokens = match reply {
                    PollReply::Granted(response) => Some(TokenSet::new(response, Grant::Device)),
                    PollReply::Failed(err) | PollReply::Transient(err) => {
                        tracing::error!(error = %err, tracking_id = err.tracking_id(), "device flow failed");
                        None
                    }
                    _ => None,
                };
                tracing::info!(status = status.as_str(), "device flow finished");
                flows.finish(&id, status, tokens);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webex::WebexError;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn pending_keeps_the_interval_and_slow_down_raises_it_for_good() {
        let mut s = PollState::new(secs(2));
        assert_eq!(s.decide(&PollReply::Pending), Step::Wait(secs(2)));
        assert_eq!(s.decide(&PollReply::SlowDown), Step::Wait(secs(7)));
        assert_eq!(s.decide(&PollReply::Pending), Step::Wait(secs(7)));
        assert_eq!(s.decide(&PollReply::SlowDown), Step::Wait(secs(12)));
        assert!(s.slowed_down);
    }

    #[test]
    fn final_answers_finish() {
        let mut s = PollState::new(secs(2));
        assert_eq!(
            s.decide(&PollReply::Denied),
            Step::Finish(FlowStatus::Denied)
        );
        assert_eq!(
            s.decide(&PollReply::Expired),
            Step::Finish(FlowStatus::Expired)
        );
        assert_eq!(
            s.decide(&PollReply::Failed(WebexError::Transport("x".into()))),
            Step::Finish(FlowStatus::Error)
        );
    }

    #[test]
    fn three_transient_failures_in_a_row_end_the_flow_and_success_resets_the_count() {
        let mut s = PollState::new(secs(2));
        let blip = || PollReply::Transient(WebexError::Timeout);
        assert_eq!(s.decide(&blip()), Step::Wait(secs(4)));
        assert_eq!(s.decide(&blip()), Step::Wait(secs(8)));
        assert_eq!(s.decide(&PollReply::Pending), Step::Wait(secs(2)));
        assert_eq!(s.decide(&blip()), Step::Wait(secs(4)));
        assert_eq!(s.decide(&blip()), Step::Wait(secs(8)));
        assert_eq!(s.decide(&blip()), Step::Finish(FlowStatus::Error));
    }

    #[test]
    fn rate_limits_wait_retry_after_but_never_less_than_the_interval() {
        let mut s = PollState::new(secs(5));
        assert_eq!(
            s.decide(&PollReply::RateLimited(Some(secs(9)))),
            Step::Wait(secs(9))
        );
        assert_eq!(
            s.decide(&PollReply::RateLimited(Some(secs(1)))),
            Step::Wait(secs(5))
        );
        assert_eq!(s.decide(&PollReply::RateLimited(None)), Step::Wait(secs(5)));
    }

    #[test]
    fn backoff_is_capped() {
        let mut s = PollState::new(secs(40));
        assert_eq!(
            s.decide(&PollReply::Transient(WebexError::Timeout)),
            Step::Wait(secs(60))
        );
    }
}
