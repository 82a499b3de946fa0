//! Pending device sign-ins, and the tokio task that polls `/device/token` for each one.
//!
//! A flow is plain data ([`FlowRecord`]) in the store ([`crate::store`]: memory, SQLite or
//! Redis), keyed by an unguessable flow id that only the owning session knows. One instance
//! polls it at a time, holding its lease; the task's handle stays in that process, never in
//! the session or the store. The poller is a pure decision function ([`PollState::decide`])
//! plus a bounded loop ([`poll`]):
//! - the first poll comes after `interval`, and no poll ever comes sooner than the interval;
//! - `slow_down` adds 5 s to the interval for this and every later poll (RFC 8628 §3.5);
//! - `access_denied` ends the flow as denied; `expired_token`/`invalid_grant`, or our own
//!   deadline from `expires_in` (checked after every sleep), as expired;
//! - 5xx, timeouts and transport failures back off and go on, up to 3 in a row, then error;
//! - 429 waits `Retry-After` (never less than the interval) and goes on.
//!
//! The task always ends: every path either finishes the flow or sleeps toward the deadline.
//! It is aborted by a new sign-in, a cancel or a logout, and stops when it loses its lease.

use crate::error::AppError;
use crate::qr;
use crate::secret::Secret;
use crate::store::{FlowStore, StoreError};
use crate::tokens::{Grant, TokenSet, unix_now_ms};
use crate::webex::WebexClient;
use crate::webex::device::{DeviceAuthorization, PollReply};
use serde::{Deserialize, Serialize};
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
const KEEP_AFTER_EXPIRY: Duration = Duration::from_secs(600);

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

/// One device sign-in: what the page shows and where the poller is. Plain data, so any store
/// can hold it; the tokens, once granted, are kept beside it and taken exactly once.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FlowRecord {
    pub device_code: Secret,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    /// The QR code of `verification_uri_complete`, rendered once when the flow starts.
    pub qr_data_uri: String,
    pub lifetime_secs: u64,
    /// Unix milliseconds.
    pub expires_at_ms: u64,
    /// The current interval (it only grows), and whether Webex asked us to slow down.
    pub interval_secs: u64,
    pub slowed_down: bool,
    /// Unix milliseconds before which nobody may poll this flow (survives a handover).
    pub next_poll_at_ms: u64,
    pub status: FlowStatus,
}

impl FlowRecord {
    /// Seconds the page counts down: until the code expires, rounded up so the page never
    /// reaches 0 before the code is really gone; 0 once the flow has ended.
    pub fn expires_in(&self) -> u64 {
        if self.shown_status().is_final() {
            return 0;
        }
        self.expires_at_ms
            .saturating_sub(unix_now_ms())
            .div_ceil(1000)
    }

    /// The status the pages show: a pending code past its expiry is expired, even before its
    /// poller has woken up to record it.
    pub fn shown_status(&self) -> FlowStatus {
        if self.status == FlowStatus::Pending && unix_now_ms() >= self.expires_at_ms {
            FlowStatus::Expired
        } else {
            self.status
        }
    }
}

/// The flows of every instance sharing the store, and the pollers of this instance.
/// Cloning is cheap; clones share everything.
#[derive(Clone)]
pub struct DeviceFlows {
    store: FlowStore,
    /// This instance's lease-holder name (random per process).
    owner: Arc<str>,
    pollers: Arc<Mutex<HashMap<String, AbortHandle>>>,
    webex: WebexClient,
    max_pending: usize,
}

impl DeviceFlows {
    /// `max_pending`: past this many pending flows, new sign-ins get a 503 page.
    pub fn new(store: FlowStore, webex: WebexClient, max_pending: usize) -> Self {
        Self {
            store,
            owner: crate::webex::oauth::random_token().expose().into(),
            pollers: Arc::default(),
            webex,
            max_pending,
        }
    }

    fn pollers(&self) -> std::sync::MutexGuard<'_, HashMap<String, AbortHandle>> {
        self.pollers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Refuses a new flow when too many are pending (before asking Webex for a code). Under
    /// concurrent sign-ins the count may overshoot by at most the number in flight.
    pub async fn check_capacity(&self) -> Result<(), AppError> {
        if self.store.count_pending().await? >= self.max_pending {
            return Err(AppError::Busy);
        }
        Ok(())
    }

    /// Records a flow Webex just started and spawns its poller. Returns the new flow id.
    pub async fn start(&self, auth: DeviceAuthorization) -> Result<String, AppError> {
        let verification_uri_complete = auth
            .verification_uri_complete
            .clone()
            .unwrap_or_else(|| auth.verification_uri.clone());
        let qr_data_uri =
            qr::png_data_uri(&verification_uri_complete).map_err(AppError::Internal)?;
        let interval_secs = auth.interval.unwrap_or(DEFAULT_INTERVAL).max(1);
        let now = unix_now_ms();
        let record = FlowRecord {
            device_code: auth.device_code,
            user_code: auth.user_code,
            verification_uri: auth.verification_uri,
            verification_uri_complete,
            qr_data_uri,
            lifetime_secs: auth.expires_in,
            expires_at_ms: now.saturating_add(auth.expires_in.saturating_mul(1000)),
            interval_secs,
            slowed_down: false,
            next_poll_at_ms: now + interval_secs * 1000,
            status: FlowStatus::Pending,
        };
        let id = crate::webex::oauth::random_token().expose().to_owned();
        self.store.insert(&id, &record, &self.owner).await?;
        self.spawn_poller(&id, false);
        Ok(id)
    }

    fn spawn_poller(&self, id: &str, takeover: bool) {
        let mut pollers = self.pollers();
        if pollers.contains_key(id) {
            return;
        }
        let (flows, id_owned) = (self.clone(), id.to_owned());
        let task = tokio::spawn(async move {
            poll(&flows, &id_owned, takeover).await;
            flows.pollers().remove(&id_owned);
        });
        pollers.insert(id.to_owned(), task.abort_handle());
    }

    /// Polls the flows nobody polls: after a restart, or when the instance that polled them died
    /// (its lease lapsed). Run every [`crate::store::LEASE_RENEW`] by the app.
    pub async fn adopt_orphans(&self) -> Result<usize, StoreError> {
        let mut adopted = 0;
        for id in self.store.orphans().await? {
            if !self.pollers().contains_key(&id) && self.store.lease(&id, &self.owner).await? {
                tracing::info!("taking over a device flow nobody was polling");
                self.spawn_poller(&id, true);
                adopted += 1;
            }
        }
        Ok(adopted)
    }

    /// The flow, for the pages.
    pub async fn get(&self, id: &str) -> Result<Option<FlowRecord>, AppError> {
        Ok(self.store.get(id).await?)
    }

    /// Takes the tokens of a granted flow, exactly once, and forgets the flow.
    pub async fn take_tokens(&self, id: &str) -> Result<Option<TokenSet>, AppError> {
        Ok(self.store.take_tokens(id).await?)
    }

    /// Stops the poller and forgets the flow (a poller on another instance notices within
    /// [`crate::store::LEASE_RENEW`], when its next write finds the flow gone).
    pub async fn cancel(&self, id: &str) -> Result<(), AppError> {
        if let Some(task) = self.pollers().remove(id) {
            task.abort();
        }
        Ok(self.store.delete(id).await?)
    }

    /// Number of flows recorded (pending or finished but not yet claimed or purged).
    pub async fn len(&self) -> usize {
        self.store.len().await.unwrap_or(0)
    }

    pub async fn is_empty(&self) -> bool {
        self.len().await == 0
    }

    /// Stops this instance's pollers (at shutdown); their leases lapse and another instance,
    /// or this one after a restart, takes the flows over.
    pub fn stop_pollers(&self) {
        for (_, task) in self.pollers().drain() {
            task.abort();
        }
    }

    /// Number of poller tasks running in this instance.
    pub fn active_pollers(&self) -> usize {
        self.pollers().len()
    }

    /// Forgets flows whose code expired long ago.
    pub async fn purge(&self) -> Result<usize, StoreError> {
        self.store.purge(KEEP_AFTER_EXPIRY).await
    }

    /// Extends the leases of this instance's running pollers (every [`crate::store::LEASE_RENEW`]).
    pub async fn renew_leases(&self) -> Result<(), StoreError> {
        let ids: Vec<String> = self.pollers().keys().cloned().collect();
        if ids.is_empty() {
            return Ok(());
        }
        self.store.renew_leases(&self.owner, &ids).await
    }

    /// Sleeps until `until` (one timer), then checks that this instance still holds the lease.
    /// False when it lost it (another instance polls the flow now) or the flow is gone.
    async fn sleep_holding_lease(&self, id: &str, until: Instant) -> bool {
        tokio::time::sleep_until(until).await;
        match self.store.holds(id, &self.owner).await {
            Ok(held) => held,
            Err(err) => {
                tracing::warn!(%err, "cannot check a device flow's lease; another instance will take it over");
                false
            }
        }
    }
}

fn instant_at(unix_ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(unix_ms.saturating_sub(unix_now_ms()))
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

/// The poller task of one flow. `takeover`: the flow was polled by another instance (or before
/// a restart), whose last poll may not have been recorded: wait a whole interval first.
async fn poll(flows: &DeviceFlows, id: &str, takeover: bool) {
    let mut record = match flows.store.get(id).await {
        Ok(Some(record)) if record.status == FlowStatus::Pending => record,
        _ => return,
    };
    let deadline = instant_at(record.expires_at_ms);
    let mut state = PollState::new(Duration::from_secs(record.interval_secs));
    state.slowed_down = record.slowed_down;
    let mut next = instant_at(record.next_poll_at_ms);
    if takeover {
        next = next.max(Instant::now() + state.interval);
    }
    loop {
        if !flows.sleep_holding_lease(id, next.min(deadline)).await {
            return; // cancelled, or another instance polls it now
        }
        let (status, tokens) = if Instant::now() >= deadline {
            tracing::info!("device code expired before approval");
            (FlowStatus::Expired, None)
        } else {
            let reply = flows.webex.device_poll(&record.device_code).await;
            match state.decide(&reply) {
                Step::Wait(wait) => {
                    match &reply {
                        PollReply::SlowDown => tracing::info!(
                            interval_secs = state.interval.as_secs(),
                            "Webex asked us to slow down"
                        ),
                        PollReply::Transient(err) => {
                            tracing::warn!(error = %err, failures = state.transient_failures, "device poll failed; backing off")
                        }
                        PollReply::RateLimited(_) => {
                            tracing::warn!(wait_secs = wait.as_secs(), "device poll rate limited")
                        }
                        _ => {}
                    }
                    next = Instant::now() + wait;
                    let changed = record.interval_secs != state.interval.as_secs()
                        || record.slowed_down != state.slowed_down;
                    record.interval_secs = state.interval.as_secs();
                    record.slowed_down = state.slowed_down;
                    record.next_poll_at_ms = unix_now_ms() + wait.as_millis() as u64;
                    // A pending reply at the same interval changes nothing a page shows; the
                    // lease renewal records that we are alive. Write only what changed.
                    if (changed || wait != state.interval) && !write(flows, id, &record, None).await
                    {
                        return;
                    }
                    continue;
                }
                Step::Finish(status) => match reply {
                    PollReply::Granted(response) => {
                        (status, Some(TokenSet::new(response, Grant::Device)))
                    }
                    PollReply::Failed(err) | PollReply::Transient(err) => {
                        tracing::error!(error = %err, tracking_id = err.tracking_id(), "device flow failed");
                        (status, None)
                    }
                    _ => (status, None),
                },
            }
        };
        tracing::info!(status = status.as_str(), "device flow finished");
        record.status = status;
        write(flows, id, &record, tokens.as_ref()).await;
        return;
    }
}

/// Writes the poller's state; false when the flow is gone or no longer ours.
async fn write(
    flows: &DeviceFlows,
    id: &str,
    record: &FlowRecord,
    tokens: Option<&TokenSet>,
) -> bool {
    match flows.store.update(id, record, tokens, &flows.owner).await {
        Ok(written) => written,
        Err(err) => {
            tracing::warn!(%err, "cannot record a device flow's state");
            false
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
