//! Time arithmetic that cannot panic.
//!
//! `SystemTime + Duration` panics when the sum is past what the platform represents. Durations
//! come from configuration (`ConversationConfig`, a retry policy) and times from webhook bodies,
//! so every such sum in the crate goes through [`saturating_add`].

use std::time::{Duration, SystemTime};

/// `t + d`, or the latest time the platform represents on the way there when the sum
/// overflows. Never panics.
pub(crate) fn saturating_add(t: SystemTime, d: Duration) -> SystemTime {
    if let Some(sum) = t.checked_add(d) {
        return sum;
    }
    // Overflow: walk up by halving steps to the largest time reachable from `t`. At most about
    // two hundred steps (a `Duration` holds fewer than 2^94 nanoseconds), and only on this path.
    let mut at = t;
    let mut step = d;
    while !step.is_zero() {
        match at.checked_add(step) {
            Some(next) => at = next,
            None => step /= 2,
        }
    }
    at
}

/// Milliseconds since the Unix epoch, saturating (0 before the epoch).
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) fn millis(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The time `ms` milliseconds after the Unix epoch (negative values mean the epoch).
pub(crate) fn from_millis(ms: i64) -> SystemTime {
    saturating_add(
        SystemTime::UNIX_EPOCH,
        Duration::from_millis(u64::try_from(ms).unwrap_or(0)),
    )
}

/// The Unix epoch: serde's default for a time recorded before its field existed.
pub(crate) fn epoch() -> SystemTime {
    SystemTime::UNIX_EPOCH
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_when_it_fits() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            saturating_add(t, Duration::from_secs(60)),
            t + Duration::from_secs(60)
        );
        assert_eq!(saturating_add(t, Duration::ZERO), t);
    }

    #[test]
    fn saturates_instead_of_panicking() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let far = saturating_add(t, Duration::MAX);
        assert!(far > t + Duration::from_secs(1_000_000 * 365 * 24 * 3600));
        // The latest representable time: nothing more can be added to it.
        assert_eq!(far.checked_add(Duration::from_nanos(1)), None);
        // Adding to the saturated time again stays there.
        assert_eq!(saturating_add(far, Duration::MAX), far);
        assert_eq!(saturating_add(far, Duration::from_secs(1)), far);
    }

    #[test]
    fn millis_round_trip_and_saturate() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(millis(t), 1_700_000_000_123);
        assert_eq!(from_millis(millis(t)), t);
        assert_eq!(from_millis(-5), SystemTime::UNIX_EPOCH);
        assert_eq!(millis(SystemTime::UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert_eq!(millis(saturating_add(t, Duration::MAX)), i64::MAX);
    }
}
