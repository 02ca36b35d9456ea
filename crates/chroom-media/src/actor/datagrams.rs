//! The actor's socket side: reading datagrams in batches, handing each to the link that
//! accepts it (or holding it briefly until one does), and sending what the links produced.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use str0m::Input;
use str0m::net::{Protocol, Receive};

use super::{LinkPeer, MediaActor};
use crate::socket::{RECV_SLOTS, RecvBuffers};

/// Datagrams that no link accepted yet, kept briefly. The DTLS ClientHello often arrives in the
/// same millisecond as the ICE check that makes its source viable; dropping it costs a DTLS
/// retransmission (about a second) on every connect.
const MAX_UNROUTED_DATAGRAMS: usize = 64;
const UNROUTED_MAX_AGE: Duration = Duration::from_secs(2);

/// Most batched reads per wake-up before the actor looks at commands and timers again. Under
/// load a relayer finds many datagrams waiting; taking them in one go saves a wake-up, a
/// deadline scan and an event hand-off per datagram, and lets the outbox batch their copies.
const RECV_ROUNDS: usize = 8;

/// Longest a relayed packet waits in the outbox for others to batch with. A read can bring
/// hundreds of datagrams (GRO); sending only after all of them would add a millisecond to the
/// hop under load.
const MAX_OUTBOX_HOLD: Duration = Duration::from_micros(20);

/// A datagram no link accepted yet.
#[derive(Debug)]
pub(super) struct Unrouted {
    received_at: Instant,
    source: SocketAddr,
    arrival: Arrival,
    bytes: Vec<u8>,
}

/// Where a datagram for a link arrived.
#[derive(Debug, Clone, Copy)]
pub(super) enum Arrival {
    /// Through this node's relay allocation, at its relayed address.
    Relayed(SocketAddr),
    /// At the socket, sent to `local_ip` (when the OS says).
    Socket { local_ip: Option<IpAddr> },
}

impl MediaActor {
    /// Reads and handles what waits on the socket, [`RECV_ROUNDS`] batches at most, sending
    /// what each batch produced before reading the next.
    pub(super) fn receive(&mut self, buffers: &mut RecvBuffers) {
        for _ in 0..RECV_ROUNDS {
            match self.socket.try_recv(buffers) {
                Ok(0) => break,
                Ok(received) => {
                    // Hop latency counts from here, the moment the batch left the kernel.
                    let now = Instant::now();
                    for (source, local_ip, datagram) in buffers.datagrams() {
                        self.relay.socket_bytes_received += datagram.len() as u64;
                        self.handle_datagram(now, datagram, source, local_ip);
                        self.process();
                        if self
                            .scratch
                            .received
                            .first()
                            .is_some_and(|at| at.elapsed() >= MAX_OUTBOX_HOLD)
                        {
                            self.send_outbox();
                        }
                    }
                    self.send_outbox();
                    if received < RECV_SLOTS {
                        break;
                    }
                }
                // ICMP port-unreachable from a vanished peer surfaces here on Linux.
                Err(e) => tracing::debug!(error = %e, "udp receive failed"),
            }
        }
    }

    /// Sends what the links produced; packets relayed since the last send have now been
    /// handed to the socket for every child, which ends their hop.
    pub(super) fn send_outbox(&mut self) {
        if !self.outbox.is_empty() {
            self.socket.send(&mut self.outbox);
        }
        if !self.scratch.received.is_empty() {
            let sent = Instant::now();
            for at in self.scratch.received.drain(..) {
                self.relay
                    .hop_latency
                    .record(sent.saturating_duration_since(at));
            }
        }
    }

    /// A datagram from `source` to this socket (at `local_ip`, when the OS says).
    fn handle_datagram(
        &mut self,
        now: Instant,
        bytes: &[u8],
        source: SocketAddr,
        local_ip: Option<IpAddr>,
    ) {
        if self.reflexive.handle_datagram(now, source, bytes) {
            self.poll_reflexive(now);
            return;
        }
        // A plain Binding request (not an ICE check: those carry a USERNAME and go to their
        // link): tell the asker where it came from, so a node behind a NAT learns its
        // server-reflexive address. Checked first: str0m takes it for garbage. An RTP or DTLS
        // datagram fails at its first byte.
        if let Some(transaction) = crate::stun::binding_request_id(bytes) {
            self.outbox
                .push(source, crate::stun::binding_success(transaction, source));
            return;
        }
        if crate::relay::is_relay_frame(bytes) {
            self.handle_relay_frame(now, bytes, source);
            return;
        }
        self.receive_at(now, bytes, source, Arrival::Socket { local_ip });
    }

    /// The host candidate a datagram that arrived at `arrival` came to, as ICE on a link to
    /// `peer` must be told (it drops checks to an address that is none of the link's
    /// candidates). A socket bound to one address has one. A wildcard bind has several: a page
    /// is offered the machine's interface addresses, so for its links the IP the datagram was
    /// sent to. Other nodes are offered the advertised addresses, which need not be local at
    /// all (a cloud host's public IP, which its provider's NAT forwards to a private one): for
    /// their links the first host candidate, whatever IP the datagram came to.
    fn destination(&self, arrival: Arrival, peer: LinkPeer) -> SocketAddr {
        let local_ip = match (arrival, peer) {
            (Arrival::Relayed(relayed), _) => return relayed,
            (Arrival::Socket { .. }, LinkPeer::Node) => return self.receive_addr,
            (Arrival::Socket { local_ip }, LinkPeer::Page) => local_ip,
        };
        if !self.local_addr.ip().is_unspecified() {
            return self.receive_addr;
        }
        local_ip
            .map(|ip| SocketAddr::new(ip, self.local_addr.port()))
            .filter(|addr| self.page_candidates.contains(addr))
            .unwrap_or(self.receive_addr)
    }

    /// A datagram for a link, from `source`, that arrived at `arrival`.
    pub(super) fn receive_at(
        &mut self,
        now: Instant,
        bytes: &[u8],
        source: SocketAddr,
        arrival: Arrival,
    ) {
        if self.demux(now, bytes, source, arrival) {
            // A link just made progress: datagrams it could not take before may fit now.
            self.retry_unrouted(now);
            return;
        }
        if self.unrouted.len() >= MAX_UNROUTED_DATAGRAMS {
            self.unrouted.pop_front();
        }
        tracing::trace!(%source, "no link accepts datagram yet");
        self.unrouted.push_back(Unrouted {
            received_at: now,
            source,
            arrival,
            bytes: bytes.to_vec(),
        });
    }

    /// Feeds a datagram to the link that accepts it; false if none does.
    fn demux(&mut self, now: Instant, bytes: &[u8], source: SocketAddr, arrival: Arrival) -> bool {
        let Ok(contents) = bytes.try_into() else {
            tracing::trace!(%source, "unrecognised datagram");
            // Not WebRTC at all: count it as handled so it is never retried.
            return true;
        };
        // Which link takes a datagram does not depend on where it arrived (str0m goes by
        // source, ICE credentials and DTLS state), only what the link is told does.
        let page_destination = self.destination(arrival, LinkPeer::Page);
        let mut input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.destination(arrival, LinkPeer::Node),
                contents,
            },
        );
        let Some((id, state)) = self.links.iter_mut().find(|(_, s)| s.link.accepts(&input)) else {
            return false;
        };
        if let (LinkPeer::Page, Input::Receive(_, receive)) = (state.peer, &mut input) {
            receive.destination = page_destination;
        }
        state.link.handle_input(input);
        state.last_source = Some(source);
        state.last_via_relay = matches!(arrival, Arrival::Relayed(_));
        state.next_timeout = now;
        self.dirty.push(*id);
        true
    }

    fn retry_unrouted(&mut self, now: Instant) {
        let pending = std::mem::take(&mut self.unrouted);
        for datagram in pending {
            if now.saturating_duration_since(datagram.received_at) > UNROUTED_MAX_AGE {
                continue;
            }
            if !self.demux(now, &datagram.bytes, datagram.source, datagram.arrival) {
                self.unrouted.push_back(datagram);
            }
        }
    }
}
