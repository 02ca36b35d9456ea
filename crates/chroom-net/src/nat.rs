//! Signaling across NATs: reachability, relay reservations and their limits.
//!
//! A node learns whether it is reachable from AutoNAT (v1): a peer dials back the addresses
//! identify observed for it, from a fresh port, so a NAT mapping made by the node's own traffic
//! does not count. Only that dial-back (or a relay reservation, for the circuit address) turns an
//! address into a confirmed external one: a node never announces its private listen address as
//! external.
//!
//! A node that is private — or still not known to be public [`NetConfig::relay_fallback_after`]
//! after start — holds circuit relay v2 reservations on up to [`MAX_RESERVATIONS`] peers that
//! offer the hop protocol (peers it dialed, so the address it knows them by is one others can
//! dial too: bootstrap nodes). The circuit address
//! `<relay addr>/p2p/<relay>/p2p-circuit/p2p/<node>` becomes a confirmed external address, so it
//! is what identify tells peers and what the node's DHT provider records carry. A peer dials it,
//! signaling flows over the relayed connection at once (libp2p 0.57 puts no restriction on
//! streams over limited connections), and DCUtR meanwhile tries to replace it with a direct one
//! by simultaneous dials (it works through endpoint-independent NATs, not symmetric ones).
//!
//! Relay service ([`NetConfig::relay_service`]) keeps libp2p's limits, which are meant for
//! exactly this: coordination, never media (see [`relay_server_config`]).
//!
//! [`RelayPlan`] is the decision, sans IO: time is an input, actions are polled.
//!
//! [`NetConfig::relay_fallback_after`]: crate::NetConfig::relay_fallback_after
//! [`NetConfig::relay_service`]: crate::NetConfig::relay_service

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId, autonat, multiaddr::Protocol, relay};

use crate::config::NetConfig;

/// Relays a private node holds reservations on at once: two, so losing one relay leaves the
/// node reachable while it reserves on another.
pub(crate) const MAX_RESERVATIONS: usize = 2;

/// How long a relay whose reservation failed or was lost is left alone before it is asked again
/// (libp2p's relay rate-limits reservations per peer to one every 2 min after a burst).
const RESERVATION_RETRY: Duration = Duration::from_secs(30);

/// Whether this node can be dialed from the internet, as AutoNAT last found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reachability {
    /// Peers cannot dial it back: it is reached through relay circuits.
    Private,
    /// A peer dialed one of its addresses back from a fresh port.
    Public,
    /// Not probed yet, or no peer could answer.
    Unknown,
}

impl From<&autonat::NatStatus> for Reachability {
    fn from(status: &autonat::NatStatus) -> Self {
        match status {
            autonat::NatStatus::Private => Self::Private,
            autonat::NatStatus::Public(_) => Self::Public,
            autonat::NatStatus::Unknown => Self::Unknown,
        }
    }
}

/// What [`RelayPlan::poll_action`] asks the driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RelayAction {
    /// Stop listening through `relay`: the node is reachable without it.
    Release {
        /// The relay.
        relay: PeerId,
    },
    /// Listen on `circuit`, which reserves a slot on `relay`.
    Reserve {
        /// The relay.
        relay: PeerId,
        /// `<relay addr>/p2p/<relay>/p2p-circuit`.
        circuit: Multiaddr,
    },
}

/// Which relays to hold reservations on, given reachability and the relays on offer.
#[derive(Debug)]
pub(crate) struct RelayPlan {
    started: Instant,
    fallback_after: Duration,
    reachability: Reachability,
    /// Connected peers offering the hop protocol, with the address this node dialed them at.
    offered: BTreeMap<PeerId, Multiaddr>,
    /// Reservations requested or held.
    reserved: BTreeSet<PeerId>,
    /// Reservations on relays that stopped offering the hop protocol, still to be released.
    withdrawn: BTreeSet<PeerId>,
    /// Relays not to ask again before the time given.
    resting: HashMap<PeerId, Instant>,
}

impl RelayPlan {
    pub(crate) fn new(now: Instant, fallback_after: Duration) -> Self {
        Self {
            started: now,
            fallback_after,
            reachability: Reachability::Unknown,
            offered: BTreeMap::new(),
            reserved: BTreeSet::new(),
            withdrawn: BTreeSet::new(),
            resting: HashMap::new(),
        }
    }

    /// AutoNAT's verdict. True when it changed.
    pub(crate) fn handle_reachability(&mut self, reachability: Reachability) -> bool {
        let changed = self.reachability != reachability;
        self.reachability = reachability;
        changed
    }

    /// `relay` offers the hop protocol and was dialed at `addr`.
    pub(crate) fn handle_relay_offered(&mut self, relay: PeerId, addr: &Multiaddr) {
        // Circuit addresses of a relay are no use: a reservation must be held directly.
        if addr.iter().any(|p| p == Protocol::P2pCircuit) {
            return;
        }
        let addr: Multiaddr = addr
            .iter()
            .filter(|p| !matches!(p, Protocol::P2p(_)))
            .collect();
        self.offered.insert(relay, addr);
    }

    /// `relay` no longer offers the hop protocol, or its last direct connection closed.
    pub(crate) fn handle_relay_gone(&mut self, relay: &PeerId) {
        self.offered.remove(relay);
        if self.reserved.remove(relay) {
            // Its listener may outlive the offer: release it, so a reservation elsewhere does
            // not come on top of it.
            self.withdrawn.insert(*relay);
        }
    }

    /// The reservation on `relay` failed or ended (its listener closed).
    pub(crate) fn handle_reservation_lost(&mut self, now: Instant, relay: PeerId) {
        self.withdrawn.remove(&relay);
        if self.reserved.remove(&relay) {
            self.resting.insert(relay, now + RESERVATION_RETRY);
        }
    }

    /// The next thing to do, if any. Drain until `None` after every input and on a timer.
    pub(crate) fn poll_action(&mut self, now: Instant) -> Option<RelayAction> {
        if let Some(relay) = self.withdrawn.pop_first() {
            return Some(RelayAction::Release { relay });
        }
        if self.reachability == Reachability::Public {
            let relay = self.reserved.pop_first()?;
            return Some(RelayAction::Release { relay });
        }
        if !self.needs_relay(now) || self.reserved.len() >= MAX_RESERVATIONS {
            return None;
        }
        self.resting.retain(|_, until| *until > now);
        let (relay, addr) = self
            .offered
            .iter()
            .find(|(peer, _)| !self.reserved.contains(peer) && !self.resting.contains_key(peer))?;
        let (relay, circuit) = (
            *relay,
            addr.clone()
                .with(Protocol::P2p(*relay))
                .with(Protocol::P2pCircuit),
        );
        self.reserved.insert(relay);
        Some(RelayAction::Reserve { relay, circuit })
    }

    pub(crate) fn reachability(&self) -> Reachability {
        self.reachability
    }

    fn needs_relay(&self, now: Instant) -> bool {
        match self.reachability {
            Reachability::Private => true,
            Reachability::Public => false,
            // AutoNAT may have nobody to ask; a node that cannot be reached is worse off than
            // one holding a reservation it did not need.
            Reachability::Unknown => now.duration_since(self.started) >= self.fallback_after,
        }
    }
}

/// The relay service's limits: libp2p's defaults, written out because they are the contract
/// that keeps circuits to signaling. A reservation lasts 1 h (renewed by the client); at most
/// 128 reservations (4 per peer, one per peer every 2 min after a burst of 30, one per IP
/// every minute after a burst of 60); at most 16 circuits (4 per peer), each closed after
/// 2 min or 128 KiB, whichever comes first. A WebRTC offer or answer is a few KiB, so a
/// circuit carries a call's signaling; media never fits, and never goes this way.
pub(crate) fn relay_server_config() -> relay::Config {
    relay::Config {
        max_reservations: 128,
        max_reservations_per_peer: 4,
        reservation_duration: Duration::from_secs(60 * 60),
        max_circuits: 16,
        max_circuits_per_peer: 4,
        max_circuit_duration: Duration::from_secs(2 * 60),
        max_circuit_bytes: 128 * 1024,
        // The rate limiters are libp2p's defaults (above).
        ..relay::Config::default()
    }
}

/// AutoNAT v1 as Chroom runs it: every node serves dial-backs and probes its own addresses.
pub(crate) fn autonat_config(config: &NetConfig) -> autonat::Config {
    autonat::Config {
        boot_delay: config.reachability_probe_delay,
        retry_interval: config.reachability_probe_interval,
        only_global_ips: !config.allow_private_addresses,
        ..autonat::Config::default()
    }
}

/// Whether `addr` goes through a relay circuit.
pub(crate) fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| p == Protocol::P2pCircuit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> Multiaddr {
        text.parse().unwrap()
    }

    fn plan() -> (RelayPlan, Instant) {
        let now = Instant::now();
        (RelayPlan::new(now, Duration::from_secs(30)), now)
    }

    #[test]
    fn a_private_node_reserves_on_up_to_two_offered_relays() {
        let (mut plan, now) = plan();
        let relays: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
        for relay in &relays {
            let dialed = addr("/ip4/10.77.0.2/tcp/4001").with(Protocol::P2p(*relay));
            plan.handle_relay_offered(*relay, &dialed);
        }
        assert_eq!(plan.poll_action(now), None, "unknown reachability waits");
        assert!(plan.handle_reachability(Reachability::Private));
        let mut reserved = Vec::new();
        while let Some(action) = plan.poll_action(now) {
            let RelayAction::Reserve { relay, circuit } = action else {
                panic!("unexpected {action:?}");
            };
            // The dialed address's /p2p is not repeated.
            let expected = addr("/ip4/10.77.0.2/tcp/4001")
                .with(Protocol::P2p(relay))
                .with(Protocol::P2pCircuit);
            assert_eq!(circuit, expected);
            reserved.push(relay);
        }
        assert_eq!(reserved.len(), MAX_RESERVATIONS);
    }

    #[test]
    fn an_unknown_node_falls_back_to_a_relay_after_the_delay() {
        let (mut plan, now) = plan();
        let relay = PeerId::random();
        plan.handle_relay_offered(relay, &addr("/ip4/10.77.0.2/udp/4001/quic-v1"));
        assert_eq!(plan.poll_action(now + Duration::from_secs(29)), None);
        assert!(matches!(
            plan.poll_action(now + Duration::from_secs(30)),
            Some(RelayAction::Reserve { .. })
        ));
    }

    #[test]
    fn a_node_found_public_releases_its_reservations() {
        let (mut plan, now) = plan();
        let relay = PeerId::random();
        plan.handle_reachability(Reachability::Private);
        plan.handle_relay_offered(relay, &addr("/ip4/10.77.0.2/tcp/4001"));
        assert!(plan.poll_action(now).is_some());
        assert!(plan.handle_reachability(Reachability::Public));
        assert_eq!(plan.poll_action(now), Some(RelayAction::Release { relay }));
        assert_eq!(plan.poll_action(now), None);
        assert!(!plan.handle_reachability(Reachability::Public));
    }

    #[test]
    fn a_lost_reservation_is_retried_after_a_rest() {
        let (mut plan, now) = plan();
        let relay = PeerId::random();
        plan.handle_reachability(Reachability::Private);
        plan.handle_relay_offered(relay, &addr("/ip4/10.77.0.2/tcp/4001"));
        assert!(plan.poll_action(now).is_some());
        plan.handle_reservation_lost(now, relay);
        assert_eq!(plan.poll_action(now + Duration::from_secs(1)), None);
        assert!(plan.poll_action(now + RESERVATION_RETRY).is_some());
    }

    #[test]
    fn relays_that_leave_or_only_offer_circuits_are_not_used() {
        let (mut plan, now) = plan();
        plan.handle_reachability(Reachability::Private);
        let (gone, relayed) = (PeerId::random(), PeerId::random());
        plan.handle_relay_offered(gone, &addr("/ip4/10.77.0.2/tcp/4001"));
        assert!(plan.poll_action(now).is_some());
        plan.handle_relay_gone(&gone);
        // The reservation it held is released, and nothing takes its place.
        assert_eq!(
            plan.poll_action(now),
            Some(RelayAction::Release { relay: gone })
        );
        let circuit = addr("/ip4/10.77.0.2/tcp/4001")
            .with(Protocol::P2p(PeerId::random()))
            .with(Protocol::P2pCircuit);
        plan.handle_relay_offered(relayed, &circuit);
        assert_eq!(plan.poll_action(now), None);
    }
}
