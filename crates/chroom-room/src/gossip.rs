//! Deciding room gossip: what a driver is told to do with a message published in a room's topic.

use std::time::Duration;

use chroom_proto::SignalError;

/// How far a message's send time may be from the receiver's clock. Gossipsub remembers message
/// ids for minutes, not forever: without this bound an old signed message could be replayed
/// once it has been forgotten.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// Correlates a received room message with the [`crate::Output::GossipVerdict`] that decides
/// it. Chosen by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GossipId(pub u64);

/// What to do with a room message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GossipVerdict {
    /// The author may do this: deliver it and forward it to the topic.
    Deliver,
    /// The author may not: drop it and count it against the peer that forwarded it.
    Reject(SignalError),
    /// Drop it without blaming anyone (this node is not in the room, or could not learn the
    /// author's rights in time).
    Ignore(String),
}

/// Whether a message sent at `sent_at_unix_ms` is recent enough to accept at `now_unix_ms`.
pub fn is_fresh(sent_at_unix_ms: u64, now_unix_ms: u64) -> bool {
    let skew = u64::try_from(MAX_CLOCK_SKEW.as_millis()).unwrap_or(u64::MAX);
    sent_at_unix_ms.abs_diff(now_unix_ms) <= skew
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_allows_skew_both_ways() {
        let now = 1_800_000_000_000;
        let skew = MAX_CLOCK_SKEW.as_millis() as u64;
        assert!(is_fresh(now, now));
        assert!(is_fresh(now - skew, now));
        assert!(is_fresh(now + skew, now));
        assert!(!is_fresh(now - skew - 1, now));
        assert!(!is_fresh(now + skew + 1, now));
        assert!(!is_fresh(0, now));
    }
}
