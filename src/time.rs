//! Time arithmetic that cannot panic, for instants derived from configuration or from outside.

use std::time::{Duration, SystemTime};

/// `t + d`, or the latest representable time when that overflows.
pub(crate) fn add(t: SystemTime, d: Duration) -> SystemTime {
    t.checked_add(d).unwrap_or_else(far_future)
}

/// A time far enough ahead to mean "never" (about 292 billion years past the epoch would
/// overflow on some platforms; a million years does not).
fn far_future() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 * 365 * 24 * 3600)
}

/// Milliseconds since the Unix epoch, saturating (0 before the epoch).
pub(crate) fn millis(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The time `ms` milliseconds after the Unix epoch (negative values mean the epoch).
pub(crate) fn from_millis(ms: i64) -> SystemTime {
    add(
        SystemTime::UNIX_EPOCH,
        Duration::from_millis(u64::try_from(ms).unwrap_or(0)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_a_huge_duration_saturates() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(add(t, Duration::MAX), far_future());
        assert_eq!(add(t, Duration::from_secs(5)), t + Duration::from_secs(5));
    }

    #[test]
    fn millis_round_trip_and_saturate() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(millis(t), 1_700_000_000_123);
        assert_eq!(from_millis(millis(t)), t);
        assert_eq!(from_millis(-5), SystemTime::UNIX_EPOCH);
        assert_eq!(millis(SystemTime::UNIX_EPOCH - Duration::from_secs(1)), 0);
    }
}
