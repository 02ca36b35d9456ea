//! The network actor: owns the swarm, turns commands into swarm calls and swarm events into
//! [`NetEvent`]s. `handle` holds what the node sees of it (the handle, events, errors);
//! `reachability` its side of crossing NATs (AutoNAT, relay circuits, hole punching).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use chroom_proto::{
    DecodeError, ErrorCode, SignalError, SignalResponse, decode_request, decode_response,
    encode_request, encode_response,
};
use chroom_types::RoomId;
use futures::StreamExt;
use libp2p::core::{ConnectedPoint, transport::ListenerId};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, Swarm, gossipsub, identify, identity::Keypair, kad, multiaddr::Protocol,
    noise, relay, request_response, tcp, yamux,
};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::behaviour::{Behaviour, BehaviourEvent};
use crate::config::NetConfig;
use crate::nat::{self, RelayPlan};
use crate::signal::Frame;

mod handle;
mod reachability;

use handle::Command;
pub use handle::{
    GossipAcceptance, GossipMessageRef, NetError, NetEvent, NetHandle, SignalReplyId,
};

/// Longest a connection may take to be set up (transport, Noise, yamux). A home node's
/// address taken from before it held a relay circuit points at a NAT that drops the dial
/// silently, and a signaling request waiting on that dial would wait out its whole timeout;
/// failing it sooner lets the retry use the circuit (libp2p's default is 10 s).
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(4);

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
