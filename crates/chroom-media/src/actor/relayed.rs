//! The actor's relayed paths ([`crate::relay`]): as a relayer, the allocations it serves (a
//! UDP socket each, read by a task of its own); as a client, the allocation its links offer
//! as a relay candidate, with relay frames wrapped and unwrapped on the media socket.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::MediaActor;
use super::datagrams::Arrival;
use crate::api::{LinkClosed, MediaError, MediaEvent};
use crate::relay::{
    self, AllocationRules, KEEPALIVE_INTERVAL, Pass, RelayFrame, RelayGrant, RelayToken,
};
use crate::socket::Outbox;

/// Datagrams from peers to allocations waiting for the actor at most; more are dropped (UDP
/// would have dropped them too), so a flood cannot grow the relayer's memory.
const RELAY_INBOX: usize = 1024;
/// The largest datagram an allocation reads.
const MAX_DATAGRAM: usize = 2048;

/// What the relayer serves.
#[derive(Debug)]
pub(super) struct RelayServer {
    allocations: HashMap<RelayToken, Served>,
    inbox: mpsc::Sender<(RelayToken, SocketAddr, Vec<u8>)>,
    pub(super) arrivals: mpsc::Receiver<(RelayToken, SocketAddr, Vec<u8>)>,
}

#[derive(Debug)]
struct Served {
    rules: AllocationRules,
    socket: Arc<UdpSocket>,
    reader: JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Default for RelayServer {
    fn default() -> Self {
        let (inbox, arrivals) = mpsc::channel(RELAY_INBOX);
        Self {
            allocations: HashMap::new(),
            inbox,
            arrivals,
        }
    }
}

/// The allocation this node's links use, on another node.
#[derive(Debug)]
pub(super) struct RelayClient {
    pub(super) grant: RelayGrant,
    next_keepalive: Instant,
}

/// Sends a link's datagram: through the relayer when it leaves from the relayed address,
/// else straight from the socket, from the source address ICE chose when the socket has
/// several (`local_ips`: the socket's own addresses among its candidates, for a wildcard
/// bind; a peer drops a check's answer that comes from another address than it asked).
pub(super) fn transmit(
    client: Option<&RelayClient>,
    local_ips: &[SocketAddr],
    outbox: &mut Outbox,
    source: SocketAddr,
    destination: SocketAddr,
    contents: Vec<u8>,
) {
    match client {
        Some(client) if client.grant.relayed == source => {
            let frame = relay::to_peer(&client.grant.token, destination, &contents);
            outbox.push(client.grant.server, frame);
        }
        _ => {
            let source_ip = local_ips.contains(&source).then_some(source.ip());
            outbox.push_from(source_ip, destination, contents);
        }
    }
}

impl MediaActor {
    /// Opens an allocation for a client, relaying up to `kbps` both ways together. Its
    /// relayed address is this node's media address with a port of its own.
    pub(super) fn allocate(&mut self, kbps: u32) -> Result<RelayGrant, MediaError> {
        let mut token = [0; relay::TOKEN_LEN];
        getrandom::fill(&mut token)
            .map_err(|e| MediaError::Relay(format!("no randomness: {e}")))?;
        let bind = SocketAddr::new(self.local_addr.ip(), 0);
        let std_socket = std::net::UdpSocket::bind(bind)
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .map_err(|e| MediaError::Relay(format!("binding an allocation at {bind}: {e}")))?;
        let socket = UdpSocket::from_std(std_socket)
            .map(Arc::new)
            .map_err(|e| MediaError::Relay(format!("an allocation's socket: {e}")))?;
        let port = socket
            .local_addr()
            .map_err(|e| MediaError::Relay(format!("an allocation's socket: {e}")))?
            .port();
        let relayed = SocketAddr::new(self.receive_addr.ip(), port);
        let reader = tokio::spawn(read_allocation(
            socket.clone(),
            token,
            self.relay_server.inbox.clone(),
        ));
        let served = Served {
            rules: AllocationRules::new(Instant::now(), kbps),
            socket,
            reader,
        };
        self.relay_server.allocations.insert(token, served);
        tracing::info!(%relayed, kbps, "relay allocation opened");
        Ok(RelayGrant {
            server: self.receive_addr,
            relayed,
            token,
        })
    }

    /// From now on, new links offer `grant`'s relayed address (`None`: no longer). Links
    /// still connecting are closed ([`LinkClosed::PathChanged`]): without the relay candidate
    /// they may never connect, and the node opens them again with it.
    pub(super) fn use_relay(&mut self, grant: Option<RelayGrant>) {
        if let Some(grant) = &grant {
            tracing::info!(relayed = %grant.relayed, server = %grant.server, "links offer a relayed path");
            for state in self.links.values_mut() {
                if state.connect_deadline.is_some() {
                    state.close(LinkClosed::PathChanged);
                }
            }
        }
        self.relay_client = grant.map(|grant| RelayClient {
            grant,
            next_keepalive: Instant::now(),
        });
    }

    /// A relay frame arrived from `source`: as a relayer, a client's; as a client, the
    /// relayer's. Malformed frames and frames for unknown allocations are dropped.
    pub(super) fn handle_relay_frame(&mut self, now: Instant, bytes: &[u8], source: SocketAddr) {
        match relay::decode(bytes) {
            Some(RelayFrame::ToPeer {
                token,
                peer,
                payload,
            }) => {
                let Some(served) = self.relay_server.allocations.get_mut(&token) else {
                    return;
                };
                served.rules.used_by(now, source);
                if served.rules.to_peer(now, peer, payload.len()) == Pass::Send {
                    // A full socket buffer drops the datagram, as the network would.
                    let _ = served.socket.try_send_to(payload, peer);
                    self.relay.relayed_bytes += payload.len() as u64;
                } else {
                    self.relay.relayed_dropped += 1;
                }
            }
            Some(RelayFrame::Keepalive { token }) => {
                if let Some(served) = self.relay_server.allocations.get_mut(&token) {
                    served.rules.used_by(now, source);
                }
            }
            Some(RelayFrame::FromPeer {
                token,
                peer,
                payload,
            }) => {
                let Some(client) = &self.relay_client else {
                    return;
                };
                if client.grant.token != token || client.grant.server != source {
                    return;
                }
                let relayed = client.grant.relayed;
                self.receive_at(now, payload, peer, Arrival::Relayed(relayed));
            }
            None => tracing::trace!(%source, "malformed relay frame"),
        }
    }

    /// A datagram came to allocation `token` from `peer`: to its client, if allowed.
    pub(super) fn handle_relay_arrival(
        &mut self,
        token: RelayToken,
        peer: SocketAddr,
        data: &[u8],
    ) {
        let now = Instant::now();
        let Some(served) = self.relay_server.allocations.get_mut(&token) else {
            return;
        };
        match served.rules.from_peer(now, peer, data.len()) {
            Pass::Send => {
                if let Some(client) = served.rules.client() {
                    self.outbox
                        .push(client, relay::from_peer(&token, peer, data));
                    self.relay.relayed_bytes += data.len() as u64;
                }
            }
            Pass::NoPermission | Pass::NoClient | Pass::OverRate => {
                self.relay.relayed_dropped += 1;
            }
        }
    }

    /// Keeps the allocation in use (and the NAT's mapping to the relayer open); ends the
    /// allocations this relayer serves that went idle.
    pub(super) fn relay_timers(&mut self, now: Instant) {
        if let Some(client) = &mut self.relay_client
            && client.next_keepalive <= now
        {
            client.next_keepalive = now + KEEPALIVE_INTERVAL;
            let frame = relay::keepalive(&client.grant.token);
            self.outbox.push(client.grant.server, frame);
        }
        let before = self.relay_server.allocations.len();
        let mut ended = Vec::new();
        self.relay_server.allocations.retain(|token, served| {
            let keep = !served.rules.is_expired(now);
            if !keep {
                ended.push(*token);
            }
            keep
        });
        if self.relay_server.allocations.len() != before {
            tracing::info!(ended = ended.len(), "idle relay allocations ended");
        }
        for token in ended {
            self.pending_events
                .push_back(MediaEvent::RelayAllocationEnded { token });
        }
    }

    /// When the client's next keepalive is due. (Idle allocations are swept on the actor's
    /// idle tick, at least once a second.)
    pub(super) fn next_keepalive(&self) -> Option<Instant> {
        self.relay_client.as_ref().map(|c| c.next_keepalive)
    }

    /// Allocations served now.
    pub(super) fn allocations(&self) -> usize {
        self.relay_server.allocations.len()
    }
}

/// Reads what peers send to an allocation and hands it to the actor, until aborted.
async fn read_allocation(
    socket: Arc<UdpSocket>,
    token: RelayToken,
    inbox: mpsc::Sender<(RelayToken, SocketAddr, Vec<u8>)>,
) {
    let mut buffer = vec![0; MAX_DATAGRAM];
    loop {
        match socket.recv_from(&mut buffer).await {
            Ok((len, peer)) => {
                if inbox
                    .try_send((token, peer, buffer[..len].to_vec()))
                    .is_err()
                    && inbox.is_closed()
                {
                    return;
                }
            }
            // ICMP errors from a vanished peer surface here; the socket stays usable.
            Err(e) => tracing::trace!(error = %e, "allocation receive failed"),
        }
    }
}
