//! One device sign-in as plain data ([`FlowRecord`], [`FlowStatus`]), and the poller's pure
//! decision ([`PollState::decide`]): a `/device/token` reply in, the next step out.
//!
//! - no poll ever comes sooner than the interval;
//! - `slow_down` adds 5 s to the interval for this and every later poll (RFC 8628 §3.5);
//! - `access_denied` ends the flow as denied; `expired_token`/`invalid_grant` as expired;
//! - 5xx, timeouts and transport failures back off and go on, up to 3 in a row, then error;
//! - 429 waits `Retry-After` (never less than the interval) and goes on.

use crate::clock::unix_now_ms;
use crate::secret::Secret;
use crate::webex::device::PollReply;
use serde::{Deserialize, Serialize};
use std::time::Duration;

const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);
const MAX_TRANSIENT_FAILURES: u32 = 3;
const MAX_BACKOFF: Duration = Duration::from_secs(60);

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
