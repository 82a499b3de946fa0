//! The poller's pure decision ([`PollState::decide`]): a `/device/token` reply in, a step out.
//!
//! - no poll ever comes sooner than the interval;
//! - `slow_down` adds 5 s to the interval for this and every later poll (RFC 8628 §3.5);
//! - `access_denied` ends the flow as denied; `expired_token`/`invalid_grant` as expired;
//! - 5xx, timeouts and transport failures back off and go on, up to 3 in a row, then error;
//! - 429 waits `Retry-After` (never less than the interval) and goes on;
//! - no wait runs past the deadline ([`time_left`]), and no sum overflows, whatever numbers
//!   Webex sends.

use super::FlowStatus;
use crate::webex::device::{MAX_EXPIRES_IN, PollReply};
use std::time::Duration;

const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);
const MAX_TRANSIENT_FAILURES: u32 = 3;
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What the poller does after a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
                self.interval = self.interval.saturating_add(SLOW_DOWN_STEP);
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
                self.transient_failures = self.transient_failures.saturating_add(1);
                if self.transient_failures >= MAX_TRANSIENT_FAILURES {
                    Step::Finish(FlowStatus::Error)
                } else {
                    let factor = 2u32.saturating_pow(self.transient_failures);
                    let backoff = self.interval.saturating_mul(factor);
                    Step::Wait(backoff.min(MAX_BACKOFF).max(self.interval))
                }
            }
        }
    }
}

/// Time left until `expires_at_ms` (Unix ms), at most [`MAX_EXPIRES_IN`]: whatever a record says,
/// its poller ends within that, and an instant this far ahead cannot overflow.
pub fn time_left(expires_at_ms: u64, now_ms: u64) -> Duration {
    Duration::from_millis(expires_at_ms.saturating_sub(now_ms))
        .min(Duration::from_secs(MAX_EXPIRES_IN))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webex::WebexError;
    use crate::webex::device::{DeviceAuthorization, MAX_INTERVAL};
    use proptest::prelude::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn wait(s: u64) -> Step {
        Step::Wait(secs(s))
    }

    /// The steps a state of `interval` takes for `replies`, in order.
    fn steps(interval: Duration, replies: impl IntoIterator<Item = PollReply>) -> Vec<Step> {
        let mut state = PollState::new(interval);
        replies.into_iter().map(|r| state.decide(&r)).collect()
    }

    #[test]
    fn pending_keeps_the_interval_and_slow_down_raises_it_for_good() {
        use PollReply::{Pending, SlowDown};
        let mut s = PollState::new(secs(2));
        let got = [Pending, SlowDown, Pending, SlowDown].map(|r| s.decide(&r));
        assert_eq!(got, [wait(2), wait(7), wait(7), wait(12)]);
        assert!(s.slowed_down);
    }

    #[test]
    fn final_answers_finish() {
        for (reply, status) in [
            (PollReply::Denied, FlowStatus::Denied),
            (PollReply::Expired, FlowStatus::Expired),
            (PollReply::Failed(WebexError::Timeout), FlowStatus::Error),
        ] {
            assert_eq!(steps(secs(2), [reply]), [Step::Finish(status)]);
        }
    }

    #[test]
    fn three_transient_failures_in_a_row_end_the_flow_and_success_resets_the_count() {
        let blip = || PollReply::Transient(WebexError::Timeout);
        let replies = [blip(), blip(), PollReply::Pending, blip(), blip(), blip()];
        let error = Step::Finish(FlowStatus::Error);
        let want = [wait(4), wait(8), wait(2), wait(4), wait(8), error];
        assert_eq!(steps(secs(2), replies), want);
    }

    #[test]
    fn rate_limits_wait_retry_after_but_never_less_than_the_interval() {
        let limited = |s: Option<u64>| PollReply::RateLimited(s.map(secs));
        let replies = [limited(Some(9)), limited(Some(1)), limited(None)];
        assert_eq!(steps(secs(5), replies), [wait(9), wait(5), wait(5)]);
    }

    #[test]
    fn backoff_is_capped_and_huge_numbers_saturate_instead_of_panicking() {
        let blip = || PollReply::Transient(WebexError::Timeout);
        assert_eq!(steps(secs(40), [blip()]), [wait(60)]);
        let max = Step::Wait(Duration::MAX);
        let slowed = steps(Duration::MAX, [PollReply::SlowDown, blip()]);
        assert_eq!(slowed, [max, max]);
        let forever = Duration::from_secs(u64::MAX);
        let limited = PollReply::RateLimited(Some(forever));
        assert_eq!(steps(secs(1), [limited]), [Step::Wait(forever)]);
        // ...and the poller sleeps only until the deadline.
        assert_eq!(time_left(u64::MAX, 0), secs(MAX_EXPIRES_IN));
        assert_eq!(time_left(10_000, 4_000), secs(6));
        assert_eq!(time_left(0, u64::MAX), Duration::ZERO);
    }

    /// Mostly "pending", then slow_down, 429s and blips, now and then a final answer.
    fn reply() -> impl Strategy<Value = PollReply> {
        let tokens = r#"{"access_token":"a","expires_in":60}"#;
        (0..21u8, any::<Option<u64>>()).prop_map(move |(pick, retry_after)| match pick {
            0..8 => PollReply::Pending,
            8..11 => PollReply::SlowDown,
            11..14 => PollReply::RateLimited(retry_after.map(Duration::from_secs)),
            14..17 => PollReply::Transient(WebexError::Timeout),
            17 => PollReply::Granted(serde_json::from_str(tokens).unwrap()),
            18 => PollReply::Denied,
            19 => PollReply::Expired,
            _ => PollReply::Failed(WebexError::Transport("x".into())),
        })
    }

    proptest! {
        /// The poller's loop on a simulated clock, with the same pure parts as `poller::poll`:
        /// the client's clamp, `decide`, `time_left` and sleeping at most `left`. Whatever
        /// Webex sends, the flow ends by its clamped deadline, and no poll comes sooner than
        /// the interval.
        #[test]
        fn every_simulated_flow_ends_by_its_deadline(
            interval in any::<u64>(),
            expires_in in any::<u64>(),
            replies in proptest::collection::vec(reply(), 0..400),
        ) {
            let raw = serde_json::json!({"device_code": "d", "user_code": "418205",
                "verification_uri": "https://x.example/verify", "expires_in": expires_in,
                "interval": interval});
            let auth = DeviceAuthorization::check(serde_json::from_value(raw).unwrap(), false);
            let auth = auth.unwrap();
            prop_assert!(auth.interval <= MAX_INTERVAL && auth.expires_in <= MAX_EXPIRES_IN);
            // As `DeviceFlows::start` records it, in milliseconds from a start at 1,000 s.
            let start_ms = 1_000_000u64;
            let expires_at_ms = start_ms + auth.expires_in * 1000;
            let mut state = PollState::new(secs(auth.interval));
            let mut now = Duration::from_millis(start_ms);
            let deadline = now + time_left(expires_at_ms, start_ms);
            let mut wait = state.interval;
            let mut replies = replies.into_iter();
            let mut polls = 0u32;
            let ended = loop {
                let left = deadline.saturating_sub(now);
                let sleep = wait.min(left);
                prop_assert!(sleep >= state.interval.min(left), "no poll sooner than the interval");
                now += sleep;
                if now >= deadline {
                    break FlowStatus::Expired;
                }
                polls += 1;
                prop_assert!(polls <= 1 + MAX_EXPIRES_IN as u32, "bounded");
                // After the random replies, Webex keeps saying "pending".
                let reply = replies.next().unwrap_or(PollReply::Pending);
                match state.decide(&reply) {
                    Step::Wait(next) => wait = next,
                    Step::Finish(status) => break status,
                }
            };
            prop_assert!(ended.is_final());
            prop_assert!(now <= deadline);
            prop_assert!(now - Duration::from_millis(start_ms) <= secs(MAX_EXPIRES_IN));
        }
    }
}
