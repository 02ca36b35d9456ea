//! The network actor: owns the swarm, turns commands into swarm calls and swarm events into
//! [`NetEvent`]s.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use chroom_proto::{
    DecodeError, ErrorCode, SignalError, SignalRequest, SignalResponse, decode_request,
    decode_response, encode_request, encode_response,
};
use chroom_types::RoomId;
use futures::StreamExt;
use libp2p::core::{ConnectedPoint, transport::ListenerId};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, Swarm, autonat, dcutr, gossipsub, identify, identity::Keypair, kad,
    multiaddr::Protocol, noise, relay, request_response, tcp, yamux,
};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::behaviour::{Behaviour, BehaviourEvent};
use crate::config::{KadMode, NetConfig};
use crate::nat::{self, Reachability, RelayAction, RelayPlan};
use crate::signal::Frame;

/// Longest a connection may take to be set up (transport, Noise, yamux). A home node's
/// address taken from before it held a relay circuit points at a NAT that drops the dial
/// silently, and a signaling request waiting on that dial would wait out its whole timeout;
/// failing it sooner lets the retry use the circuit (libp2p's default is 10 s).
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(4);

/// Correlates a [`NetEvent::SignalRequest`] with the [`NetHandle::respond`] that answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SignalReplyId(u64);

/// Names a room gossip message waiting for [`NetHandle::report_message`]. Until it is reported,
/// gossipsub neither forwards the message nor counts it against anyone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GossipMessageRef {
    id: gossipsub::MessageId,
    /// The peer it came from (not necessarily its author).
    from: PeerId,
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
enum Command {
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
    commands: mpsc::Sender<Command>,
    peer_id: PeerId,
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

/// Owns the libp2p swarm. Create with [`NetActor::new`], then spawn [`NetActor::run`].
pub struct NetActor {
    swarm: Swarm<Behaviour>,
    config: NetConfig,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<NetEvent>,
    rooms: HashMap<RoomId, Presence>,
    /// Provider keys whose record could not be stored on any peer yet (no DHT peers).
    unprovided: HashSet<kad::RecordKey>,
    provider_queries: HashMap<kad::QueryId, ProviderQuery>,
    outbound: HashMap<request_response::OutboundRequestId, OutboundRequest>,
    inbound: HashMap<SignalReplyId, request_response::ResponseChannel<Frame>>,
    next_reply: u64,
    /// Open connections per peer: where the remote end is, and whether this node dialed it.
    connections: HashMap<PeerId, HashMap<ConnectionId, Connection>>,
    relay_plan: RelayPlan,
    /// Listeners on relay circuits, by the relay they reserve on.
    relay_listeners: HashMap<ListenerId, PeerId>,
    /// Configured listeners that have not reported an address yet.
    unready_listeners: HashSet<ListenerId>,
    /// Until the bootstrap peers are dialed: when they are dialed anyway.
    bootstrap_by: Option<Instant>,
    /// Confirmed external addresses, as last reported.
    external: Vec<Multiaddr>,
}

#[derive(Debug)]
struct Connection {
    remote: Multiaddr,
    dialed: bool,
}

struct ProviderQuery {
    found: HashSet<PeerId>,
    reply: ProviderReply,
}

#[derive(Debug)]
enum ProviderReply {
    Complete(oneshot::Sender<Result<HashSet<PeerId>, NetError>>),
    Stream(mpsc::Sender<Vec<PeerId>>),
}

struct OutboundRequest {
    peer: PeerId,
    reply: oneshot::Sender<Result<SignalResponse, NetError>>,
}

impl std::fmt::Debug for NetActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetActor")
            .field("peer_id", self.swarm.local_peer_id())
            .field("rooms", &self.rooms)
            .finish_non_exhaustive()
    }
}

impl NetActor {
    /// Builds the swarm and starts listening. Events go to `events`.
    pub fn new(
        key: Keypair,
        config: NetConfig,
        events: mpsc::Sender<NetEvent>,
    ) -> Result<(Self, NetHandle), NetError> {
        let peer_id = key.public().to_peer_id();
        let idle = config.idle_connection_timeout;
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| NetError::Start(format!("tcp transport: {e}")))?
            .with_quic()
            .with_relay_client(noise::Config::new, yamux::Config::default)
            .map_err(|e| NetError::Start(format!("relay transport: {e}")))?
            .with_behaviour(|key, relay_client| {
                Behaviour::new(key, &config, relay_client)
                    .map_err(Box::<dyn std::error::Error + Send + Sync>::from)
            })
            .map_err(|e| NetError::Start(e.to_string()))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
            .with_connection_timeout(CONNECTION_TIMEOUT)
            .build();
        let mut unready_listeners = HashSet::new();
        for addr in &config.listen {
            let listener = swarm
                .listen_on(addr.clone())
                .map_err(|e| NetError::Start(format!("listening on {addr}: {e}")))?;
            unready_listeners.insert(listener);
        }
        for addr in &config.bootstrap {
            if let Some(peer) = peer_of(addr) {
                swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
            }
        }
        let (tx, rx) = mpsc::channel(128);
        let relay_plan = RelayPlan::new(Instant::now(), config.relay_fallback_after);
        let actor = Self {
            swarm,
            config,
            commands: rx,
            events,
            rooms: HashMap::new(),
            unprovided: HashSet::new(),
            provider_queries: HashMap::new(),
            outbound: HashMap::new(),
            inbound: HashMap::new(),
            next_reply: 0,
            connections: HashMap::new(),
            relay_plan,
            relay_listeners: HashMap::new(),
            unready_listeners,
            bootstrap_by: Some(Instant::now() + BOOTSTRAP_WAIT),
            external: Vec::new(),
        };
        Ok((
            actor,
            NetHandle {
                commands: tx,
                peer_id,
            },
        ))
    }

    /// Runs until `shutdown` is cancelled or every handle is dropped.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let span = tracing::info_span!("net", peer = %self.swarm.local_peer_id());
        async move {
            let mut provide_retry = tokio::time::interval(self.config.provide_retry_interval);
            provide_retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // Drives the relay fallback deadline and reservation retries; everything else in
            // the plan moves with swarm events.
            let mut nat_tick = tokio::time::interval(NAT_TICK);
            nat_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => break,
                    command = self.commands.recv() => {
                        let Some(command) = command else { break };
                        self.handle_command(command);
                    }
                    event = self.swarm.select_next_some() => self.handle_swarm_event(event).await,
                    _ = provide_retry.tick() => self.provide_pending(),
                    _ = nat_tick.tick() => {
                        if self.bootstrap_by.is_some_and(|by| Instant::now() >= by) {
                            self.dial_bootstrap();
                        }
                        self.drive_relay_plan();
                    }
                }
            }
        }
        .instrument(span)
        .await;
    }

    fn handle_command(&mut self, command: Command) {
        match command {
            Command::Dial(addr) => {
                if let Err(e) = self.swarm.dial(addr.clone()) {
                    tracing::warn!(%addr, error = %e, "dial failed");
                }
            }
            Command::JoinRoom(room, presence) => {
                let previous = self.rooms.insert(room, presence);
                if previous.is_none() {
                    tracing::info!(room = %room.fmt_short(), ?presence, "joined room");
                    if let Err(e) = self.swarm.behaviour_mut().gossipsub.subscribe(&topic(room)) {
                        tracing::warn!(error = %e, "gossip subscribe failed");
                    }
                }
                let provided = presence.provided_keys(room);
                for key in Presence::ALL.map(|p| room_key(room, p)) {
                    if provided.contains(&key) {
                        self.unprovided.insert(key);
                    } else {
                        self.unprovided.remove(&key);
                        self.swarm.behaviour_mut().kad.stop_providing(&key);
                    }
                }
                self.provide_pending();
            }
            Command::LeaveRoom(room) => {
                if self.rooms.remove(&room).is_some() {
                    for presence in Presence::ALL {
                        let key = room_key(room, presence);
                        self.unprovided.remove(&key);
                        self.swarm.behaviour_mut().kad.stop_providing(&key);
                    }
                    self.swarm
                        .behaviour_mut()
                        .gossipsub
                        .unsubscribe(&topic(room));
                }
            }
            Command::FindProviders {
                room,
                presence,
                reply,
            } => {
                let key = room_key(room, presence);
                let id = self.swarm.behaviour_mut().kad.get_providers(key);
                self.provider_queries.insert(
                    id,
                    ProviderQuery {
                        found: HashSet::new(),
                        reply,
                    },
                );
            }
            Command::Request {
                peer,
                request,
                reply,
            } => {
                let frame = Frame::Payload(encode_request(&request));
                let id = self.swarm.behaviour_mut().signal.send_request(&peer, frame);
                self.outbound.insert(id, OutboundRequest { peer, reply });
            }
            Command::Respond { reply, response } => {
                let Some(channel) = self.inbound.remove(&reply) else {
                    tracing::debug!(?reply, "response for a request that timed out");
                    return;
                };
                let frame = Frame::Payload(encode_response(&response));
                if self
                    .swarm
                    .behaviour_mut()
                    .signal
                    .send_response(channel, frame)
                    .is_err()
                {
                    tracing::debug!(?reply, "peer went away before the response");
                }
            }
            Command::AddPeerAddress { peer, addr } => {
                self.swarm.behaviour_mut().kad.add_address(&peer, addr);
            }
            Command::Publish { room, data, reply } => {
                let result = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(topic(room), data)
                    .map(|_| ())
                    .map_err(|e| match e {
                        gossipsub::PublishError::NoPeersSubscribedToTopic => {
                            NetError::NobodyListening
                        }
                        other => NetError::Publish(other.to_string()),
                    });
                let _ = reply.send(result);
            }
            Command::ReportMessage {
                message,
                acceptance,
            } => self.report_message(&message, acceptance),
            Command::ListenAddrs(reply) => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
            Command::ConnectedPeers(reply) => {
                let _ = reply.send(self.swarm.connected_peers().copied().collect());
            }
            Command::ConnectionAddrs(peer, reply) => {
                let addrs = self
                    .connections
                    .get(&peer)
                    .map(|c| c.values().map(|c| c.remote.clone()).collect())
                    .unwrap_or_default();
                let _ = reply.send(addrs);
            }
        }
    }

    fn report_message(&mut self, message: &GossipMessageRef, acceptance: GossipAcceptance) {
        let acceptance = match acceptance {
            GossipAcceptance::Accept => gossipsub::MessageAcceptance::Accept,
            GossipAcceptance::Reject => gossipsub::MessageAcceptance::Reject,
            GossipAcceptance::Ignore => gossipsub::MessageAcceptance::Ignore,
        };
        // False when gossipsub has already forgotten the message: nothing left to do.
        let _ = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&message.id, &message.from, acceptance);
    }

    fn provide_pending(&mut self) {
        let keys: Vec<kad::RecordKey> = self.unprovided.iter().cloned().collect();
        for key in keys {
            // The record is stored locally at once; the query result says whether peers took it
            // too. Until one does, the key stays pending.
            if let Err(e) = self.swarm.behaviour_mut().kad.start_providing(key) {
                tracing::warn!(error = %e, "cannot provide room");
            }
        }
    }

    async fn handle_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr {
                address,
                listener_id,
            } => {
                self.unready_listeners.remove(&listener_id);
                if self.unready_listeners.is_empty() {
                    self.dial_bootstrap();
                }
                let addr = address.with(Protocol::P2p(*self.swarm.local_peer_id()));
                tracing::info!(%addr, "listening");
                self.emit(NetEvent::Listening { addr }).await;
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                let remote = endpoint.get_remote_address().clone();
                let dialed = matches!(endpoint, ConnectedPoint::Dialer { .. });
                tracing::debug!(peer = %peer_id, %remote, dialed, "connection established");
                self.connections.entry(peer_id).or_default().insert(
                    connection_id,
                    Connection {
                        remote: remote.clone(),
                        dialed,
                    },
                );
                if num_established.get() == 1 {
                    self.emit(NetEvent::PeerConnected {
                        peer: peer_id,
                        addr: remote,
                    })
                    .await;
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                ..
            } => {
                if let Some(connections) = self.connections.get_mut(&peer_id) {
                    connections.remove(&connection_id);
                    // A reservation is held over a direct connection to the relay.
                    if !connections.values().any(|c| !nat::is_relayed(&c.remote)) {
                        self.relay_plan.handle_relay_gone(&peer_id);
                    }
                    if connections.is_empty() {
                        self.connections.remove(&peer_id);
                    }
                }
                if num_established == 0 {
                    tracing::debug!(peer = %peer_id, "disconnected");
                    self.emit(NetEvent::PeerDisconnected { peer: peer_id })
                        .await;
                }
                self.drive_relay_plan();
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => {
                if let Some(relay) = self.relay_listeners.remove(&listener_id) {
                    match reason {
                        Ok(()) => tracing::info!(%relay, "relay reservation closed"),
                        Err(e) => tracing::info!(%relay, error = %e, "relay reservation failed"),
                    }
                    self.relay_plan
                        .handle_reservation_lost(Instant::now(), relay);
                    self.drive_relay_plan();
                }
            }
            SwarmEvent::ExternalAddrConfirmed { address } => {
                tracing::info!(%address, "external address confirmed");
                self.external_addrs_changed().await;
            }
            SwarmEvent::ExternalAddrExpired { address } => {
                tracing::info!(%address, "external address expired");
                self.external_addrs_changed().await;
            }
            SwarmEvent::Behaviour(event) => self.handle_behaviour_event(event).await,
            _ => {}
        }
    }

    /// Peers learn where this node can be reached from its provider records, which carry the
    /// addresses confirmed when they were stored: store them again.
    async fn external_addrs_changed(&mut self) {
        // AutoNAT confirms the same address again at every probe.
        let external: Vec<Multiaddr> = self.swarm.external_addresses().cloned().collect();
        if external == self.external {
            return;
        }
        self.external = external;
        for (room, presence) in &self.rooms {
            self.unprovided.extend(presence.provided_keys(*room));
        }
        self.provide_pending();
        self.report_reachability().await;
    }

    async fn report_reachability(&mut self) {
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
    fn dial_bootstrap(&mut self) {
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
    fn drive_relay_plan(&mut self) {
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

    async fn handle_autonat_event(&mut self, event: autonat::Event) {
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

    async fn handle_dcutr_event(&mut self, event: dcutr::Event) {
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
    fn note_relay_offer(
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

    async fn handle_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                connection_id,
            }) => {
                self.note_relay_offer(peer_id, connection_id, &info.protocols);
                let speaks_kad = info
                    .protocols
                    .iter()
                    .any(|p| p.as_ref() == crate::KAD_PROTOCOL);
                if speaks_kad {
                    for addr in &info.listen_addrs {
                        self.swarm
                            .behaviour_mut()
                            .kad
                            .add_address(&peer_id, addr.clone());
                    }
                }
                self.emit(NetEvent::PeerIdentified {
                    peer: peer_id,
                    listen_addrs: info.listen_addrs,
                })
                .await;
            }
            BehaviourEvent::Kad(event) => self.handle_kad_event(event),
            BehaviourEvent::Autonat(event) => self.handle_autonat_event(event).await,
            BehaviourEvent::Dcutr(event) => self.handle_dcutr_event(event).await,
            BehaviourEvent::RelayClient(relay::client::Event::ReservationReqAccepted {
                relay_peer_id,
                renewal: false,
                ..
            }) => {
                tracing::info!(relay = %relay_peer_id, "relay reservation accepted");
            }
            BehaviourEvent::Relay(event) => tracing::debug!(?event, "relay service"),
            BehaviourEvent::Signal(event) => self.handle_signal_event(event).await,
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => {
                let reference = GossipMessageRef {
                    id: message_id,
                    from: propagation_source,
                };
                let room = self
                    .rooms
                    .keys()
                    .find(|room| topic(**room).hash() == message.topic)
                    .copied();
                // Strict validation makes gossipsub drop unsigned messages before this point.
                match (room, message.source) {
                    (Some(room), Some(author)) => {
                        self.emit(NetEvent::RoomMessage {
                            message: reference,
                            room,
                            author,
                            data: message.data,
                        })
                        .await;
                    }
                    _ => self.report_message(&reference, GossipAcceptance::Ignore),
                }
            }
            BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed {
                peer_id,
                topic: hash,
            }) => {
                let room = self
                    .rooms
                    .keys()
                    .find(|room| topic(**room).hash() == hash)
                    .copied();
                if let Some(room) = room {
                    self.emit(NetEvent::RoomPeerJoined {
                        room,
                        peer: peer_id,
                    })
                    .await;
                }
            }
            _ => {}
        }
    }

    fn handle_kad_event(&mut self, event: kad::Event) {
        let kad::Event::OutboundQueryProgressed {
            id, result, step, ..
        } = event
        else {
            if let kad::Event::RoutingUpdated {
                is_new_peer: true, ..
            } = event
            {
                self.provide_pending();
            }
            return;
        };
        match result {
            kad::QueryResult::StartProviding(Ok(kad::AddProviderOk { key }))
                if self.unprovided.remove(&key) =>
            {
                tracing::debug!("provider record stored");
            }
            kad::QueryResult::StartProviding(Err(e)) => {
                tracing::debug!(error = %e, "providing failed, will retry");
            }
            kad::QueryResult::GetProviders(result) => {
                let local = *self.swarm.local_peer_id();
                let Some(query) = self.provider_queries.get_mut(&id) else {
                    return;
                };
                let mut failure = None;
                match result {
                    Ok(kad::GetProvidersOk::FoundProviders { providers, .. }) => {
                        let new: Vec<PeerId> = providers
                            .into_iter()
                            .filter(|p| *p != local && !query.found.contains(p))
                            .collect();
                        query.found.extend(new.iter().copied());
                        // kad keeps a provider's addresses only while its query runs (0.49
                        // `discovered`), and a member behind NAT is in nobody's routing table:
                        // connect now, while the addresses (its relay circuit) are at hand, so
                        // signaling can reach it afterwards.
                        for peer in &new {
                            let dial = DialOpts::peer_id(*peer)
                                .condition(PeerCondition::DisconnectedAndNotDialing)
                                .build();
                            if let Err(e) = self.swarm.dial(dial) {
                                tracing::debug!(%peer, error = %e, "cannot dial provider");
                            }
                        }
                        if let ProviderReply::Stream(tx) = &query.reply
                            && !new.is_empty()
                        {
                            // A full stream means a slow reader; it will ask again.
                            let _ = tx.try_send(new);
                        }
                    }
                    Ok(kad::GetProvidersOk::FinishedWithNoAdditionalRecord { .. }) => {}
                    Err(e) => failure = Some(e.to_string()),
                }
                if !step.last {
                    return;
                }
                let Some(query) = self.provider_queries.remove(&id) else {
                    return;
                };
                if let ProviderReply::Complete(reply) = query.reply {
                    let answer = match failure {
                        Some(e) if query.found.is_empty() => Err(NetError::Query(e)),
                        _ => Ok(query.found),
                    };
                    let _ = reply.send(answer);
                }
            }
            _ => {}
        }
    }

    async fn handle_signal_event(&mut self, event: request_response::Event<Frame, Frame>) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let decoded = match request {
                    Frame::Payload(bytes) => decode_request(&bytes),
                    Frame::Oversized { len } => Err(DecodeError::TooLarge {
                        len: usize::try_from(len).unwrap_or(usize::MAX),
                        limit: chroom_types::MAX_SIGNAL_MESSAGE_BYTES,
                    }),
                };
                match decoded {
                    Ok(request) => {
                        let reply = SignalReplyId(self.next_reply);
                        self.next_reply += 1;
                        self.inbound.insert(reply, channel);
                        self.emit(NetEvent::SignalRequest {
                            peer,
                            reply,
                            request,
                        })
                        .await;
                    }
                    Err(error) => {
                        let code = match error {
                            DecodeError::TooLarge { .. } => ErrorCode::TooLarge,
                            _ => ErrorCode::Malformed,
                        };
                        let reason = error.to_string();
                        tracing::warn!(%peer, %reason, "refused bad signaling request");
                        let response =
                            SignalResponse::Error(SignalError::new(code, reason.clone()));
                        let _ = self
                            .swarm
                            .behaviour_mut()
                            .signal
                            .send_response(channel, Frame::Payload(encode_response(&response)));
                        self.emit(NetEvent::PeerMisbehaved { peer, reason }).await;
                    }
                }
            }
            request_response::Event::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                let Some(outbound) = self.outbound.remove(&request_id) else {
                    return;
                };
                let peer = outbound.peer;
                let result = match response {
                    Frame::Payload(bytes) => {
                        decode_response(&bytes).map_err(|e| NetError::Signal {
                            peer,
                            reason: format!("bad response: {e}"),
                        })
                    }
                    Frame::Oversized { len } => Err(NetError::Signal {
                        peer,
                        reason: format!("response of {len} bytes is over the limit"),
                    }),
                };
                let _ = outbound.reply.send(result);
            }
            request_response::Event::OutboundFailure {
                request_id, error, ..
            } => {
                if let Some(outbound) = self.outbound.remove(&request_id) {
                    let _ = outbound.reply.send(Err(NetError::Signal {
                        peer: outbound.peer,
                        reason: error.to_string(),
                    }));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound signaling failed");
                // Drop channels whose stream is gone so the map cannot grow without bound.
                self.inbound.retain(|_, channel| channel.is_open());
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    async fn emit(&mut self, event: NetEvent) {
        // The node stopping its receiver means it is shutting down; nothing to report to.
        let _ = self.events.send(event).await;
    }
}

/// How often the relay plan is looked at without an event (its deadlines).
const NAT_TICK: Duration = Duration::from_secs(1);

/// Longest wait for the listeners before the bootstrap peers are dialed.
const BOOTSTRAP_WAIT: Duration = Duration::from_secs(2);

/// How a node is listed in a room in the DHT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Presence {
    /// Listed among the room's members.
    Member,
    /// Listed among the members and among the publishers, so subscribers find it without
    /// asking every member.
    Publisher,
}

impl Presence {
    const ALL: [Self; 2] = [Self::Member, Self::Publisher];

    /// The DHT keys a node with this presence provides in `room`.
    fn provided_keys(self, room: RoomId) -> Vec<kad::RecordKey> {
        match self {
            Self::Member => vec![room_key(room, Self::Member)],
            Self::Publisher => Self::ALL.map(|p| room_key(room, p)).to_vec(),
        }
    }
}

/// The DHT key under which a room's members (or publishers) register as providers.
fn room_key(room: RoomId, presence: Presence) -> kad::RecordKey {
    let suffix: &[u8] = match presence {
        Presence::Member => b"/members",
        Presence::Publisher => b"/publishers",
    };
    let mut key = b"/chroom/room/".to_vec();
    key.extend_from_slice(room.as_bytes());
    key.extend_from_slice(suffix);
    kad::RecordKey::new(&key)
}

/// The gossip topic of a room.
fn topic(room: RoomId) -> gossipsub::IdentTopic {
    gossipsub::IdentTopic::new(format!("chroom/room/{room}"))
}

fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(peer) => Some(peer),
        _ => None,
    })
}
