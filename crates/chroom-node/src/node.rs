//! A running node: wires the libp2p driver, the media driver, the store and the room session
//! core together. This module decides nothing: every decision comes out of
//! [`chroom_room::RoomSession`]; this loop carries it out and feeds results back.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alloy::signers::local::PrivateKeySigner;
use anyhow::Context;
use chroom_media::{MediaActor, MediaEvent, MediaHandle, PlaybackOffer, ReceivedFrame, RelayStats};
use chroom_net::{
    GossipAcceptance, GossipMessageRef, Multiaddr, NetActor, NetError, NetEvent, NetHandle, PeerId,
    Presence, SignalReplyId,
};
use chroom_overlay::Message;
use chroom_proto::TreeMessage;
use chroom_proto::{
    ErrorCode, FileOffer, RoomMessage, RoomMessageBody, SignalError, SignalRequest, SignalResponse,
    decode_room_message, encode_room_message,
};
use chroom_registry::{AccessRead, RegistryActor, RegistryClient, RegistryEvent, RegistryHandle};
use chroom_room::follower::{FollowerConfig, Freshness};
use chroom_room::moderation::Moderations;
use chroom_room::roster::{Beat, PRESENCE_INTERVAL, Roster};
use chroom_room::{
    AccessFacts, AccessPolicy, GossipId, GossipVerdict, InboundId, Output, Participation,
    RoomEvent, RoomSession, SessionConfig, SubscribeFailure, SubscribeId,
};
use chroom_store::Store;
use chroom_types::{
    Account, Action, FileHash, IdentityBinding, LinkId, LinkMode, MediaKind, Membership,
    Moderation, NodeId, Role, RoomId, RoomKind, RoomName, Track,
};

use crate::files::Files;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::NodeConfig;
use crate::identity::{load_account_key, load_or_create_node_key};

/// Most bootstrap candidates taken from the peer book at start.
const PEER_BOOK_DIALS: usize = 8;

/// A frame received from a publisher, as handed to the application (the recorder).
#[derive(Debug, Clone)]
pub struct NodeFrame {
    /// The publisher.
    pub peer: PeerId,
    /// The link it came on.
    pub link: LinkId,
    /// The frame.
    pub frame: ReceivedFrame,
}

/// A chat line from the room's gossip, delivered once the registry let its author chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// The room.
    pub room: RoomId,
    /// The author's node.
    pub author: PeerId,
    /// The account the author proved, if any (always, where the registry is enforced).
    pub account: Option<Account>,
    /// When the author sent it, unix milliseconds.
    pub sent_at_unix_ms: u64,
    /// The text.
    pub text: String,
}

/// A host's decision, carried out on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModerationNotice {
    /// The room.
    pub room: RoomId,
    /// The member it is about.
    pub target: PeerId,
    /// What was decided.
    pub action: Moderation,
    /// The host's node.
    pub by: PeerId,
    /// The host's account.
    pub by_account: Option<Account>,
}

/// A member present in a room, as its page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    /// Its node.
    pub peer: PeerId,
    /// The account it proved, if any.
    pub account: Option<Account>,
    /// Its role in the registry, where this node knows it.
    pub role: Option<Role>,
    /// This node itself.
    pub is_self: bool,
    /// It shares a screen.
    pub sharing_screen: bool,
    /// A host muted it.
    pub muted_by_host: bool,
}

/// Chat lines kept for receivers that fall behind; older ones are skipped for them.
const CHAT_BUFFER: usize = 256;

/// A started node. Dropping it without [`RunningNode::shutdown`] stops it too, less tidily.
#[derive(Debug)]
pub struct RunningNode {
    handle: NodeHandle,
    /// Where the user's page is served, if configured.
    web_addr: Option<std::net::SocketAddr>,
    frames: Option<mpsc::Receiver<NodeFrame>>,
    /// Set once the frames are taken: until then the driver drops them instead of filling a
    /// channel nobody reads (which would stall it).
    frames_wanted: Arc<AtomicBool>,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
    started_at: Instant,
}

#[derive(Debug)]
enum DriverCommand {
    Join {
        room: RoomId,
        participation: Participation,
        done: oneshot::Sender<()>,
    },
    Leave {
        room: RoomId,
        done: oneshot::Sender<()>,
    },
    SendChat {
        room: RoomId,
        text: String,
        done: oneshot::Sender<anyhow::Result<()>>,
    },
    Stats(oneshot::Sender<NodeStats>),
    Participants {
        room: RoomId,
        reply: oneshot::Sender<Vec<Participant>>,
    },
    Receiving {
        room: RoomId,
        reply: oneshot::Sender<Vec<(PeerId, LinkId)>>,
    },
    Tree {
        room: RoomId,
        reply: oneshot::Sender<TreePosition>,
    },
    ShareScreen {
        room: RoomId,
        sharing: bool,
        done: oneshot::Sender<()>,
    },
    OfferFile {
        room: RoomId,
        offer: FileOffer,
        done: oneshot::Sender<anyhow::Result<()>>,
    },
    Moderate {
        room: RoomId,
        target: PeerId,
        action: Moderation,
        done: oneshot::Sender<anyhow::Result<()>>,
    },
    SignIn {
        binding: IdentityBinding,
        done: oneshot::Sender<anyhow::Result<Account>>,
    },
}

/// This node's place in a broadcast room's relay tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreePosition {
    /// The member feeding this node, if attached.
    pub parent: Option<PeerId>,
    /// The members this node feeds.
    pub children: Vec<PeerId>,
}

/// Counters of a node, for tests and the CLI.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Links receiving media.
    pub receiving_links: usize,
    /// Links sending media.
    pub sending_links: usize,
    /// Signaling requests refused so far.
    pub requests_refused: u64,
    /// Signaling requests that did not decode.
    pub malformed_requests: u64,
    /// The registry is unreachable and the node serves cached memberships.
    pub registry_stale: bool,
    /// The latest refusal a publisher sent this node, in words.
    pub last_refusal: Option<String>,
    /// Peers whose identity binding this node has verified (on connect, or with a request).
    pub peers_with_accounts: usize,
    /// Room gossip messages delivered (their authors may write in the room).
    pub gossip_delivered: u64,
    /// Room gossip messages rejected: undecodable, badly bound, or from an author the registry
    /// does not allow. Rejected messages are not forwarded.
    pub gossip_rejected: u64,
    /// Times this node attached to a parent in a relay tree (joins and repairs).
    pub tree_attachments: u64,
    /// What this node relayed.
    pub relay: RelayStats,
}

impl RunningNode {
    /// Starts a node: loads or creates its key and store, starts libp2p and the media socket.
    pub async fn start(config: NodeConfig) -> anyhow::Result<Self> {
        let started_at = Instant::now();
        let key = load_or_create_node_key(&config.data_dir)?;
        let peer_id = key.public().to_peer_id();
        let store_path = config.data_dir.join("chroom.redb");
        let (store, record) = Store::open(&store_path, &peer_id.to_base58(), unix_now())
            .with_context(|| format!("opening store {}", store_path.display()))?;
        if let Some(previous) = &record.previous_peer_id {
            tracing::warn!(%previous, current = %peer_id, "node key changed since the last start");
        }
        tracing::info!(%peer_id, starts = record.starts, data_dir = %config.data_dir.display(), "node starting");
        let store = Arc::new(store);

        let identity = match &config.identity {
            Some(identity) => {
                let signer = load_account_key(&identity.key)?;
                tracing::info!(account = %signer.address(), "acting for account");
                Some(Identity::new(signer, identity.binding_ttl, &peer_id)?)
            }
            None => None,
        };

        let acting = identity.as_ref().map(|i| Acting {
            account: i.binding.account,
            wallet_until_unix: None,
        });
        let (account_tx, account) = watch::channel(acting);
        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();

        let (net_tx, net_rx) = mpsc::channel(256);
        let (net_actor, net) = NetActor::new(key, config.net.clone(), net_tx)?;
        tasks.spawn(net_actor.run(shutdown.child_token()));

        let (media_tx, media_rx) = mpsc::channel(1024);
        let (media_actor, media) = MediaActor::bind(config.media.clone(), media_tx).await?;
        tasks.spawn(media_actor.run(shutdown.child_token()));

        // Peers from earlier runs help a node find the network without a bootstrap address.
        let known = store.known_peers()?;
        for peer in known.iter().take(PEER_BOOK_DIALS) {
            let Ok(id) = peer.peer_id.parse::<PeerId>() else {
                continue;
            };
            for addr in peer
                .addrs
                .iter()
                .filter_map(|a| a.parse::<Multiaddr>().ok())
            {
                net.add_peer_address(id, addr).await?;
            }
            if config.net.bootstrap.is_empty()
                && let Some(addr) = peer.addrs.first().and_then(|a| a.parse().ok())
            {
                net.dial(addr).await?;
            }
        }

        let (registry_tx, registry_rx) = mpsc::channel(1024);
        let mut registry_client = None;
        let registry = match &config.registry {
            Some(registry) => {
                let client = RegistryClient::connect(&registry.rpc_url, registry.address, None)?;
                registry_client = Some(client.clone());
                let follower = FollowerConfig {
                    poll_interval: registry.poll_interval,
                    ..FollowerConfig::default()
                };
                let (actor, handle) =
                    RegistryActor::new(client, store.clone(), follower, registry_tx)?;
                tasks.spawn(actor.run(shutdown.child_token()));
                tracing::info!(address = %registry.address, rpc = %registry.rpc_url, "checking rooms against the registry");
                Some(handle)
            }
            None => {
                tracing::warn!(
                    "no [registry] configured: every peer is admitted (development mode)"
                );
                None
            }
        };
        let access = if registry.is_some() {
            AccessPolicy::Enforce
        } else {
            AccessPolicy::Open
        };

        let (commands_tx, commands_rx) = mpsc::channel(64);
        let (frames_tx, frames_rx) = mpsc::channel(4096);
        let frames_wanted = Arc::new(AtomicBool::new(false));
        let (chat_tx, _) = broadcast::channel(CHAT_BUFFER);
        let (notices_tx, _) = broadcast::channel(CHAT_BUFFER);
        let (results_tx, results_rx) = mpsc::channel(64);
        let files = Files::new(
            store.clone(),
            net.clone(),
            config.file_serve_kbps,
            shutdown.child_token(),
        );
        let driver = Driver {
            files: files.clone(),
            session: RoomSession::new(
                SessionConfig {
                    access,
                    seed: seed_of(&peer_id),
                    ..SessionConfig::default()
                },
                peer_id,
            ),
            registry,
            registry_events: registry_rx,
            net: net.clone(),
            media: media.clone(),
            store: store.clone(),
            commands: commands_rx,
            net_events: net_rx,
            media_events: media_rx,
            frames: frames_tx,
            frames_wanted: frames_wanted.clone(),
            chat: chat_tx.clone(),
            results: results_tx,
            gossip: HashMap::new(),
            tree_inbound: HashMap::new(),
            tree_queues: HashMap::new(),
            next_gossip: 0,
            links: HashMap::new(),
            inbound: HashMap::new(),
            next_inbound: 0,
            stats: NodeStats::default(),
            identity,
            peer_bindings: HashMap::new(),
            roster: Roster::default(),
            present_in: HashSet::new(),
            sharing_screen: HashSet::new(),
            moderation: Moderations::default(),
            notices: notices_tx.clone(),
            account: account_tx,
            local_peer: peer_id,
        };
        let span =
            tracing::info_span!(parent: tracing::Span::none(), "node", peer = %short(&peer_id));
        tasks.spawn(
            driver
                .run(results_rx, shutdown.child_token())
                .instrument(span),
        );

        let handle = NodeHandle {
            peer_id,
            files: files.clone(),
            store,
            account,
            registry: registry_client,
            net,
            media,
            commands: commands_tx,
            chat: chat_tx,
            notices: notices_tx,
        };
        let web_addr = match config.web {
            Some(listen) => {
                let (addr, server) =
                    crate::web::serve(listen, handle.clone(), shutdown.child_token()).await?;
                tasks.spawn(server);
                tracing::info!("web page at http://{addr}/");
                Some(addr)
            }
            None => None,
        };
        let node = Self {
            handle,
            web_addr,
            frames: Some(frames_rx),
            frames_wanted,
            shutdown,
            tasks,
            started_at,
        };
        if let Some(relay) = &config.relay {
            for room in &relay.rooms {
                tracing::info!(room = %room.id().fmt_short(), capacity = relay.capacity, "carrying broadcast");
                node.join(
                    room.id(),
                    Participation::Relay {
                        capacity: relay.capacity,
                    },
                )
                .await?;
            }
        }
        Ok(node)
    }

    /// Where the user's page is served (`[web] listen`), if it is.
    pub fn web_addr(&self) -> Option<std::net::SocketAddr> {
        self.web_addr
    }

    /// When [`Self::start`] was called.
    pub fn started_at(&self) -> Instant {
        self.started_at
    }

    /// Frames received from publishers. Can be taken once; untaken frames are dropped.
    pub fn take_frames(&mut self) -> Option<mpsc::Receiver<NodeFrame>> {
        self.frames_wanted.store(true, Ordering::Relaxed);
        self.frames.take()
    }

    /// Stops every task and waits for them.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        while self.tasks.join_next().await.is_some() {}
        self.handle.files.stopped().await;
    }
}

/// What the rest of the process needs to ask a running node: cheap to clone, valid while the
/// node runs (requests fail with "node stopped" after).
#[derive(Debug, Clone)]
pub struct NodeHandle {
    peer_id: PeerId,
    files: Arc<Files>,
    store: Arc<Store>,
    /// The account this node acts for (it changes when the user signs in with a wallet).
    account: watch::Receiver<Option<Acting>>,
    /// For checking this node's own rights before it joins on its user's behalf.
    registry: Option<RegistryClient>,
    net: NetHandle,
    media: MediaHandle,
    commands: mpsc::Sender<DriverCommand>,
    chat: broadcast::Sender<ChatMessage>,
    notices: broadcast::Sender<ModerationNotice>,
}

/// The account a node acts for, as its handles see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Acting {
    account: Account,
    /// When a wallet signed the binding: until when it holds.
    wallet_until_unix: Option<u64>,
}

/// This node's own standing in a room, as the registry tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnAccess {
    /// The room's kind; `None` where no registry is configured (development: anything goes).
    pub kind: Option<RoomKind>,
    /// This node's role; `None` without a registry.
    pub role: Option<Role>,
}

impl NodeHandle {
    /// Sends the driver a command carrying a reply channel and waits for the reply.
    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> DriverCommand,
    ) -> anyhow::Result<T> {
        let (reply, wait) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .context("node stopped")?;
        wait.await.context("node stopped")
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The last `limit` chat lines of `room` this node kept, oldest first.
    pub fn chat_history(&self, room: RoomId, limit: usize) -> anyhow::Result<Vec<ChatMessage>> {
        let lines = self.store.recent_chat(room, limit)?;
        Ok(lines
            .into_iter()
            .filter_map(|line| {
                Some(ChatMessage {
                    room,
                    author: line.author.parse().ok()?,
                    account: line.account,
                    sent_at_unix_ms: line.sent_at_unix_ms,
                    text: line.text,
                })
            })
            .collect())
    }

    /// The account this node acts for, if any.
    pub fn account(&self) -> Option<Account> {
        self.account.borrow().map(|acting| acting.account)
    }

    /// Until when (unix seconds) the user's wallet lets this node act for its account, if a
    /// wallet signed in (a configured account's binding renews itself).
    pub fn wallet_until_unix(&self) -> Option<u64> {
        self.account
            .borrow()
            .and_then(|acting| acting.wallet_until_unix)
    }

    /// The text a wallet signs (EIP-191 `personal_sign`) for this node to act for its account
    /// until `expires_at_unix` (see [`Self::sign_in`]).
    pub fn binding_text(&self, expires_at_unix: u64) -> String {
        chroom_registry::binding_text(&self.peer_id.to_base58(), expires_at_unix)
    }

    /// Acts for the account of `binding` from now on, as signed by the user's wallet (it
    /// replaces the configured account, if any). The node must be in no room: members know it
    /// by one account for as long as it is there. Returns the account.
    pub async fn sign_in(&self, binding: IdentityBinding) -> anyhow::Result<Account> {
        self.ask(|done| DriverCommand::SignIn { binding, done })
            .await?
    }

    /// Answers the user's browser's offer to send its camera and microphone, or (`video` being
    /// [`Track::Screen`]) a shared screen, to this node, which sends them on to every member
    /// linked to it.
    pub async fn accept_browser_media(
        &self,
        offer_sdp: String,
        video: Track,
    ) -> anyhow::Result<(LinkId, String)> {
        Ok(self.media.accept_source_offer(offer_sdp, video).await?)
    }

    /// Closes a link to the user's browser.
    pub async fn close_browser_media(&self, link: LinkId) {
        self.media.close_link(link).await;
    }

    /// Offers the user's browser a link with `slots` places to show remote members in (to hear
    /// them only, if `audio_only`).
    pub async fn offer_browser_playback(
        &self,
        slots: usize,
        audio_only: bool,
    ) -> anyhow::Result<PlaybackOffer> {
        Ok(self.media.create_playback_offer(slots, audio_only).await?)
    }

    /// Completes a link this node offered its user's browser.
    pub async fn accept_browser_answer(
        &self,
        link: LinkId,
        answer_sdp: String,
    ) -> anyhow::Result<()> {
        Ok(self.media.accept_answer(link, answer_sdp).await?)
    }

    /// Shows what arrives on `source` (a link receiving from a member) in `slot` of the
    /// browser's `playback` link; `None` empties the slot.
    pub async fn play_in_browser(&self, playback: LinkId, slot: usize, source: Option<LinkId>) {
        self.media.play(playback, slot, source).await;
    }

    /// Tells `room`'s members whether this node's user shares a screen there (on the links'
    /// screen m-line, fed by [`Self::accept_browser_media`] with [`Track::Screen`]).
    pub async fn share_screen(&self, room: RoomId, sharing: bool) -> anyhow::Result<()> {
        self.ask(|done| DriverCommand::ShareScreen {
            room,
            sharing,
            done,
        })
        .await
    }

    /// Drops (or passes again) the microphone arriving on `link`.
    pub async fn silence(&self, link: LinkId, silenced: bool) {
        self.media.silence(link, silenced).await;
    }

    /// Shows the screen shared on `source` (a link from a member) in the browser's `playback`
    /// link; `None` shows none.
    pub async fn show_screen_in_browser(&self, playback: LinkId, source: Option<LinkId>) {
        self.media.show_screen(playback, source).await;
    }

    /// Files shared in rooms, as this node holds them.
    pub fn files(&self) -> &Files {
        &self.files
    }

    /// Shares a file from this node's user with `room` (joined first): keeps it whole, then
    /// offers it to the members, whose nodes fetch it from this one. Returns its hash.
    pub async fn share_file(
        &self,
        room: RoomId,
        name: String,
        bytes: bytes::Bytes,
    ) -> anyhow::Result<FileHash> {
        let offer = self
            .files
            .prepare_share(room, name, bytes, (self.peer_id, self.account()))
            .await?;
        let hash = offer.hash;
        self.ask(|done| DriverCommand::OfferFile { room, offer, done })
            .await??;
        Ok(hash)
    }

    /// The members this node receives from in `room`, and over which link.
    pub async fn receiving_from(&self, room: RoomId) -> anyhow::Result<Vec<(PeerId, LinkId)>> {
        self.ask(|reply| DriverCommand::Receiving { room, reply })
            .await
    }

    /// Asks the registry whether this node's account may `action` in `room`, as a joining user
    /// would want to know before anything else happens. `Err` says why not, in words.
    pub async fn check_own_access(
        &self,
        room: &RoomName,
        action: Action,
    ) -> anyhow::Result<Result<OwnAccess, String>> {
        let Some(registry) = &self.registry else {
            return Ok(Ok(OwnAccess {
                kind: None,
                role: None,
            }));
        };
        let Some(account) = self.account() else {
            return Ok(Err(
                "this node acts for no account: sign in with a wallet, or give it \
                 one in its [identity] config"
                    .to_owned(),
            ));
        };
        let head = registry.head().await?;
        let read = registry.access(room.id(), account, head).await?;
        let Some(kind) = read.room_kind else {
            return Ok(Err(format!(
                "there is no room {:?} in the registry",
                room.as_str()
            )));
        };
        match read.membership {
            Membership::Member(role) if read.membership.allows(kind, action) => Ok(Ok(OwnAccess {
                kind: Some(kind),
                role: Some(role),
            })),
            Membership::Banned => Ok(Err(format!(
                "{account} is banned from room {:?}",
                room.as_str()
            ))),
            Membership::Member(role) => Ok(Err(format!(
                "{account} is a {role:?} in room {:?}, which may not do that",
                room.as_str()
            ))),
            Membership::NotMember => Ok(Err(format!(
                "{account} is not a member of room {:?}",
                room.as_str()
            ))),
        }
    }

    /// This node's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The libp2p addresses this node listens on, each with its `/p2p/` suffix. Waits until the
    /// listeners are up (at most a few seconds).
    pub async fn listen_addrs(&self) -> anyhow::Result<Vec<Multiaddr>> {
        for _ in 0..100 {
            let addrs = self.net.listen_addrs().await?;
            if !addrs.is_empty() {
                let p2p = Multiaddr::empty().with(libp2p::multiaddr::Protocol::P2p(self.peer_id));
                return Ok(addrs
                    .into_iter()
                    .map(|a| a.into_iter().chain(p2p.iter()).collect())
                    .collect());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        anyhow::bail!("no listen address after 2 s")
    }

    /// The UDP address of this node's WebRTC socket.
    pub fn media_addr(&self) -> std::net::SocketAddr {
        self.media.local_addr()
    }

    /// The network handle (DHT queries, raw requests).
    pub fn net(&self) -> &NetHandle {
        &self.net
    }

    /// Joins `room`: provides it in the DHT, subscribes to its gossip, and then publishes or
    /// receives as `participation` says.
    pub async fn join(&self, room: RoomId, participation: Participation) -> anyhow::Result<()> {
        let presence = match participation {
            // Viewers and relayers find a broadcast's root among the publishers.
            Participation::Publish(_)
            | Participation::Meet { .. }
            | Participation::Broadcast { .. } => Presence::Publisher,
            Participation::Receive(_) | Participation::Relay { .. } | Participation::View(_) => {
                Presence::Member
            }
        };
        self.net.join_room(room, presence).await?;
        self.ask(|done| DriverCommand::Join {
            room,
            participation,
            done,
        })
        .await
    }

    /// Who is present in `room`, this node first (if it is in the room as a person). Members
    /// are listed from their presence beats, checked against the registry like chat.
    pub async fn participants(&self, room: RoomId) -> anyhow::Result<Vec<Participant>> {
        self.ask(|reply| DriverCommand::Participants { room, reply })
            .await
    }

    /// Leaves `room` and closes its links.
    pub async fn leave(&self, room: RoomId) -> anyhow::Result<()> {
        self.ask(|done| DriverCommand::Leave { room, done }).await?;
        // Only now: the goodbye above went out on the room's topic.
        self.net.leave_room(room).await?;
        Ok(())
    }

    /// Sends a local frame, as the main track of its kind, to every subscriber of this node.
    pub async fn send_frame(
        &self,
        kind: MediaKind,
        rtp_time: u64,
        data: Arc<[u8]>,
    ) -> anyhow::Result<()> {
        Ok(self
            .media
            .send_frame(Track::main(kind), rtp_time, data)
            .await?)
    }

    /// Writes `text` in `room`'s chat (joined first), signed with this node's account binding.
    pub async fn send_chat(&self, room: RoomId, text: impl Into<String>) -> anyhow::Result<()> {
        self.ask(|done| DriverCommand::SendChat {
            room,
            text: text.into(),
            done,
        })
        .await?
    }

    /// This node's place in `room`'s relay tree (empty if the room is not a broadcast here).
    pub async fn tree_position(&self, room: RoomId) -> anyhow::Result<TreePosition> {
        self.ask(|reply| DriverCommand::Tree { room, reply }).await
    }

    /// Hosts' decisions carried out on this node, from now on.
    pub fn moderation_notices(&self) -> broadcast::Receiver<ModerationNotice> {
        self.notices.subscribe()
    }

    /// Asks `room`'s members to carry out `action` on `target`. Each node checks that this
    /// node's account may moderate the room before it does; this node carries it out at once.
    pub async fn moderate(
        &self,
        room: RoomId,
        target: PeerId,
        action: Moderation,
    ) -> anyhow::Result<()> {
        self.ask(|done| DriverCommand::Moderate {
            room,
            target,
            action,
            done,
        })
        .await?
    }

    /// Chat lines from other nodes, from now on. Each call gives an independent receiver.
    pub fn chat_messages(&self) -> broadcast::Receiver<ChatMessage> {
        self.chat.subscribe()
    }

    /// Current counters.
    pub async fn stats(&self) -> anyhow::Result<NodeStats> {
        let mut stats = self.ask(DriverCommand::Stats).await?;
        stats.relay = self.media.relay_stats().await?;
        Ok(stats)
    }
}

impl std::ops::Deref for RunningNode {
    type Target = NodeHandle;

    fn deref(&self) -> &NodeHandle {
        &self.handle
    }
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Results of spawned signaling steps, fed back into the session.
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
    /// A tree message to `peer` was answered (or not).
    TreeSent {
        peer: PeerId,
        room: RoomId,
        outcome: Result<SignalResponse, String>,
    },
}

struct Driver {
    files: Arc<Files>,
    session: RoomSession<PeerId>,
    net: NetHandle,
    media: MediaHandle,
    store: Arc<Store>,
    commands: mpsc::Receiver<DriverCommand>,
    net_events: mpsc::Receiver<NetEvent>,
    media_events: mpsc::Receiver<MediaEvent>,
    frames: mpsc::Sender<NodeFrame>,
    frames_wanted: Arc<AtomicBool>,
    chat: broadcast::Sender<ChatMessage>,
    /// Where spawned steps report back.
    results: mpsc::Sender<StepResult>,
    /// Room messages waiting for the core's verdict.
    gossip: HashMap<GossipId, PendingGossip>,
    /// Tree requests waiting for the core's answer.
    tree_inbound: HashMap<InboundId, SignalReplyId>,
    /// Tree messages to each peer, sent one at a time so they arrive in order.
    tree_queues: HashMap<PeerId, TreeQueue>,
    next_gossip: u64,
    /// Which peer each receiving link is from, to attribute frames.
    links: HashMap<LinkId, (PeerId, LinkDirection)>,
    inbound: HashMap<InboundId, PendingRequest>,
    next_inbound: u64,
    stats: NodeStats,
    identity: Option<Identity>,
    registry: Option<RegistryHandle>,
    registry_events: mpsc::Receiver<RegistryEvent>,
    /// Peers that proved an account, with the binding's expiry (unix seconds).
    peer_bindings: HashMap<PeerId, u64>,
    /// Who is present in the rooms this node is in.
    roster: Roster<PeerId>,
    /// Rooms this node announces its presence in (every room it takes part in as a person, not
    /// as a relayer).
    present_in: HashSet<RoomId>,
    /// Rooms this node's user shares a screen in.
    sharing_screen: HashSet<RoomId>,
    /// The account this node acts for, as its handles see it.
    account: watch::Sender<Option<Acting>>,
    /// What hosts decided about members of the rooms this node is in.
    moderation: Moderations<PeerId>,
    notices: broadcast::Sender<ModerationNotice>,
    local_peer: PeerId,
}

/// The account this node acts for and its current binding, re-signed when half its life is
/// gone so peers never see an expired one.
#[derive(Debug)]
struct Identity {
    /// The account's key, when the node holds it (from its config); `None` when a wallet
    /// signed the binding, which then lasts until it expires.
    signer: Option<(PrivateKeySigner, Duration)>,
    peer_id: String,
    binding: IdentityBinding,
}

impl Identity {
    fn new(signer: PrivateKeySigner, ttl: Duration, peer_id: &PeerId) -> anyhow::Result<Self> {
        let peer_id = peer_id.to_base58();
        let binding = chroom_registry::sign(&signer, &peer_id, unix_now() + ttl.as_secs())?;
        Ok(Self {
            signer: Some((signer, ttl)),
            peer_id,
            binding,
        })
    }

    /// A binding signed by the user's wallet (checked by the caller).
    fn signed_elsewhere(binding: IdentityBinding) -> Self {
        Self {
            signer: None,
            peer_id: String::new(),
            binding,
        }
    }

    fn current(&mut self) -> IdentityBinding {
        let now = unix_now();
        if let Some((signer, ttl)) = &self.signer
            && self.binding.expires_at_unix.saturating_sub(now) < ttl.as_secs() / 2
        {
            match chroom_registry::sign(signer, &self.peer_id, now + ttl.as_secs()) {
                Ok(binding) => self.binding = binding,
                Err(e) => tracing::error!(error = %e, "cannot renew identity binding"),
            }
        }
        self.binding.clone()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkDirection {
    Receive,
    Send,
}

#[derive(Debug)]
struct PendingRequest {
    reply: SignalReplyId,
    offer_sdp: String,
}

/// Most tree messages queued for one peer; a peer that stops acknowledging is dropped from the
/// tree long before this fills.
const MAX_TREE_QUEUE: usize = 256;

#[derive(Debug, Default)]
struct TreeQueue {
    in_flight: bool,
    waiting: VecDeque<TreeMessage>,
}

#[derive(Debug)]
struct PendingGossip {
    message: GossipMessageRef,
    author: PeerId,
    account: Option<Account>,
    decoded: RoomMessage,
}

impl Driver {
    async fn run(
        mut self,
        mut results_rx: mpsc::Receiver<StepResult>,
        shutdown: CancellationToken,
    ) {
        let results_tx = self.results.clone();
        let mut steps = JoinSet::new();
        let mut expiry_check = tokio::time::interval(Duration::from_secs(1));
        let mut presence_beat = tokio::time::interval(PRESENCE_INTERVAL);
        loop {
            let deadline = self
                .session
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(command) = self.commands.recv() => self.handle_command(command),
                Some(event) = self.net_events.recv() => self.handle_net_event(event),
                Some(event) = self.media_events.recv() => self.handle_media_event(event).await,
                Some(result) = results_rx.recv() => self.handle_step_result(result),
                Some(event) = self.registry_events.recv() => self.handle_registry_event(event),
                Some(_) = steps.join_next(), if !steps.is_empty() => {}
                _ = expiry_check.tick() => {
                    self.expire_bindings();
                    self.roster.expire(Instant::now());
                }
                _ = presence_beat.tick() => {
                    for room in self.present_in.clone() {
                        self.announce_presence(room, false, None);
                    }
                }
                () = tokio::time::sleep_until(deadline.into()) => {
                    // Trust the clock, not the timer: a spurious wakeup is harmless to the core.
                    self.session.handle_timeout(Instant::now());
                }
                else => break,
            }
            self.drain_outputs(&results_tx, &mut steps);
        }
        steps.shutdown().await;
    }

    fn handle_command(&mut self, command: DriverCommand) {
        match command {
            DriverCommand::Join {
                room,
                participation,
                done,
            } => {
                tracing::info!(room = %room.fmt_short(), ?participation, "taking part in room");
                let person = !matches!(participation, Participation::Relay { .. });
                self.session.join(Instant::now(), room, participation);
                if person && self.present_in.insert(room) {
                    self.announce_presence(room, false, None);
                    self.files.resume(room);
                }
                let _ = done.send(());
            }
            DriverCommand::Leave { room, done } => self.leave_room(room, Some(done)),
            DriverCommand::SignIn { binding, done } => {
                let _ = done.send(self.sign_in(binding));
            }
            DriverCommand::Moderate {
                room,
                target,
                action,
                done,
            } => {
                if !self.present_in.contains(&room) {
                    let _ = done.send(Err(anyhow::anyhow!("join the room before moderating it")));
                    return;
                }
                let Some(message) = self.moderation_message(room, target, action) else {
                    let _ = done.send(Err(anyhow::anyhow!("{target} is not a Chroom node")));
                    return;
                };
                let account = self.identity.as_ref().map(|i| i.binding.account);
                self.carry_out(room, target, action, (self.local_peer, account));
                self.moderation.record_own(room, target, action);
                let net = self.net.clone();
                tokio::spawn(async move {
                    let result = net.publish(room, message).await;
                    let _ = done.send(result.map_err(Into::into));
                });
            }
            DriverCommand::SendChat { room, text, done } => {
                let message = self.room_message(room, RoomMessageBody::Chat { text });
                let (net, store, author) = (self.net.clone(), self.store.clone(), self.local_peer);
                tokio::spawn(async move {
                    let result = net.publish(room, encode_room_message(&message)).await;
                    if result.is_ok()
                        && let RoomMessageBody::Chat { text } = &message.body
                    {
                        let account = message.author.as_ref().map(|b| b.account);
                        keep_chat(
                            &store,
                            room,
                            &author,
                            account,
                            message.sent_at_unix_ms,
                            text,
                        );
                    }
                    let _ = done.send(result.map_err(Into::into));
                });
            }
            DriverCommand::Participants { room, reply } => {
                let _ = reply.send(self.participants(room));
            }
            DriverCommand::Receiving { room, reply } => {
                let _ = reply.send(self.session.media_links(room));
            }
            DriverCommand::Tree { room, reply } => {
                let _ = reply.send(TreePosition {
                    parent: self.session.tree_parent(room),
                    children: self.session.tree_children(room),
                });
            }
            DriverCommand::ShareScreen {
                room,
                sharing,
                done,
            } => {
                let changed = if sharing {
                    self.sharing_screen.insert(room)
                } else {
                    self.sharing_screen.remove(&room)
                };
                // Members learn at once, not at the next beat.
                if changed && self.present_in.contains(&room) {
                    self.announce_presence(room, false, None);
                }
                let _ = done.send(());
            }
            DriverCommand::OfferFile { room, offer, done } => {
                if !self.present_in.contains(&room) {
                    let _ = done.send(Err(anyhow::anyhow!("join the room before sharing a file")));
                    return;
                }
                let message = self.room_message(room, RoomMessageBody::FileOffer(offer));
                let net = self.net.clone();
                tokio::spawn(async move {
                    let result = match net.publish(room, encode_room_message(&message)).await {
                        // Alone in the room: members arriving are offered it then.
                        Ok(()) | Err(NetError::NobodyListening) => Ok(()),
                        Err(e) => Err(e.into()),
                    };
                    let _ = done.send(result);
                });
            }
            DriverCommand::Stats(reply) => {
                let mut stats = self.stats.clone();
                stats.receiving_links = self
                    .links
                    .values()
                    .filter(|(_, d)| *d == LinkDirection::Receive)
                    .count();
                stats.sending_links = self.links.len() - stats.receiving_links;
                stats.peers_with_accounts = self.peer_bindings.len();
                let _ = reply.send(stats);
            }
        }
    }

    fn handle_net_event(&mut self, event: NetEvent) {
        match event {
            NetEvent::SignalRequest {
                peer,
                reply,
                request,
            } => match request {
                SignalRequest::Tree(tree) => {
                    let Some(message) = tree_from_nodes(tree.message) else {
                        self.stats.malformed_requests += 1;
                        let net = self.net.clone();
                        tokio::spawn(async move {
                            let error = SignalError::new(
                                ErrorCode::Malformed,
                                "a tree message named a node that is not an ed25519 key",
                            );
                            let _ = net.respond(reply, SignalResponse::Error(error)).await;
                        });
                        return;
                    };
                    let id = InboundId(self.next_inbound);
                    self.next_inbound += 1;
                    self.tree_inbound.insert(id, reply);
                    self.session
                        .handle_tree_request(Instant::now(), id, peer, tree.room, message);
                }
                SignalRequest::Hello { binding } => {
                    if let Some(binding) = binding {
                        self.handle_binding(peer, &binding);
                    }
                    let own = self.identity.as_mut().map(Identity::current);
                    let net = self.net.clone();
                    tokio::spawn(async move {
                        let hello = SignalResponse::Hello { binding: own };
                        let _ = net.respond(reply, hello).await;
                    });
                }
                SignalRequest::Subscribe {
                    room,
                    offer_sdp,
                    binding,
                } => {
                    if self.moderation.is_removed(room, peer) {
                        let net = self.net.clone();
                        tokio::spawn(async move {
                            let error = SignalError::new(
                                ErrorCode::NotAuthorized,
                                "a host removed you from this room",
                            );
                            let _ = net.respond(reply, SignalResponse::Error(error)).await;
                        });
                        return;
                    }
                    if let Some(binding) = binding {
                        self.handle_binding(peer, &binding);
                    }
                    let id = InboundId(self.next_inbound);
                    self.next_inbound += 1;
                    self.inbound.insert(id, PendingRequest { reply, offer_sdp });
                    self.session
                        .handle_subscribe_request(Instant::now(), id, peer, room);
                }
                SignalRequest::File { room, file, part } => {
                    // Files go to members present in the room: their presence was checked
                    // against the registry like anything else they say there.
                    if self.present_in.contains(&room) && self.roster.is_present(room, peer) {
                        self.files.serve(reply, room, file, part);
                        return;
                    }
                    let net = self.net.clone();
                    tokio::spawn(async move {
                        let error = SignalError::new(
                            ErrorCode::NotInRoom,
                            "files are served to members present in the room",
                        );
                        let _ = net.respond(reply, SignalResponse::Error(error)).await;
                    });
                }
                other => {
                    tracing::warn!(%peer, ?other, "unsupported signaling request");
                    let net = self.net.clone();
                    tokio::spawn(async move {
                        let error = SignalError::new(ErrorCode::Malformed, "unsupported request");
                        let _ = net.respond(reply, SignalResponse::Error(error)).await;
                    });
                }
            },
            NetEvent::PeerConnected { peer, .. } => self.say_hello(peer),
            NetEvent::PeerDisconnected { peer } => {
                self.tree_queues.remove(&peer);
                self.session.handle_peer_disconnected(Instant::now(), peer);
            }
            NetEvent::RoomMessage {
                message,
                room,
                author,
                data,
            } => self.handle_room_message(message, room, author, &data),
            // It can hear us now: say we are here rather than at the next beat.
            NetEvent::RoomPeerJoined { room, peer } if self.present_in.contains(&room) => {
                tracing::debug!(room = %room.fmt_short(), peer = %short(&peer), "peer joined room topic");
                self.announce_presence(room, false, None);
                // It missed this node's decisions as a host that are in force.
                let decisions: Vec<Vec<u8>> = self
                    .moderation
                    .own(room)
                    .into_iter()
                    .filter_map(|(target, action)| self.moderation_message(room, target, action))
                    .collect();
                self.publish_again(room, decisions);
                // It may have missed (or lost, if it left) the files offered here.
                let (files, results, own) =
                    (self.files.clone(), self.results.clone(), self.local_peer);
                tokio::spawn(async move {
                    match files.own_offers(room, own).await {
                        Ok(offers) if !offers.is_empty() => {
                            let _ = results.send(StepResult::OwnFiles { room, offers }).await;
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "cannot read shared files"),
                    }
                });
            }
            NetEvent::PeerMisbehaved { peer, reason } => {
                self.stats.malformed_requests += 1;
                tracing::warn!(target: "chroom::_events::peer_misbehaved", %peer, %reason);
            }
            NetEvent::PeerIdentified { peer, listen_addrs } => {
                let store = self.store.clone();
                let addrs: Vec<String> = listen_addrs.iter().map(ToString::to_string).collect();
                // redb fsyncs on commit: keep it off the async threads.
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = store.remember_peer(&peer.to_base58(), &addrs, unix_now()) {
                        tracing::warn!(error = %e, "cannot update peer book");
                    }
                });
            }
            NetEvent::Listening { addr } => {
                tracing::debug!(%addr, "listen address");
            }
            _ => {}
        }
    }

    async fn handle_media_event(&mut self, event: MediaEvent) {
        match event {
            MediaEvent::Frame { link, frame } => {
                let Some((peer, _)) = self.links.get(&link) else {
                    return;
                };
                // Frames are only taken by a recorder; without one they are dropped here.
                if self.frames_wanted.load(Ordering::Relaxed) && !self.frames.is_closed() {
                    let frame = NodeFrame {
                        peer: *peer,
                        link,
                        frame,
                    };
                    let _ = self.frames.send(frame).await;
                }
            }
            MediaEvent::LinkClosed { link, reason } => {
                tracing::info!(%link, ?reason, "link closed");
                self.links.remove(&link);
                self.session.handle_link_closed(Instant::now(), link);
            }
            MediaEvent::LinkConnected { link } => {
                tracing::debug!(%link, "link connected");
            }
            _ => {}
        }
    }

    fn handle_step_result(&mut self, result: StepResult) {
        match result {
            StepResult::Publishers { room, peers } => {
                tracing::debug!(room = %room.fmt_short(), providers = peers.len(), "publishers found");
                self.session.handle_publishers(Instant::now(), room, &peers);
            }
            StepResult::LookupFinished { room } => {
                self.session.handle_lookup_finished(Instant::now(), room);
            }
            StepResult::Subscribed {
                id,
                peer,
                binding,
                result,
            } => {
                if let Some(binding) = binding {
                    self.handle_binding(peer, &binding);
                }
                if let Ok(link) = &result {
                    self.links.insert(*link, (peer, LinkDirection::Receive));
                }
                self.session
                    .handle_subscribe_result(Instant::now(), id, result);
            }
            StepResult::TreeSent {
                peer,
                room,
                outcome,
            } => self.tree_sent(peer, room, outcome),
            StepResult::Reintroduce { peers } => {
                for peer in peers {
                    self.say_hello(peer);
                }
            }
            StepResult::OwnFiles { room, offers } => {
                let messages: Vec<Vec<u8>> = offers
                    .into_iter()
                    .map(|offer| {
                        encode_room_message(
                            &self.room_message(room, RoomMessageBody::FileOffer(offer)),
                        )
                    })
                    .collect();
                self.publish_again(room, messages);
            }
            StepResult::Hello { peer, binding } => match binding {
                Some(binding) => self.handle_binding(peer, &binding),
                None => tracing::debug!(peer = %short(&peer), "peer acts for no account"),
            },
            StepResult::SubscriberLinked { room, peer, link } => {
                self.links.insert(link, (peer, LinkDirection::Send));
                self.session
                    .handle_subscriber_linked(Instant::now(), room, peer, link);
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
                    } => AccessFacts::Known {
                        kind,
                        membership,
                        relayer,
                    },
                    AccessRead {
                        room_kind: None, ..
                    } => AccessFacts::UnknownRoom,
                };
                self.session
                    .handle_access(Instant::now(), room, account, facts);
            }
            RegistryEvent::Freshness(freshness) => {
                self.stats.registry_stale = matches!(freshness, Freshness::Stale { .. });
            }
            _ => {}
        }
    }

    /// Queues a tree message to `peer`; it goes out once the previous one is acknowledged.
    fn send_tree(&mut self, peer: PeerId, room: RoomId, message: &Message<PeerId>) {
        let Some(message) = tree_to_nodes(message) else {
            tracing::warn!(peer = %short(&peer), "tree message names a node without an ed25519 key");
            return;
        };
        let queue = self.tree_queues.entry(peer).or_default();
        if queue.waiting.len() >= MAX_TREE_QUEUE {
            tracing::warn!(peer = %short(&peer), "tree queue full: dropping a message");
            return;
        }
        queue.waiting.push_back(TreeMessage { room, message });
        self.send_next_tree(peer);
    }

    fn send_next_tree(&mut self, peer: PeerId) {
        let Some(queue) = self.tree_queues.get_mut(&peer) else {
            return;
        };
        if queue.in_flight {
            return;
        }
        let Some(message) = queue.waiting.pop_front() else {
            return;
        };
        queue.in_flight = true;
        let (net, results) = (self.net.clone(), self.results.clone());
        tokio::spawn(async move {
            let room = message.room;
            let outcome = net
                .request(peer, SignalRequest::Tree(message))
                .await
                .map_err(|e| e.to_string());
            let _ = results
                .send(StepResult::TreeSent {
                    peer,
                    room,
                    outcome,
                })
                .await;
        });
    }

    fn tree_sent(&mut self, peer: PeerId, room: RoomId, outcome: Result<SignalResponse, String>) {
        let now = Instant::now();
        match outcome {
            Ok(SignalResponse::Ack) => {}
            Ok(SignalResponse::Error(error)) => {
                self.session.handle_tree_refused(now, peer, room, error);
            }
            Ok(other) => {
                tracing::debug!(peer = %short(&peer), ?other, "unexpected answer to a tree message");
            }
            Err(e) => {
                tracing::debug!(peer = %short(&peer), error = %e, "tree message not delivered");
                // Later messages to a vanished peer would only time out one by one.
                self.tree_queues.remove(&peer);
                self.session.handle_tree_unreachable(now, peer, room);
                return;
            }
        }
        if let Some(queue) = self.tree_queues.get_mut(&peer) {
            queue.in_flight = false;
        }
        self.send_next_tree(peer);
    }

    /// Tells a newly connected peer which account this node acts for, and learns its account
    /// from the answer, so rights are known before the first room request.
    fn say_hello(&mut self, peer: PeerId) {
        let Some(identity) = self.identity.as_mut() else {
            return;
        };
        let request = SignalRequest::Hello {
            binding: Some(identity.current()),
        };
        let (net, results) = (self.net.clone(), self.results.clone());
        tokio::spawn(async move {
            match net.request(peer, request).await {
                Ok(SignalResponse::Hello { binding }) => {
                    let _ = results.send(StepResult::Hello { peer, binding }).await;
                }
                // Peers that are not Chroom nodes (bootstrap tools, probes) need not answer.
                Ok(other) => {
                    tracing::debug!(peer = %short(&peer), ?other, "unexpected hello answer")
                }
                Err(e) => tracing::debug!(peer = %short(&peer), error = %e, "hello failed"),
            }
        });
    }

    /// Checks what can be checked locally (it decodes, names the topic's room, is recent, its
    /// author binding names the author's PeerId), then asks the core whether the author may
    /// write in the room.
    fn handle_room_message(
        &mut self,
        message: GossipMessageRef,
        room: RoomId,
        author: PeerId,
        data: &[u8],
    ) {
        let decoded = match decode_room_message(data) {
            Ok(decoded) if decoded.room == room => decoded,
            Ok(_) => return self.reject_gossip(message, author, "names another room"),
            Err(e) => return self.reject_gossip(message, author, &e.to_string()),
        };
        if self.moderation.is_removed(room, author) {
            tracing::debug!(author = %short(&author), "ignored a member removed from the room");
            self.report_gossip(message, GossipAcceptance::Ignore);
            return;
        }
        if !chroom_room::gossip::is_fresh(decoded.sent_at_unix_ms, unix_now_ms()) {
            tracing::debug!(author = %short(&author), "ignored stale room message");
            self.report_gossip(message, GossipAcceptance::Ignore);
            return;
        }
        let account = decoded.author.as_ref().and_then(|binding| {
            chroom_registry::verify(binding, &author.to_base58(), unix_now())
                .inspect_err(
                    |e| tracing::debug!(author = %short(&author), error = %e, "bad author binding"),
                )
                .ok()
        });
        let action = match decoded.body {
            RoomMessageBody::Chat { .. } => Action::Chat,
            RoomMessageBody::Presence { .. } => Action::Listen,
            // Sharing a file is saying something in the room.
            RoomMessageBody::FileOffer(_) => Action::Chat,
            RoomMessageBody::Moderate { .. } => Action::Moderate,
            _ => return self.reject_gossip(message, author, "unknown message kind"),
        };
        let id = GossipId(self.next_gossip);
        self.next_gossip += 1;
        self.gossip.insert(
            id,
            PendingGossip {
                message,
                author,
                account,
                decoded,
            },
        );
        self.session
            .handle_room_message(Instant::now(), id, room, account, action);
    }

    /// A room message from this node, bound to its account.
    fn room_message(&mut self, room: RoomId, body: RoomMessageBody) -> RoomMessage {
        RoomMessage {
            room,
            author: self.identity.as_mut().map(Identity::current),
            sent_at_unix_ms: unix_now_ms(),
            body,
        }
    }

    /// Adopts a binding the user's wallet signed, and tells connected peers. In a room only
    /// a renewal (the same account) is taken: members know this node by one account.
    fn sign_in(&mut self, binding: IdentityBinding) -> anyhow::Result<Account> {
        let current = self.identity.as_ref().map(|i| i.binding.account);
        if !self.present_in.is_empty() && current != Some(binding.account) {
            anyhow::bail!(
                "leave the room before signing in as another account: members know this node \
                 by one account"
            );
        }
        let account = chroom_registry::verify(&binding, &self.local_peer.to_base58(), unix_now())?;
        tracing::info!(%account, expires_at_unix = binding.expires_at_unix, "signed in with a wallet");
        let wallet_until_unix = Some(binding.expires_at_unix);
        self.identity = Some(Identity::signed_elsewhere(binding));
        self.account.send_replace(Some(Acting {
            account,
            wallet_until_unix,
        }));
        let net = self.net.clone();
        let results = self.results.clone();
        tokio::spawn(async move {
            if let Ok(peers) = net.connected_peers().await {
                let _ = results.send(StepResult::Reintroduce { peers }).await;
            }
        });
        Ok(account)
    }

    /// Stops taking part in `room`, then signals `done`.
    fn leave_room(&mut self, room: RoomId, done: Option<oneshot::Sender<()>>) {
        self.session.leave(Instant::now(), room);
        self.roster.forget_room(room);
        self.moderation.forget_room(room);
        self.sharing_screen.remove(&room);
        self.files.pause(room);
        if !self.present_in.remove(&room) {
            if let Some(done) = done {
                let _ = done.send(());
            }
            return;
        }
        // Members drop this node from their rosters at once, and will link to it afresh if it
        // comes back, instead of waiting out its silence.
        self.announce_presence(room, true, done);
    }

    /// Publishes, in order, room messages told again to a member who arrived (what it missed:
    /// this node's file offers, its decisions as a host). Lost ones are told at the next arrival.
    fn publish_again(&self, room: RoomId, messages: Vec<Vec<u8>>) {
        if messages.is_empty() {
            return;
        }
        let net = self.net.clone();
        tokio::spawn(async move {
            for message in messages {
                if let Err(e) = net.publish(room, message).await {
                    tracing::debug!(room = %room.fmt_short(), error = %e, "message not told again");
                }
            }
        });
    }

    /// A host's decision as published in `room`; `None` if `target` names no node key.
    fn moderation_message(
        &mut self,
        room: RoomId,
        target: PeerId,
        action: Moderation,
    ) -> Option<Vec<u8>> {
        let target = chroom_net::node_id_of(&target)?;
        let body = RoomMessageBody::Moderate { target, action };
        Some(encode_room_message(&self.room_message(room, body)))
    }

    /// Carries out a host's decision about `target` in `room` (its author checked): a removed
    /// member is dropped and its links closed (this node, removed, leaves); pages are told.
    fn carry_out(
        &mut self,
        room: RoomId,
        target: PeerId,
        action: Moderation,
        by: (PeerId, Option<Account>),
    ) {
        if !self.moderation.apply(room, target, action) {
            return;
        }
        tracing::info!(room = %room.fmt_short(), target = %short(&target), ?action, by = %short(&by.0), "host decision");
        if action == Moderation::Remove {
            if target == self.local_peer {
                self.leave_room(room, None);
            } else {
                let now = Instant::now();
                let gone = Beat {
                    leaving: true,
                    ..Beat::default()
                };
                self.roster.handle_presence(now, room, target, gone);
                self.session.handle_member_left(now, room, target);
            }
        }
        // Nobody listening is fine: no page is open.
        let _ = self.notices.send(ModerationNotice {
            room,
            target,
            action,
            by: by.0,
            by_account: by.1,
        });
    }

    /// Publishes a presence beat (or, `leaving`, its end) in `room`, then signals `done`. Lost
    /// beats are harmless: the next one follows in [`PRESENCE_INTERVAL`].
    fn announce_presence(
        &mut self,
        room: RoomId,
        leaving: bool,
        done: Option<oneshot::Sender<()>>,
    ) {
        let sharing_screen = !leaving && self.sharing_screen.contains(&room);
        let message = self.room_message(
            room,
            RoomMessageBody::Presence {
                leaving,
                sharing_screen,
            },
        );
        let net = self.net.clone();
        tokio::spawn(async move {
            if let Err(e) = net.publish(room, encode_room_message(&message)).await {
                tracing::debug!(room = %room.fmt_short(), error = %e, "presence not published");
            }
            if let Some(done) = done {
                let _ = done.send(());
            }
        });
    }

    /// Who is in `room`: this node (if it takes part as a person) and every member heard.
    fn participants(&self, room: RoomId) -> Vec<Participant> {
        let role_of = |account: Option<Account>| match self.session.facts(room, account?)? {
            AccessFacts::Known {
                membership: Membership::Member(role),
                ..
            } => Some(role),
            _ => None,
        };
        let mut participants = Vec::new();
        if self.present_in.contains(&room) {
            let account = self.identity.as_ref().map(|i| i.binding.account);
            participants.push(Participant {
                peer: self.local_peer,
                account,
                role: role_of(account),
                is_self: true,
                sharing_screen: self.sharing_screen.contains(&room),
                muted_by_host: self.moderation.is_muted(room, self.local_peer),
            });
        }
        participants.extend(
            self.roster
                .members(room)
                .into_iter()
                .map(|(peer, present)| Participant {
                    peer,
                    account: present.account,
                    role: role_of(present.account),
                    is_self: false,
                    sharing_screen: present.sharing_screen,
                    muted_by_host: self.moderation.is_muted(room, peer),
                }),
        );
        participants
    }

    fn reject_gossip(&mut self, message: GossipMessageRef, author: PeerId, reason: &str) {
        self.stats.gossip_rejected += 1;
        tracing::warn!(target: "chroom::_events::gossip_rejected", author = %short(&author), %reason, "rejected room message");
        self.report_gossip(message, GossipAcceptance::Reject);
    }

    fn report_gossip(&self, message: GossipMessageRef, acceptance: GossipAcceptance) {
        let net = self.net.clone();
        tokio::spawn(async move { net.report_message(message, acceptance).await });
    }

    fn decide_gossip(&mut self, id: GossipId, verdict: GossipVerdict) {
        let Some(pending) = self.gossip.remove(&id) else {
            return;
        };
        match verdict {
            GossipVerdict::Deliver => {
                self.stats.gossip_delivered += 1;
                self.report_gossip(pending.message, GossipAcceptance::Accept);
                let text = match pending.decoded.body {
                    RoomMessageBody::Chat { text } => text,
                    RoomMessageBody::Presence {
                        leaving,
                        sharing_screen,
                    } => {
                        let now = Instant::now();
                        let room = pending.decoded.room;
                        let beat = Beat {
                            account: pending.account,
                            leaving,
                            sharing_screen,
                        };
                        let changed = self.roster.handle_presence(now, room, pending.author, beat);
                        if leaving {
                            self.session.handle_member_left(now, room, pending.author);
                        } else if changed {
                            self.session
                                .handle_member_present(now, room, pending.author);
                        }
                        return;
                    }
                    RoomMessageBody::Moderate { target, action } => {
                        match chroom_net::peer_id_of(target) {
                            Some(target) => self.carry_out(
                                pending.decoded.room,
                                target,
                                action,
                                (pending.author, pending.account),
                            ),
                            None => tracing::debug!("moderation of a key that names no node"),
                        }
                        return;
                    }
                    RoomMessageBody::FileOffer(offer) => {
                        if self.present_in.contains(&pending.decoded.room) {
                            self.files.offered(
                                pending.decoded.room,
                                (pending.author, pending.account),
                                pending.decoded.sent_at_unix_ms,
                                offer,
                            );
                        }
                        return;
                    }
                    _ => return,
                };
                tracing::info!(room = %pending.decoded.room.fmt_short(), author = %short(&pending.author), "chat message");
                keep_chat(
                    &self.store,
                    pending.decoded.room,
                    &pending.author,
                    pending.account,
                    pending.decoded.sent_at_unix_ms,
                    &text,
                );
                // No receiver is fine: nobody is reading chat on this node.
                let _ = self.chat.send(ChatMessage {
                    room: pending.decoded.room,
                    author: pending.author,
                    account: pending.account,
                    sent_at_unix_ms: pending.decoded.sent_at_unix_ms,
                    text,
                });
            }
            GossipVerdict::Reject(error) => {
                self.reject_gossip(pending.message, pending.author, &error.to_string());
            }
            GossipVerdict::Ignore(reason) => {
                tracing::debug!(author = %short(&pending.author), %reason, "ignored room message");
                self.report_gossip(pending.message, GossipAcceptance::Ignore);
            }
        }
    }

    /// Verifies a peer's binding against the PeerId its connection authenticated, and tells
    /// the core which account the peer acts for (none, if the binding is bad).
    fn handle_binding(&mut self, peer: PeerId, binding: &IdentityBinding) {
        let now = Instant::now();
        match chroom_registry::verify(binding, &peer.to_base58(), unix_now()) {
            Ok(account) => {
                self.peer_bindings.insert(peer, binding.expires_at_unix);
                self.session.handle_peer_account(now, peer, Some(account));
            }
            Err(e) => {
                tracing::warn!(peer = %short(&peer), error = %e, "refused identity binding");
                self.peer_bindings.remove(&peer);
                self.session.handle_peer_account(now, peer, None);
            }
        }
    }

    fn expire_bindings(&mut self) {
        let now_unix = unix_now();
        let expired: Vec<PeerId> = self
            .peer_bindings
            .iter()
            .filter(|(_, expiry)| **expiry <= now_unix)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in expired {
            tracing::info!(peer = %short(&peer), "identity binding expired");
            self.peer_bindings.remove(&peer);
            self.session.handle_peer_account(Instant::now(), peer, None);
        }
    }

    fn drain_outputs(&mut self, results: &mpsc::Sender<StepResult>, steps: &mut JoinSet<()>) {
        while let Some(output) = self.session.poll_output() {
            match output {
                Output::FindPublishers { room } => {
                    let (net, results) = (self.net.clone(), results.clone());
                    steps.spawn(async move {
                        // Act on each answer as it comes rather than after the whole query.
                        let mut found = match net.stream_providers(room, Presence::Publisher).await
                        {
                            Ok(found) => found,
                            Err(e) => {
                                tracing::debug!(error = %e, "provider lookup failed");
                                let _ = results.send(StepResult::LookupFinished { room }).await;
                                return;
                            }
                        };
                        while let Some(peers) = found.recv().await {
                            let _ = results.send(StepResult::Publishers { room, peers }).await;
                        }
                        let _ = results.send(StepResult::LookupFinished { room }).await;
                    });
                }
                Output::Subscribe {
                    id,
                    room,
                    peer,
                    kinds,
                    send,
                    mode,
                } => {
                    let (net, media, results) =
                        (self.net.clone(), self.media.clone(), results.clone());
                    let own = self.identity.as_mut().map(Identity::current);
                    steps.spawn(async move {
                        let (result, binding) =
                            subscribe(&net, &media, room, peer, (&kinds, &send), mode, own).await;
                        let _ = results
                            .send(StepResult::Subscribed {
                                id,
                                peer,
                                binding,
                                result,
                            })
                            .await;
                    });
                }
                Output::AcceptSubscriber {
                    request,
                    room,
                    peer,
                    mode,
                } => {
                    let Some(pending) = self.inbound.remove(&request) else {
                        continue;
                    };
                    let (net, media, results) =
                        (self.net.clone(), self.media.clone(), results.clone());
                    let own = self.identity.as_mut().map(Identity::current);
                    steps.spawn(async move {
                        if let Some(link) = accept(&net, &media, pending, peer, mode, own).await {
                            let _ = results
                                .send(StepResult::SubscriberLinked { room, peer, link })
                                .await;
                        }
                    });
                }
                Output::Refuse {
                    request,
                    peer,
                    error,
                } => {
                    self.stats.requests_refused += 1;
                    let reply = match self.inbound.remove(&request) {
                        Some(pending) => pending.reply,
                        None => match self.tree_inbound.remove(&request) {
                            Some(reply) => reply,
                            None => continue,
                        },
                    };
                    tracing::warn!(%peer, %error, "refused signaling request");
                    let net = self.net.clone();
                    steps.spawn(async move {
                        let _ = net.respond(reply, SignalResponse::Error(error)).await;
                    });
                }
                Output::SendTree {
                    peer,
                    room,
                    message,
                } => self.send_tree(peer, room, &message),
                Output::AckTree { request, .. } => {
                    if let Some(reply) = self.tree_inbound.remove(&request) {
                        let net = self.net.clone();
                        steps.spawn(async move {
                            let _ = net.respond(reply, SignalResponse::Ack).await;
                        });
                    }
                }
                Output::Forward {
                    upstream,
                    downstream,
                    version,
                } => {
                    let media = self.media.clone();
                    steps.spawn(async move { media.forward(upstream, downstream, version).await });
                }
                Output::GossipVerdict { id, verdict, .. } => self.decide_gossip(id, verdict),
                Output::LookupAccess { room, account } => match &self.registry {
                    Some(registry) => registry.lookup(room, account),
                    None => tracing::error!("access lookup without a registry: a bug"),
                },
                Output::CloseLink { link } => {
                    let media = self.media.clone();
                    steps.spawn(async move { media.close_link(link).await });
                }
                Output::Event(event) => {
                    match &event {
                        RoomEvent::SubscribeFailed {
                            failure: SubscribeFailure::Refused(error),
                            ..
                        }
                        | RoomEvent::TreeRefused { error, .. } => {
                            self.stats.last_refusal = Some(error.to_string());
                        }
                        RoomEvent::TreeAttached { .. } => self.stats.tree_attachments += 1,
                        _ => {}
                    }
                    log_room_event(&event);
                }
                _ => {}
            }
        }
    }
}

/// Opens a link to `peer` that receives (and, in a conference, sends too): offer, subscribe
/// request, answer. Returns the publisher's
/// binding too, when its answer carried one.
async fn subscribe(
    net: &NetHandle,
    media: &MediaHandle,
    room: RoomId,
    peer: PeerId,
    (receive, send): (&[MediaKind], &[MediaKind]),
    mode: LinkMode,
    binding: Option<IdentityBinding>,
) -> (Result<LinkId, SubscribeFailure>, Option<IdentityBinding>) {
    let failed = |e: &dyn std::fmt::Display| SubscribeFailure::Failed(e.to_string());
    // Links between members (whole frames) carry a screen m-line beside the camera's; the
    // broadcast tree forwards the main tracks only.
    let screen = mode == LinkMode::Frames;
    let (receive, send) = (
        Track::carrying(receive, screen),
        Track::carrying(send, screen),
    );
    let (link, offer_sdp) = match media.create_offer(&receive, &send, mode).await {
        Ok(offer) => offer,
        Err(e) => return (Err(failed(&e)), None),
    };
    let request = SignalRequest::Subscribe {
        room,
        offer_sdp,
        binding,
    };
    let mut publisher_binding = None;
    let outcome = match net.request(peer, request).await {
        Ok(SignalResponse::Answer {
            answer_sdp,
            binding,
        }) => {
            publisher_binding = binding;
            media
                .accept_answer(link, answer_sdp)
                .await
                .map_err(|e| failed(&e))
        }
        Ok(SignalResponse::Error(error)) => Err(SubscribeFailure::Refused(error)),
        Ok(other) => Err(SubscribeFailure::Failed(format!(
            "unexpected response {other:?}"
        ))),
        Err(e) => Err(failed(&e)),
    };
    match outcome {
        Ok(()) => (Ok(link), publisher_binding),
        Err(failure) => {
            media.close_link(link).await;
            (Err(failure), publisher_binding)
        }
    }
}

/// Accepts a subscriber's offer and answers it. Returns the new link, or `None` if the offer was
/// refused (the refusal has been sent).
async fn accept(
    net: &NetHandle,
    media: &MediaHandle,
    pending: PendingRequest,
    peer: PeerId,
    mode: LinkMode,
    binding: Option<IdentityBinding>,
) -> Option<LinkId> {
    let response = match media.accept_offer(pending.offer_sdp, mode).await {
        Ok((link, answer_sdp)) => {
            let answer = SignalResponse::Answer {
                answer_sdp,
                binding,
            };
            if net.respond(pending.reply, answer).await.is_ok() {
                return Some(link);
            }
            media.close_link(link).await;
            return None;
        }
        Err(chroom_media::MediaError::TooManyLinks { limit }) => SignalError::new(
            ErrorCode::Overloaded,
            format!("this node already has {limit} links"),
        ),
        Err(chroom_media::MediaError::BadSdp { reason }) => {
            SignalError::new(ErrorCode::BadSdp, format!("offer refused: {reason}"))
        }
        Err(e) => SignalError::new(ErrorCode::Internal, e.to_string()),
    };
    tracing::warn!(%peer, error = %response, "refused subscribe offer");
    let _ = net
        .respond(pending.reply, SignalResponse::Error(response))
        .await;
    None
}

fn log_room_event(event: &RoomEvent<PeerId>) {
    match event {
        RoomEvent::Subscribed { room, peer, link } => {
            tracing::info!(room = %room.fmt_short(), peer = %short(peer), %link, "receiving from publisher");
        }
        RoomEvent::SubscriptionLost { room, peer, link } => {
            tracing::info!(room = %room.fmt_short(), peer = %short(peer), %link, "lost publisher link, retrying");
        }
        RoomEvent::SubscriberAdded { room, peer, link } => {
            tracing::info!(room = %room.fmt_short(), peer = %short(peer), %link, "subscriber added");
        }
        RoomEvent::SubscriberRemoved { room, peer, link } => {
            tracing::info!(room = %room.fmt_short(), peer = %short(peer), %link, "subscriber removed");
        }
        RoomEvent::SubscribeFailed {
            room,
            peer,
            failure,
        } => {
            tracing::debug!(room = %room.fmt_short(), peer = %short(peer), ?failure, "subscribe failed");
        }
        RoomEvent::AccessRevoked { room, peer, link } => {
            tracing::warn!(room = %room.fmt_short(), peer = %short(peer), %link, "closed link: access revoked");
        }
        RoomEvent::RequestRefused { peer, error } => {
            tracing::info!(peer = %short(peer), %error, "request refused");
        }
        RoomEvent::TreeAttached {
            room,
            parent,
            level,
        } => {
            tracing::info!(room = %room.fmt_short(), parent = %short(parent), level, "fed by a new parent in the relay tree");
        }
        RoomEvent::TreeRefused { room, peer, error } => {
            tracing::warn!(room = %room.fmt_short(), peer = %short(peer), %error, "refused by a tree member");
        }
        _ => {}
    }
    tracing::debug!(target: "chroom::_events::room", event = ?event);
}

/// A tree message as it travels: members named by their keys.
/// Keeps a chat line in the store, off the async threads (redb fsyncs on commit); a failure is
/// logged, the line was delivered anyway.
fn keep_chat(
    store: &Arc<Store>,
    room: RoomId,
    author: &PeerId,
    account: Option<Account>,
    sent_at_unix_ms: u64,
    text: &str,
) {
    let line = chroom_store::StoredChat {
        sent_at_unix_ms,
        author: author.to_base58(),
        account,
        text: text.to_owned(),
    };
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = store.append_chat(room, &line) {
            tracing::warn!(room = %room.fmt_short(), error = %e, "chat line not kept");
        }
    });
}

fn tree_to_nodes(message: &Message<PeerId>) -> Option<Message<NodeId>> {
    // Chroom nodes all have ed25519 keys: every member can be named.
    message
        .clone()
        .try_map_peers(|peer| chroom_net::node_id_of(&peer))
}

/// A received tree message with members as PeerIds; `None` if it names a key that is not one.
fn tree_from_nodes(message: Message<NodeId>) -> Option<Message<PeerId>> {
    message.try_map_peers(chroom_net::peer_id_of)
}

/// Seeds the node's random choices from its key, so nodes differ but a node is reproducible.
fn seed_of(peer: &PeerId) -> u64 {
    let bytes = peer.to_bytes();
    let tail: [u8; 8] = bytes[bytes.len() - 8..].try_into().unwrap_or([0; 8]);
    u64::from_le_bytes(tail)
}

/// The last 8 characters of a PeerId: enough to tell nodes apart in logs.
pub fn short(peer: &PeerId) -> String {
    let text = peer.to_base58();
    text[text.len().saturating_sub(8)..].to_owned()
}

pub(crate) fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
