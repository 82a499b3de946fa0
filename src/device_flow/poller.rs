//! [`DeviceFlows`]: starts, cancels and claims device sign-ins, runs one tokio task a flow that
//! polls `/device/token`, and the housekeeping loop (leases, orphans, purge).
//!
//! A flow's record is keyed by an unguessable id only the owning session knows. One instance
//! polls it at a time, holding its lease. The loop ([`poll`]) never sleeps past the deadline and
//! checks it after every sleep, so the task always ends; a new sign-in, a cancel or a logout
//! aborts it, and losing its lease stops it.

use super::decide::{PollState, Step, time_left};
use super::{FlowRecord, FlowStatus};
use crate::client::{PerClient, Slot};
use crate::clock::unix_now_ms;
use crate::identity::{IdentityError, Verdict, Verifier};
use crate::secret::{fingerprint, random_token};
use crate::store::{FlowStore, LEASE_RENEW, StoreError};
use crate::telemetry;
use crate::tokens::{Grant, TokenSet};
use crate::webex::device::{DeviceAuthorization, PollReply};
use crate::webex::{TokenResponse, WebexClient};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::Instrument;

/// Finished or abandoned flows are forgotten this long after their code expired.
const KEEP_AFTER_EXPIRY: Duration = Duration::from_secs(600);

/// Why a device flow could not be started or read.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// Too many flows are pending on this server (`MAX_PENDING_DEVICE_FLOWS`).
    #[error("too many device sign-ins are pending")]
    Busy,
    /// This client address has too many flows pending (`MAX_PENDING_FLOWS_PER_CLIENT`).
    #[error("too many device sign-ins from this client are pending")]
    ClientBusy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// This instance's poller tasks by flow id, each with its flow's client slot (none for a flow
/// taken over), freed the moment the flow ends or the poller stops.
type Pollers = HashMap<String, (AbortHandle, Option<Slot>)>;

/// Every instance's flows (in the store) and this instance's pollers; clones share both.
#[derive(Clone)]
pub struct DeviceFlows {
    store: FlowStore<FlowRecord>,
    /// This instance's lease-holder name (random per process).
    owner: Arc<str>,
    pollers: Arc<Mutex<Pollers>>,
    webex: WebexClient,
    max_pending: usize,
    /// The pending flows of each client address on this instance (`MAX_PENDING_FLOWS_PER_CLIENT`).
    per_client: PerClient,
    /// A flow whose page nobody fetched for this long stops (`ABANDONED_FLOW_SECS`).
    abandoned_after: Duration,
    /// Verifies a grant's id_token (device scopes with `openid`): one that fails fails the flow.
    identity: Option<Verifier>,
}

impl DeviceFlows {
    /// `max_pending`: past this many pending flows, new sign-ins get a 503 page;
    /// `max_per_client`: past this many from one client address, a 429 page.
    pub fn new(
        store: FlowStore<FlowRecord>,
        webex: WebexClient,
        max_pending: usize,
        max_per_client: usize,
        abandoned_after: Duration,
        identity: Option<Verifier>,
    ) -> Self {
        Self {
            store,
            owner: random_token().expose().into(),
            pollers: Arc::default(),
            webex,
            max_pending,
            per_client: PerClient::new(max_per_client),
            abandoned_after,
            identity,
        }
    }

    /// The owning session looked at its flow (its page or status): the poller goes on.
    pub async fn mark_seen(&self, id: &str) -> Result<(), StoreError> {
        self.store.mark_seen(id).await
    }

    fn pollers(&self) -> std::sync::MutexGuard<'_, Pollers> {
        self.pollers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for one more pending flow of `client` (none without a peer address), taken before
    /// asking Webex for a code and handed to [`Self::start`]: `ClientBusy` past `max_per_client`,
    /// `Busy` past `max_pending` (which concurrent sign-ins may overshoot by those in flight).
    pub async fn reserve(&self, client: Option<IpAddr>) -> Result<Option<Slot>, FlowError> {
        let slot = |ip| self.per_client.enter(ip).ok_or(FlowError::ClientBusy);
        let slot = client.map(slot).transpose()?;
        if self.store.count_pending().await? >= self.max_pending {
            return Err(FlowError::Busy);
        }
        Ok(slot)
    }

    /// Records a flow Webex just started (values checked and clamped by the client) and spawns
    /// its poller, which keeps `client`'s slot until the flow ends. Returns the new flow id.
    pub async fn start(
        &self,
        auth: DeviceAuthorization,
        client: Option<Slot>,
    ) -> Result<String, FlowError> {
        let now = unix_now_ms();
        let record = FlowRecord {
            device_code: auth.device_code,
            user_code: auth.user_code,
            verification_uri: auth.verification_uri,
            verification_uri_complete: auth.verification_uri_complete,
            lifetime_secs: auth.expires_in,
            expires_at_ms: now.saturating_add(auth.expires_in.saturating_mul(1000)),
            interval_secs: auth.interval,
            slowed_down: false,
            next_poll_at_ms: now.saturating_add(auth.interval.saturating_mul(1000)),
            status: FlowStatus::Pending,
            id_token: Verdict::None,
        };
        let id = random_token().expose().to_owned();
        self.store.insert(&id, &record, &self.owner).await?;
        metrics::counter!(telemetry::DEVICE_FLOWS_STARTED).increment(1);
        self.spawn_poller(&id, false, client);
        Ok(id)
    }

    fn spawn_poller(&self, id: &str, takeover: bool, client: Option<Slot>) {
        let mut pollers = self.pollers();
        if pollers.contains_key(id) {
            return;
        }
        let (flows, id_owned) = (self.clone(), id.to_owned());
        // Its log lines carry a short hash of the id, never the id (a bearer secret).
        let span = tracing::info_span!("device_flow", flow = %fingerprint(id));
        let task = async move {
            poll(&flows, &id_owned, takeover).await;
            flows.pollers().remove(&id_owned);
        };
        let task = tokio::spawn(task.instrument(span)).abort_handle();
        pollers.insert(id.to_owned(), (task, client));
    }

    /// Polls the flows nobody polls: after a restart, or when their instance died (lease lapsed).
    async fn adopt_orphans(&self) -> Result<(), StoreError> {
        for id in self.store.orphans().await? {
            if !self.pollers().contains_key(&id) && self.store.lease(&id, &self.owner).await? {
                tracing::info!("taking over a device flow nobody was polling");
                self.spawn_poller(&id, true, None);
            }
        }
        Ok(())
    }

    /// The flow, for the pages.
    pub async fn get(&self, id: &str) -> Result<Option<FlowRecord>, StoreError> {
        self.store.get(id).await
    }

    /// Takes the tokens of a granted flow, exactly once, and forgets the flow.
    pub async fn take_tokens(&self, id: &str) -> Result<Option<TokenSet>, StoreError> {
        self.store.take_tokens(id).await
    }

    /// Stops the poller and forgets the flow (a poller on another instance notices within
    /// [`LEASE_RENEW`], when its next write finds the flow gone).
    pub async fn cancel(&self, id: &str) -> Result<(), StoreError> {
        if let Some((task, _slot)) = self.pollers().remove(id) {
            task.abort();
            metrics::counter!(telemetry::DEVICE_FLOWS_ENDED, "outcome" => "cancelled").increment(1);
        }
        self.store.delete(id).await
    }

    /// Number of pending flows in the store (every instance's), for the metrics.
    pub async fn pending(&self) -> Result<usize, StoreError> {
        self.store.count_pending().await
    }

    /// Number of flows recorded (pending or finished but not yet claimed or purged).
    #[cfg(any(test, feature = "test-support"))]
    pub async fn len(&self) -> usize {
        self.store.len().await.unwrap_or(0)
    }

    /// At shutdown: stops this instance's pollers, then gives up their leases, so another instance
    /// (or the next start) adopts the flows at once, not when they lapse. Returns how many.
    pub async fn stop(&self) -> Result<usize, StoreError> {
        for (_, (task, _slot)) in self.pollers().drain() {
            task.abort();
        }
        self.store.release_leases(&self.owner).await
    }

    /// Number of poller tasks running in this instance.
    #[cfg(any(test, feature = "test-support"))]
    pub fn active_pollers(&self) -> usize {
        self.pollers().len()
    }

    /// Runs until the app aborts it, every [`LEASE_RENEW`]: renews this instance's leases, adopts
    /// the flows nobody polls, and now and then forgets flows that expired long ago.
    pub async fn housekeeping(self) {
        let mut tick = tokio::time::interval(LEASE_RENEW);
        for round in 0u64.. {
            tick.tick().await;
            let ids: Vec<String> = self.pollers().keys().cloned().collect();
            if !ids.is_empty() {
                let renewed = self.store.renew_leases(&self.owner, &ids).await;
                logged(renewed, "housekeeping", "renew the device flows' leases");
            }
            let adopted = self.adopt_orphans().await;
            logged(adopted, "housekeeping", "look for orphaned device flows");
            if round % 20 == 0 {
                let purged = self.store.purge(KEEP_AFTER_EXPIRY).await;
                let what = "purge expired device flows";
                if let Some(purged @ 1..) = logged(purged, "housekeeping", what) {
                    tracing::debug!(purged, "forgot expired device flows");
                }
            }
        }
    }

    /// Writes a poller's state; false when the flow is gone or no longer ours.
    async fn write(&self, id: &str, record: &FlowRecord, tokens: Option<&TokenSet>) -> bool {
        let written = self.store.update(id, record, tokens, &self.owner).await;
        logged(written, "poller", "record a device flow's state").unwrap_or(false)
    }
}

/// A store call's value, or `None` once its failure is counted (at `place`) and logged.
fn logged<T>(result: Result<T, StoreError>, place: &'static str, what: &str) -> Option<T> {
    result
        .map_err(|err| {
            telemetry::store_error(place);
            tracing::warn!(%err, "cannot {what}");
        })
        .ok()
}

/// `wait` from now, but no later than `deadline` (at most [`time_left`] ahead, so the sum never
/// overflows, even for a `Retry-After` of 2^64-1 seconds).
fn after(wait: Duration, deadline: Instant) -> Instant {
    let now = Instant::now();
    now + wait.min(deadline.saturating_duration_since(now))
}

/// The poller task of one flow. `takeover`: the flow was polled by another instance (or before
/// a restart), whose last poll may not have been recorded: wait a whole interval first.
async fn poll(flows: &DeviceFlows, id: &str, takeover: bool) {
    let mut record = match flows.store.get(id).await {
        Ok(Some(record)) if record.status == FlowStatus::Pending => record,
        _ => return,
    };
    // At most `MAX_EXPIRES_IN` ahead, so this sum and every `after` below stay in range.
    let deadline = Instant::now() + time_left(record.expires_at_ms, unix_now_ms());
    let mut state = PollState::new(Duration::from_secs(record.interval_secs));
    state.slowed_down = record.slowed_down;
    // Unix milliseconds are truncated, so the recorded instant can be up to 1 ms before the one
    // it stands for: wait that millisecond too, so the first poll is never early.
    let until_due = record.next_poll_at_ms.saturating_sub(unix_now_ms());
    let first_wait = Duration::from_millis(until_due.saturating_add(1));
    let mut next = after(first_wait, deadline);
    if takeover {
        next = next.max(after(state.interval, deadline));
    }
    let (status, tokens) = loop {
        tokio::time::sleep_until(next).await;
        // Read once a poll: when the flow's page was last seen, if this instance holds the lease.
        let held = flows.store.holds(id, &flows.owner).await;
        let what = "check a device flow's lease; another instance will take it over";
        let Some(Some(seen_ms)) = logged(held, "poller", what) else {
            return; // cancelled, or another instance polls it now
        };
        if Instant::now() >= deadline {
            tracing::info!("device code expired before approval");
            break (FlowStatus::Expired, None);
        }
        let idle = unix_now_ms().saturating_sub(seen_ms);
        if u128::from(idle) >= flows.abandoned_after.as_millis() {
            // Nobody watches the page: stop polling Webex (with our client secret) for it.
            tracing::info!("device flow abandoned: its page was not fetched for a while");
            break (FlowStatus::Expired, None);
        }
        let reply = flows.webex.device_poll(&record.device_code).await;
        let wait = match (state.decide(&reply), reply) {
            (Step::Finish(_), PollReply::Granted(response)) => {
                break granted(flows, response, &mut record).await;
            }
            (Step::Finish(status), PollReply::Failed(err) | PollReply::Transient(err)) => {
                tracing::error!(error = %err, tracking_id = err.tracking_id(), "device flow failed");
                break (status, None);
            }
            (Step::Finish(status), _) => break (status, None),
            (Step::Wait(wait), PollReply::SlowDown) => {
                let interval_secs = state.interval.as_secs();
                tracing::info!(interval_secs, "Webex asked us to slow down");
                wait
            }
            (Step::Wait(wait), PollReply::Transient(err)) => {
                let failures = state.transient_failures;
                tracing::warn!(error = %err, failures, "device poll failed; backing off");
                wait
            }
            (Step::Wait(wait), PollReply::RateLimited(_)) => {
                tracing::warn!(wait_secs = wait.as_secs(), "device poll rate limited");
                wait
            }
            (Step::Wait(wait), _) => wait,
        };
        next = after(wait, deadline);
        let now_state = (state.interval.as_secs(), state.slowed_down);
        let changed = (record.interval_secs, record.slowed_down) != now_state;
        (record.interval_secs, record.slowed_down) = now_state;
        let sleep = next.saturating_duration_since(Instant::now());
        let sleep_ms = u64::try_from(sleep.as_millis()).unwrap_or(u64::MAX);
        record.next_poll_at_ms = unix_now_ms().saturating_add(sleep_ms);
        // A pending reply at the same interval changes nothing a page shows; the lease renewal
        // records that we are alive. Write only what changed.
        if (changed || wait != state.interval) && !flows.write(id, &record, None).await {
            return;
        }
    };
    tracing::info!(status = status.as_str(), "device flow finished");
    metrics::counter!(telemetry::DEVICE_FLOWS_ENDED, "outcome" => status.as_str()).increment(1);
    record.status = status;
    flows.write(id, &record, tokens.as_ref()).await;
}

/// A grant's tokens, once its id_token (if the scopes ask for one) is verified; the verdict goes
/// in `record`. A token that does not verify fails the flow: nobody is signed in.
async fn granted(
    flows: &DeviceFlows,
    response: TokenResponse,
    record: &mut FlowRecord,
) -> (FlowStatus, Option<TokenSet>) {
    if let Some(verifier) = &flows.identity {
        let tracking_id = response.tracking_id.as_deref();
        record.id_token = match verifier.identify(&response, None).await {
            Ok(Some(identity)) => Verdict::Verified(identity),
            Ok(None) => {
                tracing::info!(
                    tracking_id,
                    "the device grant carried no id_token; signed in without a verified identity"
                );
                Verdict::None
            }
            Err(err) => {
                tracing::warn!(error = %err, tracking_id, "device sign-in refused: the identity could not be verified");
                record.id_token = match err {
                    IdentityError::Refused { .. } => Verdict::Refused,
                    IdentityError::Keys(_) => Verdict::Unverifiable,
                };
                return (FlowStatus::Error, None);
            }
        };
    }
    let tokens = TokenSet::new(response, Grant::Device);
    (FlowStatus::Granted, Some(tokens))
}
