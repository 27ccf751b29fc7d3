//! When to try a failed call again: a pure decision, so that it can be tested without a clock.

use std::time::Duration;

use super::error::SendError;

/// Exponential backoff with jitter, for retryable errors only.
///
/// On by default ([`RetryPolicy::default`]): 3 attempts in all, waits from 500 ms doubling to at
/// most 8 s, and never past 30 s since the first attempt. Only rate limits, temporary
/// failures, and network failures where the request certainly did not arrive are retried.
/// Outside-the-window, invalid-parameter, expired-token and recipient-unavailable errors
/// never are.
///
/// Graph has no idempotency key: a request that timed out after it was written may have been
/// delivered, and sending it again may deliver it twice. Such failures are not retried unless
/// [`RetryPolicy::retry_unknown_outcome`] is set, accepting that risk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = no retry).
    pub max_attempts: u32,
    /// The wait before the first retry.
    pub initial_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
    /// No retry starts later than this after the first attempt.
    pub max_elapsed: Duration,
    /// Whether to retry a request whose outcome is unknown (possible duplicate).
    pub retry_unknown_outcome: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_elapsed: Duration::from_secs(30),
            retry_unknown_outcome: false,
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Wait this long, then try again.
    RetryAfter(Duration),
    /// Return the error.
    GiveUp,
}

impl RetryPolicy {
    /// No retries at all.
    pub fn never() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Decides after attempt number `attempts_made` (1 for the first) failed with `error`,
    /// `elapsed` after the first attempt started. `jitter` in `[0, 1)` spreads the waits of
    /// many clients: the wait is between half and all of the exponential backoff.
    pub fn decide(
        &self,
        error: &SendError,
        attempts_made: u32,
        elapsed: Duration,
        jitter: f64,
    ) -> RetryDecision {
        let retryable = error.is_retryable()
            || (self.retry_unknown_outcome
                && matches!(
                    error,
                    SendError::Transport {
                        outcome_unknown: true,
                        ..
                    }
                ));
        if !retryable || attempts_made >= self.max_attempts {
            return RetryDecision::GiveUp;
        }
        let exponent = attempts_made.saturating_sub(1).min(30);
        let backoff = self
            .initial_backoff
            .saturating_mul(1u32 << exponent)
            .min(self.max_backoff);
        // `f64::clamp` keeps NaN, and `Duration::mul_f64` panics on NaN or on a product past
        // `Duration::MAX` (a configured backoff near it): neither may reach it.
        let jitter = if jitter.is_nan() {
            0.0
        } else {
            jitter.clamp(0.0, 1.0)
        };
        let mut wait = Duration::try_from_secs_f64(backoff.as_secs_f64() * (0.5 + jitter / 2.0))
            .map_or(backoff, |w| w.min(backoff));
        if let SendError::Graph(g) = error {
            if let Some(after) = g.retry_after {
                wait = wait.max(after);
            }
        }
        if elapsed.saturating_add(wait) > self.max_elapsed {
            return RetryDecision::GiveUp;
        }
        RetryDecision::RetryAfter(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::send::error::{GraphError, TransportKind};

    fn graph(code: i64) -> SendError {
        SendError::Graph(GraphError {
            status: 400,
            code,
            subcode: None,
            message: String::new(),
            error_type: None,
            fbtrace_id: None,
            retry_after: None,
        })
    }

    #[test]
    fn retries_only_what_can_succeed() {
        let p = RetryPolicy::default();
        let zero = Duration::ZERO;
        assert!(matches!(
            p.decide(&graph(613), 1, zero, 0.0),
            RetryDecision::RetryAfter(_)
        ));
        assert!(matches!(
            p.decide(&graph(2), 1, zero, 0.0),
            RetryDecision::RetryAfter(_)
        ));
        for never in [190, 100, 551, 10] {
            assert_eq!(
                p.decide(&graph(never), 1, zero, 0.0),
                RetryDecision::GiveUp,
                "{never}"
            );
        }
        let unknown = SendError::Transport {
            kind: TransportKind::Timeout,
            outcome_unknown: true,
            message: String::new(),
        };
        assert_eq!(p.decide(&unknown, 1, zero, 0.0), RetryDecision::GiveUp);
        let opted_in = RetryPolicy {
            retry_unknown_outcome: true,
            ..RetryPolicy::default()
        };
        assert!(matches!(
            opted_in.decide(&unknown, 1, zero, 0.0),
            RetryDecision::RetryAfter(_)
        ));
        assert_eq!(
            RetryPolicy::never().decide(&graph(613), 1, zero, 0.0),
            RetryDecision::GiveUp
        );
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let p = RetryPolicy {
            max_attempts: 10,
            max_elapsed: Duration::from_secs(3600),
            ..RetryPolicy::default()
        };
        let e = graph(613);
        let wait = |attempt, jitter| match p.decide(&e, attempt, Duration::ZERO, jitter) {
            RetryDecision::RetryAfter(d) => d,
            RetryDecision::GiveUp => panic!("gave up"),
        };
        assert_eq!(wait(1, 0.0), Duration::from_millis(250));
        let high = wait(1, 0.999_999);
        assert!(
            high > Duration::from_millis(499) && high < Duration::from_millis(500),
            "{high:?}"
        );
        assert_eq!(wait(2, 0.0), Duration::from_millis(500));
        assert_eq!(wait(3, 0.0), Duration::from_secs(1));
        assert_eq!(
            wait(9, 0.0),
            Duration::from_secs(4),
            "capped at max_backoff, then halved by jitter"
        );
        assert_eq!(
            p.decide(&e, 10, Duration::ZERO, 0.0),
            RetryDecision::GiveUp,
            "attempts exhausted"
        );
    }

    #[test]
    fn total_time_is_capped_and_retry_after_is_honoured() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.decide(&graph(613), 1, Duration::from_secs(30), 0.0),
            RetryDecision::GiveUp
        );
        let mut slow = GraphError {
            status: 400,
            code: 80_006,
            subcode: None,
            message: String::new(),
            error_type: None,
            fbtrace_id: None,
            retry_after: Some(Duration::from_secs(5)),
        };
        assert_eq!(
            p.decide(&SendError::Graph(slow.clone()), 1, Duration::ZERO, 0.0),
            RetryDecision::RetryAfter(Duration::from_secs(5))
        );
        slow.retry_after = Some(Duration::from_secs(600));
        assert_eq!(
            p.decide(&SendError::Graph(slow), 1, Duration::ZERO, 0.0),
            RetryDecision::GiveUp
        );
    }

    #[test]
    fn huge_durations_and_odd_jitter_do_not_panic() {
        let p = RetryPolicy {
            max_attempts: u32::MAX,
            initial_backoff: Duration::MAX,
            max_backoff: Duration::MAX,
            max_elapsed: Duration::MAX,
            retry_unknown_outcome: false,
        };
        let e = graph(613);
        // `Duration::MAX.mul_f64(1.0)` overflows `Duration` (its seconds round up past u64::MAX).
        for attempt in [1, 2, 31, 32, u32::MAX - 1] {
            for jitter in [0.0, 0.5, 0.999_999, 1.0, f64::INFINITY] {
                match p.decide(&e, attempt, Duration::ZERO, jitter) {
                    RetryDecision::RetryAfter(wait) => {
                        assert!(wait >= Duration::MAX / 4, "{wait:?}");
                    }
                    RetryDecision::GiveUp => panic!("gave up at {attempt}, {jitter}"),
                }
            }
        }
        // Elapsed at its maximum: no overflow adding the wait (it saturates at the budget).
        assert!(matches!(
            p.decide(&e, 1, Duration::MAX, 0.0),
            RetryDecision::RetryAfter(_)
        ));
        let budget = RetryPolicy {
            max_elapsed: Duration::from_secs(30),
            ..p.clone()
        };
        assert_eq!(
            budget.decide(&e, 1, Duration::MAX, 0.0),
            RetryDecision::GiveUp
        );
        // NaN jitter (a host's own random source) is read as none: half the backoff.
        let d = RetryPolicy::default();
        assert_eq!(
            d.decide(&e, 1, Duration::ZERO, f64::NAN),
            RetryDecision::RetryAfter(Duration::from_millis(250))
        );
        assert_eq!(
            d.decide(&e, 1, Duration::ZERO, f64::NEG_INFINITY),
            RetryDecision::RetryAfter(Duration::from_millis(250))
        );
    }
}
