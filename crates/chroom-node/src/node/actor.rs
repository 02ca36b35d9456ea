//! [`NodeActor`]: the task that feeds what happens (commands, the network, the media socket,
//! the registry, finished steps, time) to the [`NodeCore`] and carries out what it decides.
//! It decides nothing itself: every branch here is translation.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chroom_media::reflexive::Mapping;
use chroom_media::relay::RelayToken;
use chroom_media::{MediaEvent, MediaHandle};
use chroom_net::{
    GossipAcceptance, GossipMessageRef, NetError, NetEvent, NetHandle, PeerId, Presence,
    SignalReplyId, fmt_short as short,
};
use chroom_proto::{ErrorCode, FileOffer, FilePart, SignalError, SignalRequest, SignalResponse};
use chroom_registry::{AccessRead, RegistryEvent, RegistryHandle};
use chroom_room::follower::Freshness;
use chroom_room::node::{NodeCore, NodeOutput, OwnCheckId, Say, TreeDelivery};
use chroom_room::{
    AccessFacts, GossipId, GossipVerdict, InboundId, Output, SubscribeFailure, SubscribeId,
};
use chroom_store::Store;
use chroom_types::{FileHash, IdentityBinding, LinkId, RoomId};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::api::{
    ChatMessage, ModerationNotice, NodeStats, OwnAccess, OwnRefusal, RoomReport, TreePosition,
};
use super::frames::{FrameTap, LinkDirection, LinkPeers};
use super::handle::{Acting, Command};
use super::outbox::{MediaOrder, Outbox};
use super::relay;
use super::signaling::{
    accept, decode_heard, encode_say, log_room_event, refuse, subscribe, tree_from_nodes,
    tree_to_nodes,
};
use crate::clock::{unix_now, unix_now_ms};
use crate::files::Files;
use crate::identity::OwnBinding;

mod commands;
mod doc_sync;
mod outputs;
mod room_keys;

/// Results of spawned signaling steps, fed back into the core.
#[derive(Debug)]
enum StepResult {
    Publishers {
        room: RoomId,
        peers: Vec<PeerId>,
    },
    LookupFinished {
        room: RoomId,
    },
    Subscribed {
        id: SubscribeId,
        peer: PeerId,
        /// The publisher's binding from its answer.
        binding: Option<IdentityBinding>,
        result: Result<LinkId, SubscribeFailure>,
    },
    SubscriberLinked {
        room: RoomId,
        peer: PeerId,
        link: LinkId,
    },
    /// A peer answered this node's hello.
    Hello {
        peer: PeerId,
        binding: Option<IdentityBinding>,
    },
    /// Peers to tell this node's (new) binding.
    Reintroduce {
        peers: Vec<PeerId>,
    },
    /// The files this node shared in `room`, to offer again.
    OwnFiles {
        room: RoomId,
        offers: Vec<FileOffer>,
    },
    /// A tree message to `peer` fared as `delivery`.
    TreeSent {
        peer: PeerId,
        room: RoomId,
        delivery: TreeDelivery,
    },
    /// An allocation was opened for `peer` (`Some` token) or could not be (`None`).
    RelayOpened {
        peer: PeerId,
        token: Option<RelayToken>,
    },
    /// A search for this node's own relayed path ended.
    RelaySought {
        found: bool,
    },
    /// A member answered a pull of a room's documents.
    DocPart {
        room: RoomId,
        peer: PeerId,
        answer: Result<chroom_proto::DocPart, String>,
    },
    /// A member answered an ask for its room key.
    RoomKey {
        room: RoomId,
        peer: PeerId,
        answer: Result<chroom_proto::RoomKey, SignalError>,
    },
}

/// A request from a peer waiting for the core's answer, with what answering it needs.
#[derive(Debug)]
enum Inbound {
    File {
        reply: SignalReplyId,
        room: RoomId,
        file: FileHash,
        part: FilePart,
    },
    Subscribe {
        reply: SignalReplyId,
        offer_sdp: String,
    },
    Tree {
        reply: SignalReplyId,
    },
    Relay {
        reply: SignalReplyId,
    },
    DocPull {
        reply: SignalReplyId,
        peer: PeerId,
        pull: chroom_proto::DocPull,
    },
    RoomKey {
        reply: SignalReplyId,
    },
}

impl Inbound {
    fn reply(self) -> SignalReplyId {
        match self {
            Self::File { reply, .. }
            | Self::Subscribe { reply, .. }
            | Self::Tree { reply }
            | Self::Relay { reply }
            | Self::RoomKey { reply }
            | Self::DocPull { reply, .. } => reply,
        }
    }
}

/// What the actor reads from.
pub(crate) struct Inputs {
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) net: mpsc::Receiver<NetEvent>,
    pub(crate) media: mpsc::Receiver<MediaEvent>,
    pub(crate) registry: mpsc::Receiver<RegistryEvent>,
}

/// What the actor carries decisions out with.
pub(crate) struct Parts {
    pub(crate) net: NetHandle,
    pub(crate) media: MediaHandle,
    pub(crate) store: Arc<Store>,
    pub(crate) files: Arc<Files>,
    pub(crate) registry: Option<RegistryHandle>,
    pub(crate) identity: Option<OwnBinding>,
    pub(crate) account: watch::Sender<Option<Acting>>,
    pub(crate) chat: broadcast::Sender<ChatMessage>,
    pub(crate) doc_events: broadcast::Sender<crate::node::DocEvent>,
    pub(crate) notices: broadcast::Sender<ModerationNotice>,
    /// Every link that closed, for those holding one (a WHIP session).
    pub(crate) closed_links: broadcast::Sender<LinkId>,
    /// The core's view version, for pages to refresh when it moves.
    pub(crate) views: watch::Sender<u64>,
    pub(crate) links: LinkPeers,
    pub(crate) frames: FrameTap,
}

/// The node's task. See the module docs.
pub(crate) struct NodeActor {
    core: NodeCore<PeerId>,
    local: PeerId,
    parts: Parts,
    outbox: Outbox,
    results: mpsc::Sender<StepResult>,
    results_rx: mpsc::Receiver<StepResult>,
    steps: JoinSet<()>,
    gossip: HashMap<GossipId, GossipMessageRef>,
    next_gossip: u64,
    inbound: HashMap<InboundId, Inbound>,
    next_inbound: u64,
    own_checks: HashMap<OwnCheckId, oneshot::Sender<Result<OwnAccess, OwnRefusal>>>,
    next_check: u64,
    /// Whom each relay allocation this node serves was granted to.
    allocations: HashMap<RelayToken, PeerId>,
    /// How tall each connected peer said it shows this node's camera: kept for links made
    /// after it said.
    shown_heights: HashMap<PeerId, Option<u32>>,
}

impl NodeActor {
    pub(crate) fn new(
        core: NodeCore<PeerId>,
        local: PeerId,
        parts: Parts,
        shutdown: &CancellationToken,
    ) -> Self {
        let outbox = Outbox::start(
            parts.net.clone(),
            parts.media.clone(),
            shutdown.child_token(),
        );
        let (results, results_rx) = mpsc::channel(64);
        Self {
            core,
            local,
            parts,
            outbox,
            results,
            results_rx,
            steps: JoinSet::new(),
            gossip: HashMap::new(),
            next_gossip: 0,
            inbound: HashMap::new(),
            next_inbound: 0,
            own_checks: HashMap::new(),
            next_check: 0,
            allocations: HashMap::new(),
            shown_heights: HashMap::new(),
        }
    }

    /// Runs until `shutdown`; cancel-safe in the sense that stopping loses only work in
    /// flight (spawned steps are stopped with it).
    pub(crate) async fn run(mut self, mut inputs: Inputs, shutdown: CancellationToken) {
        loop {
            let deadline = self
                .core
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(command) = inputs.commands.recv() => self.handle_command(command),
                Some(event) = inputs.net.recv() => self.handle_net_event(event),
                Some(event) = inputs.media.recv() => self.handle_media_event(event),
                Some(result) = self.results_rx.recv() => self.handle_step_result(result),
                Some(event) = inputs.registry.recv() => self.handle_registry_event(event),
                Some(_) = self.steps.join_next(), if !self.steps.is_empty() => {}
                () = tokio::time::sleep_until(deadline.into()) => {
                    // Trust the clock, not the timer: a spurious wakeup is harmless to the core.
                    self.core.handle_timeout(Instant::now());
                }
                else => break,
            }
            self.carry_out();
            let version = self.core.view_version();
            self.parts.views.send_if_modified(|shown| {
                let moved = *shown != version;
                *shown = version;
                moved
            });
        }
        // What members wrote since the last store would be lost with the process.
        self.core.store_all_docs();
        while let Some(output) = self.core.poll_output() {
            if let NodeOutput::StoreDoc {
                room,
                name,
                compacted,
            } = output
            {
                self.store_doc(room, &name, &compacted);
            }
        }
        self.steps.shutdown().await;
    }

    /// Keeps a document's copy, on the loop: a later copy must never be overwritten by an
    /// earlier one still being written, and each document is stored at most every 2 s.
    fn store_doc(&self, room: RoomId, name: &str, compacted: &[u8]) {
        if let Err(e) = self.parts.store.put_doc(room, name, compacted) {
            tracing::warn!(room = %room.fmt_short(), doc = %name, error = %e, "document not stored");
        }
    }

    fn own_binding(&mut self) -> Option<IdentityBinding> {
        self.parts.identity.as_mut().map(OwnBinding::current)
    }

    /// Publishes `say` in `room`, stamped with this node's binding and the time; `done`
    /// hears the outcome.
    fn publish(
        &mut self,
        room: RoomId,
        say: Say<PeerId>,
        done: Option<oneshot::Sender<Result<(), NetError>>>,
    ) {
        if let Some(bytes) = self.encode_own(room, say, unix_now_ms()) {
            self.outbox.publish(room, bytes, done);
        }
    }

    fn handle_net_event(&mut self, event: NetEvent) {
        let now = Instant::now();
        match event {
            NetEvent::SignalRequest {
                peer,
                reply,
                request,
            } => self.handle_signal_request(now, peer, reply, request),
            NetEvent::PeerConnected { peer, .. } => self.say_hello(peer),
            NetEvent::PeerDisconnected { peer } => {
                self.shown_heights.remove(&peer);
                self.core.handle_peer_disconnected(now, peer);
            }
            NetEvent::RoomMessage {
                message,
                room,
                author,
                data,
            } => {
                let id = GossipId(self.next_gossip);
                self.next_gossip += 1;
                self.gossip.insert(id, message);
                match decode_heard(&data) {
                    Ok((heard, binding)) => {
                        let account = binding.and_then(|binding| {
                            chroom_registry::verify(&binding, &author.to_base58(), unix_now())
                                .inspect_err(|e| tracing::debug!(author = %short(&author), error = %e, "bad author binding"))
                                .ok()
                        });
                        self.core.handle_room_message(
                            now,
                            unix_now_ms(),
                            id,
                            room,
                            author,
                            account,
                            heard,
                        );
                    }
                    Err(reason) => self.core.handle_bad_room_message(id, &reason),
                }
            }
            NetEvent::RoomPeerJoined { room, peer } => {
                tracing::debug!(room = %room.fmt_short(), peer = %short(&peer), "peer joined room topic");
                self.core.handle_room_peer_joined(room);
            }
            NetEvent::PeerMisbehaved { peer, reason } => {
                self.core.handle_malformed_request();
                tracing::warn!(target: "chroom::_events::peer_misbehaved", %peer, %reason);
            }
            NetEvent::PeerIdentified { peer, listen_addrs } => {
                let store = self.parts.store.clone();
                let addrs: Vec<String> = listen_addrs.iter().map(ToString::to_string).collect();
                // redb fsyncs on commit: keep it off the async threads.
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = store.remember_peer(&peer.to_base58(), &addrs, unix_now()) {
                        tracing::warn!(error = %e, "cannot update peer book");
                    }
                });
            }
            NetEvent::Listening { addr } => tracing::debug!(%addr, "listen address"),
            _ => {}
        }
    }

    fn handle_signal_request(
        &mut self,
        now: Instant,
        peer: PeerId,
        reply: SignalReplyId,
        request: SignalRequest,
    ) {
        let id = InboundId(self.next_inbound);
        self.next_inbound += 1;
        match request {
            SignalRequest::Tree(tree) => {
                let Some(message) = tree_from_nodes(tree.message) else {
                    self.core.handle_malformed_request();
                    let error = SignalError::new(
                        ErrorCode::Malformed,
                        "a tree message named a node that is not an ed25519 key",
                    );
                    return refuse(&self.parts.net, reply, error);
                };
                self.inbound.insert(id, Inbound::Tree { reply });
                self.core
                    .handle_tree_request(now, id, peer, tree.room, message);
            }
            SignalRequest::Hello { binding } => {
                if let Some(binding) = binding {
                    self.handle_binding(now, peer, &binding);
                }
                let hello = SignalResponse::Hello {
                    binding: self.own_binding(),
                };
                let net = self.parts.net.clone();
                tokio::spawn(async move {
                    let _ = net.respond(reply, hello).await;
                });
            }
            SignalRequest::Subscribe {
                room,
                offer_sdp,
                binding,
            } => {
                if let Some(binding) = binding {
                    self.handle_binding(now, peer, &binding);
                }
                self.inbound
                    .insert(id, Inbound::Subscribe { reply, offer_sdp });
                self.core.handle_subscribe_request(now, id, peer, room);
            }
            SignalRequest::File { room, file, part } => {
                let inbound = Inbound::File {
                    reply,
                    room,
                    file,
                    part,
                };
                self.inbound.insert(id, inbound);
                self.core.handle_file_request(now, id, peer, room);
            }
            SignalRequest::Relay { room } => {
                self.inbound.insert(id, Inbound::Relay { reply });
                self.core.handle_relay_request(now, id, peer, room);
            }
            SignalRequest::DocPull(pull) => {
                let room = pull.room;
                self.inbound
                    .insert(id, Inbound::DocPull { reply, peer, pull });
                self.core.handle_doc_pull(now, id, peer, room);
            }
            SignalRequest::RoomKey { room } => {
                self.inbound.insert(id, Inbound::RoomKey { reply });
                self.core.handle_room_key_request(now, id, peer, room);
            }
            SignalRequest::VideoWanted {
                room: _,
                max_height,
            } => {
                // A peer may only shrink what it gets itself: the links this node sends to it
                // (the Noise-authenticated sender), now and later. No right to check, so no
                // core decision.
                self.shown_heights.insert(peer, max_height);
                let links = self.parts.links.to(peer);
                tracing::debug!(peer = %short(&peer), ?max_height, ?links, "peer shows this node's camera");
                let (net, media) = (self.parts.net.clone(), self.parts.media.clone());
                tokio::spawn(async move {
                    for link in links {
                        media.set_shown_height(link, max_height).await;
                    }
                    let _ = net.respond(reply, SignalResponse::Ack).await;
                });
            }
            other => {
                tracing::warn!(%peer, ?other, "unsupported signaling request");
                let error = SignalError::new(ErrorCode::Malformed, "unsupported request");
                refuse(&self.parts.net, reply, error);
            }
        }
    }

    /// Records which member `link` carries and applies what that member said of the size it
    /// shows this node's camera, if it said so before the link was made.
    fn link_opened(&mut self, link: LinkId, peer: PeerId, direction: LinkDirection) {
        self.parts.links.insert(link, peer, direction);
        if let Some(height) = self.shown_heights.get(&peer).copied() {
            let media = self.parts.media.clone();
            tokio::spawn(async move { media.set_shown_height(link, height).await });
        }
    }

    fn handle_media_event(&mut self, event: MediaEvent) {
        match event {
            MediaEvent::LinkClosed { link, reason } => {
                tracing::info!(%link, ?reason, "link closed");
                // Nobody listening is fine.
                let _ = self.parts.closed_links.send(link);
                self.parts.links.remove(link);
                self.core.handle_link_closed(Instant::now(), link);
            }
            MediaEvent::LinkConnected { link } => tracing::debug!(%link, "link connected"),
            MediaEvent::LinkSilent { link } => {
                self.core.handle_link_media(Instant::now(), link, false);
            }
            MediaEvent::LinkFlowing { link } => {
                self.core.handle_link_media(Instant::now(), link, true);
            }
            // Links pick a stable mapping up themselves; one per destination needs a relay.
            MediaEvent::Mapping { mapping } => {
                let per_destination = matches!(mapping, Mapping::PerDestination(_));
                self.core.handle_nat(Instant::now(), per_destination);
            }
            MediaEvent::RelayAllocationEnded { token } => {
                if let Some(peer) = self.allocations.remove(&token) {
                    self.core.handle_relay_ended(peer);
                }
            }
            _ => {}
        }
    }

    fn handle_step_result(&mut self, result: StepResult) {
        let now = Instant::now();
        match result {
            StepResult::Publishers { room, peers } => {
                tracing::debug!(room = %room.fmt_short(), providers = peers.len(), "publishers found");
                self.core.handle_publishers(now, room, &peers);
            }
            StepResult::LookupFinished { room } => self.core.handle_lookup_finished(now, room),
            StepResult::Subscribed {
                id,
                peer,
                binding,
                result,
            } => {
                if let Some(binding) = binding {
                    self.handle_binding(now, peer, &binding);
                }
                if let Ok(link) = &result {
                    self.link_opened(*link, peer, LinkDirection::Receive);
                }
                self.core.handle_subscribe_result(now, id, result);
            }
            StepResult::SubscriberLinked { room, peer, link } => {
                self.link_opened(link, peer, LinkDirection::Send);
                self.core.handle_subscriber_linked(now, room, peer, link);
            }
            StepResult::Hello { peer, binding } => match binding {
                Some(binding) => self.handle_binding(now, peer, &binding),
                None => tracing::debug!(peer = %short(&peer), "peer acts for no account"),
            },
            StepResult::Reintroduce { peers } => {
                for peer in peers {
                    self.say_hello(peer);
                }
            }
            StepResult::OwnFiles { room, offers } => {
                for offer in offers {
                    self.publish(room, Say::FileOffer(offer), None);
                }
            }
            StepResult::TreeSent {
                peer,
                room,
                delivery,
            } => self.core.handle_tree_delivery(now, peer, room, delivery),
            StepResult::RelayOpened { peer, token } => match token {
                Some(token) => {
                    self.allocations.insert(token, peer);
                }
                None => self.core.handle_relay_ended(peer),
            },
            StepResult::RelaySought { found } => self.core.handle_relay_found(now, found),
            StepResult::DocPart { room, peer, answer } => {
                self.core.handle_doc_part(now, room, peer, answer);
            }
            StepResult::RoomKey { room, peer, answer } => {
                self.core.handle_room_key(now, peer, room, answer);
            }
        }
    }

    fn handle_registry_event(&mut self, event: RegistryEvent) {
        match event {
            RegistryEvent::Facts {
                room,
                account,
                read,
                block,
            } => {
                tracing::debug!(room = %room.fmt_short(), %account, ?read, block, "registry facts");
                let facts = match read {
                    AccessRead {
                        room_kind: Some(kind),
                        membership,
                        relayer,
                        room_policy,
                    } => AccessFacts::Known {
                        kind,
                        membership,
                        relayer,
                        policy: room_policy,
                    },
                    AccessRead {
                        room_kind: None, ..
                    } => AccessFacts::UnknownRoom,
                };
                self.core
                    .handle_access(Instant::now(), room, account, facts);
            }
            RegistryEvent::Freshness(freshness) => {
                let since = match freshness {
                    Freshness::Stale { since } => Some(since),
                    _ => None,
                };
                self.core.handle_registry_stale(Instant::now(), since);
            }
            RegistryEvent::Forgotten { room, account } => {
                self.core.handle_access_forgotten(room, account);
            }
            _ => {}
        }
    }

    /// Verifies a peer's binding against the PeerId its connection authenticated, and tells
    /// the core which account the peer acts for (none, if the binding is bad).
    fn handle_binding(&mut self, now: Instant, peer: PeerId, binding: &IdentityBinding) {
        let now_unix = unix_now();
        let verified = match chroom_registry::verify(binding, &peer.to_base58(), now_unix) {
            Ok(account) => Some((account, binding.expires_at_unix)),
            Err(e) => {
                tracing::warn!(peer = %short(&peer), error = %e, "refused identity binding");
                None
            }
        };
        self.core.handle_peer_binding(now, now_unix, peer, verified);
    }

    /// Tells a newly connected peer which account this node acts for, and learns its account
    /// from the answer, so rights are known before the first room request.
    pub(super) fn say_hello(&mut self, peer: PeerId) {
        let Some(binding) = self.own_binding() else {
            return;
        };
        let request = SignalRequest::Hello {
            binding: Some(binding),
        };
        let (net, results) = (self.parts.net.clone(), self.results.clone());
        tokio::spawn(async move {
            match net.request(peer, request).await {
                Ok(SignalResponse::Hello { binding }) => {
                    let _ = results.send(StepResult::Hello { peer, binding }).await;
                }
                // Peers that are not Chroom nodes (bootstrap tools, probes) need not answer.
                Ok(other) => {
                    tracing::debug!(peer = %short(&peer), ?other, "unexpected hello answer");
                }
                Err(e) => tracing::debug!(peer = %short(&peer), error = %e, "hello failed"),
            }
        });
    }
}
