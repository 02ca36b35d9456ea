//! Broadcast rooms: the session's side of the relay tree. The tree itself (who feeds whom) is
//! [`chroom_overlay::Overlay`]'s; this module checks tree requests against the registry, weighs
//! claims to the root and carries out the overlay's decisions. The media links those decisions
//! make (from the parent, to children) and the packets forwarded on them are `tree_links`'.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::hash::Hash;
use std::time::Instant;

use chroom_overlay::{Message, Overlay, OverlayEvent, Role};
use chroom_proto::{ErrorCode, SignalError};
use chroom_types::{Action, LinkId, LinkMode, MediaKind, RoomId};

use super::{
    InboundId, Output, Participation, RoomEvent, RoomSession, SubscribeId, Waiting, denial, unbound,
};
use crate::access::{AccessFacts, Verdict};

/// How long a root that could not be reached is passed over by a node no root feeds: it
/// is asked again at the next discovery after this.
pub(crate) const UNREACHABLE_ROOT_HOLD: std::time::Duration = std::time::Duration::from_secs(10);

/// This node's part in one room's relay tree.
#[derive(Debug)]
pub(crate) struct Tree<P> {
    pub(super) overlay: Overlay<P>,
    /// The root is in the tree from the start; others once the root was found.
    joined: bool,
    /// This node is the root (it broadcasts).
    is_root: bool,
    /// The broadcaster, once found and proven (not for the root itself).
    root: Option<P>,
    /// Peers that claim to be the root (they provide the room in the DHT), not yet refused.
    claims: BTreeSet<P>,
    /// Claimants asked which account they act for.
    introduced: BTreeSet<P>,
    /// Claimants the registry does not let broadcast (said once; weighed again if that changes).
    refused: BTreeSet<P>,
    /// For the root: the proven broadcaster whose claim beats this node's, once found.
    outranked_by: Option<P>,
    /// Claimants that could not be reached when joined (a provider record outlives the
    /// broadcast it announced), and when: passed over until they prove their account again,
    /// while another root feeds this node; without one, for [`UNREACHABLE_ROOT_HOLD`] (a
    /// live root's answer lost under load must not leave a viewer without a broadcast).
    unreachable_roots: BTreeMap<P, Instant>,
    /// This node has had a parent in this tree: its root was reached then, so a root that
    /// answers slowly later (a loaded node, a congested path) is not a stale provider record.
    attached_once: bool,
    /// What the link from the parent carries.
    pub(super) kinds: Vec<MediaKind>,
    /// Frames for a viewer (it records), packets for a relayer (it forwards).
    pub(super) upstream_mode: LinkMode,
    /// Frames from the root (local media), packets from a relayer.
    pub(super) downstream_mode: LinkMode,
    pub(super) upstream: Option<Upstream<P>>,
    /// The link from the previous parent, closed once the new one is up (make before break).
    pub(super) retiring: Option<LinkId>,
    pub(super) downstream: BTreeMap<P, LinkId>,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Upstream<P> {
    pub(super) parent: P,
    pub(super) link: UpstreamLink,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UpstreamLink {
    Subscribing(SubscribeId),
    Linked(LinkId),
}

impl<P: Copy + Ord + Hash + Debug> Tree<P> {
    /// The tree part for `participation`, or `None` if it takes part in the mesh instead.
    pub(super) fn new(
        participation: &Participation,
        local: P,
        config: &super::SessionConfig,
        now: Instant,
    ) -> Option<Self> {
        let (role, kinds, upstream_mode, downstream_mode) = match participation {
            Participation::Broadcast { kinds, capacity } => (
                Role::Root {
                    capacity: *capacity,
                },
                kinds.clone(),
                LinkMode::Frames,
                LinkMode::Frames,
            ),
            Participation::Relay { capacity } => (
                Role::Relayer {
                    capacity: *capacity,
                },
                vec![MediaKind::Audio, MediaKind::Video],
                LinkMode::Packets,
                LinkMode::Packets,
            ),
            Participation::View(kinds) => (
                Role::Viewer,
                kinds.clone(),
                LinkMode::Frames,
                LinkMode::Frames,
            ),
            Participation::Publish(_)
            | Participation::Receive(_)
            | Participation::Meet { .. }
            | Participation::Guest(_) => {
                return None;
            }
        };
        let overlay = Overlay::new(config.tree.clone(), local, role, config.seed, now);
        Some(Self {
            joined: matches!(role, Role::Root { .. }),
            is_root: matches!(role, Role::Root { .. }),
            root: None,
            claims: BTreeSet::new(),
            introduced: BTreeSet::new(),
            refused: BTreeSet::new(),
            outranked_by: None,
            unreachable_roots: BTreeMap::new(),
            attached_once: false,
            overlay,
            kinds,
            upstream_mode,
            downstream_mode,
            upstream: None,
            retiring: None,
            downstream: BTreeMap::new(),
        })
    }

    pub(super) fn links(&self) -> impl Iterator<Item = LinkId> + '_ {
        let upstream = self.upstream.and_then(|u| match u.link {
            UpstreamLink::Linked(link) => Some(link),
            UpstreamLink::Subscribing(_) => None,
        });
        upstream
            .into_iter()
            .chain(self.retiring)
            .chain(self.downstream.values().copied())
    }

    pub(super) fn is_joined(&self) -> bool {
        self.joined
    }

    pub(super) fn is_root(&self) -> bool {
        self.is_root
    }

    /// `peer` proved its account again: it is reachable, whatever it was before.
    pub(super) fn heard_from(&mut self, peer: P) {
        self.unreachable_roots.remove(&peer);
    }

    /// Whether `claimant` is passed over as root now (see `unreachable_roots`).
    fn passed_over(&self, now: Instant, claimant: P) -> bool {
        self.unreachable_roots.get(&claimant).is_some_and(|since| {
            self.overlay.parent().is_some()
                || now.saturating_duration_since(*since) < UNREACHABLE_ROOT_HOLD
        })
    }

    /// Notes peers that provide the room. At most [`MAX_CLAIMS`]: anyone can provide a key
    /// under as many PeerIds as it likes, and each unknown claimant costs a hello. When full,
    /// claims already refused or unreachable make room; else newcomers are ignored.
    pub(super) fn add_claims(&mut self, claimants: impl Iterator<Item = P>) {
        for claimant in claimants {
            if self.claims.contains(&claimant) {
                continue;
            }
            if self.claims.len() >= MAX_CLAIMS {
                let spent =
                    self.claims.iter().copied().find(|c| {
                        self.refused.contains(c) || self.unreachable_roots.contains_key(c)
                    });
                match spent {
                    Some(spent) => {
                        self.claims.remove(&spent);
                    }
                    None => {
                        tracing::debug!("too many peers claim to broadcast: ignoring the rest");
                        return;
                    }
                }
            }
            self.claims.insert(claimant);
        }
    }
}

/// Most peers weighed as a broadcast room's root at once.
const MAX_CLAIMS: usize = 64;

/// Who may send a tree message: its sender's place in the tree, which must be proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sender {
    /// A child (or a member asking to become one): it must be allowed to watch, or be a
    /// registered relayer.
    Child,
    /// A parent (or a member offering to become one): it must be a registered relayer or the
    /// proven root; a level-0 claim must come from the root itself.
    Parent { level: Option<u32> },
    /// Anyone: the message can only take something away from its sender (a refusal, a
    /// goodbye).
    Anyone,
}

fn sender_of<P>(message: &Message<P>) -> Sender {
    match message {
        Message::Join { .. } | Message::Report { .. } | Message::Probe => Sender::Child,
        Message::Accepted { level, .. }
        | Message::State { level, .. }
        | Message::Invite { level } => Sender::Parent {
            level: Some(*level),
        },
        Message::Handover { .. }
        | Message::Evicted { .. }
        | Message::Repairing
        | Message::Feeding => Sender::Parent { level: None },
        // A redirect is a hint from a member this node asked: it is followed only to members
        // that prove their own place when they accept.
        Message::Refused | Message::Left | Message::Redirected { .. } => Sender::Anyone,
    }
}

impl<P: Copy + Eq + Ord + Hash + Debug> RoomSession<P> {
    /// A tree message from `peer` about `room`'s tree. Answered with [`Output::AckTree`], or
    /// refused (a join from an account that may not watch the room).
    pub fn handle_tree_request(
        &mut self,
        now: Instant,
        request: InboundId,
        peer: P,
        room: RoomId,
        message: Message<P>,
    ) {
        let in_tree = self
            .rooms
            .get(&room)
            .is_some_and(|state| state.tree.is_some());
        if !in_tree {
            let error = SignalError::new(
                ErrorCode::NotInRoom,
                format!("this node is in no relay tree of room {}", room.fmt_short()),
            );
            self.refuse(request, peer, error);
            return;
        }
        let mut message = message;
        let sender = sender_of(&message);
        let (verdict, action) = match sender {
            Sender::Child => (self.child_verdict(peer, room), Action::Listen),
            Sender::Parent { .. } => (self.feeder_verdict(peer, room), Action::Publish),
            Sender::Anyone => (Verdict::Allowed, Action::Listen),
        };
        match verdict {
            Verdict::Allowed => {}
            Verdict::NoAccount => {
                self.refuse_tree(request, peer, room, unbound());
                return;
            }
            Verdict::Denied(account, facts) => {
                let error = match sender {
                    Sender::Parent { .. } => SignalError::new(
                        ErrorCode::NotAuthorized,
                        format!(
                            "{account} may not feed this node in room {}: it is neither the \
                             broadcaster this node verified nor a registered relayer",
                            room.fmt_short()
                        ),
                    ),
                    Sender::Child | Sender::Anyone => denial(room, account, facts, action),
                };
                self.refuse_tree(request, peer, room, error);
                return;
            }
            // A join this node would only redirect needs no rights: the answer points at
            // members of the tree, which is no secret from a joiner, and the member that takes
            // the joiner checks it. Root and relayers near it are spared a registry lookup per
            // joiner passing through.
            Verdict::Unknown(_) if self.only_redirects(room, peer, &message) => {}
            // A viewer's join is taken at once: its link opens held and is released only once
            // the lookup started here says yes (revoked if no), so the lookup runs beside the
            // link's setup instead of before it. A relayer's waits: its capacity depends on it.
            Verdict::Unknown(account)
                if matches!(message, Message::Join { capacity: 0, .. })
                    && self.look_up(now, room, account, peer) => {}
            Verdict::Unknown(account) => {
                let waiting = Waiting::Tree {
                    request,
                    peer,
                    message,
                };
                if !self.wait_for_facts(now, room, account, waiting) {
                    let error = SignalError::new(
                        ErrorCode::Overloaded,
                        "this node is asking the registry too much right now: ask again shortly",
                    );
                    self.refuse(request, peer, error);
                }
                return;
            }
        }
        if let Sender::Parent { level: Some(0) } = sender
            && self.tree_root(room) != Some(peer)
        {
            // Level 0 is the root's: a relayer (or a second broadcaster this node did not
            // choose) claiming it would feed this node something else than the broadcast.
            let error = SignalError::new(
                ErrorCode::NotAuthorized,
                format!(
                    "only the broadcaster this node verified is at level 0 of room {}",
                    room.fmt_short()
                ),
            );
            self.refuse_tree(request, peer, room, error);
            return;
        }
        if let Message::Join { capacity, .. } = &mut message {
            // A registered relayer carries the broadcast without a role in the room; anyone
            // else feeds nobody.
            let relays = *capacity > 0
                && self
                    .access
                    .facts_of(peer, room)
                    .is_some_and(AccessFacts::allows_relaying);
            if !relays && !self.access.is_open() {
                *capacity = 0;
            }
        }
        self.outputs.push_back(Output::AckTree { request, peer });
        if let Some(tree) = self.tree_mut(room) {
            tree.overlay.handle_message(now, peer, message);
        }
        self.drain_tree(now, room);
    }

    /// Whether `message` is a join this node would not take now (it redirects or refuses).
    fn only_redirects(&self, room: RoomId, peer: P, message: &Message<P>) -> bool {
        let Message::Join {
            below_level,
            capacity,
        } = message
        else {
            return false;
        };
        self.rooms
            .get(&room)
            .and_then(|state| state.tree.as_ref())
            .is_some_and(|tree| !tree.overlay.would_take(peer, *below_level, *capacity))
    }

    /// Refuses a tree message, and says so: a refused tree message is a peer trying what
    /// its proven place does not allow.
    fn refuse_tree(&mut self, request: InboundId, peer: P, room: RoomId, error: SignalError) {
        self.emit(RoomEvent::TreeMessageRefused {
            room,
            peer,
            error: error.clone(),
        });
        self.refuse(request, peer, error);
    }

    /// The proven broadcaster of `room`: this node if it broadcasts, else the claimant this
    /// node verified and joined.
    pub fn tree_root(&self, room: RoomId) -> Option<P> {
        let tree = self.rooms.get(&room)?.tree.as_ref()?;
        if tree.is_root {
            Some(self.local)
        } else {
            tree.root
        }
    }

    /// Weighs the claims to be `room`'s root: each claimant must prove (by its binding) an
    /// account the registry lets broadcast in the room; unknown accounts are asked for and
    /// looked up. Of the proven claims the lowest id wins, the same on every node: a viewer
    /// joins it, or moves to it from a claim that lost; a root that lost is told.
    pub(super) fn consider_roots(&mut self, now: Instant, room: RoomId) {
        let Some(tree) = self.rooms.get(&room).and_then(|s| s.tree.as_ref()) else {
            return;
        };
        let claims: Vec<P> = tree
            .claims
            .iter()
            .copied()
            .filter(|c| !tree.passed_over(now, *c))
            .collect();
        let mut proven = Vec::new();
        for peer in claims {
            match self.access.check(peer, room, Action::Publish) {
                Verdict::Allowed => {
                    proven.push(peer);
                    if let Some(tree) = self.tree_mut(room) {
                        tree.refused.remove(&peer);
                    }
                }
                Verdict::NoAccount => {
                    let Some(tree) = self.tree_mut(room) else {
                        return;
                    };
                    if tree.introduced.insert(peer) {
                        self.outputs.push_back(Output::LearnAccount { peer });
                    }
                }
                Verdict::Unknown(account) => {
                    self.look_up(now, room, account, peer);
                }
                Verdict::Denied(account, facts) => {
                    let Some(tree) = self.tree_mut(room) else {
                        return;
                    };
                    if tree.refused.insert(peer) {
                        let error = denial(room, account, facts, Action::Publish);
                        self.emit(RoomEvent::RootRefused { room, peer, error });
                    }
                }
            }
        }
        let Some(winner) = proven.into_iter().min() else {
            return;
        };
        let local = self.local;
        let Some(tree) = self.tree_mut(room) else {
            return;
        };
        if tree.is_root {
            if winner < local && tree.outranked_by != Some(winner) {
                tree.outranked_by = Some(winner);
                self.emit(RoomEvent::RootContested { room, winner });
            }
            return;
        }
        match tree.root {
            None => self.join_tree(now, room, winner),
            // A better claim, or the current root lost its right (banned, say).
            Some(current) if winner < current || tree.refused.contains(&current) => {
                self.restart_tree(now, room, Some(winner));
            }
            Some(_) => {}
        }
    }

    /// Leaves `room`'s tree (handing over any children) and joins the tree of `root` instead,
    /// or of the best claim left (`None`), keeping what was learned of the claims.
    fn restart_tree(&mut self, now: Instant, room: RoomId, root: Option<P>) {
        let Some(tree) = self.rooms.get_mut(&room).and_then(|s| s.tree.as_mut()) else {
            return;
        };
        let learned = (
            std::mem::take(&mut tree.claims),
            std::mem::take(&mut tree.introduced),
            std::mem::take(&mut tree.refused),
            std::mem::take(&mut tree.unreachable_roots),
        );
        let Some(participation) = self.rooms.get(&room).map(|s| s.participation.clone()) else {
            return;
        };
        self.leave(now, room);
        self.join(now, room, participation);
        if let Some(tree) = self.tree_mut(room) {
            (
                tree.claims,
                tree.introduced,
                tree.refused,
                tree.unreachable_roots,
            ) = learned;
        }
        match root {
            Some(root) => self.join_tree(now, room, root),
            None => self.consider_roots(now, room),
        }
    }

    /// `peer` refused a tree message this node sent (it may not watch the room, say).
    pub fn handle_tree_refused(&mut self, now: Instant, peer: P, room: RoomId, error: SignalError) {
        let not_authorized = error.code == ErrorCode::NotAuthorized;
        self.emit(RoomEvent::TreeRefused { room, peer, error });
        if let Some(tree) = self.tree_mut(room) {
            // To a member asking to join, a refusal is a refusal: it asks the next candidate.
            // From its parent only a verdict counts (this member may not watch): a parent still
            // learning this member's right refuses for now, and that is no reason to leave.
            let from_parent = tree.overlay.parent() == Some(peer);
            if !from_parent || not_authorized {
                tree.overlay.handle_message(now, peer, Message::Refused);
            }
        }
        self.drain_tree(now, room);
    }

    /// A tree message to `peer` could not be delivered: to the tree, the peer is gone. The
    /// root this node was still joining being unreachable (a provider record can outlive its
    /// broadcast), the next claim is tried and that one passed over for a while.
    pub fn handle_tree_unreachable(&mut self, now: Instant, peer: P, room: RoomId) {
        let Some(tree) = self.tree_mut(room) else {
            return;
        };
        // Only a root never reached is passed over: one this node was attached under before
        // lost an answer under load (passing it over left a relayer of a one-root room
        // without a parent, and its subtree without the broadcast, for the whole hold).
        let joining = !tree.is_root
            && !tree.attached_once
            && tree.root == Some(peer)
            && tree.overlay.parent().is_none();
        if joining {
            tree.unreachable_roots.insert(peer, now);
        }
        self.tree_peer_gone(now, peer, room);
        if joining {
            self.restart_tree(now, room, None);
        }
    }

    /// `peer` left `room`'s tree (it said goodbye, or every connection to it was lost).
    pub(super) fn tree_peer_gone(&mut self, now: Instant, peer: P, room: RoomId) {
        if let Some(tree) = self.tree_mut(room) {
            tree.overlay.handle_peer_disconnected(now, peer);
        }
        self.drain_tree(now, room);
    }

    /// The transport lost every connection to `peer`: every tree it was part of repairs.
    pub fn handle_peer_disconnected(&mut self, now: Instant, peer: P) {
        for room in self.tree_rooms() {
            self.tree_peer_gone(now, peer, room);
        }
    }

    /// The parent this node receives `room`'s broadcast from, if attached.
    pub fn tree_parent(&self, room: RoomId) -> Option<P> {
        self.rooms
            .get(&room)
            .and_then(|s| s.tree.as_ref())
            .and_then(|t| t.overlay.parent())
    }

    /// The broadcaster of `room` and the link its broadcast arrives on (from this node's
    /// parent, whoever that is), once linked.
    pub fn tree_upstream(&self, room: RoomId) -> Option<(P, LinkId)> {
        let tree = self.rooms.get(&room)?.tree.as_ref()?;
        match tree.upstream?.link {
            UpstreamLink::Linked(link) => Some((tree.root?, link)),
            UpstreamLink::Subscribing(_) => None,
        }
    }

    /// For a broadcaster: the proven broadcaster of `room` whose claim wins over this node's,
    /// once found.
    pub fn tree_outranked_by(&self, room: RoomId) -> Option<P> {
        self.rooms.get(&room)?.tree.as_ref()?.outranked_by
    }

    /// Broadcast children this node feeds, in all its rooms.
    pub fn tree_child_count(&self) -> usize {
        self.rooms
            .values()
            .filter_map(|state| state.tree.as_ref())
            .map(|tree| tree.overlay.child_count())
            .sum()
    }

    /// The members this node feeds in `room`'s tree.
    pub fn tree_children(&self, room: RoomId) -> Vec<P> {
        self.rooms
            .get(&room)
            .and_then(|s| s.tree.as_ref())
            .map_or_else(Vec::new, |t| t.overlay.children().collect())
    }

    pub(super) fn tree_mut(&mut self, room: RoomId) -> Option<&mut Tree<P>> {
        self.rooms.get_mut(&room).and_then(|s| s.tree.as_mut())
    }

    /// The room's root was found: join its tree.
    pub(super) fn join_tree(&mut self, now: Instant, room: RoomId, root: P) {
        if let Some(tree) = self.tree_mut(room)
            && !tree.joined
            && tree.overlay.join(now, root).is_ok()
        {
            tree.joined = true;
            tree.root = Some(root);
        }
        self.drain_tree(now, room);
    }

    /// Carries out what the overlay asked for: messages, links, forwarding.
    pub(super) fn drain_tree(&mut self, now: Instant, room: RoomId) {
        let mut events = Vec::new();
        let Some(tree) = self.tree_mut(room) else {
            return;
        };
        let mut sends = Vec::new();
        while let Some(transmit) = tree.overlay.poll_transmit() {
            sends.push(Output::SendTree {
                peer: transmit.to,
                room,
                message: transmit.message,
            });
        }
        while let Some(event) = tree.overlay.poll_event() {
            events.push(event);
        }
        let asked = tree.overlay.asking();
        self.outputs.extend(sends);
        if let Some(peer) = asked {
            self.prefetch_feeder(now, room, peer);
        }
        for event in events {
            self.on_tree_event(room, event);
        }
    }

    /// Starts learning whether `peer`, asked to take this node into `room`'s tree, may feed
    /// it: its acceptance needs the answer, and asking the registry while the join is on its
    /// way takes a lookup off the path in. Called again when its account becomes known.
    pub(super) fn prefetch_feeder(&mut self, now: Instant, room: RoomId, peer: P) {
        if let Verdict::Unknown(account) = self.feeder_verdict(peer, room) {
            // Throttled, the acceptance asks again.
            self.look_up(now, room, account, peer);
        }
    }

    /// The rooms whose tree this node is asking `peer` to join.
    pub(super) fn trees_asking(&self, peer: P) -> Vec<RoomId> {
        self.rooms
            .iter()
            .filter(|(_, state)| {
                state
                    .tree
                    .as_ref()
                    .is_some_and(|t| t.overlay.asking() == Some(peer))
            })
            .map(|(room, _)| *room)
            .collect()
    }

    fn on_tree_event(&mut self, room: RoomId, event: OverlayEvent<P>) {
        tracing::debug!(room = %room.fmt_short(), ?event, "tree event");
        match event {
            OverlayEvent::Attached { parent, level, .. } => {
                let id = self.next_subscribe_id();
                let Some(tree) = self.tree_mut(room) else {
                    return;
                };
                // The old parent's link keeps feeding until the new one is up.
                let old = tree.upstream.take();
                if let Some(Upstream {
                    link: UpstreamLink::Linked(link),
                    ..
                }) = old
                    && let Some(stale) = tree.retiring.replace(link)
                {
                    self.close_tree_link(stale);
                }
                let Some(tree) = self.tree_mut(room) else {
                    return;
                };
                tree.attached_once = true;
                tree.upstream = Some(Upstream {
                    parent,
                    link: UpstreamLink::Subscribing(id),
                });
                let (kinds, mode) = (tree.kinds.clone(), tree.upstream_mode);
                self.outputs.push_back(Output::Subscribe {
                    id,
                    room,
                    peer: parent,
                    kinds,
                    send: Vec::new(),
                    mode,
                });
                self.emit(RoomEvent::TreeAttached {
                    room,
                    parent,
                    level,
                });
            }
            OverlayEvent::ParentLost { parent, silent } => {
                if silent {
                    self.emit(RoomEvent::ParentSilent { room, parent });
                }
                let Some(tree) = self.tree_mut(room) else {
                    return;
                };
                if let Some(Upstream {
                    link: UpstreamLink::Linked(link),
                    ..
                }) = tree.upstream.take()
                {
                    self.close_tree_link(link);
                }
            }
            OverlayEvent::ChildRemoved { child } => {
                let Some(tree) = self.tree_mut(room) else {
                    return;
                };
                if let Some(link) = tree.downstream.remove(&child) {
                    self.close_tree_link(link);
                    self.update_forwarding(room);
                }
            }
            OverlayEvent::PeerMisbehaved { peer, reason } => {
                tracing::warn!(room = %room.fmt_short(), ?peer, reason, "tree member misbehaved");
            }
            // Logged above, as every event: a search that found nobody yet goes on by itself.
            _ => {}
        }
    }
}
