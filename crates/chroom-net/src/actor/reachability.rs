//! The actor's side of crossing NATs: reachability (AutoNAT) reported to the node, relay
//! circuits reserved and released as [`RelayPlan`] decides, hole punching (DCUtR) reported,
//! provider records stored again when this node's addresses change.

use std::time::Instant;

use libp2p::core::transport::ListenerId;
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId, autonat, dcutr, kad, relay};

use super::{NetActor, NetEvent};
use crate::config::KadMode;
use crate::nat::{self, Reachability, RelayAction};

impl NetActor {
    /// Peers learn where this node can be reached from its provider records, which carry the
    /// addresses confirmed when they were stored: store them again.
    pub(super) async fn external_addrs_changed(&mut self) {
        // AutoNAT confirms the same address again at every probe.
        let external: Vec<Multiaddr> = self.swarm.external_addresses().cloned().collect();
        if external == self.external {
            return;
        }
        self.external = external;
        self.keep_relay_advertised();
        for (room, presence) in &self.rooms {
            self.unprovided.extend(presence.provided_keys(*room));
        }
        self.provide_pending();
        self.report_reachability().await;
    }

    /// Once an address of this node was confirmed, its relay service stays advertised.
    /// libp2p's relay withdraws the hop protocol whenever the set of confirmed addresses is
    /// empty, even for a moment (AutoNAT swapping one observed address for another, or one
    /// failed probe right after the first success). Members holding a reservation on it take
    /// the withdrawal for the relay leaving, release the reservation and are unreachable until
    /// they reserve again (30 s later): seen in the lab as a call through the relayer that never
    /// started. A reservation granted while no address is confirmed names none; the member's
    /// libp2p refuses it and the member asks again later.
    fn keep_relay_advertised(&mut self) {
        if self.external.is_empty() {
            return;
        }
        if let Some(relay) = self.swarm.behaviour_mut().relay.as_mut() {
            relay.set_status(Some(relay::Status::Enable));
        }
    }

    pub(super) async fn report_reachability(&mut self) {
        let reachability = self.relay_plan.reachability();
        let external = self.external.clone();
        tracing::debug!(
            target: "chroom::_events::reachability",
            ?reachability,
            external = ?external.iter().map(ToString::to_string).collect::<Vec<_>>(),
        );
        self.emit(NetEvent::ReachabilityChanged {
            reachability,
            external,
        })
        .await;
    }

    /// Dials the bootstrap peers, once. Not before every listener has an address (or
    /// [`BOOTSTRAP_WAIT`] passed): a TCP listener on a wildcard address offers its port for
    /// reuse by dials only once it knows its interfaces, and a dial before that leaves from an
    /// ephemeral port, so peers would observe an address that no NAT keeps for this node and
    /// hole punching would have only a guess to work with.
    pub(super) fn dial_bootstrap(&mut self) {
        if self.bootstrap_by.take().is_none() {
            return;
        }
        for addr in &self.config.bootstrap {
            if let Err(e) = self.swarm.dial(addr.clone()) {
                tracing::warn!(%addr, error = %e, "cannot dial bootstrap peer");
            }
        }
    }

    /// Carries out what the relay plan asks until it asks nothing more.
    pub(super) fn drive_relay_plan(&mut self) {
        let now = Instant::now();
        while let Some(action) = self.relay_plan.poll_action(now) {
            match action {
                RelayAction::Reserve { relay, circuit } => {
                    tracing::info!(%relay, %circuit, "reserving a relay circuit");
                    match self.swarm.listen_on(circuit) {
                        Ok(listener) => {
                            self.relay_listeners.insert(listener, relay);
                        }
                        Err(e) => {
                            tracing::warn!(%relay, error = %e, "cannot listen through relay");
                            self.relay_plan.handle_reservation_lost(now, relay);
                        }
                    }
                }
                RelayAction::Release { relay } => {
                    let listeners: Vec<ListenerId> = self
                        .relay_listeners
                        .iter()
                        .filter(|(_, r)| **r == relay)
                        .map(|(l, _)| *l)
                        .collect();
                    for listener in listeners {
                        tracing::info!(%relay, "releasing relay reservation: reachable directly");
                        self.relay_listeners.remove(&listener);
                        self.swarm.remove_listener(listener);
                    }
                }
            }
        }
    }

    pub(super) async fn handle_autonat_event(&mut self, event: autonat::Event) {
        let autonat::Event::StatusChanged { old, new } = event else {
            return;
        };
        tracing::info!(?old, ?new, "reachability changed");
        let reachability = Reachability::from(&new);
        if !self.relay_plan.handle_reachability(reachability) {
            return;
        }
        if self.config.kad_mode == KadMode::Auto {
            let mode = match reachability {
                Reachability::Public => kad::Mode::Server,
                Reachability::Private | Reachability::Unknown => kad::Mode::Client,
            };
            self.swarm.behaviour_mut().kad.set_mode(Some(mode));
        }
        self.drive_relay_plan();
        self.report_reachability().await;
    }

    pub(super) async fn handle_dcutr_event(&mut self, event: dcutr::Event) {
        let peer = event.remote_peer_id;
        match event.result {
            Ok(connection) => {
                tracing::info!(%peer, ?connection, "hole punched: direct connection");
                self.emit(NetEvent::HolePunched { peer }).await;
            }
            Err(e) => {
                tracing::info!(%peer, error = %e, "hole punching failed: staying relayed");
                self.emit(NetEvent::HolePunchFailed {
                    peer,
                    reason: e.to_string(),
                })
                .await;
            }
        }
    }

    /// A peer that offers the relay hop protocol over a connection this node dialed becomes a
    /// relay candidate, known by the address it was dialed at.
    pub(super) fn note_relay_offer(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        protocols: &[libp2p::StreamProtocol],
    ) {
        if protocols.contains(&relay::HOP_PROTOCOL_NAME) {
            let dialed = self
                .connections
                .get(&peer)
                .and_then(|c| c.get(&connection))
                .filter(|c| c.dialed && !nat::is_relayed(&c.remote))
                .map(|c| c.remote.clone());
            if let Some(addr) = dialed {
                self.relay_plan.handle_relay_offered(peer, &addr);
            }
        } else {
            self.relay_plan.handle_relay_gone(&peer);
        }
        self.drive_relay_plan();
    }
}
