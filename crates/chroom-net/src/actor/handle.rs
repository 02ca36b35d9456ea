//! What the network actor offers the node: [`NetHandle`] and the commands it sends, the
//! events the actor reports, and its errors.

use std::collections::HashSet;

use chroom_proto::{SignalError, SignalRequest, SignalResponse};
use chroom_types::RoomId;
use libp2p::{Multiaddr, PeerId, gossipsub};
use tokio::sync::{mpsc, oneshot};

use super::{Presence, ProviderReply};
use crate::nat::Reachability;

/// Correlates a [`NetEvent::SignalRequest`] with the [`NetHandle::respond`] that answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SignalReplyId(pub(super) u64);

/// Names a room gossip message waiting for [`NetHandle::report_message`]. Until it is reported,
/// gossipsub neither forwards the message nor counts it against anyone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GossipMessageRef {
    pub(super) id: gossipsub::MessageId,
    /// The peer it came from (not necessarily its author).
    pub(super) from: PeerId,
}

/// What to do with a room gossip message after validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GossipAcceptance {
    /// Valid: deliver and forward it.
    Accept,
    /// Invalid: drop it and lower the score of the peer that sent it.
    Reject,
    /// Drop it without penalty.
    Ignore,
}

/// What the network reports to the node.
#[derive(Debug)]
#[non_exhaustive]
pub enum NetEvent {
    /// Now listening on `addr`.
    Listening {
        /// The address.
        addr: Multiaddr,
    },
    /// A peer connected (first connection).
    PeerConnected {
        /// The peer.
        peer: PeerId,
        /// The address we reached it at or it came from.
        addr: Multiaddr,
    },
    /// A peer's last connection closed.
    PeerDisconnected {
        /// The peer.
        peer: PeerId,
    },
    /// A peer identified itself: its listen addresses are worth remembering.
    PeerIdentified {
        /// The peer.
        peer: PeerId,
        /// Where it listens.
        listen_addrs: Vec<Multiaddr>,
    },
    /// A well-formed signaling request. Answer it with [`NetHandle::respond`].
    SignalRequest {
        /// Who asked.
        peer: PeerId,
        /// Pass back to `respond`.
        reply: SignalReplyId,
        /// What was asked.
        request: SignalRequest,
    },
    /// A message arrived in a joined room's gossip topic, correctly signed by its author. It is
    /// neither delivered nor forwarded until [`NetHandle::report_message`] says so.
    RoomMessage {
        /// Pass back to `report_message`.
        message: GossipMessageRef,
        /// The room of the topic.
        room: RoomId,
        /// The author, whose libp2p key signed the message.
        author: PeerId,
        /// The payload (a `chroom.room.v1.RoomMessage`, still to be decoded).
        data: Vec<u8>,
    },
    /// A peer subscribed to the gossip topic of a room this node is in: it can hear this node's
    /// room messages from now on.
    RoomPeerJoined {
        /// The room.
        room: RoomId,
        /// The peer.
        peer: PeerId,
    },
    /// A relayed connection to `peer` was joined by a direct one (DCUtR hole punching).
    HolePunched {
        /// The peer.
        peer: PeerId,
    },
    /// Hole punching to `peer` gave up: it stays reachable through the relay circuit only.
    HolePunchFailed {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: String,
    },
    /// What this node knows of its own reachability changed: AutoNAT's verdict, or its
    /// confirmed external addresses (dialed back by a peer, or circuits through relays).
    ReachabilityChanged {
        /// AutoNAT's verdict.
        reachability: Reachability,
        /// The confirmed external addresses, which peers learn through identify and the DHT.
        external: Vec<Multiaddr>,
    },
    /// A peer sent something that broke the protocol; it has been answered with an error.
    PeerMisbehaved {
        /// The peer.
        peer: PeerId,
        /// What it did.
        reason: String,
    },
}

/// A network operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The swarm could not be built or could not listen.
    #[error("starting libp2p: {0}")]
    Start(String),
    /// A signaling request got no usable response.
    #[error("signaling {peer} failed: {reason}")]
    Signal {
        /// The peer asked.
        peer: PeerId,
        /// What went wrong.
        reason: String,
    },
    /// The peer answered with a refusal.
    #[error("{peer} refused: {error}")]
    Refused {
        /// The peer asked.
        peer: PeerId,
        /// Its refusal.
        error: SignalError,
    },
    /// A gossip message could not be published.
    #[error("publishing to the room's gossip failed: {0}")]
    Publish(String),
    /// Nobody else is in the room's gossip topic (yet): there was no one to publish to.
    #[error("nobody else is in the room")]
    NobodyListening,
    /// A DHT query failed.
    #[error("dht query failed: {0}")]
    Query(String),
    /// The network actor has stopped.
    #[error("network actor stopped")]
    Stopped,
}

#[derive(Debug)]
pub(super) enum Command {
    Dial(Multiaddr),
    JoinRoom(RoomId, Presence),
    LeaveRoom(RoomId),
    FindProviders {
        room: RoomId,
        presence: Presence,
        reply: ProviderReply,
    },
    Request {
        peer: PeerId,
        request: SignalRequest,
        reply: oneshot::Sender<Result<SignalResponse, NetError>>,
    },
    Respond {
        reply: SignalReplyId,
        response: SignalResponse,
    },
    AddPeerAddress {
        peer: PeerId,
        addr: Multiaddr,
    },
    Publish {
        room: RoomId,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    ReportMessage {
        message: GossipMessageRef,
        acceptance: GossipAcceptance,
    },
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    ConnectedPeers(oneshot::Sender<Vec<PeerId>>),
    ConnectionAddrs(PeerId, oneshot::Sender<Vec<Multiaddr>>),
}

/// Cloneable handle to a running [`NetActor`].
#[derive(Debug, Clone)]
pub struct NetHandle {
    pub(super) commands: mpsc::Sender<Command>,
    pub(super) peer_id: PeerId,
}

impl NetHandle {
    /// This node's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Dials `addr` (with or without a `/p2p/` suffix).
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), NetError> {
        self.send(Command::Dial(addr)).await
    }

    /// Announces this node in `room` in the DHT (as a member, and as a publisher if
    /// `presence` says so) and subscribes to the room's gossip topic. Providing is retried until
    /// the DHT has peers to store the record. Joining again changes the presence.
    pub async fn join_room(&self, room: RoomId, presence: Presence) -> Result<(), NetError> {
        self.send(Command::JoinRoom(room, presence)).await
    }

    /// Stops providing `room` and leaves its gossip topic.
    pub async fn leave_room(&self, room: RoomId) -> Result<(), NetError> {
        self.send(Command::LeaveRoom(room)).await
    }

    /// Every peer the DHT lists in `room` with at least `presence`, this node excluded, once
    /// the whole query has finished.
    pub async fn find_providers(
        &self,
        room: RoomId,
        presence: Presence,
    ) -> Result<HashSet<PeerId>, NetError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::FindProviders {
            room,
            presence,
            reply: ProviderReply::Complete(reply),
        })
        .await?;
        rx.await.map_err(|_| NetError::Stopped)?
    }

    /// Like [`Self::find_providers`], but yields providers as peers report them; the stream
    /// ends with the query. Use this to act on the first answers: a query also waits on
    /// unreachable peers (a QUIC dial to a vanished node takes seconds to time out).
    pub async fn stream_providers(
        &self,
        room: RoomId,
        presence: Presence,
    ) -> Result<mpsc::Receiver<Vec<PeerId>>, NetError> {
        let (tx, rx) = mpsc::channel(16);
        self.send(Command::FindProviders {
            room,
            presence,
            reply: ProviderReply::Stream(tx),
        })
        .await?;
        Ok(rx)
    }

    /// Publishes `data` in the gossip topic of `room` (joined first). Fails when no peer
    /// of the topic is known yet.
    pub async fn publish(&self, room: RoomId, data: Vec<u8>) -> Result<(), NetError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Publish { room, data, reply }).await?;
        rx.await.map_err(|_| NetError::Stopped)?
    }

    /// Says what to do with a [`NetEvent::RoomMessage`].
    pub async fn report_message(
        &self,
        message: GossipMessageRef,
        acceptance: GossipAcceptance,
    ) -> Result<(), NetError> {
        self.send(Command::ReportMessage {
            message,
            acceptance,
        })
        .await
    }

    /// Sends a signaling request and waits for the response. A refusal is `Ok(Error(..))`.
    pub async fn request(
        &self,
        peer: PeerId,
        request: SignalRequest,
    ) -> Result<SignalResponse, NetError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Request {
            peer,
            request,
            reply,
        })
        .await?;
        rx.await.map_err(|_| NetError::Stopped)?
    }

    /// Answers a [`NetEvent::SignalRequest`].
    pub async fn respond(
        &self,
        reply: SignalReplyId,
        response: SignalResponse,
    ) -> Result<(), NetError> {
        self.send(Command::Respond { reply, response }).await
    }

    /// Tells the DHT where `peer` can be reached (from the peer book, say).
    pub async fn add_peer_address(&self, peer: PeerId, addr: Multiaddr) -> Result<(), NetError> {
        self.send(Command::AddPeerAddress { peer, addr }).await
    }

    /// The addresses the swarm listens on now.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NetError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::ListenAddrs(reply)).await?;
        rx.await.map_err(|_| NetError::Stopped)
    }

    /// Peers with at least one open connection.
    pub async fn connected_peers(&self) -> Result<Vec<PeerId>, NetError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::ConnectedPeers(reply)).await?;
        rx.await.map_err(|_| NetError::Stopped)
    }

    /// The remote addresses of the open connections to `peer`; a relayed one contains
    /// `/p2p-circuit`. Says whether signaling to `peer` goes direct or through a relay.
    pub async fn connection_addrs(&self, peer: PeerId) -> Result<Vec<Multiaddr>, NetError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::ConnectionAddrs(peer, reply)).await?;
        rx.await.map_err(|_| NetError::Stopped)
    }

    async fn send(&self, command: Command) -> Result<(), NetError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| NetError::Stopped)
    }
}
