//! [`RoomSession`]: rooms, subscriptions and subscribers.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt::Debug;
use std::hash::Hash;
use std::time::{Duration, Instant};

use chroom_overlay::Message;
use chroom_proto::{ErrorCode, SignalError};
use chroom_types::{Account, Action, LinkId, LinkMode, RoomId};

use crate::access::{AccessBook, Verdict};
use crate::gossip::{GossipId, GossipVerdict};

/// Most outputs queued before the oldest events are dropped. Commands are never dropped: they are
/// bounded by the number of rooms and peers, which the caller controls.
const MAX_QUEUED_EVENTS: usize = 1024;

pub use api::{
    InboundId, Output, Participation, RoomEvent, SessionConfig, SubscribeFailure, SubscribeId,
};
use rights::{denial, unbound};

/// The room session state machine. See the crate docs for the run loop.
#[derive(Debug)]
pub struct RoomSession<P> {
    config: SessionConfig,
    /// This node, as its peers name it.
    local: P,
    rooms: BTreeMap<RoomId, Room<P>>,
    links: HashMap<LinkId, (RoomId, LinkRole<P>)>,
    /// Links held (no media either way) until their peer's right is known, and since when.
    held: HashMap<LinkId, Instant>,
    /// Links from publishers whose media stopped, and when they are given up if it stays so.
    silent: HashMap<LinkId, Instant>,
    /// Members each room's orchestrator put on stage: they may publish there beyond their
    /// role (never when banned).
    stage: HashMap<RoomId, BTreeSet<P>>,
    outputs: VecDeque<Output<P>>,
    access: AccessBook<P>,
    /// Subscribe requests and gossip messages waiting for registry facts.
    pending: Vec<PendingRequest<P>>,
    queued_events: usize,
    dropped_events: u64,
    /// Since when the registry has been unreachable, while it is.
    stale_since: Option<Instant>,
    lookups_throttled: u64,
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
            access: AccessBook::new(config.access, config.lookup_limits),
            local,
            config,
            rooms: BTreeMap::new(),
            links: HashMap::new(),
            held: HashMap::new(),
            silent: HashMap::new(),
            stage: HashMap::new(),
            outputs: VecDeque::new(),
            pending: Vec::new(),
            queued_events: 0,
            dropped_events: 0,
            stale_since: None,
            lookups_throttled: 0,
            next_subscribe: 0,
            forward_version: 0,
        }
    }

    /// Takes part in `room`. Joining a room again replaces how this node takes part.
    /// Joining a broadcast room with another part in its tree than before starts over in
    /// the tree. Returns whether links this node had in the room were closed to be made
    /// again (it takes part another way): its peers should be told.
    pub fn join(&mut self, now: Instant, room: RoomId, participation: Participation) -> bool {
        let discovers = participation.discovers();
        // Taking part another way (a listener put on stage now meets the others, a viewer
        // goes live): the room's links were made for the old way (a listener's carry nothing
        // back; a tree is another tree), so they close and are made again. A change within the
        // same way (what a meeting member sends) keeps them.
        let changed_way = self.rooms.get(&room).is_some_and(|state| {
            std::mem::discriminant(&state.participation) != std::mem::discriminant(&participation)
                || (state.participation != participation
                    && (state.participation.uses_tree() || participation.uses_tree()))
        });
        if changed_way {
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
        self.drain_tree(now, room);
        self.handle_timeout(now);
        changed_way
    }

    /// Leaves `room`, closing its links. In a relay tree, children are handed over to this
    /// node's parent and siblings first.
    pub fn leave(&mut self, now: Instant, room: RoomId) {
        if let Some(tree) = self.tree_mut(room) {
            tree.overlay.leave(now);
            self.drain_tree(now, room);
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
            self.forget_link(link);
            self.outputs.push_back(Output::CloseLink { link });
        }
    }

    /// Part of the answer to an [`Output::FindPublishers`]: subscribing to these starts at once,
    /// while the lookup goes on. Peers already known are ignored.
    pub fn handle_publishers(&mut self, now: Instant, room: RoomId, publishers: &[P]) {
        let Some(state) = self.rooms.get_mut(&room) else {
            return;
        };
        if let Some(tree) = &mut state.tree {
            // A broadcast has one publisher, the root of its tree; whoever provides the room
            // only claims to be it until the registry says it may broadcast.
            tree.add_claims(publishers.iter().copied().filter(|p| *p != self.local));
            self.consider_roots(now, room);
            return;
        }
        if state.participation.mesh_receives().is_none() {
            return;
        }
        let meet = state.participation.meets();
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
            // The tree finds its own way once it has its root; a root keeps an eye out for a
            // rival claim.
            let joined = tree.is_joined();
            if !joined {
                state.next_discovery = Some(now + interval);
            } else if tree.is_root() {
                state.next_discovery = Some(now + rediscovery);
            }
            if !joined {
                // Claims heard before count as much as this lookup's: a root passed over for
                // a while is weighed again though the DHT did not name it this time.
                self.consider_roots(now, room);
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
                // A meeting pair keeps one link, which carries both ways: one the peer opened
                // before (when it only listened, say) is stale now.
                let stale = state
                    .participation
                    .meets()
                    .then(|| state.subscribers.remove(&peer))
                    .flatten();
                if let Some(old) = stale {
                    self.forget_link(old);
                    self.outputs.push_back(Output::CloseLink { link: old });
                }
                self.emit(RoomEvent::Subscribed { room, peer, link });
                // Media is only taken from those the registry lets publish.
                self.track_link(now, link, room, LinkRole::Receiving(peer));
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
        // A broadcaster links with the members on its stage outside its tree.
        let studio = self.in_studio(room, peer);
        if !studio
            && self
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
            Some(state) if !studio && !state.participation.mesh_publishes() => {
                Some(SignalError::new(
                    ErrorCode::NotPublishing,
                    format!("this node publishes nothing in room {}", room.fmt_short()),
                ))
            }
            Some(_) => None,
        };
        if let Some(error) = refusal {
            self.refuse(request, peer, error);
            return;
        }
        match self.access.check(peer, room, Action::Listen) {
            Verdict::Allowed => self.admit(request, peer, room),
            Verdict::NoAccount => self.refuse(request, peer, unbound()),
            Verdict::Denied(account, facts) => {
                let error = denial(room, account, facts, Action::Listen);
                self.refuse(request, peer, error);
            }
            Verdict::Unknown(account) => {
                if !self.wait_for_facts(now, room, account, Waiting::Subscribe { request, peer }) {
                    let error = SignalError::new(
                        ErrorCode::Overloaded,
                        "this node is asking the registry too much right now: ask again shortly",
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
                GossipVerdict::Ignore(
                    "this node is asking the registry too much right now".to_owned(),
                )
            }
        };
        self.gossip_verdict(id, room, verdict);
    }

    /// The driver opened the sending link for an [`Output::AcceptSubscriber`].
    pub fn handle_subscriber_linked(&mut self, now: Instant, room: RoomId, peer: P, link: LinkId) {
        if !self.in_studio(room, peer) && self.tree_subscriber_linked(now, room, peer, link) {
            return;
        }
        let Some(state) = self.rooms.get_mut(&room) else {
            self.outputs.push_back(Output::CloseLink { link });
            return;
        };
        // A peer that subscribes again replaces its old link (it restarted, say).
        if let Some(old) = state.subscribers.insert(peer, link) {
            self.forget_link(old);
            self.outputs.push_back(Output::CloseLink { link: old });
        }
        self.emit(RoomEvent::SubscriberAdded { room, peer, link });
        self.track_link(now, link, room, LinkRole::Sending(peer));
    }

    /// Media stopped (`flowing` false) or came back on `link`. A publisher never pauses (a
    /// muted track still sends), so a link from one that stays silent for
    /// [`SessionConfig::receive_silence_grace`] more has lost its path — the peer's NAT
    /// rebound, its network changed — or its peer: it is closed and subscribed again after
    /// [`SessionConfig::retry_backoff`], and the new link's ICE finds the path anew (the
    /// publisher replaces the old link with it). A tree parent's silence is the tree's to
    /// repair.
    pub fn handle_link_media(&mut self, now: Instant, link: LinkId, flowing: bool) {
        match self.links.get(&link) {
            Some((_, LinkRole::Receiving(_))) if flowing => {
                self.silent.remove(&link);
            }
            Some((_, LinkRole::Receiving(_))) => {
                let deadline = now + self.config.receive_silence_grace;
                self.silent.entry(link).or_insert(deadline);
                self.give_up_silent_links(now);
            }
            Some((_, LinkRole::TreeUpstream(_))) => self.tree_link_media(now, link, flowing),
            _ => {}
        }
    }

    /// Closes the publishers' links silent past their grace (each is subscribed again).
    fn give_up_silent_links(&mut self, now: Instant) {
        let over: Vec<LinkId> = self
            .silent
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(link, _)| *link)
            .collect();
        for link in over {
            self.outputs.push_back(Output::CloseLink { link });
            self.handle_link_closed(now, link);
        }
    }

    /// A link closed, for whatever reason.
    pub fn handle_link_closed(&mut self, now: Instant, link: LinkId) {
        let Some((room, role)) = self.forget_link(link) else {
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
        self.close_unverified_links(now);
        self.give_up_silent_links(now);
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
            let send = state.participation.mesh_sends().to_vec();
            if matches!(state.participation, Participation::Broadcast { .. }) {
                // A broadcaster subscribes only to members on its stage, while they are.
                let stage = self.stage.get(room);
                state
                    .publishers
                    .retain(|peer, _| stage.is_some_and(|s| s.contains(peer)));
            }
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
            self.drain_tree(now, room);
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
            .chain(self.unverified_deadline())
            .chain(self.silent.values().copied())
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

    /// The rooms this node is in, and how it takes part in each.
    pub fn rooms(&self) -> impl Iterator<Item = (RoomId, &Participation)> + '_ {
        self.rooms
            .iter()
            .map(|(room, state)| (*room, &state.participation))
    }

    /// Whether this node is in `room`.
    pub fn is_in_room(&self, room: RoomId) -> bool {
        self.rooms.contains_key(&room)
    }

    /// Every link carrying members' media to this node in `room`, with the member: links to
    /// publishers, in a conference or a broadcast's studio the links other members opened
    /// (they carry both ways), and in a broadcast the link from this node's parent, carrying
    /// the broadcaster.
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
        if state.participation.meets() {
            links.extend(state.subscribers.iter().map(|(peer, link)| (*peer, *link)));
        }
        // A viewer receives the broadcaster over its parent in the tree.
        links.extend(self.tree_upstream(room));
        // A held link carries nothing (its peer is not proven yet): nothing to show.
        links.retain(|(_, link)| !self.held.contains_key(link));
        links
    }

    /// The rooms this node takes part in through a relay tree.
    pub(super) fn tree_rooms(&self) -> Vec<RoomId> {
        self.rooms
            .iter()
            .filter(|(_, state)| state.tree.is_some())
            .map(|(room, _)| *room)
            .collect()
    }

    /// Whether any link of this node's is with `peer`.
    pub fn has_links_with(&self, peer: P) -> bool {
        self.links.values().any(|(_, role)| role.peer() == peer)
    }

    /// Subscribers fed in `room`.
    pub fn subscriber_count(&self, room: RoomId) -> usize {
        self.rooms.get(&room).map_or(0, |s| s.subscribers.len())
    }

    /// Events dropped because the queue was full (the driver did not drain).
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events
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

mod api;
mod broadcast;
mod members;
mod rights;
mod studio;
#[cfg(test)]
mod tests;
mod tree_links;

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
