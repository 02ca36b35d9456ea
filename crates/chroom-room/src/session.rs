//! [`RoomSession`]: rooms, subscriptions and subscribers.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Debug;
use std::hash::Hash;
use std::time::{Duration, Instant};

use chroom_overlay::{Message, OverlayConfig};
use chroom_proto::{ErrorCode, SignalError};
use chroom_types::{Account, Action, LinkId, LinkMode, MediaKind, RoomId};

use crate::access::{AccessBook, AccessFacts, AccessPolicy, Verdict};
use crate::gossip::{GossipId, GossipVerdict};

/// Most outputs queued before the oldest events are dropped. Commands are never dropped: they are
/// bounded by the number of rooms and peers, which the caller controls.
const MAX_QUEUED_EVENTS: usize = 1024;

/// Tuning of a [`RoomSession`].
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// How often to look for publishers while a receiving room has no link. Default 1 s.
    pub discovery_interval: Duration,
    /// How often to look for new publishers once linked. Default 10 s.
    pub rediscovery_interval: Duration,
    /// First retry delay after a failed subscribe; doubles per failure. Default 500 ms.
    pub retry_backoff: Duration,
    /// Longest retry delay. Default 10 s.
    pub max_retry_backoff: Duration,
    /// How long before asking a peer again that said it publishes nothing. Default 10 s.
    pub not_publishing_backoff: Duration,
    /// Most subscribers this node feeds per room. Default 32.
    pub max_subscribers_per_room: usize,
    /// Whether requests are checked against the registry. Default [`AccessPolicy::Open`]
    /// (local development without a chain).
    pub access: AccessPolicy,
    /// How long a request may wait for registry facts before it is refused as unavailable.
    /// Default 5 s.
    pub access_lookup_timeout: Duration,
    /// Most requests and gossip messages waiting for registry facts; more are refused as
    /// overloaded (requests) or ignored (messages). Default 256.
    pub max_pending_requests: usize,
    /// How long cached registry facts are trusted while the registry cannot be reached
    /// ([`RoomSession::handle_registry_stale`]); after that every right is unknown and every
    /// link needing one closes (fail closed: whoever can block the chain RPC cannot keep a
    /// banned account in). Default 10 min.
    pub max_staleness: Duration,
    /// Tuning of broadcast relay trees.
    pub tree: OverlayConfig,
    /// Seeds the tree's random choices. Default 0; nodes derive it from their key.
    pub seed: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            discovery_interval: Duration::from_secs(1),
            rediscovery_interval: Duration::from_secs(10),
            retry_backoff: Duration::from_millis(500),
            max_retry_backoff: Duration::from_secs(10),
            not_publishing_backoff: Duration::from_secs(10),
            max_subscribers_per_room: 32,
            access: AccessPolicy::Open,
            access_lookup_timeout: Duration::from_secs(5),
            max_pending_requests: 256,
            max_staleness: Duration::from_secs(10 * 60),
            tree: OverlayConfig::default(),
            seed: 0,
        }
    }
}

/// How this node takes part in a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Participation {
    /// Broadcast tracks of these kinds as the root of the room's relay tree, feeding at most
    /// `capacity` children directly.
    Broadcast {
        /// What is broadcast.
        kinds: Vec<MediaKind>,
        /// Children fed directly.
        capacity: u32,
    },
    /// Publish tracks of these kinds; accept subscribers (every member links to every other).
    Publish(Vec<MediaKind>),
    /// Receive tracks of these kinds from every publisher found.
    Receive(Vec<MediaKind>),
    /// A conference member: publish `publish` to every member that subscribes, and receive
    /// `receive` from every publisher found (every member links to every other, both ways).
    Meet {
        /// Kinds this node sends.
        publish: Vec<MediaKind>,
        /// Kinds this node receives.
        receive: Vec<MediaKind>,
    },
    /// Carry the room's broadcast: join its relay tree and feed up to `capacity` children.
    Relay {
        /// Children fed.
        capacity: u32,
    },
    /// Watch the room's broadcast: join its relay tree as a viewer receiving these kinds.
    View(Vec<MediaKind>),
}

impl Participation {
    /// Whether this takes part in the room's relay tree rather than its mesh.
    pub fn uses_tree(&self) -> bool {
        matches!(
            self,
            Self::Broadcast { .. } | Self::Relay { .. } | Self::View(_)
        )
    }

    /// Whether this looks for the room's publishers in the DHT (to subscribe, or to find the
    /// root of the tree).
    fn discovers(&self) -> bool {
        matches!(
            self,
            Self::Receive(_) | Self::Meet { .. } | Self::Relay { .. } | Self::View(_)
        )
    }

    /// What this subscribes to in a mesh room, if it subscribes.
    fn mesh_receives(&self) -> Option<&[MediaKind]> {
        match self {
            Self::Receive(kinds) | Self::Meet { receive: kinds, .. } => Some(kinds),
            _ => None,
        }
    }

    /// Whether this feeds subscribers in a mesh room.
    fn mesh_publishes(&self) -> bool {
        matches!(self, Self::Publish(_) | Self::Meet { .. })
    }
}

/// Correlates a peer's subscribe request with the [`Output::AcceptSubscriber`] or
/// [`Output::Refuse`] that answers it. Chosen by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InboundId(pub u64);

/// Correlates an [`Output::Subscribe`] with [`RoomSession::handle_subscribe_result`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscribeId(u64);

/// Why a subscribe attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubscribeFailure {
    /// The peer refused.
    Refused(SignalError),
    /// The request or the link setup failed (unreachable, timeout, bad answer).
    Failed(String),
}

/// A command for the driver, or an event to report.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output<P> {
    /// Look up the providers of `room`; answer with [`RoomSession::handle_publishers`].
    FindPublishers {
        /// The room.
        room: RoomId,
    },
    /// Open a receive link to `peer`: create an offer for `kinds`, send it as a subscribe
    /// request, apply the answer. Report with [`RoomSession::handle_subscribe_result`].
    Subscribe {
        /// Pass back with the result.
        id: SubscribeId,
        /// The room.
        room: RoomId,
        /// The publisher.
        peer: P,
        /// What to receive.
        kinds: Vec<MediaKind>,
        /// What to send on the same link: two conference members share one link, both ways
        /// (two links between the same two sockets could not be told apart).
        send: Vec<MediaKind>,
        /// Frames (to record) or packets (to relay).
        mode: LinkMode,
    },
    /// Accept `peer`'s subscribe offer with a sending link, and answer it. Report the new link
    /// with [`RoomSession::handle_subscriber_linked`].
    AcceptSubscriber {
        /// The request being answered.
        request: InboundId,
        /// The room.
        room: RoomId,
        /// The subscriber.
        peer: P,
        /// Frames (local media) or packets (relayed).
        mode: LinkMode,
    },
    /// Send a broadcast-tree message; report the outcome with
    /// [`RoomSession::handle_tree_refused`] or [`RoomSession::handle_tree_unreachable`].
    /// Messages to one peer must arrive in the order given (send the next once the previous
    /// is acknowledged).
    SendTree {
        /// The recipient.
        peer: P,
        /// The room whose tree it is.
        room: RoomId,
        /// The message.
        message: Message<P>,
    },
    /// Acknowledge a tree request: it was taken.
    AckTree {
        /// The request.
        request: InboundId,
        /// The sender.
        peer: P,
    },
    /// Forward every packet arriving on `upstream` to `downstream` (replacing the previous
    /// set; empty stops forwarding).
    Forward {
        /// The link from the parent.
        upstream: LinkId,
        /// The links to the children.
        downstream: Vec<LinkId>,
        /// Grows with every forwarding change: if the driver carries them out concurrently, an
        /// older set must never replace a newer one.
        version: u64,
    },
    /// Refuse a signaling request with `error`.
    Refuse {
        /// The request being answered.
        request: InboundId,
        /// The requester.
        peer: P,
        /// Why.
        error: SignalError,
    },
    /// Learn what the registry says about `account` in `room`; answer with
    /// [`RoomSession::handle_access`].
    LookupAccess {
        /// The room.
        room: RoomId,
        /// The account.
        account: Account,
    },
    /// Deliver, reject or ignore a room gossip message (answers
    /// [`RoomSession::handle_room_message`]).
    GossipVerdict {
        /// The message.
        id: GossipId,
        /// Its room.
        room: RoomId,
        /// What to do with it.
        verdict: GossipVerdict,
    },
    /// Close a link.
    CloseLink {
        /// The link.
        link: LinkId,
    },
    /// Something worth reporting happened.
    Event(RoomEvent<P>),
}

/// Reportable changes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RoomEvent<P> {
    /// Receiving from `peer` over `link`.
    Subscribed {
        /// The room.
        room: RoomId,
        /// The publisher.
        peer: P,
        /// The link.
        link: LinkId,
    },
    /// A receive link closed; a new attempt follows after backoff.
    SubscriptionLost {
        /// The room.
        room: RoomId,
        /// The publisher.
        peer: P,
        /// The link.
        link: LinkId,
    },
    /// Feeding `peer` over `link`.
    SubscriberAdded {
        /// The room.
        room: RoomId,
        /// The subscriber.
        peer: P,
        /// The link.
        link: LinkId,
    },
    /// A send link closed.
    SubscriberRemoved {
        /// The room.
        room: RoomId,
        /// The subscriber.
        peer: P,
        /// The link.
        link: LinkId,
    },
    /// A subscribe attempt failed.
    SubscribeFailed {
        /// The room.
        room: RoomId,
        /// The publisher.
        peer: P,
        /// Why.
        failure: SubscribeFailure,
    },
    /// A link was closed because its peer lost the right it needed (revoked, banned, binding
    /// expired).
    AccessRevoked {
        /// The room.
        room: RoomId,
        /// The peer.
        peer: P,
        /// The link closed.
        link: LinkId,
    },
    /// A peer's request was refused.
    RequestRefused {
        /// The requester.
        peer: P,
        /// Why.
        error: SignalError,
    },
    /// Now fed by `parent` in the room's relay tree.
    TreeAttached {
        /// The room.
        room: RoomId,
        /// The parent.
        parent: P,
        /// This node's level in the tree.
        level: u32,
    },
    /// A tree member refused this node's request.
    TreeRefused {
        /// The room.
        room: RoomId,
        /// Who refused.
        peer: P,
        /// Why.
        error: SignalError,
    },
}

/// The room session state machine. See the crate docs for the run loop.
#[derive(Debug)]
pub struct RoomSession<P> {
    config: SessionConfig,
    /// This node, as its peers name it.
    local: P,
    rooms: BTreeMap<RoomId, Room<P>>,
    links: HashMap<LinkId, (RoomId, LinkRole<P>)>,
    outputs: VecDeque<Output<P>>,
    access: AccessBook<P>,
    /// Subscribe requests and gossip messages waiting for registry facts.
    pending: Vec<PendingRequest<P>>,
    queued_events: usize,
    dropped_events: u64,
    /// Since when the registry has been unreachable, while it is.
    stale_since: Option<Instant>,
    next_subscribe: u64,
    forward_version: u64,
}

#[derive(Debug, Clone)]
struct PendingRequest<P> {
    waiting: Waiting<P>,
    room: RoomId,
    account: Account,
    deadline: Instant,
}

/// What waits for registry facts.
#[derive(Debug, Clone)]
enum Waiting<P> {
    Subscribe {
        request: InboundId,
        peer: P,
    },
    Gossip {
        id: GossipId,
        action: Action,
    },
    Tree {
        request: InboundId,
        peer: P,
        message: Message<P>,
    },
}

#[derive(Debug, Clone, Copy)]
enum LinkRole<P> {
    Receiving(P),
    Sending(P),
    /// From the parent in a relay tree.
    TreeUpstream(P),
    /// To a child in a relay tree.
    TreeDownstream(P),
}

#[derive(Debug)]
struct Room<P> {
    participation: Participation,
    /// When to next ask the DHT, if receiving and no lookup is running.
    next_discovery: Option<Instant>,
    /// A lookup is under way; the next is scheduled when it ends.
    lookup_running: bool,
    publishers: HashMap<P, Publisher>,
    subscribers: HashMap<P, LinkId>,
    /// The room's relay tree, for [`Participation::uses_tree`].
    tree: Option<broadcast::Tree<P>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Publisher {
    /// Known provider, nothing under way; subscribe at `at`.
    Waiting {
        at: Instant,
        failures: u32,
    },
    Subscribing {
        id: SubscribeId,
        failures: u32,
    },
    Linked {
        link: LinkId,
    },
}

impl<P: Copy + Eq + Ord + Hash + Debug> RoomSession<P> {
    /// A session in no room, for the node peers know as `local`.
    pub fn new(config: SessionConfig, local: P) -> Self {
        Self {
            access: AccessBook::new(config.access),
            local,
            config,
            rooms: BTreeMap::new(),
            links: HashMap::new(),
            outputs: VecDeque::new(),
            pending: Vec::new(),
            queued_events: 0,
            dropped_events: 0,
            stale_since: None,
            next_subscribe: 0,
            forward_version: 0,
        }
    }

    /// Takes part in `room`. Joining a room again replaces how this node takes part.
    /// Joining a broadcast room with another part in its tree than before starts over in
    /// the tree.
    pub fn join(&mut self, now: Instant, room: RoomId, participation: Participation) {
        let discovers = participation.discovers();
        let changed_tree = self.rooms.get(&room).is_some_and(|state| {
            state.participation != participation
                && (state.participation.uses_tree() || participation.uses_tree())
        });
        if changed_tree {
            self.leave(now, room);
        }
        let tree = broadcast::Tree::new(&participation, self.local, &self.config, now);
        let entry = self.rooms.entry(room).or_insert_with(|| Room {
            participation: participation.clone(),
            next_discovery: None,
            lookup_running: false,
            publishers: HashMap::new(),
            subscribers: HashMap::new(),
            tree,
        });
        entry.participation = participation;
        entry.next_discovery = (discovers && !entry.lookup_running).then_some(now);
        self.drain_tree(room);
        self.handle_timeout(now);
    }

    /// Leaves `room`, closing its links. In a relay tree, children are handed over to this
    /// node's parent and siblings first.
    pub fn leave(&mut self, now: Instant, room: RoomId) {
        if let Some(tree) = self.tree_mut(room) {
            tree.overlay.leave(now);
            self.drain_tree(room);
        }
        let Some(state) = self.rooms.remove(&room) else {
            return;
        };
        let mut to_close: Vec<LinkId> = state.subscribers.values().copied().collect();
        to_close.extend(state.tree.iter().flat_map(broadcast::Tree::links));
        to_close.extend(state.publishers.values().filter_map(|p| match p {
            Publisher::Linked { link } => Some(*link),
            _ => None,
        }));
        for link in to_close {
            self.links.remove(&link);
            self.outputs.push_back(Output::CloseLink { link });
        }
    }

    /// Part of the answer to an [`Output::FindPublishers`]: subscribing to these starts at once,
    /// while the lookup goes on. Peers already known are ignored.
    pub fn handle_publishers(&mut self, now: Instant, room: RoomId, publishers: &[P]) {
        let Some(state) = self.rooms.get_mut(&room) else {
            return;
        };
        if let Some(tree) = &state.tree {
            // A broadcast has one publisher, the root of its tree.
            if !tree.is_joined()
                && let Some(root) = publishers.first()
            {
                self.join_tree(now, room, *root);
            }
            return;
        }
        if state.participation.mesh_receives().is_none() {
            return;
        }
        let meet = matches!(state.participation, Participation::Meet { .. });
        for peer in publishers {
            // Conference members link once per pair: the lower id subscribes, its link carries
            // both directions, and the higher id takes it as a subscriber.
            if meet && *peer < self.local {
                continue;
            }
            state.publishers.entry(*peer).or_insert(Publisher::Waiting {
                at: now,
                failures: 0,
            });
        }
        self.handle_timeout(now);
    }

    /// A member arrived in `room` (its first presence beat passed the registry check). In a
    /// conference every member publishes, so this links to it at once instead of waiting for
    /// the next DHT lookup or for a retry backed off while it was away (the lower id of a pair
    /// opens the link).
    pub fn handle_member_present(&mut self, now: Instant, room: RoomId, peer: P) {
        let Some(state) = self.rooms.get_mut(&room) else {
            return;
        };
        if !matches!(state.participation, Participation::Meet { .. }) || peer <= self.local {
            return;
        }
        match state.publishers.entry(peer).or_insert(Publisher::Waiting {
            at: now,
            failures: 0,
        }) {
            Publisher::Waiting { at, .. } => *at = now,
            Publisher::Subscribing { .. } | Publisher::Linked { .. } => return,
        }
        self.handle_timeout(now);
    }

    /// A member said it is leaving `room`: its links there close now rather than when ICE
    /// notices (tens of seconds later), and nothing is retried until it is seen again.
    pub fn handle_member_left(&mut self, now: Instant, room: RoomId, peer: P) {
        let links: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(_, (r, role))| {
                *r == room
                    && role.peer() == peer
                    && matches!(role, LinkRole::Receiving(_) | LinkRole::Sending(_))
            })
            .map(|(link, _)| *link)
            .collect();
        for link in links {
            self.handle_link_closed(now, link);
            self.outputs.push_back(Output::CloseLink { link });
        }
        if let Some(state) = self.rooms.get_mut(&room) {
            state.publishers.remove(&peer);
        }
        // Gone from the room is gone from its relay tree: its children find another parent
        // now rather than when its link times out.
        if self
            .rooms
            .get(&room)
            .is_some_and(|state| state.tree.is_some())
        {
            self.handle_tree_unreachable(now, peer, room);
        }
    }

    /// The lookup of an [`Output::FindPublishers`] ended; the next one is scheduled from here,
    /// so lookups never overlap.
    pub fn handle_lookup_finished(&mut self, now: Instant, room: RoomId) {
        let (interval, rediscovery) = (
            self.config.discovery_interval,
            self.config.rediscovery_interval,
        );
        let Some(state) = self.rooms.get_mut(&room) else {
            return;
        };
        if !state.lookup_running {
            return;
        }
        state.lookup_running = false;
        if let Some(tree) = &state.tree {
            // The tree finds its own way once it has its root.
            if !tree.is_joined() {
                state.next_discovery = Some(now + interval);
            }
            self.handle_timeout(now);
            return;
        }
        let linked = state
            .publishers
            .values()
            .any(|p| matches!(p, Publisher::Linked { .. }));
        state.next_discovery = Some(now + if linked { rediscovery } else { interval });
        self.handle_timeout(now);
    }

    /// The result of an [`Output::Subscribe`].
    pub fn handle_subscribe_result(
        &mut self,
        now: Instant,
        id: SubscribeId,
        result: Result<LinkId, SubscribeFailure>,
    ) {
        if self.tree_subscribe_result(now, id, &result) {
            self.handle_timeout(now);
            return;
        }
        let Some((room, peer, failures)) = self.find_subscribe(id) else {
            // The room was left meanwhile: a link that was opened anyway must not leak.
            if let Ok(link) = result {
                self.outputs.push_back(Output::CloseLink { link });
            }
            return;
        };
        let backoff = match &result {
            Ok(_) => Duration::ZERO,
            Err(SubscribeFailure::Refused(error)) if error.code == ErrorCode::NotPublishing => {
                self.config.not_publishing_backoff
            }
            Err(_) => self.retry_delay(failures),
        };
        let state = self
            .rooms
            .get_mut(&room)
            .expect("find_subscribe found the room");
        match result {
            Ok(link) => {
                state.publishers.insert(peer, Publisher::Linked { link });
                self.links.insert(link, (room, LinkRole::Receiving(peer)));
                self.emit(RoomEvent::Subscribed { room, peer, link });
                // Media is only taken from those the registry lets publish.
                self.enforce_link(now, link);
            }
            Err(failure) => {
                state.publishers.insert(
                    peer,
                    Publisher::Waiting {
                        at: now + backoff,
                        failures: failures + 1,
                    },
                );
                self.emit(RoomEvent::SubscribeFailed {
                    room,
                    peer,
                    failure,
                });
            }
        }
        self.handle_timeout(now);
    }

    /// A peer asks to subscribe to this node's tracks in `room`.
    pub fn handle_subscribe_request(
        &mut self,
        now: Instant,
        request: InboundId,
        peer: P,
        room: RoomId,
    ) {
        if self
            .rooms
            .get(&room)
            .is_some_and(|state| state.tree.is_some())
        {
            self.tree_subscribe_request(request, peer, room);
            return;
        }
        let refusal = match self.rooms.get(&room) {
            None => Some(SignalError::new(
                ErrorCode::NotInRoom,
                format!("this node is not in room {}", room.fmt_short()),
            )),
            Some(state) if !state.participation.mesh_publishes() => Some(SignalError::new(
                ErrorCode::NotPublishing,
                format!("this node publishes nothing in room {}", room.fmt_short()),
            )),
            Some(_) => None,
        };
        if let Some(error) = refusal {
            self.refuse(request, peer, error);
            return;
        }
        match self.access.check(peer, room, Action::Listen) {
            Verdict::Allowed => self.admit(request, peer, room),
            Verdict::NoAccount => self.refuse(
                request,
                peer,
                SignalError::new(
                    ErrorCode::NotAuthorized,
                    "no verified identity binding: sign one with the account you act for",
                ),
            ),
            Verdict::Denied(account, facts) => {
                let error = denial(room, account, facts, Action::Listen);
                self.refuse(request, peer, error);
            }
            Verdict::Unknown(account) => {
                if !self.wait_for_facts(now, room, account, Waiting::Subscribe { request, peer }) {
                    let error = SignalError::new(
                        ErrorCode::Overloaded,
                        "too many requests waiting for the registry",
                    );
                    self.refuse(request, peer, error);
                }
            }
        }
    }

    /// A message arrived in `room`'s gossip topic, written by `author` (the account its
    /// verified binding names, if any) and asking for `action` (chat needs
    /// [`Action::Chat`]). Answered by an [`Output::GossipVerdict`], at once or once the
    /// registry has answered.
    pub fn handle_room_message(
        &mut self,
        now: Instant,
        id: GossipId,
        room: RoomId,
        author: Option<Account>,
        action: Action,
    ) {
        if !self.rooms.contains_key(&room) {
            let reason = format!("this node is not in room {}", room.fmt_short());
            self.gossip_verdict(id, room, GossipVerdict::Ignore(reason));
            return;
        }
        let verdict = match self.access.check_account(author, room, action) {
            Verdict::Allowed => GossipVerdict::Deliver,
            Verdict::NoAccount => GossipVerdict::Reject(SignalError::new(
                ErrorCode::NotAuthorized,
                "the message carries no valid author binding",
            )),
            Verdict::Denied(account, facts) => {
                GossipVerdict::Reject(denial(room, account, facts, action))
            }
            Verdict::Unknown(account) => {
                if self.wait_for_facts(now, room, account, Waiting::Gossip { id, action }) {
                    return;
                }
                GossipVerdict::Ignore("too many messages waiting for the registry".to_owned())
            }
        };
        self.gossip_verdict(id, room, verdict);
    }

    /// A peer proved (or stopped proving: `None`) which account it acts for. Its links are
    /// re-checked at once.
    pub fn handle_peer_account(&mut self, now: Instant, peer: P, account: Option<Account>) {
        if self.access.account(peer) == account {
            return;
        }
        self.access.set_account(peer, account);
        let links: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(_, (_, role))| role.peer() == peer)
            .map(|(link, _)| *link)
            .collect();
        for link in links {
            self.enforce_link(now, link);
        }
    }

    /// What the registry says about `account` in `room`: answers an [`Output::LookupAccess`],
    /// or reports a change (role granted or revoked, ban) the driver saw on chain. Links that
    /// lose their right close at once; waiting requests are decided.
    pub fn handle_access(
        &mut self,
        now: Instant,
        room: RoomId,
        account: Account,
        facts: AccessFacts,
    ) {
        self.access.set_facts(room, account, facts);
        let (ready, waiting): (Vec<_>, Vec<_>) = self
            .pending
            .drain(..)
            .partition(|p| p.room == room && p.account == account);
        self.pending = waiting;
        for pending in ready {
            // Re-run the whole check: the peer may have left or changed account meanwhile.
            match pending.waiting {
                Waiting::Subscribe { request, peer } => {
                    self.handle_subscribe_request(now, request, peer, room);
                }
                Waiting::Gossip { id, action } => {
                    self.handle_room_message(now, id, room, Some(account), action);
                }
                Waiting::Tree {
                    request,
                    peer,
                    message,
                } => self.handle_tree_request(now, request, peer, room, message),
            }
        }
        let peers = self.access.peers_of(account);
        let links: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(_, (link_room, role))| *link_room == room && peers.contains(&role.peer()))
            .map(|(link, _)| *link)
            .collect();
        for link in links {
            self.enforce_link(now, link);
        }
    }

    /// The registry became unreachable (`Some(since)`: the last time it answered) or reachable
    /// again (`None`). Cached facts are trusted until `since` + [`SessionConfig::max_staleness`];
    /// then they are set aside until the registry answers again.
    pub fn handle_registry_stale(&mut self, now: Instant, since: Option<Instant>) {
        self.stale_since = since;
        if since.is_none() && self.access.is_expired() {
            self.access.set_expired(false);
            self.enforce_all(now);
        }
        self.handle_timeout(now);
    }

    /// The driver opened the sending link for an [`Output::AcceptSubscriber`].
    pub fn handle_subscriber_linked(&mut self, now: Instant, room: RoomId, peer: P, link: LinkId) {
        if self.tree_subscriber_linked(now, room, peer, link) {
            return;
        }
        let Some(state) = self.rooms.get_mut(&room) else {
            self.outputs.push_back(Output::CloseLink { link });
            return;
        };
        // A peer that subscribes again replaces its old link (it restarted, say).
        if let Some(old) = state.subscribers.insert(peer, link) {
            self.links.remove(&old);
            self.outputs.push_back(Output::CloseLink { link: old });
        }
        self.links.insert(link, (room, LinkRole::Sending(peer)));
        self.emit(RoomEvent::SubscriberAdded { room, peer, link });
    }

    /// A link closed, for whatever reason.
    pub fn handle_link_closed(&mut self, now: Instant, link: LinkId) {
        let Some((room, role)) = self.links.remove(&link) else {
            return;
        };
        if matches!(
            role,
            LinkRole::TreeUpstream(_) | LinkRole::TreeDownstream(_)
        ) {
            self.tree_link_closed(now, room, role, link);
            return;
        }
        let retry = self.config.retry_backoff;
        let Some(state) = self.rooms.get_mut(&room) else {
            return;
        };
        match role {
            LinkRole::Receiving(peer) => {
                state.publishers.insert(
                    peer,
                    Publisher::Waiting {
                        at: now + retry,
                        failures: 1,
                    },
                );
                // The publisher may be gone for good: look again soon.
                if !state.lookup_running {
                    let soon = now + retry;
                    state.next_discovery = Some(state.next_discovery.map_or(soon, |t| t.min(soon)));
                }
                self.emit(RoomEvent::SubscriptionLost { room, peer, link });
            }
            LinkRole::Sending(peer) => {
                if state.subscribers.get(&peer) == Some(&link) {
                    state.subscribers.remove(&peer);
                }
                self.emit(RoomEvent::SubscriberRemoved { room, peer, link });
            }
            LinkRole::TreeUpstream(_) | LinkRole::TreeDownstream(_) => {}
        }
        self.handle_timeout(now);
    }

    /// Time passed. Spurious calls are harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.facts_expire_at().is_some_and(|at| at <= now) {
            self.access.set_expired(true);
            self.enforce_all(now);
        }
        let (expired, waiting): (Vec<_>, Vec<_>) =
            self.pending.drain(..).partition(|p| p.deadline <= now);
        self.pending = waiting;
        for pending in expired {
            let reason = format!(
                "could not learn the rights of {} in room {} in time",
                pending.account,
                pending.room.fmt_short()
            );
            match pending.waiting {
                Waiting::Subscribe { request, peer } | Waiting::Tree { request, peer, .. } => {
                    let error = SignalError::new(ErrorCode::Unavailable, reason);
                    self.refuse(request, peer, error);
                }
                Waiting::Gossip { id, .. } => {
                    self.gossip_verdict(id, pending.room, GossipVerdict::Ignore(reason));
                }
            }
        }
        let mut subscribes = Vec::new();
        let mut trees = Vec::new();
        for (room, state) in &mut self.rooms {
            if let Some(tree) = &mut state.tree {
                tree.overlay.handle_timeout(now);
                trees.push(*room);
            }
            if state.next_discovery.is_some_and(|at| at <= now) {
                state.next_discovery = None;
                state.lookup_running = true;
                self.outputs
                    .push_back(Output::FindPublishers { room: *room });
            }
            let Some(kinds) = state.participation.mesh_receives() else {
                continue;
            };
            let send = match &state.participation {
                Participation::Meet { publish, .. } => publish.clone(),
                _ => Vec::new(),
            };
            for (peer, publisher) in &mut state.publishers {
                if let Publisher::Waiting { at, failures } = *publisher
                    && at <= now
                {
                    let id = SubscribeId(self.next_subscribe);
                    self.next_subscribe += 1;
                    *publisher = Publisher::Subscribing { id, failures };
                    subscribes.push(Output::Subscribe {
                        id,
                        room: *room,
                        peer: *peer,
                        kinds: kinds.to_vec(),
                        send: send.clone(),
                        mode: LinkMode::Frames,
                    });
                }
            }
        }
        self.outputs.extend(subscribes);
        for room in trees {
            self.drain_tree(room);
        }
    }

    /// Next output to carry out, if any.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output<P>> {
        let output = self.outputs.pop_front()?;
        if matches!(output, Output::Event(_)) {
            self.queued_events -= 1;
        }
        Some(output)
    }

    /// When [`Self::handle_timeout`] should next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let pending = self
            .pending
            .iter()
            .map(|p| p.deadline)
            .chain(self.facts_expire_at())
            .min();
        self.rooms
            .values()
            .flat_map(|state| {
                let waiting = state.publishers.values().filter_map(|p| match p {
                    Publisher::Waiting { at, .. } => Some(*at),
                    _ => None,
                });
                let tree = state.tree.as_ref().and_then(|t| t.overlay.poll_timeout());
                state.next_discovery.into_iter().chain(waiting).chain(tree)
            })
            .chain(pending)
            .min()
    }

    /// What the registry said about `account` in `room`, if this node has asked lately.
    pub fn facts(&self, room: RoomId, account: Account) -> Option<AccessFacts> {
        self.access.facts(room, account)
    }

    /// Asks the registry about `account` in `room` unless a lookup is under way; the facts
    /// arrive through [`Self::handle_access`].
    pub(crate) fn look_up(&mut self, now: Instant, room: RoomId, account: Account) {
        if self.access.start_lookup(now, room, account) {
            self.outputs
                .push_back(Output::LookupAccess { room, account });
        }
    }

    /// Whether `peer`'s proven account may `action` in `room` as far as this node knows now;
    /// when that is not known, the registry is asked (the answer serves the next request).
    pub(crate) fn check_peer(
        &mut self,
        now: Instant,
        peer: P,
        room: RoomId,
        action: Action,
    ) -> Result<(), SignalError> {
        match self.access.check(peer, room, action) {
            Verdict::Allowed => Ok(()),
            Verdict::NoAccount => Err(SignalError::new(
                ErrorCode::NotAuthorized,
                "no verified identity binding: sign one with the account you act for",
            )),
            Verdict::Denied(account, facts) => Err(denial(room, account, facts, action)),
            Verdict::Unknown(account) => {
                self.look_up(now, room, account);
                Err(SignalError::new(
                    ErrorCode::Unavailable,
                    format!("the rights of {account} in this room are being looked up: ask again"),
                ))
            }
        }
    }

    /// How rights are checked.
    pub(crate) fn access_policy(&self) -> AccessPolicy {
        self.config.access
    }

    /// How long a request may wait for registry facts.
    pub(crate) fn access_lookup_timeout(&self) -> Duration {
        self.config.access_lookup_timeout
    }

    /// Whether this node is in `room`.
    pub fn is_in_room(&self, room: RoomId) -> bool {
        self.rooms.contains_key(&room)
    }

    /// Every link carrying members' media to this node in `room`, with the member: links to
    /// publishers, in a conference the links other members opened (they carry both ways), and
    /// in a broadcast the link from this node's parent, carrying the broadcaster.
    pub fn media_links(&self, room: RoomId) -> Vec<(P, LinkId)> {
        let Some(state) = self.rooms.get(&room) else {
            return Vec::new();
        };
        let mut links: Vec<(P, LinkId)> = state
            .publishers
            .iter()
            .filter_map(|(peer, p)| match p {
                Publisher::Linked { link } => Some((*peer, *link)),
                _ => None,
            })
            .collect();
        if matches!(state.participation, Participation::Meet { .. }) {
            links.extend(state.subscribers.iter().map(|(peer, link)| (*peer, *link)));
        }
        // A viewer receives the broadcaster over its parent in the tree.
        links.extend(self.tree_upstream(room));
        links
    }

    /// Subscribers fed in `room`.
    pub fn subscriber_count(&self, room: RoomId) -> usize {
        self.rooms.get(&room).map_or(0, |s| s.subscribers.len())
    }

    /// Events dropped because the queue was full (the driver did not drain).
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events
    }

    /// When cached facts stop being trusted, if the registry is unreachable and they still are.
    fn facts_expire_at(&self) -> Option<Instant> {
        let since = self.stale_since?;
        (!self.access.is_expired()).then(|| since + self.config.max_staleness)
    }

    /// Checks every link's right again (the facts behind them changed wholesale).
    fn enforce_all(&mut self, now: Instant) {
        let links: Vec<LinkId> = self.links.keys().copied().collect();
        for link in links {
            self.enforce_link(now, link);
        }
    }

    /// Parks `waiting` until the registry's facts about `account` in `room` arrive, starting the
    /// lookup if none is under way. False if too many things wait already.
    fn wait_for_facts(
        &mut self,
        now: Instant,
        room: RoomId,
        account: Account,
        waiting: Waiting<P>,
    ) -> bool {
        if self.pending.len() >= self.config.max_pending_requests {
            return false;
        }
        self.pending.push(PendingRequest {
            waiting,
            room,
            account,
            deadline: now + self.config.access_lookup_timeout,
        });
        if self.access.start_lookup(now, room, account) {
            self.outputs
                .push_back(Output::LookupAccess { room, account });
        }
        true
    }

    fn gossip_verdict(&mut self, id: GossipId, room: RoomId, verdict: GossipVerdict) {
        self.outputs
            .push_back(Output::GossipVerdict { id, room, verdict });
    }

    fn refuse(&mut self, request: InboundId, peer: P, error: SignalError) {
        self.emit(RoomEvent::RequestRefused {
            peer,
            error: error.clone(),
        });
        self.outputs.push_back(Output::Refuse {
            request,
            peer,
            error,
        });
    }

    /// Accepts a subscriber whose rights are established, if the room has capacity.
    fn admit(&mut self, request: InboundId, peer: P, room: RoomId) {
        let Some(state) = self.rooms.get(&room) else {
            return;
        };
        if state.subscribers.len() >= self.config.max_subscribers_per_room
            && !state.subscribers.contains_key(&peer)
        {
            let error = SignalError::new(
                ErrorCode::Overloaded,
                format!(
                    "room {} already has {} subscribers here",
                    room.fmt_short(),
                    state.subscribers.len()
                ),
            );
            self.refuse(request, peer, error);
            return;
        }
        self.outputs.push_back(Output::AcceptSubscriber {
            request,
            room,
            peer,
            mode: LinkMode::Frames,
        });
    }

    /// Closes `link` if its peer no longer has the right the link needs: a subscriber must be
    /// allowed to listen, a publisher to publish. Unknown facts are looked up; the link stays
    /// until they arrive.
    fn enforce_link(&mut self, now: Instant, link: LinkId) {
        let Some(&(room, role)) = self.links.get(&link) else {
            return;
        };
        if let LinkRole::TreeDownstream(child) = role
            && self
                .access
                .facts_of(child, room)
                .is_some_and(AccessFacts::allows_relaying)
        {
            // A registered relayer carries the broadcast without a role in the room.
            return;
        }
        let action = match role {
            LinkRole::Sending(_) | LinkRole::TreeDownstream(_) => Action::Listen,
            LinkRole::Receiving(_) => Action::Publish,
            // A parent in the tree is the broadcaster or a relayer carrying it: it needs no
            // right of its own to send what the root published.
            LinkRole::TreeUpstream(_) => return,
        };
        match self.access.check(role.peer(), room, action) {
            Verdict::Allowed => {}
            // Rights the node cannot learn (the registry unreachable for longer than it trusts
            // its cache) close the link: fail closed.
            Verdict::Unknown(_) if self.access.is_expired() => {
                self.revoke_link(now, link, room, role)
            }
            Verdict::Unknown(account) => {
                if self.access.start_lookup(now, room, account) {
                    self.outputs
                        .push_back(Output::LookupAccess { room, account });
                }
            }
            Verdict::NoAccount | Verdict::Denied(..) => self.revoke_link(now, link, room, role),
        }
    }

    /// Closes `link`, whose peer lost (or cannot prove) the right it needs.
    fn revoke_link(&mut self, now: Instant, link: LinkId, room: RoomId, role: LinkRole<P>) {
        let peer = role.peer();
        self.outputs.push_back(Output::CloseLink { link });
        self.emit(RoomEvent::AccessRevoked { room, peer, link });
        // Forget the link now so a revoked peer cannot keep a slot; the driver's close report
        // is then ignored.
        self.handle_link_closed(now, link);
        if let LinkRole::Receiving(peer) = role
            && let Some(state) = self.rooms.get_mut(&room)
        {
            // Asking a publisher that may not publish again soon only repeats this.
            let at = now + self.config.not_publishing_backoff;
            state
                .publishers
                .insert(peer, Publisher::Waiting { at, failures: 1 });
        }
    }

    fn find_subscribe(&self, id: SubscribeId) -> Option<(RoomId, P, u32)> {
        self.rooms.iter().find_map(|(room, state)| {
            state.publishers.iter().find_map(|(peer, p)| match p {
                Publisher::Subscribing {
                    id: pending,
                    failures,
                } if *pending == id => Some((*room, *peer, *failures)),
                _ => None,
            })
        })
    }

    fn next_subscribe_id(&mut self) -> SubscribeId {
        let id = SubscribeId(self.next_subscribe);
        self.next_subscribe += 1;
        id
    }

    fn retry_delay(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.min(16));
        self.config
            .retry_backoff
            .saturating_mul(factor)
            .min(self.config.max_retry_backoff)
    }

    fn emit(&mut self, event: RoomEvent<P>) {
        if self.queued_events >= MAX_QUEUED_EVENTS {
            self.dropped_events += 1;
            return;
        }
        self.queued_events += 1;
        self.outputs.push_back(Output::Event(event));
    }
}

mod broadcast;
#[cfg(test)]
mod tests;

impl<P: Copy> LinkRole<P> {
    fn peer(self) -> P {
        match self {
            Self::Receiving(peer)
            | Self::Sending(peer)
            | Self::TreeUpstream(peer)
            | Self::TreeDownstream(peer) => peer,
        }
    }
}

/// A refusal that says who may not do what, and why.
fn denial(room: RoomId, account: Account, facts: AccessFacts, action: Action) -> SignalError {
    let what = match action {
        Action::Listen => "join",
        Action::Publish => "publish in",
        Action::Chat => "chat in",
        Action::Moderate => "moderate",
    };
    let why = match facts {
        AccessFacts::UnknownRoom => "the registry has no such room".to_owned(),
        AccessFacts::Known { membership, .. } => match membership {
            chroom_types::Membership::Banned => "the account is banned".to_owned(),
            chroom_types::Membership::NotMember => "the account is not a member".to_owned(),
            chroom_types::Membership::Member(role) => format!("its role is {role:?}"),
        },
    };
    SignalError::new(
        ErrorCode::NotAuthorized,
        format!("{account} may not {what} room {}: {why}", room.fmt_short()),
    )
}
