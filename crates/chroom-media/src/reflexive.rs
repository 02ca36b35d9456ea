//! Learning this node's server-reflexive address: the address and port its media socket has
//! on the far side of its NAT, as STUN servers (public Chroom nodes, which answer Binding on
//! their media sockets) see it. Asking two or more servers also tells the NAT's kind: the same
//! mapping for every server is one ICE can use for anyone; a mapping per server (a symmetric
//! NAT) is useless to others, and links then need a relay.
//!
//! Sans-IO: time and the seed of transaction ids are inputs, datagrams to send are outputs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::stun::{self, TransactionId};

/// First wait for an answer; doubled per retry (RFC 8489 §6.2.1 starts at 500 ms too).
const FIRST_RETRY: Duration = Duration::from_millis(500);
/// Requests sent to one server before it counts as silent.
const MAX_TRIES: u32 = 5;
/// How often a known mapping is checked again: a NAT drops an idle mapping after 30 s or more
/// (RFC 4787 REQ-5 asks for at least 2 min) and may hand out another, which new links must
/// offer instead.
pub const RECHECK_INTERVAL: Duration = Duration::from_secs(25);
/// How soon a round that learned nothing is tried again (the servers may not be up yet).
pub const RETRY_INTERVAL: Duration = Duration::from_secs(5);

/// What the probe has learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapping {
    /// No server has answered (yet).
    Unknown,
    /// Every server that answered saw this address: usable as a candidate by anyone.
    Stable(SocketAddr),
    /// Servers saw different addresses: a symmetric NAT; reflexive candidates are of no use.
    PerDestination(Vec<SocketAddr>),
}

#[derive(Debug)]
struct Asking {
    transaction: TransactionId,
    next_at: Instant,
    tries: u32,
}

/// One round of Binding requests to a set of servers. See the module docs.
#[derive(Debug)]
pub struct ReflexiveProbe {
    asking: BTreeMap<SocketAddr, Asking>,
    answers: BTreeMap<SocketAddr, SocketAddr>,
    silent: Vec<SocketAddr>,
    seed: u64,
}

impl ReflexiveProbe {
    /// A probe of `servers`, transaction ids drawn from `seed` (the driver's randomness).
    pub fn new(now: Instant, servers: &[SocketAddr], seed: u64) -> Self {
        let mut probe = Self {
            asking: BTreeMap::new(),
            answers: BTreeMap::new(),
            silent: Vec::new(),
            seed,
        };
        for server in servers {
            let transaction = probe.next_transaction();
            let asking = Asking {
                transaction,
                next_at: now,
                tries: 0,
            };
            probe.asking.insert(*server, asking);
        }
        probe
    }

    /// The requests due at `now`, as (server, datagram); call again at [`Self::poll_timeout`].
    pub fn poll_transmit(&mut self, now: Instant) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut out = Vec::new();
        let mut gave_up = Vec::new();
        for (server, asking) in &mut self.asking {
            if asking.next_at > now {
                continue;
            }
            if asking.tries == MAX_TRIES {
                gave_up.push(*server);
                continue;
            }
            out.push((*server, stun::binding_request(asking.transaction)));
            asking.next_at = now + FIRST_RETRY * 2u32.pow(asking.tries);
            asking.tries += 1;
        }
        for server in gave_up {
            self.asking.remove(&server);
            self.silent.push(server);
        }
        out
    }

    /// A datagram from `from`; true if it was an answer of this probe's (so it is not for a
    /// link).
    pub fn handle_datagram(&mut self, from: SocketAddr, bytes: &[u8]) -> bool {
        let Some(asking) = self.asking.get(&from) else {
            return false;
        };
        let Some(mapped) = stun::binding_success_address(bytes, asking.transaction) else {
            return false;
        };
        self.asking.remove(&from);
        self.answers.insert(from, mapped);
        true
    }

    /// When to call [`Self::poll_transmit`] next; `None` once every server answered or gave up.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.asking.values().map(|a| a.next_at).min()
    }

    /// Whether every server answered or gave up.
    pub fn is_done(&self) -> bool {
        self.asking.is_empty()
    }

    /// What the answers so far say.
    pub fn mapping(&self) -> Mapping {
        let mut seen: Vec<SocketAddr> = self.answers.values().copied().collect();
        seen.sort_unstable();
        seen.dedup();
        match seen.as_slice() {
            [] => Mapping::Unknown,
            [one] => Mapping::Stable(*one),
            _ => Mapping::PerDestination(seen),
        }
    }

    /// Servers that never answered.
    pub fn silent(&self) -> &[SocketAddr] {
        &self.silent
    }

    /// The seed after the transaction ids drawn so far: a next round continues from it.
    fn into_seed(self) -> u64 {
        self.seed
    }

    /// A transaction id from the seed (splitmix64): unpredictable to others as long as the
    /// seed is, never repeated within a probe.
    fn next_transaction(&mut self) -> TransactionId {
        let mut id = [0; 12];
        for chunk in id.chunks_mut(6) {
            self.seed = self.seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_be_bytes()[..6]);
        }
        id
    }
}

/// Keeps this node's mapping current: a [`ReflexiveProbe`] round at start, then one every
/// [`RECHECK_INTERVAL`] (every [`RETRY_INTERVAL`] while no server has answered). A round that
/// learns nothing keeps the last mapping: silent servers say nothing about the NAT.
#[derive(Debug)]
pub struct ReflexiveTracker {
    servers: Vec<SocketAddr>,
    round: Option<ReflexiveProbe>,
    next_round: Instant,
    mapping: Mapping,
    seed: u64,
    changed: bool,
}

impl ReflexiveTracker {
    /// A tracker asking `servers`, its first round due at `now`.
    pub fn new(now: Instant, servers: Vec<SocketAddr>, seed: u64) -> Self {
        Self {
            servers,
            round: None,
            next_round: now,
            mapping: Mapping::Unknown,
            seed,
            changed: false,
        }
    }

    /// The requests due at `now`, as (server, datagram).
    pub fn poll_transmit(&mut self, now: Instant) -> Vec<(SocketAddr, Vec<u8>)> {
        if self.servers.is_empty() {
            return Vec::new();
        }
        if self.round.is_none() && self.next_round <= now {
            self.round = Some(ReflexiveProbe::new(now, &self.servers, self.seed));
        }
        let Some(round) = &mut self.round else {
            return Vec::new();
        };
        let out = round.poll_transmit(now);
        self.end_round_if_done(now);
        out
    }

    /// A datagram from `from`; true if it answered this tracker's round (so it is not for a
    /// link).
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> bool {
        let taken = self
            .round
            .as_mut()
            .is_some_and(|round| round.handle_datagram(from, bytes));
        if taken {
            self.end_round_if_done(now);
        }
        taken
    }

    /// When to call [`Self::poll_transmit`] next; `None` without servers.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.servers.is_empty() {
            return None;
        }
        match &self.round {
            Some(round) => round.poll_timeout(),
            None => Some(self.next_round),
        }
    }

    /// The mapping the last conclusive round found.
    pub fn mapping(&self) -> &Mapping {
        &self.mapping
    }

    /// The mapping, once after each round that changed it.
    pub fn poll_change(&mut self) -> Option<&Mapping> {
        std::mem::take(&mut self.changed).then_some(&self.mapping)
    }

    fn end_round_if_done(&mut self, now: Instant) {
        if !self.round.as_ref().is_some_and(ReflexiveProbe::is_done) {
            return;
        }
        let Some(round) = self.round.take() else {
            return;
        };
        let found = round.mapping();
        self.seed = round.into_seed();
        self.next_round = now
            + match found {
                Mapping::Unknown => RETRY_INTERVAL,
                _ => RECHECK_INTERVAL,
            };
        if found != Mapping::Unknown && found != self.mapping {
            self.mapping = found;
            self.changed = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{addr, epoch};

    /// Answers each request as a server that sees the asker at `mapped`.
    fn answer(request: &[u8], mapped: SocketAddr) -> Vec<u8> {
        let transaction = stun::binding_request_id(request).expect("a binding request");
        stun::binding_success(transaction, mapped)
    }

    #[test]
    fn one_mapping_for_every_server_is_stable() {
        let now = epoch();
        let servers = [addr("10.77.0.2:4002"), addr("10.77.0.3:4002")];
        let mut probe = ReflexiveProbe::new(now, &servers, 7);
        let requests = probe.poll_transmit(now);
        assert_eq!(requests.len(), 2);
        let mapped = addr("10.77.0.9:4002");
        for (server, request) in &requests {
            assert!(probe.handle_datagram(*server, &answer(request, mapped)));
        }
        assert!(probe.is_done());
        assert_eq!(probe.mapping(), Mapping::Stable(mapped));
        assert_eq!(probe.poll_timeout(), None);
    }

    #[test]
    fn a_mapping_per_server_is_a_symmetric_nat() {
        let now = epoch();
        let servers = [addr("10.77.0.2:4002"), addr("10.77.0.3:4002")];
        let mut probe = ReflexiveProbe::new(now, &servers, 7);
        for (i, (server, request)) in probe.poll_transmit(now).into_iter().enumerate() {
            let mapped = SocketAddr::new("10.77.0.9".parse().unwrap(), 50_000 + i as u16);
            probe.handle_datagram(server, &answer(&request, mapped));
        }
        assert!(matches!(probe.mapping(), Mapping::PerDestination(seen) if seen.len() == 2));
    }

    #[test]
    fn answers_from_elsewhere_or_for_other_transactions_are_not_taken() {
        let now = epoch();
        let server = addr("10.77.0.2:4002");
        let mut probe = ReflexiveProbe::new(now, &[server], 1);
        let (_, request) = probe.poll_transmit(now).remove(0);
        let mapped = addr("10.77.0.9:4002");
        let good = answer(&request, mapped);
        assert!(
            !probe.handle_datagram(addr("10.77.0.66:4002"), &good),
            "wrong source"
        );
        let other = stun::binding_success([0; 12], mapped);
        assert!(!probe.handle_datagram(server, &other), "wrong transaction");
        assert!(!probe.handle_datagram(server, &[0x80; 100]), "not STUN");
        assert_eq!(probe.mapping(), Mapping::Unknown);
        assert!(probe.handle_datagram(server, &good));
        // A second copy of the answer is no longer this probe's.
        assert!(!probe.handle_datagram(server, &good));
    }

    #[test]
    fn a_silent_server_is_asked_again_with_backoff_then_given_up() {
        let now = epoch();
        let server = addr("10.77.0.2:4002");
        let mut probe = ReflexiveProbe::new(now, &[server], 3);
        let mut sent_at = Vec::new();
        let mut at = now;
        while let Some(next) = probe.poll_timeout() {
            at = at.max(next);
            if !probe.poll_transmit(at).is_empty() {
                sent_at.push(at.duration_since(now).as_millis());
            }
        }
        assert_eq!(sent_at, vec![0, 500, 1500, 3500, 7500]);
        assert_eq!(probe.silent(), [server]);
        assert_eq!(probe.mapping(), Mapping::Unknown);
    }

    /// Runs `tracker` to `until`, each server answering as `mapped(server, round)` says
    /// (`None`: silent); returns the changes it reported.
    fn run_tracker(
        tracker: &mut ReflexiveTracker,
        start: Instant,
        until: Duration,
        mapped: impl Fn(SocketAddr, Duration) -> Option<SocketAddr>,
    ) -> Vec<(u128, Mapping)> {
        let mut changes = Vec::new();
        let mut at = start;
        while let Some(next) = tracker.poll_timeout() {
            at = at.max(next);
            if at > start + until {
                break;
            }
            for (server, request) in tracker.poll_transmit(at) {
                if let Some(seen) = mapped(server, at - start) {
                    assert!(tracker.handle_datagram(at, server, &answer(&request, seen)));
                }
            }
            if let Some(mapping) = tracker.poll_change() {
                changes.push((at.duration_since(start).as_millis(), mapping.clone()));
            }
        }
        changes
    }

    #[test]
    fn a_tracker_learns_the_mapping_then_rechecks_it_and_reports_a_rebinding() {
        let start = epoch();
        let servers = vec![addr("10.77.0.2:4002"), addr("10.77.0.3:4002")];
        let mut tracker = ReflexiveTracker::new(start, servers, 11);
        let before = addr("10.77.0.9:4002");
        let after = addr("10.77.0.9:61000");
        let changes = run_tracker(&mut tracker, start, Duration::from_secs(60), |_, at| {
            Some(if at < Duration::from_secs(30) {
                before
            } else {
                after
            })
        });
        // At start, then the recheck at 50 s sees the new port; the one at 25 s saw no change.
        assert_eq!(
            changes,
            vec![
                (0, Mapping::Stable(before)),
                (50_000, Mapping::Stable(after))
            ]
        );
    }

    #[test]
    fn a_tracker_retries_sooner_while_servers_are_silent_and_keeps_what_it_knew() {
        let start = epoch();
        let server = addr("10.77.0.2:4002");
        let mut tracker = ReflexiveTracker::new(start, vec![server], 5);
        let mapped = addr("10.77.0.9:4002");
        // Silent for the first round (gives up at 15.5 s); the retry 5 s later is answered.
        let changes = run_tracker(&mut tracker, start, Duration::from_secs(21), |_, at| {
            (at >= Duration::from_secs(20)).then_some(mapped)
        });
        assert_eq!(changes, vec![(20_500, Mapping::Stable(mapped))]);
        // A later silent round keeps the mapping.
        let later = start + Duration::from_secs(21);
        run_tracker(&mut tracker, later, Duration::from_secs(60), |_, _| None);
        assert_eq!(tracker.mapping(), &Mapping::Stable(mapped));
    }

    #[test]
    fn a_tracker_without_servers_never_wakes() {
        let mut tracker = ReflexiveTracker::new(epoch(), Vec::new(), 1);
        assert_eq!(tracker.poll_timeout(), None);
        assert!(tracker.poll_transmit(epoch()).is_empty());
    }

    #[test]
    fn transaction_ids_differ_between_servers_and_seeds() {
        let now = epoch();
        let servers = [addr("10.77.0.2:4002"), addr("10.77.0.3:4002")];
        let ids = |seed| {
            let mut probe = ReflexiveProbe::new(now, &servers, seed);
            probe
                .poll_transmit(now)
                .iter()
                .map(|(_, r)| stun::binding_request_id(r).unwrap())
                .collect::<Vec<_>>()
        };
        let (a, b) = (ids(1), ids(2));
        assert_ne!(a[0], a[1]);
        assert_ne!(a, b);
    }
}
