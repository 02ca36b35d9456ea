//! Relayed media paths this node serves as a relayer (issue 13): who may have an allocation
//! and how many fit the upload budget.
//!
//! An allocation goes to a member of the room it names (the registry says so, as for any
//! other request) and costs `allocation_kbps` of the relayer's `[relay] upload_budget_kbps`,
//! beside the broadcast children it feeds at `stream_kbps` each. A relayer over budget
//! refuses with the figures; one peer holds at most [`MAX_PER_PEER`] allocations at once.
//!
//! A node behind a NAT that maps per destination seeks an allocation for itself
//! ([`RelaySeek`]): once it is in a room to name, and again after [`SEEK_RETRY`] when no
//! relayer granted one.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use chroom_proto::{ErrorCode, SignalError};

/// Allocations one peer may hold at once (a node normally needs one; a second covers a
/// restart whose first allocation has not expired yet).
pub const MAX_PER_PEER: u32 = 2;

/// How soon a node that found no relayer asks again.
pub const SEEK_RETRY: Duration = Duration::from_secs(10);

/// Whether this node needs a relayed path for itself, and the search for one.
#[derive(Debug, Default)]
pub struct RelaySeek {
    needed: bool,
    searching: bool,
    found: bool,
    next_try: Option<Instant>,
}

impl RelaySeek {
    /// The NAT in front of the media socket maps per destination (`true`) or not.
    pub fn set_needed(&mut self, needed: bool) {
        self.needed = needed;
    }

    /// Whether to start a search now, naming a room this node is in (`in_room`).
    pub fn should_search(&mut self, now: Instant, in_room: bool) -> bool {
        let due = self.next_try.is_none_or(|at| at <= now);
        if !(self.needed && in_room && due) || self.searching || self.found {
            return false;
        }
        self.searching = true;
        true
    }

    /// A search ended; `found` if a relayer granted an allocation.
    pub fn searched(&mut self, now: Instant, found: bool) {
        self.searching = false;
        self.found = found;
        self.next_try = (!found).then_some(now + SEEK_RETRY);
    }
}

/// What relaying may cost this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayBudget {
    /// All the node may upload for others, kbit/s.
    pub upload_kbps: u32,
    /// What one broadcast child costs, kbit/s.
    pub stream_kbps: u32,
    /// What one allocation may relay, both ways together, kbit/s.
    pub allocation_kbps: u32,
}

/// The allocations a relayer serves, by peer. See the module docs.
#[derive(Debug)]
pub struct RelayLedger<P> {
    budget: RelayBudget,
    held: HashMap<P, u32>,
    total: u32,
}

impl<P: Copy + Eq + Hash> RelayLedger<P> {
    /// A ledger with nothing allocated.
    pub fn new(budget: RelayBudget) -> Self {
        Self {
            budget,
            held: HashMap::new(),
            total: 0,
        }
    }

    /// Reserves an allocation for `peer`, while this node feeds `children` broadcast children;
    /// the refusal says why.
    pub fn reserve(&mut self, peer: P, children: usize) -> Result<u32, SignalError> {
        let held = self.held.get(&peer).copied().unwrap_or(0);
        if held >= MAX_PER_PEER {
            return Err(SignalError::new(
                ErrorCode::Overloaded,
                format!("you hold {held} relay allocations here already"),
            ));
        }
        let RelayBudget {
            upload_kbps,
            stream_kbps,
            allocation_kbps,
        } = self.budget;
        let broadcasts = u64::from(stream_kbps) * children as u64;
        let allocations = u64::from(allocation_kbps) * u64::from(self.total + 1);
        if broadcasts + allocations > u64::from(upload_kbps) {
            return Err(SignalError::new(
                ErrorCode::Overloaded,
                format!(
                    "over the upload budget: {} allocations of {allocation_kbps} kbit/s and \
                     {children} broadcast children of {stream_kbps} kbit/s already use \
                     {} of {upload_kbps} kbit/s",
                    self.total,
                    broadcasts + allocations - u64::from(allocation_kbps),
                ),
            ));
        }
        self.held.insert(peer, held + 1);
        self.total += 1;
        Ok(allocation_kbps)
    }

    /// One of `peer`'s allocations ended.
    pub fn release(&mut self, peer: P) {
        if let Some(held) = self.held.get_mut(&peer) {
            *held -= 1;
            self.total -= 1;
            if *held == 0 {
                self.held.remove(&peer);
            }
        }
    }

    /// Allocations served now.
    pub fn total(&self) -> u32 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger() -> RelayLedger<u32> {
        RelayLedger::new(RelayBudget {
            upload_kbps: 10_000,
            stream_kbps: 1500,
            allocation_kbps: 3000,
        })
    }

    #[test]
    fn allocations_fit_the_budget_beside_broadcast_children() {
        let mut ledger = ledger();
        assert_eq!(ledger.reserve(1, 0), Ok(3000));
        assert_eq!(ledger.reserve(2, 0), Ok(3000));
        // Two allocations (6000) and three children (4500) do not fit 10 000.
        let refusal = ledger.reserve(3, 3).unwrap_err();
        assert_eq!(refusal.code, ErrorCode::Overloaded);
        assert!(refusal.message.contains("use 10500 of 10000"), "{refusal}");
        // Without the children a third fits; a fourth does not.
        assert_eq!(ledger.reserve(3, 0), Ok(3000));
        assert!(ledger.reserve(4, 0).is_err());
        ledger.release(1);
        assert_eq!(ledger.reserve(4, 0), Ok(3000));
        assert_eq!(ledger.total(), 3);
    }

    #[allow(clippy::disallowed_methods)]
    fn epoch() -> Instant {
        Instant::now()
    }

    #[test]
    fn a_search_starts_once_needed_and_in_a_room_and_is_retried_after_failing() {
        let now = epoch();
        let mut seek = RelaySeek::default();
        assert!(!seek.should_search(now, true), "not needed");
        seek.set_needed(true);
        assert!(!seek.should_search(now, false), "no room to name");
        assert!(seek.should_search(now, true));
        assert!(!seek.should_search(now, true), "one search at a time");
        seek.searched(now, false);
        assert!(!seek.should_search(now + SEEK_RETRY / 2, true));
        assert!(seek.should_search(now + SEEK_RETRY, true));
        seek.searched(now + SEEK_RETRY, true);
        assert!(!seek.should_search(now + SEEK_RETRY * 3, true), "found");
    }

    #[test]
    fn one_peer_holds_at_most_two() {
        let mut ledger = RelayLedger::new(RelayBudget {
            upload_kbps: 100_000,
            stream_kbps: 1500,
            allocation_kbps: 1000,
        });
        for _ in 0..MAX_PER_PEER {
            ledger.reserve(1, 0).unwrap();
        }
        assert!(ledger.reserve(1, 0).is_err());
        ledger.release(1);
        assert!(ledger.reserve(1, 0).is_ok());
        // Releasing more than was held changes nothing.
        for _ in 0..5 {
            ledger.release(9);
        }
        assert_eq!(ledger.total(), MAX_PER_PEER);
    }
}
